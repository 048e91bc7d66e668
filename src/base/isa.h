/* The instruction set the vector kernels use (kernels/pgemm, kernels/thin, the bulk draws of base/rng):
 * the best this CPU has, from CPUID at first use, lowered by PEFTC_ISA=avx512|avx2|portable or by
 * pc_isa_force() (the tests run every path that way). */
#ifndef PC_BASE_ISA_H
#define PC_BASE_ISA_H

typedef enum { PC_ISA_PORTABLE, PC_ISA_AVX2, PC_ISA_AVX512 } pc_isa;

/* The best instruction set this CPU has; the one in use (detected, lowered by PEFTC_ISA or pc_isa_force). */
pc_isa pc_isa_detected(void);
pc_isa pc_isa_active(void);
/* Uses `isa` (or the detected one when it is lower) from now on. */
void pc_isa_force(pc_isa isa);
const char *pc_isa_name(pc_isa isa);

#endif
