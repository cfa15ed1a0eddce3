/* Graph rewrites that keep results equal up to float rounding. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcal/kernels.h"
#include "qcal/runtime.h"

void qcal_batchnorm_coefficients(const float *scale, const float *bias, const float *mean,
                                 const float *var, float eps, int64_t c, float *a, float *b)
{
    for (int64_t i = 0; i < c; i++) {
        a[i] = scale[i] / sqrtf(var[i] + eps);
        b[i] = bias[i] - mean[i] * a[i];
    }
}

/* The only live consumer of value v, or -1 when it has none or several, or is an output. */
static int sole_consumer(const struct qcal_graph *g, int v)
{
    if (g->values[v].is_output || g->values[v].n_consumers != 1) return -1;
    for (int i = 0; i < g->n_nodes; i++) {
        const struct qcal_node *n = &g->nodes[i];
        if (n->dead) continue;
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] == v) return i;
    }
    return -1;
}

static bool all_const(const struct qcal_graph *g, const struct qcal_node *n, int from, int to)
{
    for (int k = from; k < to; k++)
        if (k >= n->n_inputs || n->inputs[k] < 0 || !qcal_value_is_const(&g->values[n->inputs[k]]))
            return false;
    return true;
}

/* Output channels of a Conv ([OC, IC/group, ...] weights) or ConvTranspose ([IC, OC/group,
 * ...] weights), and the output channel of weight element i. */
static int64_t conv_out_channels(const struct qcal_node *n, const struct qcal_tensor *w)
{
    return n->op == QCAL_OP_CONV ? w->dims[0] : w->dims[1] * qcal_node_attr_int(n, "group", 1);
}

static int64_t weight_channel(const struct qcal_node *n, const struct qcal_tensor *w, int64_t i)
{
    if (n->op == QCAL_OP_CONV) return i / (qcal_tensor_numel(w) / w->dims[0]);
    const int64_t group = qcal_node_attr_int(n, "group", 1), ocg = w->dims[1], icg = w->dims[0] / group;
    const int64_t ks = qcal_tensor_numel(w) / (w->dims[0] * ocg), ic = i / (ocg * ks);
    return ic / icg * ocg + i / ks % ocg;
}

/* Gives Conv node ni new weight and bias constants (owning nw and nb, freed on failure) and
 * makes it produce `output`, the value of the node it absorbs. Weights shared with other
 * nodes stay intact: these are new constants. */
static enum qcal_status conv_set_params(struct qcal_graph *g, int ni, float *nw, float *nb, int output)
{
    enum qcal_status st;
    int wv, bv;
    struct qcal_node *n = &g->nodes[ni];
    struct qcal_tensor wt = g->values[n->inputs[1]].t;
    int64_t oc = conv_out_channels(n, &wt);
    wt.data = NULL;
    if ((st = qcal_graph_add_temp_value(g, g->values[n->inputs[1]].name, &wv)) != QCAL_OK ||
        (st = qcal_graph_add_temp_value(g, n->name, &bv)) != QCAL_OK) {
        qcal_free(nw);
        qcal_free(nb);
        return st;
    }
    qcal_graph_set_constant(g, wv, wt, nw);
    qcal_graph_set_constant(g, bv, qcal_tensor_make(QCAL_F32, 1, &oc), nb);
    if (n->n_inputs < 3) {
        int *ins = realloc(n->inputs, sizeof(int) * 3);
        if (!ins) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        n->inputs = ins;
        n->n_inputs = 3;
    }
    n->inputs[1] = wv;
    n->inputs[2] = bv;
    n->outputs[0] = output;
    return QCAL_OK;
}

/* Conv -> [constant per-channel Add/Sub/Mul/Div ...] -> BatchNormalization becomes one Conv
 * with scaled weights and shifted bias. New constants are made, so weights shared with other
 * nodes stay intact. */
static enum qcal_status fold_channel_affine(struct qcal_graph *g, int ni, int ci, bool *done);

enum qcal_status qcal_pass_fold_batchnorm(struct qcal_graph *g)
{
    enum qcal_status st = QCAL_OK;
    qcal_graph_update_uses(g);
    /* constant per-channel maps first (Paddle's ConvTranspose -> Add(bias) -> BatchNormalization) */
    for (int i = 0; i < g->n_nodes; i++) {
        bool done = true;
        while (done && !g->nodes[i].dead &&
               (g->nodes[i].op == QCAL_OP_CONV || g->nodes[i].op == QCAL_OP_CONV_TRANSPOSE)) {
            const int y = g->nodes[i].outputs[0], c = sole_consumer(g, y);
            if (c < 0 || g->values[y].keep) break;
            if ((st = fold_channel_affine(g, i, c, &done)) != QCAL_OK) return st;
            if (done) qcal_graph_update_uses(g);
        }
    }
    for (int i = 0; i < g->n_nodes; i++) {
        struct qcal_node *bn = &g->nodes[i];
        if (bn->dead || bn->op != QCAL_OP_BATCH_NORM || !all_const(g, bn, 1, 5)) continue;
        int x = bn->inputs[0];
        int ci = g->values[x].producer;
        if (ci < 0 || sole_consumer(g, x) != i) continue;
        struct qcal_node *conv = &g->nodes[ci];
        if ((conv->op != QCAL_OP_CONV && conv->op != QCAL_OP_CONV_TRANSPOSE) || conv->post.n != 0 ||
            !all_const(g, conv, 1, 2))
            continue;
        if (conv->n_inputs > 2 && conv->inputs[2] >= 0 && !all_const(g, conv, 2, 3)) continue;
        const struct qcal_tensor *w = &g->values[conv->inputs[1]].t;
        const int64_t oc = conv_out_channels(conv, w), nwt = qcal_tensor_numel(w);
        if (qcal_tensor_numel(&g->values[bn->inputs[1]].t) != oc) continue;
        float *a = malloc(2 * sizeof(float) * (size_t)oc);
        float *nw = qcal_malloc(sizeof(float) * (size_t)nwt);
        float *nb = qcal_malloc(sizeof(float) * (size_t)oc);
        if (!a || !nw || !nb) {
            free(a);
            qcal_free(nw);
            qcal_free(nb);
            return QCAL_ERR(QCAL_OUT_OF_MEMORY, "%s: out of memory folding '%s'", g->path, bn->name);
        }
        float *b = a + oc;
        qcal_batchnorm_coefficients(g->values[bn->inputs[1]].t.data, g->values[bn->inputs[2]].t.data,
                                    g->values[bn->inputs[3]].t.data, g->values[bn->inputs[4]].t.data,
                                    qcal_node_attr_float(bn, "epsilon", 1e-5f), oc, a, b);
        const float *wd = w->data;
        const float *bd = conv->n_inputs > 2 && conv->inputs[2] >= 0
                              ? g->values[conv->inputs[2]].t.data : NULL;
        for (int64_t e = 0; e < nwt; e++) nw[e] = wd[e] * a[weight_channel(conv, w, e)];
        for (int64_t o = 0; o < oc; o++) nb[o] = (bd ? bd[o] : 0.0f) * a[o] + b[o];
        free(a);
        if ((st = conv_set_params(g, ci, nw, nb, bn->outputs[0])) != QCAL_OK) return st;
        bn->dead = true;
        qcal_graph_update_uses(g);
    }
    return st;
}

/* Convolutions and GEMMs with float output (an INT8 one included: its post-ops run on the
 * float result before any requantization there would be). */
static bool fusable_producer(const struct qcal_graph *g, const struct qcal_node *n)
{
    const bool f32_qconv = (n->op == QCAL_OP_QLINEAR_CONV || n->op == QCAL_OP_QGEMM) &&
                           g->values[n->outputs[0]].t.dtype == QCAL_F32;
    return (n->op == QCAL_OP_CONV || n->op == QCAL_OP_CONV_TRANSPOSE || n->op == QCAL_OP_GEMM ||
            n->op == QCAL_OP_MATMUL || f32_qconv) && n->post.n < QCAL_MAX_POST_OPS;
}

/* A scalar float constant input equal to `want`. */
static bool const_scalar_is(const struct qcal_graph *g, int v, float want)
{
    if (v < 0) return false;
    const struct qcal_value *val = &g->values[v];
    if (!qcal_value_is_const(val) || val->t.dtype != QCAL_F32 || qcal_tensor_numel(&val->t) != 1)
        return false;
    return fabsf(((const float *)val->t.data)[0] - want) <= 1e-6f * fabsf(want);
}

/* The other input of a binary node that uses v once. */
static int other_input(const struct qcal_node *n, int v)
{
    if (n->n_inputs != 2) return -1;
    if (n->inputs[0] == v && n->inputs[1] != v) return n->inputs[1];
    if (n->inputs[1] == v && n->inputs[0] != v) return n->inputs[0];
    return -1;
}

/* Consumers of v (at most 4). */
static int consumers(const struct qcal_graph *g, int v, int *out)
{
    int c = 0;
    for (int i = 0; i < g->n_nodes && c < 4; i++) {
        const struct qcal_node *n = &g->nodes[i];
        if (n->dead) continue;
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] == v) {
                out[c++] = i;
                break;
            }
    }
    return c;
}

/* y = x * Clip(x + 3, 0, 6) / 6 as Paddle exports HardSwish: returns the node producing y
 * and marks the pattern's nodes in `nodes`, or -1. */
