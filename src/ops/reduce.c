/* Reductions along axes: ReduceMean, ReduceMax, Softmax, LogSoftmax, ArgMax, TopK.
 * All work on the plain layout, where axes mean what the model says. */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "op-internal.h"

struct axis_params {
    int op;                /* which of the ops in this file */
    int axis;              /* Softmax/ArgMax/TopK, normalised by infer */
    bool keepdims, select_last, largest, sorted;
    int64_t k;
    bool reduce[QCAL_MAX_DIMS]; /* ReduceMean/ReduceMax */
    int64_t outer, len, inner;  /* resolved geometry */
};

static enum qcal_status plain_state(struct qcal_op_prep *pp)
{
    pp->state = pp->node->params; /* params outlive the plan: the graph owns them */
    pp->impl = "ref";
    return QCAL_OK;
}

static int plain_layout(const struct qcal_graph *g, const struct qcal_node *n, int kernels)
{
    (void)g, (void)n, (void)kernels;
    return QCAL_LAYOUT_PLAIN;
}

static void geometry(struct axis_params *p, const struct qcal_tensor *x, int axis, bool to_end)
{
    p->outer = p->inner = 1;
    for (int i = 0; i < axis; i++) p->outer *= x->dims[i];
    p->len = x->dims[axis];
    for (int i = axis + 1; i < x->ndim; i++) {
        if (to_end) p->len *= x->dims[i];
        else p->inner *= x->dims[i];
    }
}

/* ---- ReduceMean / ReduceMax ---- */

static enum qcal_status reduce_parse(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = op_check_arity(g, n, 1, 2, 1, 1);
    if (st != QCAL_OK) return st;
    if ((st = op_alloc_params(g, n, sizeof(struct axis_params))) != QCAL_OK) return st;
    ((struct axis_params *)n->params)->op = n->op;
    ((struct axis_params *)n->params)->keepdims = qcal_node_attr_int(n, "keepdims", 1) != 0;
    return QCAL_OK;
}

static enum qcal_status reduce_infer(struct qcal_graph *g, struct qcal_node *n)
{
    struct axis_params *p = n->params;
    enum qcal_status st = op_require_inputs(g, n, 1);
    if (st != QCAL_OK) return st;
    const struct qcal_tensor *x = &qcal_in(g, n, 0)->t;
    if (x->dtype != QCAL_F32) return OP_ERR(g, n, QCAL_UNSUPPORTED, "input must be float32");
    int64_t axes[QCAL_MAX_DIMS];
    int count = qcal_node_attr_ints(n, "axes", axes, QCAL_MAX_DIMS);
    if (qcal_in(g, n, 1) && (st = op_const_ints(g, n, 1, axes, QCAL_MAX_DIMS, &count)) != QCAL_OK)
        return st;
    memset(p->reduce, 0, sizeof p->reduce);
    if (count <= 0) {
        for (int i = 0; i < x->ndim; i++) p->reduce[i] = true;
    }
    for (int i = 0; i < count; i++) {
        int a;
        if ((st = op_axis(g, n, axes[i], x->ndim, &a)) != QCAL_OK) return st;
        p->reduce[a] = true;
    }
    int64_t dims[QCAL_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < x->ndim; i++) {
        if (!p->reduce[i]) dims[nd++] = x->dims[i];
        else if (p->keepdims) dims[nd++] = 1;
    }
    op_set_output(g, n, 0, QCAL_F32, nd, dims);
    return QCAL_OK;
}

static enum qcal_status reduce_run(const void *state, const struct qcal_op_args *a)
{
    const struct axis_params *p = state;
    const struct qcal_tensor *x = a->in[0];
    const float *xd = x->data;
    float *y = a->out[0]->data;
    const bool is_max = p->op == QCAL_OP_REDUCE_MAX;
    /* output strides over the input's dims (0 on reduced dims) */
    int64_t os[QCAL_MAX_DIMS], acc = 1, ny = 1, cnt = 1;
    for (int i = x->ndim - 1; i >= 0; i--) {
        os[i] = p->reduce[i] ? 0 : acc;
        if (!p->reduce[i]) acc *= x->dims[i], ny *= x->dims[i];
        else cnt *= x->dims[i];
    }
    for (int64_t i = 0; i < ny; i++) y[i] = is_max ? -INFINITY : 0.0f;
    int64_t total = qcal_tensor_numel(x), idx[QCAL_MAX_DIMS] = {0}, off = 0;
    for (int64_t e = 0; e < total; e++) {
        float v = xd[e];
        if (is_max) y[off] = v > y[off] ? v : y[off];
        else y[off] += v;
        for (int d = x->ndim - 1; d >= 0; d--) { /* odometer */
            off += os[d];
            if (++idx[d] < x->dims[d]) break;
            off -= os[d] * x->dims[d];
            idx[d] = 0;
        }
    }
    if (!is_max)
        for (int64_t i = 0; i < ny; i++) y[i] /= (float)cnt;
    return QCAL_OK;
}

