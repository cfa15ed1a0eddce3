/* Model preparation: bind input shapes, infer shapes in topological order, fold constant
 * subgraphs (the Shape/Gather/Concat chains exporters emit), then optional fusion. */
#include <stdio.h>
#include <string.h>

#include "qcal/runtime.h"

static enum qcal_status bind_inputs(struct qcal_graph *g, const struct qcal_prepare_options *o)
{
    for (int s = 0; s < o->n_shapes; s++) {
        const struct qcal_input_shape *sh = &o->shapes[s];
        int v = sh->name ? qcal_graph_find_value(g, sh->name) : (g->n_inputs ? g->inputs[0] : -1);
        if (v < 0 || !g->values[v].is_input)
            return QCAL_ERR(QCAL_INVALID_ARGUMENT, "%s: the model has no input named '%s'", g->path,
                            sh->name ? sh->name : "(first)");
        struct qcal_value *val = &g->values[v];
        char want[128], have[128];
        struct qcal_tensor given = qcal_tensor_make(val->t.dtype, sh->ndim, sh->dims);
        if (sh->ndim != val->t.ndim)
            return QCAL_ERR(QCAL_INVALID_ARGUMENT, "%s: input '%s' has %d dims, the shape given "
                            "(%s) has %d", g->path, val->name, val->t.ndim,
                            qcal_shape_str(&given, want, sizeof want), sh->ndim);
        for (int d = 0; d < sh->ndim; d++) {
            if (sh->dims[d] < 1)
                return QCAL_ERR(QCAL_INVALID_ARGUMENT, "%s: input '%s': dim %d must be positive",
                                g->path, val->name, d);
            if (val->t.dims[d] > 0 && val->t.dims[d] != sh->dims[d])
                return QCAL_ERR(QCAL_INVALID_ARGUMENT, "%s: input '%s' is %s; the shape given (%s) "
                                "differs in dim %d", g->path, val->name,
                                qcal_shape_str(&val->t, have, sizeof have),
                                qcal_shape_str(&given, want, sizeof want), d);
            val->t.dims[d] = sh->dims[d];
        }
        val->shape_known = true;
    }
    for (int i = 0; i < g->n_inputs; i++) {
        struct qcal_value *val = &g->values[g->inputs[i]];
        if (val->shape_known) continue;
        for (int d = 0; d < val->t.ndim; d++)
            if (val->t.dims[d] < 1)
                return QCAL_ERR(QCAL_INVALID_ARGUMENT, "%s: input '%s' has dynamic dim %d (%s); "
                                "give its shape with --input-shape", g->path, val->name, d,
                                val->dim_param[d] ? val->dim_param[d] : "?");
        val->shape_known = true;
    }
    for (int i = 0; i < g->n_inputs; i++) {
        struct qcal_value *val = &g->values[g->inputs[i]];
        if (qcal_dtype_size(val->t.dtype) == 0)
            return QCAL_ERR(QCAL_UNSUPPORTED, "%s: input '%s' has unsupported type %s", g->path,
                            val->name, qcal_dtype_name(val->t.dtype));
    }
    return QCAL_OK;
}

/* Shapes come from files and the command line: refuse negative dims and sizes whose byte
 * count would overflow (or could never be allocated) before anything is sized from them. */
static enum qcal_status check_size(struct qcal_graph *g, const struct qcal_node *n, const struct qcal_value *v)
{
    const int64_t limit = (int64_t)1 << 40; /* 1 TiB of one tensor */
    int64_t bytes = (int64_t)qcal_dtype_size(v->t.dtype);
    char shape[128];
    for (int d = 0; d < v->t.ndim; d++) {
        int64_t dim = v->t.dims[d];
        if (dim >= 0 && (dim == 0 || bytes <= limit / dim)) {
            bytes *= dim;
            continue;
        }
        qcal_shape_str(&v->t, shape, sizeof shape);
        if (!n)
            return QCAL_ERR(QCAL_INVALID_ARGUMENT, "%s: input '%s' would be %s, too large", g->path,
                            v->name, shape);
        return QCAL_ERR(QCAL_INVALID_MODEL, "%s: node '%s' (%s): output '%s' would be %s, too large",
                        g->path, n->name, n->op_type, v->name, shape);
    }
    return QCAL_OK;
}

static enum qcal_status check_outputs(struct qcal_graph *g, const struct qcal_node *n)
{
    for (int k = 0; k < n->n_outputs; k++) {
        if (n->outputs[k] < 0) continue;
        enum qcal_status st = check_size(g, n, &g->values[n->outputs[k]]);
        if (st != QCAL_OK) return st;
    }
    return QCAL_OK;
}

enum qcal_status qcal_model_prepare(struct qcal_graph *g, const struct qcal_prepare_options *o)
{
    enum qcal_status st;
    if ((st = qcal_graph_toposort(g)) != QCAL_OK) return st;
    if ((st = bind_inputs(g, o)) != QCAL_OK) return st;
    for (int i = 0; i < g->n_inputs; i++)
        if ((st = check_size(g, NULL, &g->values[g->inputs[i]])) != QCAL_OK) return st;
    if ((st = qcal_ops_resolve(g)) != QCAL_OK) return st;
    if (o->optimize) { /* integer ops for QDQ patterns, while the weights are still int8 */
        if ((st = qcal_pass_fuse_qdq(g)) != QCAL_OK) return st;
        if ((st = qcal_ops_resolve(g)) != QCAL_OK) return st;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        struct qcal_node *n = &g->nodes[i];
        const struct qcal_op_def *def = qcal_op_def(n->op);
        if ((st = def->infer(g, n)) != QCAL_OK) return st;
        if ((st = check_outputs(g, n)) != QCAL_OK) return st;
        bool folded = true;
        for (int k = 0; k < n->n_outputs; k++)
            if (n->outputs[k] >= 0 && !qcal_value_is_const(&g->values[n->outputs[k]])) folded = false;
        if (folded) { /* infer already produced constants (Shape) */
            n->dead = true;
            continue;
        }
        bool inputs_const = n->n_inputs > 0;
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0 && !qcal_value_is_const(&g->values[n->inputs[k]]))
                inputs_const = false;
        if (inputs_const) {
            if ((st = qcal_ops_eval_constant(g, n)) != QCAL_OK) return st;
            n->dead = true;
        }
    }
    qcal_pass_eliminate_dead(g);
    if (o->optimize && ((st = qcal_pass_fuse_qdq_moves(g)) != QCAL_OK || (st = qcal_pass_fuse_qdq_lookup(g)) != QCAL_OK ||
                        (st = qcal_pass_fuse_qdq_add(g)) != QCAL_OK))
        return st;
    if (o->optimize || o->fold_batchnorm) {
        if ((st = qcal_pass_fold_batchnorm(g)) != QCAL_OK) return st;
        if (o->optimize && (st = qcal_pass_fuse_activations(g)) != QCAL_OK) return st;
        /* a BatchNormalization behind an affine map just folded (Conv -> Add -> BN) */
        if (o->optimize && ((st = qcal_pass_fold_batchnorm(g)) != QCAL_OK || (st = qcal_pass_fuse_activations(g)) != QCAL_OK ||
                            (st = qcal_pass_convtranspose_blocks(g)) != QCAL_OK))
            return st;
        qcal_pass_eliminate_dead(g);
    }
    return QCAL_OK;
}