static int match_paddle_hardswish(const struct qcal_graph *g, int x, int *nodes)
{
    int cons[4];
    if (g->values[x].is_output || g->values[x].n_consumers != 2 || consumers(g, x, cons) != 2) return -1;
    for (int t = 0; t < 2; t++) {
        const struct qcal_node *add = &g->nodes[cons[t]], *mul = &g->nodes[cons[1 - t]];
        if (add->op != QCAL_OP_ADD || mul->op != QCAL_OP_MUL) continue;
        if (!const_scalar_is(g, other_input(add, x), 3.0f)) continue;
        int ci = sole_consumer(g, add->outputs[0]);
        if (ci < 0) continue;
        const struct qcal_node *clip = &g->nodes[ci];
        struct qcal_act act;
        if (!qcal_ops_node_act(clip, &act) || act.kind != QCAL_ACT_CLIP || act.alpha != 0.0f ||
            act.beta != 6.0f)
            continue;
        if (sole_consumer(g, clip->outputs[0]) != cons[1 - t] ||
            other_input(mul, x) != clip->outputs[0])
            continue;
        int di = sole_consumer(g, mul->outputs[0]);
        if (di < 0) continue;
        const struct qcal_node *div = &g->nodes[di];
        bool ok = (div->op == QCAL_OP_DIV && div->inputs[0] == mul->outputs[0] &&
                   const_scalar_is(g, div->inputs[1], 6.0f)) ||
                  (div->op == QCAL_OP_MUL && const_scalar_is(g, other_input(div, mul->outputs[0]), 1.0f / 6.0f));
        if (!ok) continue;
        nodes[0] = cons[t];
        nodes[1] = ci;
        nodes[2] = cons[1 - t];
        nodes[3] = di;
        return di;
    }
    return -1;
}

/* x * gate(x), gate Sigmoid (swish) or HardSigmoid(1/6, 1/2) (hard-swish as exporters emit
 * it before opset 14): returns the Mul node, sets *gate and the post-op it amounts to, or -1. */
static int match_gated(const struct qcal_graph *g, int x, int *gate, struct qcal_act *act)
{
    int cons[4];
    if (g->values[x].is_output || g->values[x].n_consumers != 2 || consumers(g, x, cons) != 2) return -1;
    for (int t = 0; t < 2; t++) {
        const struct qcal_node *gt = &g->nodes[cons[t]], *mul = &g->nodes[cons[1 - t]];
        struct qcal_act ga;
        if (mul->op != QCAL_OP_MUL || !qcal_ops_node_act(gt, &ga) || gt->inputs[0] != x) continue;
        if (ga.kind == QCAL_ACT_SIGMOID) {
            act->kind = QCAL_ACT_SWISH;
        } else if (ga.kind == QCAL_ACT_HARD_SIGMOID && fabsf(ga.alpha - 1.0f / 6.0f) < 1e-6f &&
                   ga.beta == 0.5f) {
            act->kind = QCAL_ACT_HARD_SWISH;
        } else {
            continue;
        }
        if (sole_consumer(g, gt->outputs[0]) != cons[1 - t] || other_input(mul, x) != gt->outputs[0])
            continue;
        *gate = cons[t];
        return cons[1 - t];
    }
    return -1;
}

static void append_post(struct qcal_node *n, struct qcal_act op)
{
    struct qcal_post_ops *p = &n->post;
    if (op.kind == QCAL_ACT_LINEAR && p->n > 0 && p->op[p->n - 1].kind == QCAL_ACT_LINEAR) {
        struct qcal_act *l = &p->op[p->n - 1]; /* a2 (a1 x + b1) + b2 */
        l->beta = op.alpha * l->beta + op.beta;
        l->alpha *= op.alpha;
        return;
    }
    p->op[p->n++] = op;
}

/* y OP c for a constant c of one value: the affine map it is, or false. */
static bool scalar_affine(const struct qcal_graph *g, const struct qcal_node *c, int y, struct qcal_act *out)
{
    int k = other_input(c, y);
    if (k < 0) return false;
    const struct qcal_value *v = &g->values[k];
    if (!qcal_value_is_const(v) || v->t.dtype != QCAL_F32 || qcal_tensor_numel(&v->t) != 1) return false;
    float cv = ((const float *)v->t.data)[0];
    bool y_first = c->inputs[0] == y;
    out->kind = QCAL_ACT_LINEAR;
    switch (c->op) {
    case QCAL_OP_MUL: out->alpha = cv, out->beta = 0.0f; return true;
    case QCAL_OP_ADD: out->alpha = 1.0f, out->beta = cv; return true;
    case QCAL_OP_SUB: out->alpha = y_first ? 1.0f : -1.0f, out->beta = y_first ? -cv : cv; return true;
    case QCAL_OP_DIV:
        if (!y_first || cv == 0.0f) return false;
        out->alpha = 1.0f / cv, out->beta = 0.0f;
        return true;
    default: return false;
    }
}

/* Conv followed by Mul/Add/Sub/Div with a per-channel (or scalar) constant, before any
 * post-op: fold it into new weight and bias constants. */
static enum qcal_status fold_channel_affine(struct qcal_graph *g, int ni, int ci, bool *done)
{
    struct qcal_node *n = &g->nodes[ni], *c = &g->nodes[ci];
    *done = false;
    int y = n->outputs[0], k = other_input(c, y);
    if ((n->op != QCAL_OP_CONV && n->op != QCAL_OP_CONV_TRANSPOSE) || n->post.n || k < 0 ||
        !qcal_value_is_const(&g->values[k]))
        return QCAL_OK;
    if (c->op != QCAL_OP_MUL && c->op != QCAL_OP_ADD && c->op != QCAL_OP_SUB && c->op != QCAL_OP_DIV)
        return QCAL_OK;
    if ((c->op == QCAL_OP_SUB || c->op == QCAL_OP_DIV) && c->inputs[0] != y) return QCAL_OK;
    const struct qcal_tensor *ct = &g->values[k].t, *w = &g->values[n->inputs[1]].t;
    const struct qcal_tensor *yt = &g->values[y].t;
    const int64_t oc = conv_out_channels(n, w), cnt = qcal_tensor_numel(ct), nwt = qcal_tensor_numel(w);
    if (ct->dtype != QCAL_F32 || (cnt != 1 && cnt != oc) || ct->ndim > yt->ndim) return QCAL_OK;
    if (cnt == oc && oc > 1) { /* must broadcast along the channel axis only */
        int ax = 1 - (yt->ndim - ct->ndim);
        if (ax < 0 || ct->dims[ax] != oc) return QCAL_OK;
    }
    if (!all_const(g, n, 1, 2) || (n->n_inputs > 2 && n->inputs[2] >= 0 && !all_const(g, n, 2, 3)))
        return QCAL_OK;
    float *nw = qcal_malloc(sizeof(float) * (size_t)nwt), *nb = qcal_malloc(sizeof(float) * (size_t)oc),
          *m = malloc(sizeof(float) * (size_t)oc);
    if (!nw || !nb || !m) {
        qcal_free(nw);
        qcal_free(nb);
        free(m);
        return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    }
    const float *wd = w->data, *cd = ct->data;
    const float *bd = n->n_inputs > 2 && n->inputs[2] >= 0 ? g->values[n->inputs[2]].t.data : NULL;
    for (int64_t o = 0; o < oc; o++) {
        float v = cd[cnt == 1 ? 0 : o], b = bd ? bd[o] : 0.0f;
        m[o] = 1.0f;
        switch (c->op) {
        case QCAL_OP_MUL: m[o] = v, b *= v; break;
        case QCAL_OP_DIV: m[o] = 1.0f / v, b /= v; break;
        case QCAL_OP_ADD: b += v; break;
        default: b -= v; break;
        }
        nb[o] = b;
    }
    for (int64_t i = 0; i < nwt; i++) nw[i] = wd[i] * m[weight_channel(n, w, i)];
    free(m);
    enum qcal_status st = conv_set_params(g, ni, nw, nb, c->outputs[0]);
    if (st != QCAL_OK) return st;
    c->dead = true;
    *done = true;
    return QCAL_OK;
}

/* Conv + Add(residual of the same shape) -> Conv with a SUM post-op on input 3. */
static enum qcal_status fuse_residual(struct qcal_graph *g, int ni, int ci, bool *done)
{
    struct qcal_node *n = &g->nodes[ni], *c = &g->nodes[ci];
    *done = false;
    int y = n->outputs[0], r = other_input(c, y);
    if (n->op != QCAL_OP_CONV || c->op != QCAL_OP_ADD || r < 0 || n->post.sum_input) return QCAL_OK;
    const struct qcal_value *rv = &g->values[r];
    if (qcal_value_is_const(rv) || !qcal_shape_equal(&rv->t, &g->values[y].t) || rv->t.dtype != QCAL_F32)
        return QCAL_OK;
    if (rv->producer >= ni) return QCAL_OK; /* must exist before the conv runs */
    int *ins = realloc(n->inputs, sizeof(int) * 4);
    if (!ins) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    n->inputs = ins;
    for (int k = n->n_inputs; k < 3; k++) n->inputs[k] = -1;
    n->inputs[3] = r;
    n->n_inputs = 4;
    n->post.sum_input = 3;
    append_post(n, (struct qcal_act){.kind = QCAL_ACT_SUM});
    n->outputs[0] = c->outputs[0];
    c->dead = true;
    *done = true;
    return QCAL_OK;
}

