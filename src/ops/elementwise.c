/* Elementwise ops. Binary ops follow numpy broadcasting and work in any memory layout:
 * each operand is walked through its own strides (0 on broadcast dims), in the output's
 * memory order, after merging dims that are contiguous for every operand. */
#include <math.h>
#include <stdlib.h>

#include "op-internal.h"

/* ---- binary ---- */

struct bin_loop {
    int nd;
    int64_t dims[QCAL_MAX_DIMS];
    int64_t so[QCAL_MAX_DIMS], sa[QCAL_MAX_DIMS], sb[QCAL_MAX_DIMS];
};

/* Broadcast strides of `t` (as laid out) against the output's logical dims. */
static void bcast_strides(const struct qcal_tensor *t, int layout, const struct qcal_tensor *o,
                          int64_t *s)
{
    int64_t ts[QCAL_MAX_DIMS];
    op_strides(t, layout, ts);
    for (int i = 0; i < o->ndim; i++) {
        int it = i - (o->ndim - t->ndim);
        s[i] = (it < 0 || t->dims[it] == 1) ? 0 : ts[it];
    }
}

static void bin_loop_init(struct bin_loop *L, const struct qcal_op_args *a)
{
    const struct qcal_tensor *o = a->out[0];
    int64_t so[QCAL_MAX_DIMS], sa[QCAL_MAX_DIMS], sb[QCAL_MAX_DIMS];
    op_strides(o, op_out_layout(a, 0), so);
    bcast_strides(a->in[0], op_in_layout(a, 0), o, sa);
    bcast_strides(a->in[1], op_in_layout(a, 1), o, sb);
    /* order dims by output stride, outermost first */
    int perm[QCAL_MAX_DIMS];
    for (int i = 0; i < o->ndim; i++) perm[i] = i;
    for (int i = 1; i < o->ndim; i++)
        for (int j = i; j > 0 && so[perm[j]] > so[perm[j - 1]]; j--) {
            int t = perm[j];
            perm[j] = perm[j - 1];
            perm[j - 1] = t;
        }
    L->nd = 0;
    for (int k = 0; k < o->ndim; k++) {
        int i = perm[k];
        if (o->dims[i] == 1) continue;
        if (L->nd > 0) {
            int p = L->nd - 1;
            /* merge into the previous (outer) dim when contiguous for every operand */
            if (L->so[p] == so[i] * o->dims[i] && L->sa[p] == sa[i] * o->dims[i] &&
                L->sb[p] == sb[i] * o->dims[i]) {
                L->dims[p] *= o->dims[i];
                L->so[p] = so[i];
                L->sa[p] = sa[i];
                L->sb[p] = sb[i];
                continue;
            }
        }
        L->dims[L->nd] = o->dims[i];
        L->so[L->nd] = so[i];
        L->sa[L->nd] = sa[i];
        L->sb[L->nd] = sb[i];
        L->nd++;
    }
    if (L->nd == 0) {
        L->nd = 1;
        L->dims[0] = 1;
        L->so[0] = L->sa[0] = L->sb[0] = 1;
    }
}

/* Work is split into (outer row, chunk of the inner run) items so that both many short
 * rows and one long contiguous run spread over threads; each element is computed alone,
 * so the split never changes results. */
