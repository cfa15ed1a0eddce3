/*
 * qcal ops: one table entry per ONNX op, built from src/ops/op-defs.inc.
 *
 * Each op provides, in the order the runtime calls them:
 *   parse    attributes -> node->params (validated, with the node named in errors)
 *   infer    output dtypes and shapes from input shapes (and constant inputs)
 *   prepare  plan time: choose the kernel, pack weights, create backend primitives,
 *            say how much per-thread scratch memory `run` needs
 *   bind     optional, once per execution context: tie backend objects to the context's
 *            fixed buffers (oneDNN memory objects)
 *   run      compute; no allocation, no primitive creation
 *
 * Adding an op: one line in op-defs.inc, one function set in a file under src/ops, a fixture in
 * tests/gen_fixtures.py and, if it is fusable, a case in graph/passes.c.
 */
#ifndef QCAL_OPS_H
#define QCAL_OPS_H

#include "qcal/graph.h"

enum qcal_op_kind {
#define QCAL_OP(id, name, fn) QCAL_OP_##id,
#include "../../src/ops/op-defs.inc"
#undef QCAL_OP
    QCAL_OP_COUNT
};

/* Kernel families; AUTO picks oneDNN where it has the op, else the reference. */
enum qcal_kernels { QCAL_KERNELS_AUTO, QCAL_KERNELS_DNNL, QCAL_KERNELS_BLAS, QCAL_KERNELS_REF };

/* Memory order of a 4-D activation. Logical dims stay N,C,H,W in both. */
enum qcal_layout { QCAL_LAYOUT_PLAIN = 0, QCAL_LAYOUT_NHWC = 1 };

#define QCAL_OP_MAX_IO 64

struct qcal_op_args {
    int n_in, n_out;
    const struct qcal_tensor *in[QCAL_OP_MAX_IO]; /* NULL for omitted optional inputs */
    struct qcal_tensor *out[QCAL_OP_MAX_IO];
    const uint8_t *in_layout;  /* per input, enum qcal_layout */
    const uint8_t *out_layout;
    void *scratch;             /* prepare's scratch_size bytes, 64-aligned, per thread */
    void *bound;               /* from bind, per execution context */
};

struct qcal_op_prep {
    struct qcal_graph *g;
    struct qcal_node *node;
    int kernels;                        /* enum qcal_kernels requested */
    uint8_t in_layout[QCAL_OP_MAX_IO];  /* decided by the planner */
    uint8_t out_layout[QCAL_OP_MAX_IO];
    void *state;                        /* out: owned by the plan, freed with destroy */
    size_t scratch_size;                /* out */
    const char *impl;                   /* out: kernel name for --verbose / per-layer tables */
};

struct qcal_op_def {
    const char *name;
    enum qcal_status (*parse)(struct qcal_graph *g, struct qcal_node *n);
    enum qcal_status (*infer)(struct qcal_graph *g, struct qcal_node *n);
    /* Which layout the op wants for its activation inputs/outputs under `kernels`:
     * PLAIN (must), NHWC (must), or -1 (follows its first input). */
    int (*layout)(const struct qcal_graph *g, const struct qcal_node *n, int kernels);
    enum qcal_status (*prepare)(struct qcal_op_prep *p);
    enum qcal_status (*bind)(const void *state, const struct qcal_op_args *a, void **bound_out);
    void (*unbind)(void *bound);
    enum qcal_status (*run)(const void *state, const struct qcal_op_args *a);
    void (*destroy)(void *state);
    /* Its kernels write output 0 in any layout, whatever the input's. */
    bool any_out_layout;
    /* Optional: index of an input whose buffer output 0 may overwrite, or -1. */
    int (*inplace)(const struct qcal_graph *g, const struct qcal_node *n);
};

const struct qcal_op_def *qcal_op_def(int op);

/* Resolves every node's op kind and parses its attributes. An unknown op is an error
 * naming the op, the node and the opset. Sets g->free_params. */
enum qcal_status qcal_ops_resolve(struct qcal_graph *g);

/* Reference evaluation of one node on constant inputs (constant folding): allocates the
 * outputs as graph constants. */
enum qcal_status qcal_ops_eval_constant(struct qcal_graph *g, struct qcal_node *n);

/* The activation a unary node computes (Relu, Clip, HardSigmoid, ...); false for others. */
bool qcal_ops_node_act(const struct qcal_node *n, struct qcal_act *act_out);
/* Whether QLinearAdd/QLinearMul take b against a: a's shape, one value, or one per channel
 * of axis 1. */
bool qcal_ops_qlinear_broadcasts(const struct qcal_tensor *a, const struct qcal_tensor *b);


#endif
