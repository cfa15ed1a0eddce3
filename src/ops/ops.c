#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "op-internal.h"

#define QCAL_OP(id, name, fn) DECLARE_OP_DEF(fn)
#include "op-defs.inc"
#undef QCAL_OP

static const char *const op_names[] = {
#define QCAL_OP(id, name, fn) name,
#include "op-defs.inc"
#undef QCAL_OP
};

static const struct qcal_op_def *const op_table[] = {
#define QCAL_OP(id, name, fn) &qcal_op_##fn##_def,
#include "op-defs.inc"
#undef QCAL_OP
};

_Static_assert(sizeof(op_names) / sizeof(op_names[0]) == QCAL_OP_COUNT, "op names out of sync");
_Static_assert(sizeof(op_table) / sizeof(op_table[0]) == QCAL_OP_COUNT, "op table out of sync");

const struct qcal_op_def *qcal_op_def(int op)
{
    return op >= 0 && op < QCAL_OP_COUNT ? op_table[op] : NULL;
}

static void free_params(struct qcal_node *n)
{
    free(n->params);
    n->params = NULL;
}

enum qcal_status qcal_ops_resolve(struct qcal_graph *g)
{
    g->free_params = free_params;
    for (int i = 0; i < g->n_nodes; i++) {
        struct qcal_node *n = &g->nodes[i];
        if (n->dead) continue;
        const bool default_domain = qcal_node_default_domain(n);
        n->op = -1;
        for (int k = 0; default_domain && k < QCAL_OP_COUNT; k++)
            if (strcmp(op_names[k], n->op_type) == 0) n->op = k;
        if (n->op < 0)
            return QCAL_ERR(QCAL_UNSUPPORTED, "%s: node '%s': op %s%s%s (opset %d) is not "
                            "supported", g->path, n->name, n->domain[0] ? n->domain : "",
                            n->domain[0] ? "::" : "", n->op_type, n->opset);
        if (n->params) free_params(n);
        enum qcal_status st = op_table[n->op]->parse(g, n);
        if (st != QCAL_OK) return st;
    }
    return QCAL_OK;
}

enum qcal_status qcal_ops_eval_constant(struct qcal_graph *g, struct qcal_node *n)
{
    const struct qcal_op_def *def = op_table[n->op];
    enum qcal_status st = QCAL_OK;
    struct qcal_op_prep prep;
    struct qcal_op_args args;
    memset(&prep, 0, sizeof prep);
    memset(&args, 0, sizeof args);
    prep.g = g;
    prep.node = n;
    prep.kernels = QCAL_KERNELS_REF;
    void *outs[QCAL_OP_MAX_IO] = {0};
    QCAL_CHECK(def->prepare(&prep));
    args.n_in = n->n_inputs;
    args.n_out = n->n_outputs;
    for (int i = 0; i < n->n_inputs; i++) args.in[i] = n->inputs[i] >= 0 ? &g->values[n->inputs[i]].t : NULL;
    struct qcal_tensor out_t[QCAL_OP_MAX_IO];
    for (int i = 0; i < n->n_outputs; i++) {
        out_t[i] = g->values[n->outputs[i]].t;
        outs[i] = qcal_malloc(qcal_tensor_bytes(&out_t[i]));
        if (!outs[i]) {
            st = OP_ERR(g, n, QCAL_OUT_OF_MEMORY, "cannot allocate constant output");
            goto cleanup;
        }
        out_t[i].data = outs[i];
        args.out[i] = &out_t[i];
    }
    if (prep.scratch_size) {
        args.scratch = qcal_malloc(prep.scratch_size);
        if (!args.scratch) {
            st = OP_ERR(g, n, QCAL_OUT_OF_MEMORY, "cannot allocate scratch");
            goto cleanup;
        }
    }
    QCAL_CHECK(def->run(prep.state, &args));
    for (int i = 0; i < n->n_outputs; i++) {
        if (n->outputs[i] < 0) continue;
        qcal_graph_set_constant(g, n->outputs[i], out_t[i], outs[i]);
        outs[i] = NULL;
    }
cleanup:
    for (int i = 0; i < n->n_outputs; i++) qcal_free(outs[i]);
    qcal_free(args.scratch);
    if (def->destroy) def->destroy(prep.state);
    return st;
}

enum qcal_status op_dnnl_bind(const struct qcal_dnnl_prim *prim, const struct qcal_op_args *a,
                              void **bound_out)
{
    *bound_out = NULL;
    if (!prim) return QCAL_OK;
    return qcal_dnnl_bind(prim, a->in[0]->data, a->out[0]->data, a->scratch,
                          (struct qcal_dnnl_bound **)bound_out);
}

void op_dnnl_unbind(void *bound) { qcal_dnnl_unbind(bound); }

int op_threads(void) { return omp_in_parallel() ? 1 : omp_get_max_threads(); }

