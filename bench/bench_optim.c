/* Optimizer step time and state memory for each TrainingArguments `optim` name on 10M parameters
 * (40 tensors of 512 x 512 with random gradients), and for the paged variants the step time right
 * after their state was evicted (pc_optimizer_page_out: the state comes back from the file).
 *
 *   bench_optim [steps] [paging_dir]        (defaults: 20, /tmp)
 *
 * Prints one line per optimizer: bytes of state per parameter, the median step time (ms), the
 * resident state after page-out (MB) and the step time that follows it. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/rng.h"
#include "train/optim.h"

enum { N_TENSORS = 40, ROWS = 512, COLS = 512 };

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int make_params(pc_param_list *l, float **data, float **grad)
{
    pc_rng rng;
    pc_rng_init(&rng, 1, "bench_optim");
    int64_t shape[2] = { ROWS, COLS };
    for (int i = 0; i < N_TENSORS; i++) {
        char name[64];
        snprintf(name, sizeof name, "layer%d.weight", i);
        data[i] = malloc(sizeof(float) * ROWS * COLS);
        grad[i] = malloc(sizeof(float) * ROWS * COLS);
        if (!data[i] || !grad[i]) return -1;
        pc_rng_fill_normal(&rng, data[i], ROWS * COLS, 0.0f, 0.02f);
        pc_rng_fill_normal(&rng, grad[i], ROWS * COLS, 0.0f, 1e-3f);
        if (pc_param_list_add(l, name, data[i], grad[i], 2, shape, true) != 0) return -1;
    }
    return 0;
}

static int bench_one(const char *name, pc_param_list *params, int steps, const char *dir)
{
    pc_optim_args a = { 0.9, 0.999, 1e-8, 0.01, dir };
    pc_optimizer *o;
    pc_error err = {0};
    if (pc_optimizer_create(name, params, &a, &o, &err) != PEFTC_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double *t = malloc(sizeof(double) * (size_t)steps);
    if (!t) return 1;
    pc_optimizer_step(o, params, 1e-4); /* first touch of the state pages */
    for (int s = 0; s < steps; s++) {
        double t0 = now_seconds();
        pc_optimizer_step(o, params, 1e-4);
        t[s] = now_seconds() - t0;
    }
    qsort(t, (size_t)steps, sizeof *t, cmp_double);
    double n = (double)pc_param_list_numel(params);
    printf("%-18s %6.3f B/param  step %7.1f ms (median of %d, fastest %.1f)", name,
           (double)pc_optimizer_state_bytes(o) / n, 1e3 * t[steps / 2], steps, 1e3 * t[0]);
    if (strstr(name, "paged")) {
        pc_optimizer_page_out(o);
        double resident = (double)pc_optimizer_resident_bytes(o) / 1e6, t0 = now_seconds();
        pc_optimizer_step(o, params, 1e-4);
        printf("  after page-out: resident %.2f MB, step %.1f ms", resident, 1e3 * (now_seconds() - t0));
    }
    printf("\n");
    free(t);
    pc_optimizer_free(o);
    return 0;
}

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 20;
    const char *dir = argc > 2 ? argv[2] : "/tmp";
    if (steps < 1) steps = 1;
    pc_param_list params = {0};
    float *data[N_TENSORS] = {0}, *grad[N_TENSORS] = {0};
    if (make_params(&params, data, grad) != 0) { fprintf(stderr, "out of memory\n"); return 1; }
    printf("%lld parameters in %d tensors, %d threads, paged state under %s\n",
           (long long)pc_param_list_numel(&params), N_TENSORS, omp_get_max_threads(), dir);
    const char *names[] = { "adamw_torch", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit" };
    int rc = 0;
    for (int i = 0; i < 4; i++) rc |= bench_one(names[i], &params, steps, dir);
    for (int i = 0; i < N_TENSORS; i++) { free(data[i]); free(grad[i]); }
    pc_param_list_free(&params);
    return rc;
}
