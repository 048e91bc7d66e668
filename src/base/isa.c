#include "base/isa.h"

#include <stdlib.h>
#include <string.h>

static int isa_chosen = -1;  /* -1 until first use */

pc_isa pc_isa_detected(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return PC_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return PC_ISA_AVX2;
#endif
    return PC_ISA_PORTABLE;
}

void pc_isa_force(pc_isa isa)
{
    pc_isa best = pc_isa_detected();
    isa_chosen = (int)(isa < best ? isa : best);
}

pc_isa pc_isa_active(void)
{
    if (isa_chosen < 0) {
        const char *env = getenv("PEFTC_ISA");
        pc_isa isa = pc_isa_detected();
        if (env && strcmp(env, "avx2") == 0) isa = PC_ISA_AVX2;
        else if (env && strcmp(env, "portable") == 0) isa = PC_ISA_PORTABLE;
        pc_isa_force(isa);
    }
    return (pc_isa)isa_chosen;
}

const char *pc_isa_name(pc_isa isa)
{
    return isa == PC_ISA_AVX512 ? "avx512" : isa == PC_ISA_AVX2 ? "avx2" : "portable";
}