/* One fusion into node ni, if any applies; *done says whether the graph changed. */
static enum qcal_status fuse_one(struct qcal_graph *g, int ni, bool *done)
{
    struct qcal_node *n = &g->nodes[ni];
    int y = n->outputs[0];
    enum qcal_status st = QCAL_OK;
    *done = false;
    if (g->values[y].keep) return QCAL_OK; /* observed: fusing would hide it */
    int c = sole_consumer(g, y);
    struct qcal_act act;
    if (c >= 0) {
        struct qcal_node *cn = &g->nodes[c];
        if (qcal_ops_node_act(cn, &act) && cn->inputs[0] == y) {
            append_post(n, act);
            n->outputs[0] = cn->outputs[0];
            cn->dead = true;
            *done = true;
            return QCAL_OK;
        }
        if ((st = fold_channel_affine(g, ni, c, done)) != QCAL_OK || *done) return st;
        if (scalar_affine(g, cn, y, &act)) {
            append_post(n, act);
            n->outputs[0] = cn->outputs[0];
            cn->dead = true;
            *done = true;
            return QCAL_OK;
        }
        return fuse_residual(g, ni, c, done);
    }
    int gate, nodes[4];
    int mul = match_gated(g, y, &gate, &act);
    if (mul >= 0) {
        append_post(n, act);
        n->outputs[0] = g->nodes[mul].outputs[0];
        g->nodes[gate].dead = g->nodes[mul].dead = true;
        *done = true;
        return QCAL_OK;
    }
    int last = match_paddle_hardswish(g, y, nodes);
    if (last >= 0) {
        append_post(n, (struct qcal_act){.kind = QCAL_ACT_HARD_SWISH});
        n->outputs[0] = g->nodes[last].outputs[0];
        for (int k = 0; k < 4; k++) g->nodes[nodes[k]].dead = true;
        *done = true;
    }
    return QCAL_OK;
}

enum qcal_status qcal_pass_fuse_activations(struct qcal_graph *g)
{
    qcal_graph_update_uses(g);
    for (int i = 0; i < g->n_nodes; i++) {
        bool done = true;
        while (done && !g->nodes[i].dead && fusable_producer(g, &g->nodes[i])) {
            enum qcal_status st = fuse_one(g, i, &done);
            if (st != QCAL_OK) return st;
            if (done) qcal_graph_update_uses(g);
        }
    }
    return QCAL_OK;
}

void qcal_pass_eliminate_dead(struct qcal_graph *g)
{
    qcal_graph_update_uses(g);
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        struct qcal_node *n = &g->nodes[i];
        if (n->dead) continue;
        bool used = false;
        for (int k = 0; k < n->n_outputs && !used; k++)
            used = n->outputs[k] >= 0 && (g->values[n->outputs[k]].n_consumers > 0 ||
                                          g->values[n->outputs[k]].is_output || g->values[n->outputs[k]].keep);
        if (used) continue;
        n->dead = true;
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0) g->values[n->inputs[k]].n_consumers--;
    }
    qcal_graph_compact(g);
}

/* ---- QDQ -> integer ops ----
 * DequantizeLinear(xq) -> Conv(DequantizeLinear(wq int8), bias) -> [activation] -> QuantizeLinear
 * becomes one QLinearConv reading xq and writing the QuantizeLinear's output, so activations
 * stay int8 from one quantized convolution to the next. Runs on the loaded graph, before
 * constant folding would turn the int8 weights into float. */

static bool is_node(const struct qcal_node *n, const char *op)
{
    return n && !n->dead && qcal_node_default_domain(n) && strcmp(n->op_type, op) == 0;
}

static struct qcal_node *producer_node(struct qcal_graph *g, int v)
{
    return v >= 0 && g->values[v].producer >= 0 ? &g->nodes[g->values[v].producer] : NULL;
}

static const struct qcal_value *const_input(const struct qcal_graph *g, const struct qcal_node *n, int k)
{
    return k < n->n_inputs && n->inputs[k] >= 0 && qcal_value_is_const(&g->values[n->inputs[k]])
               ? &g->values[n->inputs[k]]
               : NULL;
}

/* Per-tensor quantization of a Q or DQ node: constant float scale, constant u8/i8 zero
 * point (or none: uint8, 0). */
static bool per_tensor_q(const struct qcal_graph *g, const struct qcal_node *n)
{
    const struct qcal_value *s = const_input(g, n, 1), *z = n->n_inputs > 2 ? const_input(g, n, 2) : NULL;
    if (!s || s->t.dtype != QCAL_F32 || qcal_tensor_numel(&s->t) != 1) return false;
    if (n->n_inputs > 2 && n->inputs[2] >= 0 &&
        (!z || qcal_tensor_numel(&z->t) != 1 || (z->t.dtype != QCAL_U8 && z->t.dtype != QCAL_I8)))
        return false;
    return true;
}

/* A new constant (owning data, freed on failure) named from `base`; dims must not point into
 * g->values (adding the value may move them). */
static enum qcal_status new_const(struct qcal_graph *g, const char *base, int32_t dtype, int ndim, const int64_t *dims,
                                  void *data, int *out)
{
    enum qcal_status st = qcal_graph_add_temp_value(g, base, out);
    if (st != QCAL_OK) {
        qcal_free(data);
        return st;
    }
    qcal_graph_set_constant(g, *out, qcal_tensor_make(dtype, ndim, dims), data);
    g->values[*out].is_initializer = true;
    return QCAL_OK;
}

/* A new constant `base`_zero_point of `count` zeros of an 8-bit type: a scalar when count is
 * 1, else 1-D. */
static enum qcal_status add_zeros(struct qcal_graph *g, const char *base, int32_t dtype, int64_t count, int *out)
{
    char name[512];
    snprintf(name, sizeof name, "%s_zero_point", base);
    uint8_t *z = qcal_malloc((size_t)count);
    if (!z) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    memset(z, 0, (size_t)count);
    return new_const(g, name, dtype, count > 1 ? 1 : 0, &count, z, out);
}

/* A zero point input for QLinearConv: the node's own, or a new uint8 0. */
static enum qcal_status zero_point_of(struct qcal_graph *g, const struct qcal_node *n, const char *base, int *out)
{
    if (n->n_inputs > 2 && n->inputs[2] >= 0) {
        *out = n->inputs[2];
        return QCAL_OK;
    }
    return add_zeros(g, base, QCAL_U8, 1, out);
}

/* A DequantizeLinear of constant int8 weights with a float scale and a zero point that is
 * absent or all zeros (symmetric weights): *wq and *ws its weights and scales. */
static bool int8_weight_dq(const struct qcal_graph *g, const struct qcal_node *wdq, const struct qcal_value **wq,
                           const struct qcal_value **ws)
{
    if (!is_node(wdq, "DequantizeLinear")) return false;
    *wq = const_input(g, wdq, 0);
    *ws = const_input(g, wdq, 1);
    if (!*wq || (*wq)->t.dtype != QCAL_I8 || !*ws || (*ws)->t.dtype != QCAL_F32) return false;
    if (wdq->n_inputs < 3 || wdq->inputs[2] < 0) return true;
    const struct qcal_value *wz = const_input(g, wdq, 2);
    if (!wz || wz->t.dtype != QCAL_I8) return false;
    for (int64_t i = 0; i < qcal_tensor_numel(&wz->t); i++)
        if (((const int8_t *)wz->t.data)[i] != 0) return false;
    return true;
}

/* The activation between the Conv and the QuantizeLinear, if one qcal can fuse. */
static bool qdq_activation(const struct qcal_graph *g, const struct qcal_node *a, struct qcal_act *act)
{
    if (!a || a->dead) return false;
    /* Relu and HardSwish (parsed already), Clip below. Not HardSigmoid nor affine maps:
     * oneDNN 2.6's INT8 convolutions get an eltwise-linear post-op before the requantizing
     * one wrong (tests/unit/test_kernels.c shows it), so those stay FP32 after the conv. */
    if (!is_node(a, "Clip"))
        return qcal_ops_node_act(a, act) && a->n_inputs == 1 &&
               (act->kind == QCAL_ACT_RELU || act->kind == QCAL_ACT_HARD_SWISH);
    float lo = qcal_node_attr_float(a, "min", -INFINITY), hi = qcal_node_attr_float(a, "max", INFINITY);
    for (int k = 1; k < a->n_inputs && k <= 2; k++) {
        if (a->inputs[k] < 0) continue;
        const struct qcal_value *v = const_input(g, a, k);
        if (!v || v->t.dtype != QCAL_F32 || qcal_tensor_numel(&v->t) != 1) return false;
        if (k == 1) lo = ((const float *)v->t.data)[0];
        else hi = ((const float *)v->t.data)[0];
    }
    *act = (struct qcal_act){.kind = QCAL_ACT_CLIP, .alpha = lo, .beta = hi};
    return true;
}

/* The oc values of bias value bv, a float constant or a DequantizeLinear of int32
 * constants: false if it is neither. */
static bool bias_values(const struct qcal_graph *g, int bv, int64_t oc, double *b)
{
    const struct qcal_node *dq = bv >= 0 && g->values[bv].producer >= 0 ? &g->nodes[g->values[bv].producer] : NULL;
    if (is_node(dq, "DequantizeLinear") && const_input(g, dq, 0) && const_input(g, dq, 1) &&
        const_input(g, dq, 0)->t.dtype == QCAL_I32 && qcal_tensor_numel(&const_input(g, dq, 0)->t) == oc) {
        const struct qcal_value *q = const_input(g, dq, 0), *s = const_input(g, dq, 1);
        const int64_t ns = qcal_tensor_numel(&s->t);
        for (int64_t c = 0; c < oc; c++)
            b[c] = (double)((const int32_t *)q->t.data)[c] * ((const float *)s->t.data)[ns == 1 ? 0 : c];
        return true;
    }
    if (!qcal_value_is_const(&g->values[bv]) || g->values[bv].t.dtype != QCAL_F32 ||
        qcal_tensor_numel(&g->values[bv].t) != oc)
        return false;
    for (int64_t c = 0; c < oc; c++) b[c] = ((const float *)g->values[bv].t.data)[c];
    return true;
}

