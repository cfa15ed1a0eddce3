/*
 * qcal graph: the intermediate representation every module works on.
 *
 * A graph is a list of values (tensors: activations, model inputs, constants) and a list of
 * nodes (one ONNX op each) connected by value ids. The onnx module builds it, passes
 * rewrite it, the runtime plans it, the quant module turns it into QDQ.
 *
 *     struct qcal_graph *g = NULL;
 *     st = qcal_onnx_load("model.onnx", &g);          // g owned by the caller
 *     int x = qcal_graph_find_value(g, "input");      // -1 if absent
 *     ...
 *     qcal_graph_destroy(g);
 *
 * The IR structs are visible to qcal's own modules (ops, runtime, quant) because they all
 * rewrite nodes and values; code outside qcal should go through the functions.
 */
#ifndef QCAL_GRAPH_H
#define QCAL_GRAPH_H

#include "qcal/tensor.h"

/* ONNX AttributeProto.AttributeType codes. */
enum qcal_attr_type {
    QCAL_ATTR_FLOAT = 1,
    QCAL_ATTR_INT = 2,
    QCAL_ATTR_STRING = 3,
    QCAL_ATTR_TENSOR = 4,
    QCAL_ATTR_FLOATS = 6,
    QCAL_ATTR_INTS = 7,
    QCAL_ATTR_STRINGS = 8,
};

struct qcal_attr {
    char *name;
    int type;
    int64_t i;
    float f;
    char *s;
    int n;           /* entries in ints / floats / strings */
    int64_t *ints;
    float *floats;
    char **strings;
    struct qcal_tensor *t; /* TENSOR: tensor and its data owned by the attribute */
};

/* Activation applied to an op's output; set by the fusion pass, shared with the unary
 * ops so a fused and an unfused activation compute the same function. */
enum qcal_act_kind {
    QCAL_ACT_NONE,
    QCAL_ACT_RELU,
    QCAL_ACT_LEAKY_RELU,  /* alpha */
    QCAL_ACT_CLIP,        /* alpha = min, beta = max */
    QCAL_ACT_SIGMOID,
    QCAL_ACT_HARD_SIGMOID, /* alpha, beta */
    QCAL_ACT_HARD_SWISH,
    QCAL_ACT_SWISH,       /* x * sigmoid(x) */
    QCAL_ACT_TANH,
    QCAL_ACT_LINEAR,      /* alpha * x + beta */
    QCAL_ACT_SUM,         /* + the node's residual input (post.sum_input) */
};

struct qcal_act {
    int kind;
    float alpha, beta;
};

/* What the fusion pass appends to a Conv/ConvTranspose/Gemm/MatMul, applied in order:
 * activations, per-tensor affine maps and at most one residual sum. */
#define QCAL_MAX_POST_OPS 6
struct qcal_post_ops {
    int n;
    int sum_input; /* node input index of the residual when a SUM is present */
    struct qcal_act op[QCAL_MAX_POST_OPS];
};

/* The activation functions shared by fused post-ops and unary ops (graph/act.c). */
float qcal_act_apply(const struct qcal_act *act, float x);
void qcal_act_apply_array(const struct qcal_act *act, float *x, size_t n);
/* Applies a post-op chain to y[0..n); `residual` (same layout as y) serves a SUM. */
void qcal_post_ops_apply(const struct qcal_post_ops *p, float *y, const float *residual, size_t n);

struct qcal_value {
    char *name;
    struct qcal_tensor t;  /* dtype and shape; t.data != NULL means constant */
    bool owns_data;        /* t.data allocated with qcal_malloc and owned by the graph */
    bool shape_known;
    char *dim_param[QCAL_MAX_DIMS]; /* symbolic dims of graph inputs, owned */
    int producer;          /* node index, -1 for inputs and constants */
    int n_consumers;       /* maintained by qcal_graph_update_uses */
    bool is_input, is_output, is_initializer;
    bool keep;             /* kept by dead-code elimination though unused (observed values) */
};

struct qcal_node {
    char *name;
    char *op_type;
    char *domain;
    int op;                /* enum qcal_op_kind, resolved by the ops module; -1 unknown */
    int opset;             /* opset version of the node's domain */
    int n_inputs, n_outputs, n_attrs;
    int *inputs;           /* value ids; -1 for an omitted optional input */
    int *outputs;
    struct qcal_attr *attrs;
    void *params;          /* op-specific parsed attributes, owned, freed by the ops module */
    struct qcal_post_ops post; /* fused post-ops (Conv, ConvTranspose, Gemm, MatMul) */
    bool dead;
};

