/* Where a training step's time goes: a process-wide registry of phase times (data, forward, backward,
 * optimizer) and of op times by kind (base matmul, LoRA, attention, ...). Off by default; when off, each
 * hook is one predictable branch. Ops are counted only inside a phase (evaluation between steps is not). Op timers measure self time: an op started inside another (LoRA inside
 * a Linear) stops the outer one's clock until it ends, so op times never count twice. The hooks are meant
 * for the serial code that launches each op (its parallel loops run inside); calls from inside a parallel
 * region are ignored. */
#ifndef PC_BASE_PROFILE_H
#define PC_BASE_PROFILE_H

#include <stdbool.h>

typedef enum { PC_PHASE_DATA, PC_PHASE_FORWARD, PC_PHASE_BACKWARD, PC_PHASE_OPTIMIZER, PC_PHASE_COUNT } pc_phase;

typedef enum {
    PC_OP_MATMUL,       /* f32 base Linear products (forward, input and weight gradients) */
    PC_OP_MATMUL_4BIT,  /* 4-bit base Linear products, dequantization included */
    PC_OP_LORA,         /* LoRA / DoRA branches and their gradients */
    PC_OP_ATTENTION,
    PC_OP_NORM,         /* LayerNorm, RMSNorm */
    PC_OP_ACTIVATION,
    PC_OP_ROPE,
    PC_OP_EMBEDDING,
    PC_OP_DROPOUT,
    PC_OP_LOSS,
    PC_OP_COUNT
} pc_op;

extern bool pc_profile_on;  /* collecting now: enabled and inside a phase */

/* Starts collecting (zeroing what was collected) or stops. */
void pc_profile_enable(bool on);

void pc_profile_op_push(pc_op op);
void pc_profile_op_pop(void);
static inline void pc_op_begin(pc_op op) { if (pc_profile_on) pc_profile_op_push(op); }
static inline void pc_op_end(void) { if (pc_profile_on) pc_profile_op_pop(); }

/* Phase timing: t = pc_phase_begin(); ...; pc_phase_end(PC_PHASE_FORWARD, t). */
double pc_phase_begin(void);
void pc_phase_end(pc_phase phase, double t0);
/* One whole step: its time and count, against which the phases and ops are shown. */
void pc_profile_step_done(double seconds);

typedef struct {
    double phase[PC_PHASE_COUNT], op[PC_OP_COUNT];  /* seconds */
    double step_seconds;
    long steps;
} pc_profile_report;

void pc_profile_read(pc_profile_report *out);
const char *pc_phase_name(pc_phase phase);
const char *pc_op_name(pc_op op);

#endif