/* The bias as int32 at x_scale * w_scale[c]: taken as is from a DequantizeLinear that uses
 * that scale, otherwise rounded from its float value. -1 without a bias. */
static enum qcal_status int32_bias(struct qcal_graph *g, const struct qcal_node *conv, float sx, const float *sw,
                                   int64_t n_sw, int64_t oc, struct qcal_act affine, int *out)
{
    *out = -1;
    const bool has = conv->n_inputs > 2 && conv->inputs[2] >= 0;
    if (!has && affine.beta == 0.0f) return QCAL_OK;
    const int bv = has ? conv->inputs[2] : conv->outputs[0];
    double *b = calloc((size_t)oc, sizeof(double));
    if (!b) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    enum qcal_status st = QCAL_OK;
    if (has && !bias_values(g, bv, oc, b)) {
        free(b);
        return QCAL_UNSUPPORTED; /* not a constant bias: no fusion (no message) */
    }
    int32_t *q = qcal_malloc(sizeof(int32_t) * (size_t)oc);
    char name[512];
    snprintf(name, sizeof name, "%s_%s", g->values[bv].name, has ? "int32" : "bias_int32");
    if (!q) st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    const bool folded = affine.alpha != 1.0f || affine.beta != 0.0f;
    for (int64_t c = 0; st == QCAL_OK && c < oc; c++) { /* sw already holds |alpha| * w_scale */
        const double v = (double)affine.alpha * b[c] + (double)affine.beta, at = (double)sx * sw[n_sw == 1 ? 0 : c];
        /* an offset folded into a channel whose weight scale is tiny (a dead channel) may not
         * fit in int32 at that scale: no fusion then (the file's own biases saturate as the
         * QDQ graph defines them) */
        if (folded && !(fabs(v / at) < 2147483647.0)) st = QCAL_UNSUPPORTED;
        else q[c] = qcal_bias_int32(v, sx * sw[n_sw == 1 ? 0 : c]);
    }
    free(b);
    if (st != QCAL_OK) {
        qcal_free(q);
        return st;
    }
    return new_const(g, name, QCAL_I32, 1, &oc, q, out);
}

/* Gives node n the op type `op` and the inputs ins[0..n_in). */
static enum qcal_status rename_node(struct qcal_node *n, const char *op, const int *ins, int n_in)
{
    int *in = realloc(n->inputs, sizeof(int) * (size_t)n_in);
    char *name = qcal_strdup(op);
    if (in) n->inputs = in;
    if (!in || !name) {
        free(name);
        return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    }
    memcpy(n->inputs, ins, sizeof(int) * (size_t)n_in);
    n->n_inputs = n_in;
    free(n->op_type);
    n->op_type = name;
    return QCAL_OK;
}

/* Turns node ni into `op` with inputs ins[0..n_in), the output of the QuantizeLinear q it
 * absorbs and activation `act` (kind NONE: none); q and the activation node act_node (-1:
 * none) die. */
static enum qcal_status retype_node(struct qcal_graph *g, int ni, const char *op, const int *ins, int n_in, int q,
                                    int act_node, struct qcal_act act)
{
    struct qcal_node *n = &g->nodes[ni];
    enum qcal_status st = rename_node(n, op, ins, n_in);
    if (st != QCAL_OK) return st;
    n->outputs[0] = g->nodes[q].outputs[0];
    g->values[n->outputs[0]].producer = ni;
    memset(&n->post, 0, sizeof n->post);
    if (act.kind != QCAL_ACT_NONE) n->post.n = 1, n->post.op[0] = act;
    g->nodes[q].dead = true;
    if (act_node >= 0) g->nodes[act_node].dead = true;
    return QCAL_OK;
}

/* Weights for a convolution followed by y * alpha: scales |alpha| * w_scale, the int8 values
 * negated when alpha < 0 (-128 has no negation: unsupported, no fusion). */
static enum qcal_status affine_weights(struct qcal_graph *g, int wq, int ws, float alpha, int *wq_out, int *ws_out)
{
    const int64_t n_s = qcal_tensor_numel(&g->values[ws].t), n_w = qcal_tensor_numel(&g->values[wq].t);
    if (alpha < 0)
        for (int64_t i = 0; i < n_w; i++)
            if (((const int8_t *)g->values[wq].t.data)[i] == -128) return QCAL_UNSUPPORTED;
    char name[512];
    float *scale = qcal_malloc(sizeof(float) * (size_t)n_s);
    if (!scale) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    for (int64_t c = 0; c < n_s; c++) scale[c] = fabsf(alpha) * ((const float *)g->values[ws].t.data)[c];
    snprintf(name, sizeof name, "%s_affine", g->values[ws].name);
    const struct qcal_tensor ts = g->values[ws].t, tw = g->values[wq].t; /* shapes, before values move */
    enum qcal_status st = new_const(g, name, QCAL_F32, ts.ndim, ts.dims, scale, ws_out);
    *wq_out = wq;
    if (st != QCAL_OK || alpha > 0) return st;
    int8_t *w = qcal_malloc((size_t)n_w);
    if (!w) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    for (int64_t i = 0; i < n_w; i++) w[i] = (int8_t)-((const int8_t *)g->values[wq].t.data)[i];
    snprintf(name, sizeof name, "%s_negated", g->values[wq].name);
    return new_const(g, name, QCAL_I8, tw.ndim, tw.dims, w, wq_out);
}

/* Tries to turn Conv node ci into a QLinearConv; *done when it did. */
static enum qcal_status fuse_qdq_conv(struct qcal_graph *g, int ci, bool *done)
{
    *done = false;
    struct qcal_node *conv = &g->nodes[ci];
    if (conv->n_inputs < 2) return QCAL_OK;
    struct qcal_node *xdq = producer_node(g, conv->inputs[0]), *wdq = producer_node(g, conv->inputs[1]);
    const struct qcal_value *wq, *ws;
    if (!is_node(xdq, "DequantizeLinear") || !per_tensor_q(g, xdq) || !int8_weight_dq(g, wdq, &wq, &ws) ||
        wq->t.ndim < 3)
        return QCAL_OK;
    const int64_t oc = wq->t.dims[0], n_sw = qcal_tensor_numel(&ws->t);
    if ((n_sw != 1 && n_sw != oc) || (n_sw > 1 && qcal_node_attr_int(wdq, "axis", 1) != 0)) return QCAL_OK;
    /* the output: sole consumer a QuantizeLinear, maybe through scalar affine maps (Paddle's
     * learnable affine blocks: Conv -> Mul(a) -> Add(b)), folded into the weight scales and
     * the bias, and one activation */
    int y = conv->outputs[0], c = sole_consumer(g, y);
    struct qcal_act affine = {.kind = QCAL_ACT_LINEAR, .alpha = 1.0f, .beta = 0.0f}, step;
    int affine_nodes[3], n_affine = 0;
    while (n_affine < 3 && c >= 0 && scalar_affine(g, &g->nodes[c], y, &step) && !g->nodes[c].dead &&
           qcal_node_default_domain(&g->nodes[c]) &&
           step.alpha != 0.0f && isfinite(step.alpha) && isfinite(step.beta)) {
        affine.beta = step.alpha * affine.beta + step.beta;
        affine.alpha *= step.alpha;
        affine_nodes[n_affine++] = c;
        y = g->nodes[c].outputs[0];
        c = sole_consumer(g, y);
    }
    struct qcal_act act = {.kind = QCAL_ACT_NONE};
    int act_node = -1;
    if (c >= 0 && qdq_activation(g, &g->nodes[c], &act) && g->nodes[c].inputs[0] == y) {
        act_node = c;
        y = g->nodes[c].outputs[0];
        c = sole_consumer(g, y);
    }
    /* no QuantizeLinear reads it: an INT8 convolution with float output (the maps and the
     * activation stay nodes; the activation pass makes them post-ops) */
    const int qi = c >= 0 && is_node(&g->nodes[c], "QuantizeLinear") && g->nodes[c].inputs[0] == y &&
                           per_tensor_q(g, &g->nodes[c]) ? c : -1;
    if (qi < 0) {
        n_affine = 0, act_node = -1;
        affine = (struct qcal_act){.kind = QCAL_ACT_LINEAR, .alpha = 1.0f, .beta = 0.0f};
        act.kind = QCAL_ACT_NONE;
    }
    const float sx = ((const float *)g->values[xdq->inputs[1]].t.data)[0];
    int bias = -1, xz, yz = -1, w_int8 = wdq->inputs[0], w_scale = wdq->inputs[1];
    enum qcal_status st = QCAL_OK;
    if (n_affine > 0 && (st = affine_weights(g, wdq->inputs[0], wdq->inputs[1], affine.alpha, &w_int8, &w_scale)) != QCAL_OK)
        return st == QCAL_UNSUPPORTED ? QCAL_OK : st;
    st = int32_bias(g, &g->nodes[ci], sx, g->values[w_scale].t.data, n_sw, oc, affine, &bias);
    if (st == QCAL_UNSUPPORTED) return QCAL_OK;
    if (st != QCAL_OK) return st;
    /* (value ids stay valid; node pointers are re-read after every addition) */
    if ((st = zero_point_of(g, &g->nodes[g->values[g->nodes[ci].inputs[0]].producer], "x", &xz)) != QCAL_OK) return st;
    if (qi >= 0 && (st = zero_point_of(g, &g->nodes[qi], "y", &yz)) != QCAL_OK) return st;
    conv = &g->nodes[ci];
    xdq = producer_node(g, conv->inputs[0]);
    wdq = producer_node(g, conv->inputs[1]);
    int wzv = wdq->n_inputs > 2 && wdq->inputs[2] >= 0 ? wdq->inputs[2] : -1;
    if (wzv < 0) {
        if ((st = add_zeros(g, g->values[wdq->inputs[0]].name, QCAL_I8, n_sw, &wzv)) != QCAL_OK) return st;
        conv = &g->nodes[ci];
        xdq = producer_node(g, conv->inputs[0]);
        wdq = producer_node(g, conv->inputs[1]);
    }
    const int ins[9] = {xdq->inputs[0], xdq->inputs[1], xz, w_int8, w_scale, wzv, qi >= 0 ? g->nodes[qi].inputs[1] : -1,
                        qi >= 0 ? yz : -1, bias};
    if (qi < 0) st = rename_node(&g->nodes[ci], "QLinearConv", ins, 9);
    else st = retype_node(g, ci, "QLinearConv", ins, bias >= 0 ? 9 : 8, qi, act_node, act);
    if (st != QCAL_OK) return st;
    for (int k = 0; k < n_affine; k++) g->nodes[affine_nodes[k]].dead = true;
    *done = true;
    return QCAL_OK;
}