enum qcal_status op_check_arity(struct qcal_graph *g, struct qcal_node *n, int min_in, int max_in,
                                int min_out, int max_out)
{
    int in = n->n_inputs;
    while (in > 0 && n->inputs[in - 1] < 0) in--; /* trailing omitted optionals */
    if (in < min_in || (max_in >= 0 && in > max_in))
        return OP_ERR(g, n, QCAL_INVALID_MODEL, "has %d inputs, expected %d to %d", in, min_in,
                      max_in);
    if (n->n_outputs < min_out || n->n_outputs > max_out)
        return OP_ERR(g, n, QCAL_INVALID_MODEL, "has %d outputs, expected %d to %d", n->n_outputs,
                      min_out, max_out);
    if (n->n_inputs > QCAL_OP_MAX_IO || n->n_outputs > QCAL_OP_MAX_IO)
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "too many inputs or outputs");
    for (int i = 0; i < min_in; i++)
        if (n->inputs[i] < 0) return OP_ERR(g, n, QCAL_INVALID_MODEL, "input %d is missing", i);
    return QCAL_OK;
}

enum qcal_status op_require_inputs(struct qcal_graph *g, struct qcal_node *n, int count)
{
    for (int i = 0; i < count; i++) {
        const struct qcal_value *v = qcal_in(g, n, i);
        if (!v) return OP_ERR(g, n, QCAL_INVALID_MODEL, "input %d is missing", i);
        if (!v->shape_known)
            return OP_ERR(g, n, QCAL_INVALID_MODEL, "input '%s' has no known shape", v->name);
    }
    return QCAL_OK;
}

enum qcal_status op_const_ints(struct qcal_graph *g, struct qcal_node *n, int input, int64_t *out,
                               int cap, int *count_out)
{
    const struct qcal_value *v = qcal_in(g, n, input);
    if (!v || !qcal_value_is_const(v))
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "input %d ('%s') must be constant (data-dependent "
                      "shapes are not supported)", input, v ? v->name : "");
    int64_t count = qcal_tensor_numel(&v->t);
    if (count > cap)
        return OP_ERR(g, n, QCAL_INVALID_MODEL, "input '%s' has %lld values, at most %d allowed",
                      v->name, (long long)count, cap);
    for (int64_t i = 0; i < count; i++) {
        if (v->t.dtype == QCAL_I64) out[i] = ((const int64_t *)v->t.data)[i];
        else if (v->t.dtype == QCAL_I32) out[i] = ((const int32_t *)v->t.data)[i];
        else
            return OP_ERR(g, n, QCAL_INVALID_MODEL, "input '%s' must be int64, is %s", v->name,
                          qcal_dtype_name(v->t.dtype));
    }
    *count_out = (int)count;
    return QCAL_OK;
}

enum qcal_status op_const_floats(struct qcal_graph *g, struct qcal_node *n, int input, float *out,
                                 int cap, int *count_out)
{
    const struct qcal_value *v = qcal_in(g, n, input);
    if (!v || !qcal_value_is_const(v))
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "input %d ('%s') must be constant", input,
                      v ? v->name : "");
    int64_t count = qcal_tensor_numel(&v->t);
    if (count > cap)
        return OP_ERR(g, n, QCAL_INVALID_MODEL, "input '%s' has %lld values, at most %d allowed",
                      v->name, (long long)count, cap);
    for (int64_t i = 0; i < count; i++) {
        if (v->t.dtype == QCAL_F32) out[i] = ((const float *)v->t.data)[i];
        else if (v->t.dtype == QCAL_F64) out[i] = (float)((const double *)v->t.data)[i];
        else
            return OP_ERR(g, n, QCAL_INVALID_MODEL, "input '%s' must be float, is %s", v->name,
                          qcal_dtype_name(v->t.dtype));
    }
    *count_out = (int)count;
    return QCAL_OK;
}

enum qcal_status op_axis(struct qcal_graph *g, struct qcal_node *n, int64_t axis, int rank,
                         int *axis_out)
{
    if (axis < -rank || axis >= (rank > 0 ? rank : 1))
        return OP_ERR(g, n, QCAL_INVALID_MODEL, "axis %lld is out of range for rank %d",
                      (long long)axis, rank);
    *axis_out = (int)(axis < 0 ? axis + rank : axis);
    return QCAL_OK;
}

void op_set_output(struct qcal_graph *g, struct qcal_node *n, int i, int32_t dtype, int ndim,
                   const int64_t *dims)
{
    struct qcal_value *v = qcal_out(g, n, i);
    void *data = v->t.data;
    v->t = qcal_tensor_make(dtype, ndim, dims);
    v->t.data = data;
    v->shape_known = true;
}

enum qcal_status op_alloc_params(struct qcal_graph *g, struct qcal_node *n, size_t size)
{
    n->params = calloc(1, size);
    if (!n->params) return OP_ERR(g, n, QCAL_OUT_OF_MEMORY, "out of memory");
    return QCAL_OK;
}

enum qcal_status op_broadcast(struct qcal_graph *g, struct qcal_node *n, const struct qcal_tensor *a,
                              const struct qcal_tensor *b, struct qcal_tensor *out)
{
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    *out = qcal_tensor_make(a->dtype, nd, NULL);
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            char sa[96], sb[96];
            return OP_ERR(g, n, QCAL_INVALID_MODEL, "shapes %s and %s do not broadcast",
                          qcal_shape_str(a, sa, sizeof sa), qcal_shape_str(b, sb, sizeof sb));
        }
        out->dims[i] = da == 1 ? db : da;
    }
    return QCAL_OK;
}
