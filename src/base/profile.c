#include "base/profile.h"

#include <omp.h>
#include <string.h>

bool pc_profile_on;     /* collecting now: enabled and inside a phase */
static bool enabled;

enum { MAX_DEPTH = 8 };

static pc_profile_report totals;
static pc_op stack[MAX_DEPTH];
static int depth;
static double clock_start;  /* when the op on top of the stack last (re)started its clock */

void pc_profile_enable(bool on)
{
    memset(&totals, 0, sizeof totals);
    depth = 0;
    enabled = on;
    pc_profile_on = false;
}

/* Charges the time since clock_start to the op on top of the stack; returns now. */
static double charge_top(void)
{
    double now = omp_get_wtime();
    if (depth > 0 && depth <= MAX_DEPTH) totals.op[stack[depth - 1]] += now - clock_start;
    return now;
}

void pc_profile_op_push(pc_op op)
{
    if (omp_in_parallel()) return;
    clock_start = charge_top();
    if (depth < MAX_DEPTH) stack[depth] = op;
    depth++;
}

void pc_profile_op_pop(void)
{
    if (omp_in_parallel() || depth == 0) return;
    clock_start = charge_top();
    depth--;
}

double pc_phase_begin(void)
{
    pc_profile_on = enabled;
    return enabled ? omp_get_wtime() : 0.0;
}

void pc_phase_end(pc_phase phase, double t0)
{
    if (enabled) totals.phase[phase] += omp_get_wtime() - t0;
    pc_profile_on = false;
    depth = 0;
}

void pc_profile_step_done(double seconds)
{
    if (!enabled) return;
    totals.step_seconds += seconds;
    totals.steps++;
}

void pc_profile_read(pc_profile_report *out)
{
    *out = totals;
}

const char *pc_phase_name(pc_phase phase)
{
    static const char *const names[PC_PHASE_COUNT] = {"data", "forward", "backward", "optimizer"};
    return names[phase];
}

const char *pc_op_name(pc_op op)
{
    static const char *const names[PC_OP_COUNT] = {"matmul (base)", "matmul (4-bit base)", "lora", "attention",
                                                   "norm", "activation", "rope", "embedding", "dropout", "loss"};
    return names[op];
}