const struct qcal_op_def qcal_op_reduce_def = {
    .name = "reduce", .parse = reduce_parse, .infer = reduce_infer, .layout = plain_layout,
    .prepare = plain_state, .run = reduce_run,
};

/* ---- Softmax / LogSoftmax ---- */

static enum qcal_status softmax_parse(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = op_check_arity(g, n, 1, 1, 1, 1);
    if (st != QCAL_OK || (st = op_alloc_params(g, n, sizeof(struct axis_params))) != QCAL_OK) return st;
    ((struct axis_params *)n->params)->op = n->op;
    return QCAL_OK;
}

static enum qcal_status softmax_infer(struct qcal_graph *g, struct qcal_node *n)
{
    struct axis_params *p = n->params;
    enum qcal_status st = op_require_inputs(g, n, 1);
    if (st != QCAL_OK) return st;
    const struct qcal_tensor *x = &qcal_in(g, n, 0)->t;
    if (x->dtype != QCAL_F32) return OP_ERR(g, n, QCAL_UNSUPPORTED, "input must be float32");
    bool v13 = n->opset >= 13;
    int64_t axis = qcal_node_attr_int(n, "axis", v13 ? -1 : 1);
    if ((st = op_axis(g, n, axis, x->ndim, &p->axis)) != QCAL_OK) return st;
    /* before opset 13 the input is coerced to 2-D at `axis` */
    geometry(p, x, p->axis, !v13);
    op_set_output(g, n, 0, QCAL_F32, x->ndim, x->dims);
    return QCAL_OK;
}

static enum qcal_status softmax_run(const void *state, const struct qcal_op_args *a)
{
    const struct axis_params *p = state;
    const float *x = a->in[0]->data;
    float *y = a->out[0]->data;
    const bool log = p->op == QCAL_OP_LOG_SOFTMAX;
    for (int64_t o = 0; o < p->outer; o++)
        for (int64_t i = 0; i < p->inner; i++) {
            const float *xp = x + o * p->len * p->inner + i;
            float *yp = y + o * p->len * p->inner + i;
            float m = -INFINITY;
            for (int64_t k = 0; k < p->len; k++) m = fmaxf(m, xp[k * p->inner]);
            float sum = 0.0f;
            for (int64_t k = 0; k < p->len; k++) {
                float e = expf(xp[k * p->inner] - m);
                sum += e;
                if (!log) yp[k * p->inner] = e;
            }
            if (log) {
                float ls = logf(sum);
                for (int64_t k = 0; k < p->len; k++) yp[k * p->inner] = xp[k * p->inner] - m - ls;
            } else {
                float inv = 1.0f / sum;
                for (int64_t k = 0; k < p->len; k++) yp[k * p->inner] *= inv;
            }
        }
    return QCAL_OK;
}

const struct qcal_op_def qcal_op_softmax_def = {
    .name = "softmax", .parse = softmax_parse, .infer = softmax_infer, .layout = plain_layout,
    .prepare = plain_state, .run = softmax_run,
};

/* ---- ArgMax ---- */

static enum qcal_status argmax_parse(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = op_check_arity(g, n, 1, 1, 1, 1);
    if (st != QCAL_OK) return st;
    if ((st = op_alloc_params(g, n, sizeof(struct axis_params))) != QCAL_OK) return st;
    struct axis_params *p = n->params;
    p->keepdims = qcal_node_attr_int(n, "keepdims", 1) != 0;
    p->select_last = qcal_node_attr_int(n, "select_last_index", 0) != 0;
    return QCAL_OK;
}

static enum qcal_status argmax_infer(struct qcal_graph *g, struct qcal_node *n)
{
    struct axis_params *p = n->params;
    enum qcal_status st = op_require_inputs(g, n, 1);
    if (st != QCAL_OK) return st;
    const struct qcal_tensor *x = &qcal_in(g, n, 0)->t;
    if (x->dtype != QCAL_F32) return OP_ERR(g, n, QCAL_UNSUPPORTED, "input must be float32");
    if ((st = op_axis(g, n, qcal_node_attr_int(n, "axis", 0), x->ndim, &p->axis)) != QCAL_OK)
        return st;
    geometry(p, x, p->axis, false);
    int64_t dims[QCAL_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < x->ndim; i++) {
        if (i != p->axis) dims[nd++] = x->dims[i];
        else if (p->keepdims) dims[nd++] = 1;
    }
    op_set_output(g, n, 0, QCAL_I64, nd, dims);
    return QCAL_OK;
}