/* Tries to turn Gemm (or MatMul) node gi (A = DequantizeLinear(x) per tensor, B =
 * DequantizeLinear(int8 constant [K, N] or [N, K], per output column or per tensor, zero point
 * 0), optional bias, alpha = beta = 1, no transA) into QGemm: with a QuantizeLinear after it (maybe through Relu/Clip) int8 out,
 * otherwise float out. *done when it did. */
static enum qcal_status fuse_qdq_gemm(struct qcal_graph *g, int gi, bool *done)
{
    *done = false;
    struct qcal_node *n = &g->nodes[gi];
    if (n->n_inputs < 2 || qcal_node_attr_int(n, "transA", 0) || qcal_node_attr_float(n, "alpha", 1) != 1.0f ||
        (n->n_inputs > 2 && n->inputs[2] >= 0 && qcal_node_attr_float(n, "beta", 1) != 1.0f))
        return QCAL_OK;
    const bool trans_b = qcal_node_attr_int(n, "transB", 0) != 0;
    struct qcal_node *xdq = producer_node(g, n->inputs[0]), *wdq = producer_node(g, n->inputs[1]);
    const struct qcal_value *wq, *ws;
    if (!is_node(xdq, "DequantizeLinear") || !per_tensor_q(g, xdq) || qcal_value_is_const(&g->values[xdq->inputs[0]]) ||
        !int8_weight_dq(g, wdq, &wq, &ws) || wq->t.ndim != 2)
        return QCAL_OK;
    const int64_t nn = wq->t.dims[trans_b ? 0 : 1], kk = wq->t.dims[trans_b ? 1 : 0], n_sw = qcal_tensor_numel(&ws->t);
    const int64_t axis = qcal_node_attr_int(wdq, "axis", 1);
    if ((n_sw != 1 && n_sw != nn) || (n_sw > 1 && (axis < 0 ? axis + 2 : axis) != (trans_b ? 0 : 1))) return QCAL_OK;
    /* the output: int8 through a QuantizeLinear (maybe after Relu/Clip), or float */
    int y = n->outputs[0], c = sole_consumer(g, y), act_node = -1, qi = -1;
    struct qcal_act act = {.kind = QCAL_ACT_NONE};
    if (c >= 0 && qdq_activation(g, &g->nodes[c], &act) && g->nodes[c].inputs[0] == y) {
        act_node = c;
        c = sole_consumer(g, g->nodes[c].outputs[0]);
    }
    if (c >= 0 && is_node(&g->nodes[c], "QuantizeLinear") && per_tensor_q(g, &g->nodes[c])) qi = c;
    if (qi < 0) act_node = -1, act.kind = QCAL_ACT_NONE;
    const float sx = ((const float *)g->values[xdq->inputs[1]].t.data)[0];
    const struct qcal_act identity = {.kind = QCAL_ACT_LINEAR, .alpha = 1.0f, .beta = 0.0f};
    int bias = -1, xz, yz = -1, w_nk, zeros;
    enum qcal_status st = int32_bias(g, n, sx, ws->t.data, n_sw, nn, identity, &bias);
    if (st == QCAL_UNSUPPORTED) return QCAL_OK;
    if (st != QCAL_OK) return st;
    /* the weights as [N, K] int8 (oneDNN's 1x1 convolution layout), a zero zero point */
    int8_t *w = qcal_malloc((size_t)(nn * kk));
    if (!w) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    const int8_t *src = g->values[wdq->inputs[0]].t.data;
    for (int64_t r = 0; r < nn; r++)
        for (int64_t k = 0; k < kk; k++) w[r * kk + k] = trans_b ? src[r * kk + k] : src[k * nn + r];
    char name[512];
    snprintf(name, sizeof name, "%s_nk", g->values[wdq->inputs[0]].name);
    const int64_t wd[2] = {nn, kk};
    if ((st = new_const(g, name, QCAL_I8, 2, wd, w, &w_nk)) != QCAL_OK) return st;
    if ((st = add_zeros(g, g->values[w_nk].name, QCAL_I8, 1, &zeros)) != QCAL_OK) return st;
    n = &g->nodes[gi];
    if ((st = zero_point_of(g, producer_node(g, n->inputs[0]), "x", &xz)) != QCAL_OK) return st;
    if (qi >= 0 && (st = zero_point_of(g, &g->nodes[qi], "y", &yz)) != QCAL_OK) return st;
    n = &g->nodes[gi];
    xdq = producer_node(g, n->inputs[0]);
    wdq = producer_node(g, n->inputs[1]);
    const int ins[9] = {xdq->inputs[0], xdq->inputs[1], xz, w_nk, wdq->inputs[1], zeros, bias,
                        qi >= 0 ? g->nodes[qi].inputs[1] : -1, yz};
    if (qi >= 0) {
        st = retype_node(g, gi, "QGemm", ins, 9, qi, act_node, act);
        *done = st == QCAL_OK;
        return st;
    }
    st = rename_node(n, "QGemm", ins, 7); /* float out: no output quantization inputs */
    *done = st == QCAL_OK;
    return st;
}

/* Ops a QuantizeLinear commutes with exactly: MaxPool (quantization is monotone, so the
 * largest code is the code of the largest value) and nearest-neighbour Resize/Upsample
 * (copies). */
static bool commutes_with_quantize(const struct qcal_node *n)
{
    if (n->n_outputs != 1 || n->n_inputs < 1) return false;
    if (is_node(n, "MaxPool")) return n->n_inputs == 1;
    return (is_node(n, "Resize") || is_node(n, "Upsample")) &&
           strcmp(qcal_node_attr_string(n, "mode", "nearest"), "nearest") == 0;
}

/* Q(op(y)) = op(Q(y)) for those ops: quantizing first lets the convolution in front end in
 * the QuantizeLinear (ResNet's stem: Conv -> Relu -> MaxPool -> Q; the upsampled branches
 * of a detection neck) and moves int8 bytes instead of floats. */
static enum qcal_status quantize_before_copies(struct qcal_graph *g)
{
    bool any = false;
    for (int i = 0; i < g->n_nodes; i++) {
        struct qcal_node *p = &g->nodes[i];
        if (!commutes_with_quantize(p)) continue;
        const int m = p->outputs[0], c = sole_consumer(g, m);
        if (c < 0 || !is_node(&g->nodes[c], "QuantizeLinear") || g->nodes[c].inputs[0] != m ||
            !per_tensor_q(g, &g->nodes[c]) || qcal_value_is_const(&g->values[p->inputs[0]]))
            continue;
        const int qo = g->nodes[c].outputs[0];
        g->nodes[c].inputs[0] = p->inputs[0];
        g->nodes[c].outputs[0] = m; /* now the codes of the pooling's input */
        p->inputs[0] = m;
        p->outputs[0] = qo;
        any = true;
    }
    if (!any) return QCAL_OK;
    qcal_graph_update_uses(g);
    return qcal_graph_toposort(g);
}

/* Whether ConvTranspose t with [IC, OC, s, s] weights has kernel = stride = s and no
 * padding, groups, dilation or output padding (each input pixel fills its own s x s block). */
static bool blockwise_convtranspose(const struct qcal_node *t, int64_t s)
{
    int64_t v[4];
    const char *ap = qcal_node_attr_string(t, "auto_pad", "NOTSET");
    if (qcal_node_attr_int(t, "group", 1) != 1 || qcal_node_attr(t, "output_shape") ||
        (strcmp(ap, "NOTSET") != 0 && strcmp(ap, "VALID") != 0))
        return false;
    const struct {
        const char *name;
        int count;
        int64_t want, absent;
    } a[] = {{"strides", 2, s, 1}, {"kernel_shape", 2, s, s}, {"pads", 4, 0, 0}, {"dilations", 2, 1, 1},
             {"output_padding", 2, 0, 0}};
    for (size_t k = 0; k < sizeof a / sizeof a[0]; k++) {
        int c = qcal_node_attr_ints(t, a[k].name, v, 4);
        if (c < 0 && a[k].absent != a[k].want) return false;
        if (c >= 0 && c != a[k].count) return false;
        for (int i = 0; i < c; i++)
            if (v[i] != a[k].want) return false;
    }
    return true;
}

