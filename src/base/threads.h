/* The one worker-thread count of the process. OpenMP runs the library's parallel loops and OpenBLAS (its
 * OpenMP build) the products; both take the count from here, and OpenBLAS called inside a parallel region
 * runs single-threaded, so the two never multiply. */
#ifndef PC_BASE_THREADS_H
#define PC_BASE_THREADS_H

/* Elements of work below which a loop runs serial: forking and joining the team costs more (and much more
 * when the cores are shared with other processes). */
#define PC_PARALLEL_MIN 32768
/* A trainable tensor larger than this gets a parallel loop of its own in the optimizer; smaller ones are
 * shared out whole among the threads. */
#define PC_PARAM_SPLIT_MIN 65536

/* n > 0: use n threads; n == 0: OMP_NUM_THREADS when set, else every core. Nested parallel regions are
 * switched off either way. */
void pc_set_threads(int n);

/* Threads a parallel region gets now. */
int pc_threads(void);

#endif
