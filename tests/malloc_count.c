#include "malloc_count.h"

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)

bool pc_malloc_count_available(void) { return false; }
void pc_malloc_count_start(void) {}
long pc_malloc_count_stop(void) { return 0; }
long pc_malloc_count_runtime(void) { return 0; }

#else

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

void *__libc_malloc(size_t n);
void *__libc_calloc(size_t count, size_t n);
void *__libc_realloc(void *p, size_t n);
void *__libc_memalign(size_t align, size_t n);

static bool counting;
static long allocations, runtime_allocations;

/* libgomp allocates and frees the descriptor of a one-thread team on every parallel region that runs
 * serially (an `if` clause that is false, or one thread): the OpenMP runtime's, not the library's, and
 * counted apart. */
static bool from_openmp_runtime(void *caller)
{
    Dl_info info;
    return dladdr(caller, &info) && info.dli_fname && strstr(info.dli_fname, "libgomp");
}

static void count(void *caller)
{
    if (!__atomic_load_n(&counting, __ATOMIC_RELAXED)) return;
    __atomic_fetch_add(from_openmp_runtime(caller) ? &runtime_allocations : &allocations, 1, __ATOMIC_RELAXED);
}

#define COUNT() count(__builtin_return_address(0))

void *malloc(size_t n) { COUNT(); return __libc_malloc(n); }
void *calloc(size_t count_, size_t n) { COUNT(); return __libc_calloc(count_, n); }
void *realloc(void *p, size_t n) { COUNT(); return __libc_realloc(p, n); }
void *aligned_alloc(size_t align, size_t n) { COUNT(); return __libc_memalign(align, n); }
void *memalign(size_t align, size_t n) { COUNT(); return __libc_memalign(align, n); }

int posix_memalign(void **out, size_t align, size_t n)
{
    COUNT();
    if (align < sizeof(void *) || (align & (align - 1))) return EINVAL;
    void *p = __libc_memalign(align, n);
    if (!p && n) return ENOMEM;
    *out = p;
    return 0;
}

bool pc_malloc_count_available(void) { return true; }

void pc_malloc_count_start(void)
{
    __atomic_store_n(&allocations, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&runtime_allocations, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&counting, true, __ATOMIC_SEQ_CST);
}

long pc_malloc_count_stop(void)
{
    __atomic_store_n(&counting, false, __ATOMIC_SEQ_CST);
    return __atomic_load_n(&allocations, __ATOMIC_RELAXED);
}

long pc_malloc_count_runtime(void)
{
    return __atomic_load_n(&runtime_allocations, __ATOMIC_RELAXED);
}

#endif