/* A new node of the graph's opset producing `out`. */
static enum qcal_status new_node(struct qcal_graph *g, const char *name, const char *op, const int *in, int n_in,
                                 int out, int *id)
{
    enum qcal_status st = qcal_graph_add_node(g, name, op, "", in, n_in, &out, 1, id);
    if (st != QCAL_OK) return st;
    g->nodes[*id].opset = (int)g->opset;
    g->values[out].producer = *id;
    return QCAL_OK;
}

/* The weights of a blockwise ConvTranspose, [IC, OC, s, s] elements of `es` bytes, as those
 * of a 1x1 Conv to s·s·OC channels ordered (ki, kj, oc): [s·s·OC, IC, 1, 1]. NULL: no memory. */
static void *block_weights(const void *w, size_t es, int64_t ic, int64_t oc, int64_t s)
{
    char *out = qcal_malloc(es * (size_t)(ic * oc * s * s));
    if (!out) return NULL;
    for (int64_t k = 0; k < s * s; k++) /* k = ki * s + kj */
        for (int64_t o = 0; o < oc; o++)
            for (int64_t i = 0; i < ic; i++)
                memcpy(out + es * (size_t)((k * oc + o) * ic + i), (const char *)w + es * (size_t)((i * oc + o) * s * s + k), es);
    return out;
}

/* The end of both blockwise ConvTranspose rewrites: node ti becomes Conv(x, w, b) (b -1: no
 * bias) writing a new value, and a DepthToSpace (DCR, blocks of s) turns that into the value
 * node `last` wrote — ti itself, or the last of the elementwise ops behind it, which then
 * write the new value instead. *d2s the DepthToSpace node. */
static enum qcal_status conv_then_depth_to_space(struct qcal_graph *g, int ti, int last, int x, int w, int b,
                                                 int64_t s, int *d2s)
{
    char name[512];
    const int y = g->nodes[last].outputs[0];
    int blocks;
    enum qcal_status st;
    snprintf(name, sizeof name, "%s_blocks", g->values[y].name);
    if ((st = qcal_graph_add_temp_value(g, name, &blocks)) != QCAL_OK) return st;
    snprintf(name, sizeof name, "%s_depth_to_space", g->nodes[ti].name);
    if ((st = new_node(g, name, "DepthToSpace", &blocks, 1, y, d2s)) != QCAL_OK ||
        (st = qcal_node_add_attr_int(&g->nodes[*d2s], "blocksize", s)) != QCAL_OK)
        return st;
    g->nodes[last].outputs[0] = blocks;
    qcal_node_clear_attrs(&g->nodes[ti]);
    return rename_node(&g->nodes[ti], "Conv", (int[]){x, w, b}, b >= 0 ? 3 : 2);
}

/* ConvTranspose ti (blockwise, on a per-tensor DequantizeLinear'd input and int8 weights)
 * becomes a 1x1 Conv to s·s·OC channels, ordered (ki, kj, oc), and a DepthToSpace (DCR):
 * the Conv then fuses into a QLinearConv like any other. The DepthToSpace goes behind the
 * elementwise ops and the QuantizeLinear that follow (it only moves elements), so it moves
 * int8 codes. *done when it did. */
static enum qcal_status convtranspose_as_conv(struct qcal_graph *g, int ti, bool *done)
{
    *done = false;
    const struct qcal_node *t = &g->nodes[ti];
    if (t->n_inputs < 2) return QCAL_OK;
    const struct qcal_node *xdq = producer_node(g, t->inputs[0]), *wdq = producer_node(g, t->inputs[1]);
    const struct qcal_value *wq, *ws;
    if (!is_node(xdq, "DequantizeLinear") || !per_tensor_q(g, xdq) || !int8_weight_dq(g, wdq, &wq, &ws) ||
        wq->t.ndim != 4)
        return QCAL_OK;
    const int64_t ic = wq->t.dims[0], oc = wq->t.dims[1], s = wq->t.dims[2], n_sw = qcal_tensor_numel(&ws->t);
    const int64_t ocb = oc * s * s;
    if (wq->t.dims[3] != s || !blockwise_convtranspose(t, s) ||
        (n_sw != 1 && (n_sw != oc || qcal_node_attr_int(wdq, "axis", 1) != 1)))
        return QCAL_OK;
    const bool has_bias = t->n_inputs > 2 && t->inputs[2] >= 0;
    double *b = calloc((size_t)oc, sizeof(double));
    if (!b) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    if (has_bias && !bias_values(g, t->inputs[2], oc, b)) {
        free(b);
        return QCAL_OK;
    }
    /* the tail: elementwise ops, up to and with a per-tensor QuantizeLinear */
    int y = t->outputs[0], last = ti;
    for (;;) {
        const int c = sole_consumer(g, y);
        if (c < 0 || g->values[y].keep) break;
        const struct qcal_node *cn = &g->nodes[c];
        struct qcal_act act;
        const bool q = is_node(cn, "QuantizeLinear") && per_tensor_q(g, cn);
        if (cn->dead || !qcal_node_default_domain(cn) || cn->inputs[0] != y ||
            !(q || qcal_ops_node_act(cn, &act) || scalar_affine(g, cn, y, &act)))
            break;
        y = cn->outputs[0];
        last = c;
        if (q) break;
    }
    const bool per_channel = n_sw > 1;
    int8_t *w = block_weights(wq->t.data, 1, ic, oc, s);
    float *sc = per_channel ? qcal_malloc(sizeof(float) * (size_t)ocb) : NULL;
    float *bias = has_bias ? qcal_malloc(sizeof(float) * (size_t)ocb) : NULL;
    if (!w || (per_channel && !sc) || (has_bias && !bias)) {
        qcal_free(w);
        qcal_free(sc);
        qcal_free(bias);
        free(b);
        return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    }
    for (int64_t k = 0; k < ocb; k++) {
        if (sc) sc[k] = ((const float *)ws->t.data)[k % oc];
        if (bias) bias[k] = (float)b[k % oc];
    }
    free(b);
    char name[512];
    const int64_t wdims[4] = {ocb, ic, 1, 1};
    const int x = t->inputs[0];
    int wv, sv = wdq->inputs[1], bv = -1, dqv, dq, d2s;
    enum qcal_status st;
    snprintf(name, sizeof name, "%s_as_conv", g->values[wdq->inputs[0]].name);
    if ((st = new_const(g, name, QCAL_I8, 4, wdims, w, &wv)) != QCAL_OK) {
        qcal_free(sc);
        qcal_free(bias);
        return st;
    }
    if (sc && (st = new_const(g, name, QCAL_F32, 1, &ocb, sc, &sv)) != QCAL_OK) {
        qcal_free(bias);
        return st;
    }
    if (bias && (st = new_const(g, name, QCAL_F32, 1, &ocb, bias, &bv)) != QCAL_OK) return st;
    if ((st = qcal_graph_add_temp_value(g, name, &dqv)) != QCAL_OK) return st;
    snprintf(name, sizeof name, "%s_DequantizeLinear", g->values[wv].name);
    if ((st = new_node(g, name, "DequantizeLinear", (int[]){wv, sv}, 2, dqv, &dq)) != QCAL_OK) return st;
    if (per_channel && (st = qcal_node_add_attr_int(&g->nodes[dq], "axis", 0)) != QCAL_OK) return st;
    if ((st = conv_then_depth_to_space(g, ti, last, x, dqv, bv, s, &d2s)) != QCAL_OK) return st;
    *done = true;
    return QCAL_OK;
}

enum qcal_status qcal_pass_fuse_qdq(struct qcal_graph *g)
{
    qcal_graph_update_uses(g);
    bool any = false;
    for (int i = 0; i < g->n_nodes; i++) {
        if (!is_node(&g->nodes[i], "ConvTranspose")) continue;
        bool done;
        enum qcal_status st = convtranspose_as_conv(g, i, &done);
        if (st != QCAL_OK) return st;
        if (done) any = true, qcal_graph_update_uses(g);
    }
    enum qcal_status qst = any ? qcal_graph_toposort(g) : QCAL_OK;
    if (qst != QCAL_OK || (qst = quantize_before_copies(g)) != QCAL_OK) return qst;
    any = false;
    for (int i = 0; i < g->n_nodes; i++) {
        const bool gemm = is_node(&g->nodes[i], "Gemm") || (is_node(&g->nodes[i], "MatMul") && g->nodes[i].n_inputs == 2);
        if (!gemm && !is_node(&g->nodes[i], "Conv")) continue;
        bool done;
        enum qcal_status st = gemm ? fuse_qdq_gemm(g, i, &done) : fuse_qdq_conv(g, i, &done);
        if (st != QCAL_OK) return st;
        if (done) {
            any = true;
            qcal_graph_update_uses(g);
        }
    }
    if (any) qcal_pass_eliminate_dead(g); /* the QuantizeLinear/activation nodes, unused DequantizeLinear */
    return QCAL_OK;
}

/* Gives node ni the internal op `op` (its op_type already renamed): parameters parsed and
 * output inferred again. */
static enum qcal_status become(struct qcal_graph *g, int ni, int op)
{
    struct qcal_node *n = &g->nodes[ni];
    if (g->free_params && n->params) g->free_params(n);
    n->params = NULL;
    n->op = op;
    const struct qcal_op_def *def = qcal_op_def(op);
    enum qcal_status st = def->parse(g, n);
    return st == QCAL_OK ? def->infer(g, n) : st;
}

/* A per-tensor DequantizeLinear with a zero point, of an int8/uint8 activation. */
static bool dq_of_activation(const struct qcal_graph *g, const struct qcal_node *d)
{
    return is_node(d, "DequantizeLinear") && per_tensor_q(g, d) && d->n_inputs > 2 && d->inputs[2] >= 0 &&
           !qcal_value_is_const(&g->values[d->inputs[0]]);
}

