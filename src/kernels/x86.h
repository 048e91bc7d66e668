/* PC_X86: 1 when building for x86-64, whose vector kernels (AVX2, AVX-512) are compiled with per-function target
 * attributes and chosen at run time (base/isa.h); the intrinsics come with it. */
#ifndef PC_KERNELS_X86_H
#define PC_KERNELS_X86_H

#if defined(__x86_64__)
#define PC_X86 1
#include <immintrin.h>
#else
#define PC_X86 0
#endif

#endif
