/* Counting the heap allocations a stretch of code makes: the test binary's own malloc, calloc, realloc and
 * the aligned variants forward to glibc's and count while counting is on. libgomp's own allocations (a
 * one-thread team descriptor for each parallel region that runs serially) are counted apart. AddressSanitizer brings its own
 * allocator, so under it the counter is unavailable and tests that need it skip. */
#ifndef PC_TEST_MALLOC_COUNT_H
#define PC_TEST_MALLOC_COUNT_H

#include <stdbool.h>

bool pc_malloc_count_available(void);
void pc_malloc_count_start(void);
long pc_malloc_count_stop(void);     /* allocations since start, those of the OpenMP runtime left out */
long pc_malloc_count_runtime(void);  /* the OpenMP runtime's own (libgomp), in the last start .. stop */

#endif