static bool q_with_zero_point(const struct qcal_graph *g, const struct qcal_node *q)
{
    return is_node(q, "QuantizeLinear") && per_tensor_q(g, q) && q->n_inputs > 2 && q->inputs[2] >= 0;
}

/* DequantizeLinear -> GlobalAveragePool -> QuantizeLinear becomes QLinearGlobalAveragePool;
 * DequantizeLinear(a) {+,*} DequantizeLinear(b) -> [Relu] -> QuantizeLinear becomes
 * QLinearAdd / QLinearMul: a and b of one shape (residual adds) or b one value or one per
 * channel (SE gates: x * gate[1,C,1,1]). Runs after shape inference. */
enum qcal_status qcal_pass_fuse_qdq_add(struct qcal_graph *g)
{
    qcal_graph_update_uses(g);
    bool any = false;
    for (int i = 0; i < g->n_nodes; i++) {
        struct qcal_node *n = &g->nodes[i];
        if (is_node(n, "GlobalAveragePool")) { /* DQ -> GlobalAveragePool -> Q: QLinearGlobalAveragePool */
            struct qcal_node *d = producer_node(g, n->inputs[0]);
            const int c = sole_consumer(g, n->outputs[0]);
            if (!dq_of_activation(g, d) || g->values[n->inputs[0]].t.ndim != 4 || c < 0 ||
                !q_with_zero_point(g, &g->nodes[c]))
                continue;
            const int ins[5] = {d->inputs[0], d->inputs[1], d->inputs[2], g->nodes[c].inputs[1], g->nodes[c].inputs[2]};
            enum qcal_status st = retype_node(g, i, "QLinearGlobalAveragePool", ins, 5, c, -1,
                                              (struct qcal_act){.kind = QCAL_ACT_NONE});
            if (st == QCAL_OK) st = become(g, i, QCAL_OP_QLINEAR_GAP);
            if (st != QCAL_OK) return st;
            any = true;
            qcal_graph_update_uses(g);
            continue;
        }
        const bool mul = is_node(n, "Mul");
        if (!(mul || is_node(n, "Add")) || n->n_inputs != 2) continue;
        struct qcal_node *da = producer_node(g, n->inputs[0]), *db = producer_node(g, n->inputs[1]);
        if (!dq_of_activation(g, da) || !dq_of_activation(g, db)) continue;
        const struct qcal_tensor *ta = &g->values[da->inputs[0]].t, *tb = &g->values[db->inputs[0]].t;
        if (!qcal_ops_qlinear_broadcasts(ta, tb)) { /* the full-shaped input first */
            if (!qcal_ops_qlinear_broadcasts(tb, ta)) continue;
            struct qcal_node *t = da;
            da = db, db = t;
        }
        int y = n->outputs[0], c = sole_consumer(g, y), relu = -1;
        if (c >= 0 && is_node(&g->nodes[c], "Relu")) {
            relu = c;
            y = g->nodes[c].outputs[0];
            c = sole_consumer(g, y);
        }
        if (c < 0 || !q_with_zero_point(g, &g->nodes[c])) continue;
        const struct qcal_node *q = &g->nodes[c];
        const int ins[8] = {da->inputs[0], da->inputs[1], da->inputs[2], db->inputs[0], db->inputs[1], db->inputs[2],
                            q->inputs[1], q->inputs[2]};
        const struct qcal_act relu_act = {.kind = relu >= 0 ? QCAL_ACT_RELU : QCAL_ACT_NONE};
        enum qcal_status st = retype_node(g, i, mul ? "QLinearMul" : "QLinearAdd", ins, 8, c, relu, relu_act);
        if (st == QCAL_OK) st = become(g, i, mul ? QCAL_OP_QLINEAR_MUL : QCAL_OP_QLINEAR_ADD);
        if (st != QCAL_OK) return st;
        any = true;
        qcal_graph_update_uses(g);
    }
    if (any) qcal_pass_eliminate_dead(g);
    return QCAL_OK;
}

/* ---- elementwise regions -> QLinearLookup ----
 * A QuantizeLinear whose input is computed elementwise from one int8 tensor x, through
 * DequantizeLinear, unary activations, arithmetic with scalar constants and inner Q/DQ
 * pairs (x * HardSigmoid(x) hardswish, Paddle's x * Clip(x + 3, 0, 6) / 6, requantization),
 * is a function of x's byte: a table of 256 entries, computed here with the graph's own float
 * arithmetic. */

enum { REGION_MAX = 24 };

struct region {
    int node[REGION_MAX]; /* producers first */
    int n;
    int x; /* the int8 tensor every DequantizeLinear of the region reads */
};

static bool scalar_f32(const struct qcal_graph *g, int v)
{
    return qcal_value_is_const(&g->values[v]) && g->values[v].t.dtype == QCAL_F32 &&
           qcal_tensor_numel(&g->values[v].t) == 1;
}

static bool in_region(const struct region *r, int ni)
{
    for (int k = 0; k < r->n; k++)
        if (r->node[k] == ni) return true;
    return false;
}

static bool lookup_node_ok(const struct qcal_graph *g, const struct qcal_node *n)
{
    struct qcal_act act;
    if (qcal_ops_node_act(n, &act)) return n->n_inputs >= 1 && !scalar_f32(g, n->inputs[0]);
    if (n->op == QCAL_OP_QUANTIZE_LINEAR) return q_with_zero_point(g, n);
    if (n->op != QCAL_OP_ADD && n->op != QCAL_OP_SUB && n->op != QCAL_OP_MUL && n->op != QCAL_OP_DIV) return false;
    if (n->n_inputs != 2 || n->inputs[0] < 0 || n->inputs[1] < 0) return false;
    for (int k = 0; k < 2; k++)
        if (qcal_value_is_const(&g->values[n->inputs[k]]) && !scalar_f32(g, n->inputs[k])) return false;
    return true;
}

static bool collect_region(const struct qcal_graph *g, int v, struct region *r);

/* An int8 tensor the region computes itself: a QuantizeLinear read only by the
 * DequantizeLinear at hand, of a value the region can compute (an inner Q/DQ pair). */
static bool inner_code(const struct qcal_graph *g, int code, struct region *r)
{
    const int q = g->values[code].producer;
    if (q < 0 || g->nodes[q].op != QCAL_OP_QUANTIZE_LINEAR || sole_consumer(g, code) < 0) return false;
    if (in_region(r, q)) return true;
    const struct region saved = *r;
    if (collect_region(g, code, r)) return true;
    *r = saved;
    return false;
}

/* Adds the nodes computing v to r, producers first; false if v is not such a function. */
static bool collect_region(const struct qcal_graph *g, int v, struct region *r)
{
    if (qcal_value_is_const(&g->values[v])) return scalar_f32(g, v);
    const int p = g->values[v].producer;
    if (p < 0 || g->nodes[p].dead || !qcal_node_default_domain(&g->nodes[p])) return false;
    if (in_region(r, p)) return true;
    const struct qcal_node *n = &g->nodes[p];
    if (n->op == QCAL_OP_DEQUANTIZE_LINEAR) {
        const int code = n->inputs[0];
        if (!per_tensor_q(g, n) || qcal_value_is_const(&g->values[code]) || !qcal_dtype_is_int8(g->values[code].t.dtype))
            return false;
        if (code != r->x && !inner_code(g, code, r)) {
            if (r->x >= 0) return false; /* a second int8 tensor: not a function of one byte */
            r->x = code;
        }
    } else {
        if (!lookup_node_ok(g, n)) return false;
        const int inputs = n->op == QCAL_OP_QUANTIZE_LINEAR ? 1 : n->n_inputs;
        for (int k = 0; k < inputs; k++)
            if (n->inputs[k] >= 0 && !collect_region(g, n->inputs[k], r)) return false;
    }
    if (r->n == REGION_MAX) return false;
    r->node[r->n++] = p;
    return true;
}

static float q_scale(const struct qcal_graph *g, const struct qcal_node *n)
{
    return ((const float *)g->values[n->inputs[1]].t.data)[0];
}

static int32_t q_zero(const struct qcal_graph *g, const struct qcal_node *n)
{
    if (n->n_inputs < 3 || n->inputs[2] < 0) return 0;
    const struct qcal_tensor *z = &g->values[n->inputs[2]].t;
    return z->dtype == QCAL_I8 ? ((const int8_t *)z->data)[0] : ((const uint8_t *)z->data)[0];
}

/* QuantizeLinear of 256 values, as float codes. */
static void quantize_256(const struct qcal_graph *g, const struct qcal_node *q, const float *in, float *out)
{
    const bool u8 = g->values[q->outputs[0]].t.dtype == QCAL_U8;
    const float s = q_scale(g, q), z = (float)q_zero(g, q);
    for (int k = 0; k < 256; k++) out[k] = qcal_quantize_one(in[k], s, z, u8 ? 0.0f : -128.0f, u8 ? 255.0f : 127.0f);
}