#define BIN_CHUNK 16384
#define BIN_KERNEL(NAME, T, EXPR)                                                            \
    static void NAME(const struct bin_loop *L, const T *A, const T *B, T *O, int threads)   \
    {                                                                                        \
        const int nd = L->nd;                                                                \
        const int64_t inner = L->dims[nd - 1], ia = L->sa[nd - 1], ib = L->sb[nd - 1],       \
                      io = L->so[nd - 1];                                                    \
        int64_t outer = 1;                                                                   \
        for (int d = 0; d < nd - 1; d++) outer *= L->dims[d];                                \
        const int64_t chunk = inner < BIN_CHUNK ? inner : BIN_CHUNK;                         \
        const int64_t nch = (inner + chunk - 1) / chunk;                                     \
        _Pragma("omp parallel for num_threads(threads) schedule(static) if (threads > 1 && outer * inner > 4 * BIN_CHUNK)") \
        for (int64_t w = 0; w < outer * nch; w++) {                                          \
            int64_t o = w / nch, c0 = (w % nch) * chunk;                                     \
            int64_t len = inner - c0 < chunk ? inner - c0 : chunk;                           \
            int64_t rem = o, oa = 0, ob = 0, oo = 0;                                         \
            for (int d = nd - 2; d >= 0; d--) {                                              \
                int64_t idx = rem % L->dims[d];                                              \
                rem /= L->dims[d];                                                           \
                oa += idx * L->sa[d];                                                        \
                ob += idx * L->sb[d];                                                        \
                oo += idx * L->so[d];                                                        \
            }                                                                                \
            const T *pa = A + oa + c0 * ia, *pb = B + ob + c0 * ib;                          \
            T *po = O + oo + c0 * io;                                                        \
            if (ia == 1 && ib == 1 && io == 1) {                                             \
                for (int64_t i = 0; i < len; i++) { T x = pa[i], y = pb[i]; po[i] = (EXPR); } \
            } else if (ia == 1 && ib == 0 && io == 1) {                                      \
                const T y = pb[0];                                                           \
                for (int64_t i = 0; i < len; i++) { T x = pa[i]; po[i] = (EXPR); }          \
            } else if (ia == 0 && ib == 1 && io == 1) {                                      \
                const T x = pa[0];                                                           \
                for (int64_t i = 0; i < len; i++) { T y = pb[i]; po[i] = (EXPR); }          \
            } else {                                                                         \
                for (int64_t i = 0; i < len; i++) {                                          \
                    T x = pa[i * ia], y = pb[i * ib];                                        \
                    po[i * io] = (EXPR);                                                     \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    }

BIN_KERNEL(add_f32, float, x + y)
BIN_KERNEL(sub_f32, float, x - y)
BIN_KERNEL(mul_f32, float, x * y)
BIN_KERNEL(div_f32, float, x / y)
BIN_KERNEL(pow_f32, float, powf(x, y))
BIN_KERNEL(prelu_f32, float, x < 0.0f ? x * y : x)
BIN_KERNEL(add_i64, int64_t, x + y)
BIN_KERNEL(sub_i64, int64_t, x - y)
BIN_KERNEL(mul_i64, int64_t, x * y)
BIN_KERNEL(div_i64, int64_t, y != 0 ? x / y : 0)
BIN_KERNEL(add_i32, int32_t, x + y)
BIN_KERNEL(sub_i32, int32_t, x - y)
BIN_KERNEL(mul_i32, int32_t, x * y)
BIN_KERNEL(div_i32, int32_t, y != 0 ? x / y : 0)

static enum qcal_status binary_parse(struct qcal_graph *g, struct qcal_node *n)
{
    return op_check_arity(g, n, 2, 2, 1, 1);
}

static enum qcal_status binary_infer(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = op_require_inputs(g, n, 2);
    if (st != QCAL_OK) return st;
    const struct qcal_tensor *a = &qcal_in(g, n, 0)->t, *b = &qcal_in(g, n, 1)->t;
    struct qcal_tensor out;
    if (n->op == QCAL_OP_PRELU) {
        /* slope broadcasts to X (unidirectional) */
        if ((st = op_broadcast(g, n, a, b, &out)) != QCAL_OK) return st;
        if (!qcal_shape_equal(&out, a))
            return OP_ERR(g, n, QCAL_INVALID_MODEL, "slope does not broadcast to X");
    } else if ((st = op_broadcast(g, n, a, b, &out)) != QCAL_OK) {
        return st;
    }
    bool pow_mixed = n->op == QCAL_OP_POW && a->dtype == QCAL_F32;
    if (a->dtype != b->dtype && !pow_mixed)
        return OP_ERR(g, n, QCAL_INVALID_MODEL, "operand types differ (%s, %s)",
                      qcal_dtype_name(a->dtype), qcal_dtype_name(b->dtype));
    bool ok = a->dtype == QCAL_F32 || ((a->dtype == QCAL_I64 || a->dtype == QCAL_I32) &&
                                       n->op != QCAL_OP_POW && n->op != QCAL_OP_PRELU);
    if (!ok)
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "type %s is not supported", qcal_dtype_name(a->dtype));
    if (pow_mixed && b->dtype != QCAL_F32)
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "exponent type %s not supported",
                      qcal_dtype_name(b->dtype));
    op_set_output(g, n, 0, a->dtype, out.ndim, out.dims);
    return QCAL_OK;
}

static int follow_layout(const struct qcal_graph *g, const struct qcal_node *n, int kernels)
{
    (void)g, (void)n, (void)kernels;
    return -1;
}

/* State of every elementwise op: which function, with which parameters. */
struct ew_state {
    int op;
    struct qcal_act act;
};

static enum qcal_status ew_state_create(struct qcal_op_prep *pp, const struct qcal_act *act)
{
    struct ew_state *s = calloc(1, sizeof *s);
    if (!s) return OP_ERR(pp->g, pp->node, QCAL_OUT_OF_MEMORY, "out of memory");
    s->op = pp->node->op;
    if (act) s->act = *act;
    pp->state = s;
    pp->impl = "ref";
    return QCAL_OK;
}

static void ew_destroy(void *state) { free(state); }

static enum qcal_status binary_prepare(struct qcal_op_prep *pp)
{
    return ew_state_create(pp, NULL);
}

static enum qcal_status binary_run(const void *state, const struct qcal_op_args *a)
{
    const int op = ((const struct ew_state *)state)->op;
    struct bin_loop L;
    bin_loop_init(&L, a);
    const void *x = a->in[0]->data, *y = a->in[1]->data;
    void *o = a->out[0]->data;
    int32_t dt = a->in[0]->dtype;
    const int threads = op_threads();
    if (dt == QCAL_F32) {
        switch (op) {
        case QCAL_OP_ADD: add_f32(&L, x, y, o, threads); break;
        case QCAL_OP_SUB: sub_f32(&L, x, y, o, threads); break;
        case QCAL_OP_MUL: mul_f32(&L, x, y, o, threads); break;
        case QCAL_OP_DIV: div_f32(&L, x, y, o, threads); break;
        case QCAL_OP_POW: pow_f32(&L, x, y, o, threads); break;
        case QCAL_OP_PRELU: prelu_f32(&L, x, y, o, threads); break;
        default: return QCAL_ERR(QCAL_UNSUPPORTED, "binary op %d", op);
        }
    } else if (dt == QCAL_I64) {
        switch (op) {
        case QCAL_OP_ADD: add_i64(&L, x, y, o, threads); break;
        case QCAL_OP_SUB: sub_i64(&L, x, y, o, threads); break;
        case QCAL_OP_MUL: mul_i64(&L, x, y, o, threads); break;
        case QCAL_OP_DIV: div_i64(&L, x, y, o, threads); break;
        default: return QCAL_ERR(QCAL_UNSUPPORTED, "binary op %d on int64", op);
        }
    } else {
        switch (op) {
        case QCAL_OP_ADD: add_i32(&L, x, y, o, threads); break;
        case QCAL_OP_SUB: sub_i32(&L, x, y, o, threads); break;
        case QCAL_OP_MUL: mul_i32(&L, x, y, o, threads); break;
        case QCAL_OP_DIV: div_i32(&L, x, y, o, threads); break;
        default: return QCAL_ERR(QCAL_UNSUPPORTED, "binary op %d on int32", op);
        }
    }
    return QCAL_OK;
}

/* An input of the output's shape and type may be overwritten in place. */
static int same_shape_input(const struct qcal_graph *g, const struct qcal_node *n)
{
    const struct qcal_tensor *o = &g->values[n->outputs[0]].t;
    for (int k = 0; k < n->n_inputs && k < 2; k++) {
        const struct qcal_value *v = &g->values[n->inputs[k]];
        if (!qcal_value_is_const(v) && qcal_shape_equal(&v->t, o) && v->t.dtype == o->dtype) return k;
    }
    return -1;
}

const struct qcal_op_def qcal_op_binary_def = {
    .name = "binary", .parse = binary_parse, .infer = binary_infer, .layout = follow_layout,
    .prepare = binary_prepare, .run = binary_run, .destroy = ew_destroy, .inplace = same_shape_input,
};

/* ---- unary ---- */

struct unary_params {
    struct qcal_act act; /* NONE for Sqrt and Exp */
};

static enum qcal_status unary_parse(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = op_check_arity(g, n, 1, n->op == QCAL_OP_CLIP ? 3 : 1, 1, 1);
    if (st != QCAL_OK) return st;
    if ((st = op_alloc_params(g, n, sizeof(struct unary_params))) != QCAL_OK) return st;
    struct qcal_act *act = &((struct unary_params *)n->params)->act;
    switch (n->op) {
    case QCAL_OP_RELU: act->kind = QCAL_ACT_RELU; break;
    case QCAL_OP_LEAKY_RELU:
        act->kind = QCAL_ACT_LEAKY_RELU;
        act->alpha = qcal_node_attr_float(n, "alpha", 0.01f);
        break;
    case QCAL_OP_SIGMOID: act->kind = QCAL_ACT_SIGMOID; break;
    case QCAL_OP_TANH: act->kind = QCAL_ACT_TANH; break;
    case QCAL_OP_HARD_SWISH: act->kind = QCAL_ACT_HARD_SWISH; break;
    case QCAL_OP_HARD_SIGMOID:
        act->kind = QCAL_ACT_HARD_SIGMOID;
        act->alpha = qcal_node_attr_float(n, "alpha", 0.2f);
        act->beta = qcal_node_attr_float(n, "beta", 0.5f);
        break;
    case QCAL_OP_CLIP:
        act->kind = QCAL_ACT_CLIP;
        /* opset < 11 has min/max attributes; later opsets take them as inputs (infer) */
        act->alpha = qcal_node_attr_float(n, "min", -INFINITY);
        act->beta = qcal_node_attr_float(n, "max", INFINITY);
        break;
    default: break;
    }
    return QCAL_OK;
}

bool qcal_ops_node_act(const struct qcal_node *n, struct qcal_act *act_out)
{
    if (!n->params) return false;
    switch (n->op) {
    case QCAL_OP_RELU: case QCAL_OP_LEAKY_RELU: case QCAL_OP_CLIP: case QCAL_OP_SIGMOID:
    case QCAL_OP_TANH: case QCAL_OP_HARD_SIGMOID: case QCAL_OP_HARD_SWISH:
        *act_out = ((const struct unary_params *)n->params)->act;
        return true;
    default: return false;
    }
}

static enum qcal_status unary_infer(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = op_require_inputs(g, n, 1);
    if (st != QCAL_OK) return st;
    const struct qcal_tensor *x = &qcal_in(g, n, 0)->t;
    if (x->dtype != QCAL_F32)
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "type %s is not supported", qcal_dtype_name(x->dtype));
    if (n->op == QCAL_OP_CLIP) {
        struct qcal_act *act = &((struct unary_params *)n->params)->act;
        for (int i = 1; i <= 2; i++) {
            if (!qcal_in(g, n, i)) continue;
            float v;
            int c;
            if ((st = op_const_floats(g, n, i, &v, 1, &c)) != QCAL_OK) return st;
            if (c != 1) return OP_ERR(g, n, QCAL_INVALID_MODEL, "min/max must be scalars");
            if (i == 1) act->alpha = v;
            else act->beta = v;
        }
    }
    op_set_output(g, n, 0, x->dtype, x->ndim, x->dims);
    return QCAL_OK;
}