struct qcal_graph {
    char *path;            /* file the graph came from (for messages) */
    char *name;
    int64_t opset;         /* default-domain opset */
    int64_t ir_version;
    char *producer_name, *producer_version;
    int n_values, cap_values;
    struct qcal_value *values;
    int n_nodes, cap_nodes;
    struct qcal_node *nodes;
    int n_inputs, n_outputs;
    int *inputs, *outputs; /* value ids; graph inputs exclude initializers */
    void *index;           /* name -> value id hash, private */
    void (*free_params)(struct qcal_node *node); /* set by the ops module */
};

/* Graph lifetime. The graph owns every name, attribute, constant and node. */
enum qcal_status qcal_graph_create(const char *path, struct qcal_graph **graph_out);
void qcal_graph_destroy(struct qcal_graph *g);

/* Values. add_value fails if the name already exists; get_or_add returns the existing id. */
int qcal_graph_find_value(const struct qcal_graph *g, const char *name);
enum qcal_status qcal_graph_add_value(struct qcal_graph *g, const char *name, int *id_out);
enum qcal_status qcal_graph_get_or_add_value(struct qcal_graph *g, const char *name, int *id_out);
/* A new value with a unique name derived from `base`. */
enum qcal_status qcal_graph_add_temp_value(struct qcal_graph *g, const char *base, int *id_out);
/* Turn a value into a constant; takes ownership of `data` (allocated with qcal_malloc). */
void qcal_graph_set_constant(struct qcal_graph *g, int v, struct qcal_tensor t, void *data);

/* Nodes. The node copies names; inputs/outputs are value ids. */
enum qcal_status qcal_graph_add_node(struct qcal_graph *g, const char *name, const char *op_type,
                                     const char *domain, const int *inputs, int n_inputs,
                                     const int *outputs, int n_outputs, int *id_out);

/* Whether n belongs to the default ONNX domain ("" or "ai.onnx"). */
bool qcal_node_default_domain(const struct qcal_node *n);

/* Attributes. Lookups return the default when the attribute is absent. */
const struct qcal_attr *qcal_node_attr(const struct qcal_node *n, const char *name);
int64_t qcal_node_attr_int(const struct qcal_node *n, const char *name, int64_t def);
float qcal_node_attr_float(const struct qcal_node *n, const char *name, float def);
const char *qcal_node_attr_string(const struct qcal_node *n, const char *name, const char *def);
/* Copies at most `cap` ints into out; returns the number present, or -1 if absent. */
int qcal_node_attr_ints(const struct qcal_node *n, const char *name, int64_t *out, int cap);
void qcal_attr_clear(struct qcal_attr *a);
/* Appends an INT attribute; removes every attribute. */
enum qcal_status qcal_node_add_attr_int(struct qcal_node *n, const char *name, int64_t v);
void qcal_node_clear_attrs(struct qcal_node *n);
/* Replaces dst's attributes by deep copies of src's. */
enum qcal_status qcal_node_copy_attrs(struct qcal_node *dst, const struct qcal_node *src);

/* Structure. */
void qcal_graph_update_uses(struct qcal_graph *g);
/* Sort nodes topologically (stable: ties keep file order); fails on cycles or on inputs
 * that nothing produces. */
enum qcal_status qcal_graph_toposort(struct qcal_graph *g);
/* Puts node order[k] at position k (order: a permutation of the nodes, which must be a
 * topological order; checked by the toposort that follows, which keeps it). */
enum qcal_status qcal_graph_reorder(struct qcal_graph *g, const int *order);
/* Drop dead nodes and values no live node or output uses. */
void qcal_graph_compact(struct qcal_graph *g);

static inline struct qcal_value *qcal_in(struct qcal_graph *g, const struct qcal_node *n, int i)
{
    return (i < n->n_inputs && n->inputs[i] >= 0) ? &g->values[n->inputs[i]] : NULL;
}
static inline struct qcal_value *qcal_out(struct qcal_graph *g, const struct qcal_node *n, int i)
{
    return &g->values[n->outputs[i]];
}
static inline bool qcal_value_is_const(const struct qcal_value *v) { return v->t.data != NULL; }

/* Per-channel y = a*x + b of an inference BatchNormalization; shared by the op and the
 * folding pass so that folded and unfolded models use the same coefficients. */
void qcal_batchnorm_coefficients(const float *scale, const float *bias, const float *mean,
                                 const float *var, float eps, int64_t c, float *a, float *b);

#endif