/* The region's values for the 256 bytes of x, node by node; *out: the root's input. */
static void eval_region(const struct qcal_graph *g, const struct region *r, int root_input, float (*val)[256],
                        const float **out)
{
    float code[256];
    const bool u8 = g->values[r->x].t.dtype == QCAL_U8;
    for (int k = 0; k < 256; k++) code[k] = u8 ? (float)k : (float)(int8_t)k;
    const float *arg[2];
    float scalar[2][256];
    for (int j = 0; j < r->n; j++) {
        const struct qcal_node *n = &g->nodes[r->node[j]];
        const int inputs = n->op == QCAL_OP_ADD || n->op == QCAL_OP_SUB || n->op == QCAL_OP_MUL || n->op == QCAL_OP_DIV ? 2 : 1;
        for (int k = 0; k < inputs; k++) {
            const int v = n->inputs[k];
            if (v == r->x) {
                arg[k] = code;
            } else if (qcal_value_is_const(&g->values[v])) {
                for (int e = 0; e < 256; e++) scalar[k][e] = ((const float *)g->values[v].t.data)[0];
                arg[k] = scalar[k];
            } else {
                int at = 0;
                while (r->node[at] != g->values[v].producer) at++;
                arg[k] = val[at];
            }
        }
        float *y = val[j];
        struct qcal_act act;
        if (n->op == QCAL_OP_DEQUANTIZE_LINEAR) {
            const float s = q_scale(g, n);
            const int32_t z = q_zero(g, n);
            for (int e = 0; e < 256; e++) y[e] = (float)((int32_t)arg[0][e] - z) * s;
        } else if (n->op == QCAL_OP_QUANTIZE_LINEAR) {
            quantize_256(g, n, arg[0], y);
        } else if (qcal_ops_node_act(n, &act)) {
            for (int e = 0; e < 256; e++) y[e] = qcal_act_apply(&act, arg[0][e]);
        } else {
            for (int e = 0; e < 256; e++) {
                const float a = arg[0][e], b = arg[1][e];
                y[e] = n->op == QCAL_OP_ADD ? a + b : n->op == QCAL_OP_SUB ? a - b : n->op == QCAL_OP_MUL ? a * b : a / b;
            }
        }
        if (n->outputs[0] == root_input) *out = y;
    }
}

/* Turns QuantizeLinear node qi into QLinearLookup(x, table) if its input is a function of
 * one int8 tensor's byte. */
static enum qcal_status fuse_lookup(struct qcal_graph *g, int qi, bool *done)
{
    *done = false;
    struct region r = {.n = 0, .x = -1};
    const int in = g->nodes[qi].inputs[0];
    if (!collect_region(g, in, &r) || r.x < 0) return QCAL_OK;
    float (*val)[256] = malloc(sizeof(float[256]) * (size_t)r.n);
    if (!val) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    const float *y = NULL;
    float codes[256];
    eval_region(g, &r, in, val, &y);
    quantize_256(g, &g->nodes[qi], y, codes);
    free(val);
    const int32_t dtype = g->values[g->nodes[qi].outputs[0]].t.dtype;
    uint8_t *table = qcal_malloc(256);
    if (!table) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    for (int k = 0; k < 256; k++) table[k] = (uint8_t)(int32_t)codes[k]; /* int8: two's complement byte */
    char name[512];
    snprintf(name, sizeof name, "%s_table", g->values[g->nodes[qi].outputs[0]].name);
    int t;
    const int64_t len = 256;
    enum qcal_status st = new_const(g, name, dtype, 1, &len, table, &t);
    if (st != QCAL_OK) return st;
    const int ins[2] = {r.x, t};
    if ((st = rename_node(&g->nodes[qi], "QLinearLookup", ins, 2)) != QCAL_OK ||
        (st = become(g, qi, QCAL_OP_QLINEAR_LOOKUP)) != QCAL_OK)
        return st;
    *done = true;
    return QCAL_OK;
}

enum qcal_status qcal_pass_fuse_qdq_lookup(struct qcal_graph *g)
{
    qcal_graph_update_uses(g);
    for (int i = g->n_nodes - 1; i >= 0; i--) { /* consumers first: the largest regions */
        if (!q_with_zero_point(g, &g->nodes[i]) || qcal_value_is_const(&g->values[g->nodes[i].inputs[0]])) continue;
        bool done;
        enum qcal_status st = fuse_lookup(g, i, &done);
        if (st != QCAL_OK) return st;
        if (done) { /* the region's inner nodes die before the loop reaches them */
            qcal_pass_eliminate_dead(g); /* compacts: the nodes not visited yet keep their order below i */
            if (i > g->n_nodes) i = g->n_nodes;
        }
    }
    return QCAL_OK;
}

/* ---- int8 through data movement ----
 * Concat, Reshape, Flatten, Squeeze, Unsqueeze, Transpose and Identity between
 * DequantizeLinear(s) and a QuantizeLinear of one quantization (scale, zero point, type)
 * move the int8 bytes themselves: Q(op(DQ(x))) = op(x) exactly. (The QDQ writer quantizes
 * a Concat's inputs with its output's parameters so that this holds.) */

static bool same_quantization(const struct qcal_graph *g, const struct qcal_node *a, const struct qcal_node *b)
{
    return q_scale(g, a) == q_scale(g, b) && q_zero(g, a) == q_zero(g, b) &&
           g->values[a->inputs[2]].t.dtype == g->values[b->inputs[2]].t.dtype;
}

static bool moves_bytes(const struct qcal_node *n)
{
    switch (n->op) {
    case QCAL_OP_CONCAT: case QCAL_OP_RESHAPE: case QCAL_OP_FLATTEN: case QCAL_OP_SQUEEZE:
    case QCAL_OP_UNSQUEEZE: case QCAL_OP_TRANSPOSE: case QCAL_OP_IDENTITY: return qcal_node_default_domain(n);
    default: return false;
    }
}

enum qcal_status qcal_pass_fuse_qdq_moves(struct qcal_graph *g)
{
    qcal_graph_update_uses(g);
    bool any = false;
    for (int i = 0; i < g->n_nodes; i++) {
        struct qcal_node *n = &g->nodes[i];
        if (n->dead || !moves_bytes(n) || n->n_outputs != 1) continue;
        const int c = sole_consumer(g, n->outputs[0]);
        if (c < 0 || !q_with_zero_point(g, &g->nodes[c])) continue;
        const int data = n->op == QCAL_OP_CONCAT ? n->n_inputs : 1;
        bool ok = true;
        for (int k = 0; k < data && ok; k++) {
            const struct qcal_node *d = producer_node(g, n->inputs[k]);
            ok = dq_of_activation(g, d) && same_quantization(g, d, &g->nodes[c]);
        }
        if (!ok) continue;
        for (int k = 0; k < data; k++) n->inputs[k] = producer_node(g, n->inputs[k])->inputs[0];
        n->outputs[0] = g->nodes[c].outputs[0];
        g->values[n->outputs[0]].producer = i;
        g->nodes[c].dead = true;
        enum qcal_status st = qcal_op_def(n->op)->infer(g, n);
        if (st != QCAL_OK) return st;
        any = true;
        qcal_graph_update_uses(g);
    }
    if (any) qcal_pass_eliminate_dead(g);
    return QCAL_OK;
}

/* A blockwise ConvTranspose with float constant weights (FP32 models; after BatchNormalization
 * folding and activation fusion) becomes the same 1x1 Conv + DepthToSpace as an INT8 one:
 * the convolution is one GEMM over all pixels instead of one per output row. Post-ops are
 * elementwise, so they stay on the Conv; a residual sum would not (left as it is). */
enum qcal_status qcal_pass_convtranspose_blocks(struct qcal_graph *g)
{
    bool any = false;
    for (int i = 0; i < g->n_nodes; i++) {
        const struct qcal_node *t = &g->nodes[i];
        if (t->dead || t->op != QCAL_OP_CONV_TRANSPOSE || t->n_inputs < 2 || t->post.sum_input > 0 ||
            !all_const(g, t, 1, 2))
            continue;
        const struct qcal_tensor *w = &g->values[t->inputs[1]].t;
        const int64_t ic = w->dims[0], oc = w->dims[1], s = w->ndim == 4 ? w->dims[2] : 0, ocb = oc * s * s;
        const bool has_bias = t->n_inputs > 2 && t->inputs[2] >= 0;
        if (w->dtype != QCAL_F32 || w->ndim != 4 || w->dims[3] != s || !blockwise_convtranspose(t, s) ||
            (has_bias && !all_const(g, t, 2, 3)))
            continue;
        float *nw = block_weights(w->data, sizeof(float), ic, oc, s);
        float *nb = has_bias ? qcal_malloc(sizeof(float) * (size_t)ocb) : NULL;
        if (!nw || (has_bias && !nb)) {
            qcal_free(nw);
            qcal_free(nb);
            return QCAL_ERR(QCAL_OUT_OF_MEMORY, "%s: out of memory", g->path);
        }
        for (int64_t k = 0; nb && k < ocb; k++) nb[k] = ((const float *)g->values[t->inputs[2]].t.data)[k % oc];
        char name[512];
        const int64_t wdims[4] = {ocb, ic, 1, 1};
        int wv, bv = -1, d2s;
        const int x = t->inputs[0];
        enum qcal_status st;
        snprintf(name, sizeof name, "%s_as_conv", g->values[t->inputs[1]].name);
        if ((st = new_const(g, name, QCAL_F32, 4, wdims, nw, &wv)) != QCAL_OK) {
            qcal_free(nb);
            return st;
        }
        if (nb && (st = new_const(g, name, QCAL_F32, 1, &ocb, nb, &bv)) != QCAL_OK) return st;
        if ((st = conv_then_depth_to_space(g, i, i, x, wv, bv, s, &d2s)) != QCAL_OK) return st;
        if ((st = become(g, i, QCAL_OP_CONV)) != QCAL_OK || (st = become(g, d2s, QCAL_OP_DEPTH_TO_SPACE)) != QCAL_OK)
            return st;
        any = true;
    }
    if (!any) return QCAL_OK;
    qcal_pass_eliminate_dead(g); /* the folded nodes, before sorting */
    return qcal_graph_toposort(g);
}