static enum qcal_status unary_prepare(struct qcal_op_prep *pp)
{
    return ew_state_create(pp, &((struct unary_params *)pp->node->params)->act);
}

static enum qcal_status unary_run(const void *state, const struct qcal_op_args *a)
{
    const struct ew_state *s = state;
    const float *x = a->in[0]->data;
    float *y = a->out[0]->data;
    size_t count = (size_t)qcal_tensor_numel(a->out[0]);
    const size_t chunk = BIN_CHUNK, nch = (count + chunk - 1) / chunk;
    const int threads = op_threads();
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && nch > 4)
    for (size_t w = 0; w < nch; w++) {
        size_t b = w * chunk, e = b + chunk < count ? b + chunk : count;
        switch (s->op) {
        case QCAL_OP_SQRT:
            for (size_t i = b; i < e; i++) y[i] = sqrtf(x[i]);
            break;
        case QCAL_OP_EXP:
            for (size_t i = b; i < e; i++) y[i] = expf(x[i]);
            break;
        default:
            if (x != y) memcpy(y + b, x + b, (e - b) * sizeof(float));
            qcal_act_apply_array(&s->act, y + b, e - b);
        }
    }
    return QCAL_OK;
}

const struct qcal_op_def qcal_op_unary_def = {
    .name = "unary", .parse = unary_parse, .infer = unary_infer, .layout = follow_layout,
    .prepare = unary_prepare, .run = unary_run, .destroy = ew_destroy, .inplace = same_shape_input,
};