static enum qcal_status argmax_run(const void *state, const struct qcal_op_args *a)
{
    const struct axis_params *p = state;
    const float *x = a->in[0]->data;
    int64_t *y = a->out[0]->data;
    for (int64_t o = 0; o < p->outer; o++)
        for (int64_t i = 0; i < p->inner; i++) {
            const float *xp = x + o * p->len * p->inner + i;
            int64_t best = 0;
            for (int64_t k = 1; k < p->len; k++) {
                float v = xp[k * p->inner], b = xp[best * p->inner];
                if (v > b || (p->select_last && v == b)) best = k;
            }
            y[o * p->inner + i] = best;
        }
    return QCAL_OK;
}

const struct qcal_op_def qcal_op_argmax_def = {
    .name = "ArgMax", .parse = argmax_parse, .infer = argmax_infer, .layout = plain_layout,
    .prepare = plain_state, .run = argmax_run,
};

/* ---- TopK ---- */

static enum qcal_status topk_parse(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = op_check_arity(g, n, n->opset >= 10 ? 2 : 1, 2, 2, 2);
    if (st != QCAL_OK) return st;
    if ((st = op_alloc_params(g, n, sizeof(struct axis_params))) != QCAL_OK) return st;
    struct axis_params *p = n->params;
    p->largest = qcal_node_attr_int(n, "largest", 1) != 0;
    p->sorted = qcal_node_attr_int(n, "sorted", 1) != 0;
    p->k = qcal_node_attr_int(n, "k", -1);
    return QCAL_OK;
}

static enum qcal_status topk_infer(struct qcal_graph *g, struct qcal_node *n)
{
    struct axis_params *p = n->params;
    enum qcal_status st = op_require_inputs(g, n, 1);
    if (st != QCAL_OK) return st;
    const struct qcal_tensor *x = &qcal_in(g, n, 0)->t;
    if (x->dtype != QCAL_F32) return OP_ERR(g, n, QCAL_UNSUPPORTED, "input must be float32");
    if (qcal_in(g, n, 1)) {
        int c;
        if ((st = op_const_ints(g, n, 1, &p->k, 1, &c)) != QCAL_OK) return st;
    }
    if ((st = op_axis(g, n, qcal_node_attr_int(n, "axis", -1), x->ndim, &p->axis)) != QCAL_OK)
        return st;
    geometry(p, x, p->axis, false);
    if (p->k < 0 || p->k > p->len)
        return OP_ERR(g, n, QCAL_INVALID_MODEL, "k = %lld is out of range [0, %lld]",
                      (long long)p->k, (long long)p->len);
    int64_t dims[QCAL_MAX_DIMS];
    memcpy(dims, x->dims, sizeof dims);
    dims[p->axis] = p->k;
    op_set_output(g, n, 0, QCAL_F32, x->ndim, dims);
    op_set_output(g, n, 1, QCAL_I64, x->ndim, dims);
    return QCAL_OK;
}

static enum qcal_status topk_prepare(struct qcal_op_prep *pp)
{
    plain_state(pp);
    pp->scratch_size = sizeof(int64_t) * (size_t)((struct axis_params *)pp->state)->len;
    return QCAL_OK;
}

static enum qcal_status topk_run(const void *state, const struct qcal_op_args *a)
{
    const struct axis_params *p = state;
    const float *x = a->in[0]->data;
    float *yv = a->out[0]->data;
    int64_t *yi = a->out[1]->data, *order = a->scratch;
    for (int64_t o = 0; o < p->outer; o++)
        for (int64_t i = 0; i < p->inner; i++) {
            const float *xp = x + o * p->len * p->inner + i;
            /* partial selection: k passes of the best remaining, ties to the lower index */
            for (int64_t k = 0; k < p->len; k++) order[k] = k;
            for (int64_t k = 0; k < p->k; k++) {
                int64_t best = k;
                for (int64_t j = k + 1; j < p->len; j++) {
                    float v = xp[order[j] * p->inner], b = xp[order[best] * p->inner];
                    bool better = p->largest ? v > b : v < b;
                    if (better || (v == b && order[j] < order[best])) best = j;
                }
                int64_t t = order[k];
                order[k] = order[best];
                order[best] = t;
                int64_t out = (o * p->k + k) * p->inner + i;
                yv[out] = xp[order[k] * p->inner];
                yi[out] = order[k];
            }
        }
    return QCAL_OK;
}

const struct qcal_op_def qcal_op_topk_def = {
    .name = "TopK", .parse = topk_parse, .infer = topk_infer, .layout = plain_layout,
    .prepare = topk_prepare, .run = topk_run,
};
