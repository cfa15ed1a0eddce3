/*
 * qcal runtime: from a loaded graph to results. Three steps, in the order of XNNPACK's
 * create/setup/run:
 *
 *     qcal_model_prepare(g, &opts);          // bind input shapes, infer, fold, fuse
 *     qcal_plan_create(g, &popts, &plan);     // kernels, packed weights, arena layout
 *     qcal_exec_create(plan, &ex);            // one per thread: arena + bound kernels
 *     qcal_exec_set_input(ex, 0, &tensor);    // copies in (plain NCHW)
 *     qcal_exec_run(ex);                      // no allocation here
 *     const struct qcal_tensor *y = qcal_exec_output(ex, 0);   // view, plain layout
 *
 * A plan is read-only once created and may be shared by any number of execution contexts
 * running on different threads. Batch work runs one image per thread, each thread with its
 * own context, so results never depend on the thread count. The graph must outlive its
 * plans (plans point at its constants).
 */
#ifndef QCAL_RUNTIME_H
#define QCAL_RUNTIME_H

#include "qcal/ops.h"

struct qcal_input_shape {
    const char *name; /* NULL: the first graph input */
    int ndim;
    int64_t dims[QCAL_MAX_DIMS];
};

struct qcal_prepare_options {
    int n_shapes;
    const struct qcal_input_shape *shapes;
    bool optimize; /* BN folding, activation fusion */
    bool fold_batchnorm; /* BN folding alone (implied by optimize): the graph quantization sees */
};

/* Binds dynamic input dims, infers every shape, folds constant subgraphs and (optionally)
 * runs the fusion passes. Errors name the input, node and op. */
enum qcal_status qcal_model_prepare(struct qcal_graph *g, const struct qcal_prepare_options *o);

/* Passes (runtime/passes.c). None changes results beyond float rounding. */
enum qcal_status qcal_pass_fold_batchnorm(struct qcal_graph *g);
/* Fuses activations, affine maps and residual adds into their producer; never past a
 * value marked `keep` (an observed tensor stays a tensor). */
enum qcal_status qcal_pass_fuse_activations(struct qcal_graph *g);
/* ConvTranspose with kernel = stride (and float weights) into a 1x1 Conv + DepthToSpace. */
enum qcal_status qcal_pass_convtranspose_blocks(struct qcal_graph *g);
void qcal_pass_eliminate_dead(struct qcal_graph *g);
/* DequantizeLinear -> Conv -> [Relu | Clip] -> QuantizeLinear into QLinearConv (int8 in and
 * out, int32 bias), a blockwise ConvTranspose on int8 weights first made a 1x1 Conv +
 * DepthToSpace; run on a loaded graph before constant folding. */
enum qcal_status qcal_pass_fuse_qdq(struct qcal_graph *g);
/* DequantizeLinear(a) {+,*} DequantizeLinear(b) -> [Relu] -> QuantizeLinear into QLinearAdd /
 * QLinearMul (b: a's shape, one value or one per channel); run after shape inference. */
enum qcal_status qcal_pass_fuse_qdq_add(struct qcal_graph *g);
/* QuantizeLinear of elementwise float ops of one DequantizeLinear'd int8 tensor into
 * QLinearLookup (a 256-entry table); run after shape inference, before the above. */
enum qcal_status qcal_pass_fuse_qdq_lookup(struct qcal_graph *g);
/* Concat / Reshape / Flatten / Squeeze / Unsqueeze / Transpose / Identity between
 * DequantizeLinear and QuantizeLinear of one quantization run on the int8 bytes; after
 * shape inference, before the lookup pass. */
enum qcal_status qcal_pass_fuse_qdq_moves(struct qcal_graph *g);

struct qcal_plan_options {
    int kernels; /* enum qcal_kernels */
};

struct qcal_plan;
struct qcal_exec;

/* The plan is owned by the caller (qcal_plan_destroy, NULL-safe). */
enum qcal_status qcal_plan_create(struct qcal_graph *g, const struct qcal_plan_options *o,
                                  struct qcal_plan **plan_out);
void qcal_plan_destroy(struct qcal_plan *plan);
size_t qcal_plan_arena_bytes(const struct qcal_plan *plan);
int qcal_plan_num_steps(const struct qcal_plan *plan);
/* One line per step (node, op, kernel, layout) for --verbose. */
void qcal_plan_describe(const struct qcal_plan *plan, void *file);
/* The same with each step's mean time over `runs` runs (from qcal_exec_run_timed). */
void qcal_plan_describe_timed(const struct qcal_plan *plan, void *file, const double *step_seconds,
                              int runs);

enum qcal_status qcal_exec_create(const struct qcal_plan *plan, struct qcal_exec **exec_out);
void qcal_exec_destroy(struct qcal_exec *ex);
/* Copies `t` (plain layout, the planned shape and dtype) into input i. */
enum qcal_status qcal_exec_set_input(struct qcal_exec *ex, int i, const struct qcal_tensor *t);
enum qcal_status qcal_exec_run(struct qcal_exec *ex);
/* As qcal_exec_run, adding each step's wall time to step_seconds[step] (per-layer tables). */
enum qcal_status qcal_exec_run_timed(struct qcal_exec *ex, double *step_seconds);
/* Observer: called after every node (after fusion, so on what a fused node produces) with
 * its outputs as laid out in the arena (`layouts`: enum qcal_layout per output). This is how
 * calibration sees activations; kernels know nothing about it. NULL removes it. */
typedef void (*qcal_observer_fn)(void *ctx, const struct qcal_node *node, int n_out,
                                 struct qcal_tensor *const *outs, const uint8_t *layouts);
void qcal_exec_set_observer(struct qcal_exec *ex, qcal_observer_fn fn, void *ctx);

/* View of output i in plain layout; valid until the next run or destroy. */
const struct qcal_tensor *qcal_exec_output(const struct qcal_exec *ex, int i);
int qcal_exec_num_outputs(const struct qcal_exec *ex);
const char *qcal_exec_output_name(const struct qcal_exec *ex, int i);

#endif
