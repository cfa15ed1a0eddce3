/* FP32 graph -> QDQ graph: which nodes are quantized, per-channel int8 weights, int32
 * biases, QuantizeLinear/DequantizeLinear pairs on activations, and the opset upgrade the
 * QDQ encoding needs (opset >= 13). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcal/kernels.h"
#include "qcal/quant.h"

static bool is_op(const struct qcal_node *n, const char *op)
{
    return qcal_node_default_domain(n) && strcmp(n->op_type, op) == 0;
}

static bool is_activation(const struct qcal_graph *g, int v)
{
    return v >= 0 && !qcal_value_is_const(&g->values[v]) && g->values[v].t.dtype == QCAL_F32;
}

static bool is_const_f32(const struct qcal_graph *g, int v)
{
    return v >= 0 && qcal_value_is_const(&g->values[v]) && g->values[v].t.dtype == QCAL_F32;
}

static bool in_scope(const struct qcal_node *n, const struct qcal_quant_options *o)
{
    for (int i = 0; o && i < o->n_ignored_names; i++)
        if (n->name && strcmp(n->name, o->ignored_names[i]) == 0) return false;
    for (int i = 0; o && i < o->n_ignored_types; i++)
        if (strcmp(n->op_type, o->ignored_types[i]) == 0) return false;
    return true;
}

/* Which inputs of n are quantized activations (bit k: input k); 0 if n is not quantized. */
static unsigned quantized_inputs(const struct qcal_graph *g, const struct qcal_node *n)
{
    const int a = n->n_inputs > 0 ? n->inputs[0] : -1, b = n->n_inputs > 1 ? n->inputs[1] : -1;
    if (is_op(n, "Conv") || is_op(n, "ConvTranspose"))
        return is_activation(g, a) && is_const_f32(g, b) ? 1u : 0u;
    if (is_op(n, "Gemm") || is_op(n, "MatMul")) {
        if (!is_activation(g, a)) return 0;
        if (is_const_f32(g, b)) return 1u;
        return is_activation(g, b) ? 3u : 0u;
    }
    if (is_op(n, "Add") || is_op(n, "Mul"))
        return n->n_inputs == 2 && is_activation(g, a) && is_activation(g, b) ? 3u : 0u;
    if (is_op(n, "AveragePool") || is_op(n, "GlobalAveragePool")) return is_activation(g, a) ? 1u : 0u;
    return 0;
}

/* The per-channel axis of a weighted node's constant weight (input 1); false if n has no
 * quantized weight. */
static bool weight_axis(const struct qcal_node *n, int *axis)
{
    *axis = 0;
    if (is_op(n, "ConvTranspose")) *axis = 1;
    else if (is_op(n, "Gemm")) *axis = qcal_node_attr_int(n, "transB", 0) ? 0 : 1;
    else if (is_op(n, "MatMul")) *axis = -1;
    else return is_op(n, "Conv");
    return true;
}

/* Input 2 is a constant bias the int32 encoding can carry (Gemm: alpha = beta = 1). */
static bool bias_input_ok(const struct qcal_graph *g, const struct qcal_node *n)
{
    bool ok = n->n_inputs > 2 && is_const_f32(g, n->inputs[2]) && g->values[n->inputs[2]].t.ndim == 1;
    if (is_op(n, "Gemm"))
        ok = ok && qcal_node_attr_float(n, "alpha", 1) == 1 && qcal_node_attr_float(n, "beta", 1) == 1;
    return ok;
}

void qcal_quant_sel_free(struct qcal_quant_sel *sel)
{
    free(sel->nodes);
    free(sel->values);
    free(sel->shared);
    free(sel->fp32);
    memset(sel, 0, sizeof *sel);
}

enum qcal_status qcal_quant_select(const struct qcal_graph *g, const struct qcal_quant_options *o,
                                   struct qcal_quant_sel *sel)
{
    memset(sel, 0, sizeof *sel);
    sel->nodes = malloc(sizeof(int) * ((size_t)g->n_nodes + 1));
    sel->values = malloc(sizeof(int) * ((size_t)g->n_values + 1));
    sel->shared = malloc(sizeof(int) * 2 * ((size_t)g->n_values + 1));
    sel->fp32 = calloc((size_t)g->n_nodes + 1, sizeof(bool));
    bool *marked = calloc((size_t)g->n_values + 1, 1);
    if (!sel->nodes || !sel->values || !sel->shared || !sel->fp32 || !marked) {
        free(marked);
        qcal_quant_sel_free(sel);
        return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const struct qcal_node *n = &g->nodes[i];
        sel->fp32[i] = !in_scope(n, o);
        unsigned mask = n->dead || sel->fp32[i] ? 0 : quantized_inputs(g, n);
        if (!mask) continue;
        sel->nodes[sel->n_nodes++] = i;
        for (int k = 0; k < 2; k++) {
            int v = n->inputs[k];
            if (!(mask & (1u << k)) || marked[v]) continue;
            marked[v] = true;
            sel->values[sel->n_values++] = v;
        }
    }
    for (int i = 0; i < g->n_nodes; i++) { /* Concat of tensors nothing else quantizes */
        const struct qcal_node *n = &g->nodes[i];
        if (n->dead || !in_scope(n, o) || !is_op(n, "Concat") || !marked[n->outputs[0]]) continue;
        for (int k = 0; k < n->n_inputs; k++) {
            const int v = n->inputs[k];
            if (!is_activation(g, v) || marked[v]) continue;
            marked[v] = true;
            sel->shared[2 * sel->n_shared] = v;
            sel->shared[2 * sel->n_shared++ + 1] = n->outputs[0];
        }
    }
    free(marked);
    return QCAL_OK;
}

void qcal_quant_weights(const float *w, int64_t outer, int64_t ch, int64_t inner, int8_t *q, float *scale)
{
    for (int64_t c = 0; c < ch; c++) {
        float m = 0;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) m = fmaxf(m, fabsf(w[(o * ch + c) * inner + i]));
        scale[c] = m > 0 ? m / 127.0f : 1.0f;
    }
    for (int64_t o = 0; o < outer; o++)
        for (int64_t c = 0; c < ch; c++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t k = (o * ch + c) * inner + i;
                float r = rintf(w[k] / scale[c]);
                q[k] = (int8_t)(r > 127 ? 127 : r < -127 ? -127 : r);
            }
}

/* ---- graph building helpers ---- */

static enum qcal_status named_value(struct qcal_graph *g, const char *base, const char *suffix, int *id)
{
    char name[512];
    snprintf(name, sizeof name, "%s%s", base, suffix);
    if (qcal_graph_find_value(g, name) < 0) return qcal_graph_add_value(g, name, id);
    return qcal_graph_add_temp_value(g, name, id);
}

/* A new constant `base+suffix` of dtype/shape holding a copy of `bytes` (NULL: zeros). */
static enum qcal_status add_const(struct qcal_graph *g, const char *base, const char *suffix, int dtype, int ndim,
                                  const int64_t *dims, const void *bytes, int *id)
{
    enum qcal_status st = named_value(g, base, suffix, id);
    if (st != QCAL_OK) return st;
    struct qcal_tensor t = qcal_tensor_make(dtype, ndim, dims);
    size_t size = qcal_tensor_bytes(&t);
    void *data = qcal_malloc(size ? size : 1);
    if (!data) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    if (bytes) memcpy(data, bytes, size);
    else memset(data, 0, size);
    qcal_graph_set_constant(g, *id, t, data);
    g->values[*id].is_initializer = true;
    return QCAL_OK;
}

static void remove_attr(struct qcal_node *n, const char *name)
{
    for (int i = 0; i < n->n_attrs; i++) {
        if (strcmp(n->attrs[i].name, name) != 0) continue;
        qcal_attr_clear(&n->attrs[i]);
        memmove(&n->attrs[i], &n->attrs[i + 1], sizeof *n->attrs * (size_t)(n->n_attrs - i - 1));
        n->n_attrs--;
        return;
    }
}

static enum qcal_status add_node(struct qcal_graph *g, const char *base, const char *op, const int *in, int n_in,
                                 int out, int *id)
{
    char name[512];
    snprintf(name, sizeof name, "%s_%s", base, op);
    enum qcal_status st = qcal_graph_add_node(g, name, op, "", in, n_in, &out, 1, id);
    if (st != QCAL_OK) return st;
    g->nodes[*id].opset = g->opset;
    g->values[out].producer = *id;
    return QCAL_OK;
}

/* A Q/DQ pair on activation v; *dq_out is the dequantized value. */
static enum qcal_status qdq_activation(struct qcal_graph *g, int v, const struct qcal_qparams *q, int *dq_out)
{
    char base[400];
    snprintf(base, sizeof base, "%s", g->values[v].name);
    int s, z, xq, xdq, node;
    enum qcal_status st;
    const uint8_t zp8[1] = {(uint8_t)q->zero_point};
    if ((st = add_const(g, base, "_scale", QCAL_F32, 0, NULL, &q->scale, &s)) != QCAL_OK) return st;
    if ((st = add_const(g, base, "_zero_point", q->dtype, 0, NULL, zp8, &z)) != QCAL_OK) return st;
    if ((st = named_value(g, base, "_quantized", &xq)) != QCAL_OK) return st;
    if ((st = named_value(g, base, "_dequantized", &xdq)) != QCAL_OK) return st;
    struct qcal_value *vv = &g->values[v];
    g->values[xq].t = qcal_tensor_make(q->dtype, vv->t.ndim, vv->t.dims);
    g->values[xdq].t = qcal_tensor_make(QCAL_F32, vv->t.ndim, vv->t.dims);
    g->values[xq].shape_known = g->values[xdq].shape_known = vv->shape_known;
    if ((st = add_node(g, base, "QuantizeLinear", (int[]){v, s, z}, 3, xq, &node)) != QCAL_OK) return st;
    if ((st = add_node(g, base, "DequantizeLinear", (int[]){xq, s, z}, 3, xdq, &node)) != QCAL_OK) return st;
    *dq_out = xdq;
    return QCAL_OK;
}

/* Replaces constant weight input `k` of node `ni` by int8 per-channel + DequantizeLinear;
 * the channel axis of the weight is `axis`. Scales go to *scale_out (ch entries, owned). */
static enum qcal_status qdq_weight(struct qcal_graph *g, int ni, int k, int axis, float **scale_out, int64_t *ch_out)
{
    const int w = g->nodes[ni].inputs[k];
    const struct qcal_tensor wt = g->values[w].t;
    if (axis < 0) axis += wt.ndim;
    if (wt.ndim == 0 || axis < 0 || axis >= wt.ndim) axis = 0;
    int64_t outer = 1, ch = wt.ndim ? wt.dims[axis] : 1, inner = 1;
    for (int d = 0; d < axis; d++) outer *= wt.dims[d];
    for (int d = axis + 1; d < wt.ndim; d++) inner *= wt.dims[d];
    int8_t *q = qcal_malloc((size_t)qcal_tensor_numel(&wt) + 1);
    float *scale = malloc(sizeof(float) * ((size_t)ch + 1));
    enum qcal_status st = QCAL_OK;
    char base[400];
    snprintf(base, sizeof base, "%s", g->values[w].name);
    if (!q || !scale) {
        qcal_free(q);
        free(scale);
        return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    }
    qcal_quant_weights(wt.data, outer, ch, inner, q, scale);
    int wq, s, z, wdq, node;
    st = named_value(g, base, "_quantized", &wq);
    if (st != QCAL_OK) {
        qcal_free(q);
        free(scale);
        return st;
    }
    struct qcal_tensor qt = qcal_tensor_make(QCAL_I8, wt.ndim, wt.dims);
    qcal_graph_set_constant(g, wq, qt, q);
    g->values[wq].is_initializer = true;
    const bool per_tensor = ch == 1;
    if ((st = add_const(g, base, "_scale", QCAL_F32, per_tensor ? 0 : 1, &ch, scale, &s)) != QCAL_OK) goto fail;
    if ((st = add_const(g, base, "_zero_point", QCAL_I8, per_tensor ? 0 : 1, &ch, NULL, &z)) != QCAL_OK) goto fail;
    if ((st = named_value(g, base, "_dequantized", &wdq)) != QCAL_OK) goto fail;
    g->values[wdq].t = qcal_tensor_make(QCAL_F32, wt.ndim, wt.dims);
    g->values[wdq].shape_known = true;
    if ((st = add_node(g, base, "DequantizeLinear", (int[]){wq, s, z}, 3, wdq, &node)) != QCAL_OK) goto fail;
    if (!per_tensor && (st = qcal_node_add_attr_int(&g->nodes[node], "axis", axis)) != QCAL_OK) goto fail;
    g->nodes[ni].inputs[k] = wdq;
    *scale_out = scale;
    *ch_out = ch;
    return QCAL_OK;
fail:
    free(scale);
    return st;
}

/* int32 bias at scale[c] = sx * sw[c % ch]. */
static void quant_bias(const float *b, int64_t m, float sx, const float *sw, int64_t ch, int32_t *q, float *scale)
{
    for (int64_t c = 0; c < m; c++) {
        scale[c] = sx * sw[c % ch];
        q[c] = qcal_bias_int32(b[c], scale[c]);
    }
}

/* Bias input `k` of node ni to int32 at scale_x * scale_w[c % ch]. */
static enum qcal_status qdq_bias(struct qcal_graph *g, int ni, int k, float sx, const float *sw, int64_t ch)
{
    const int b = g->nodes[ni].inputs[k];
    const struct qcal_tensor bt = g->values[b].t;
    if (bt.ndim != 1) return QCAL_OK;
    const int64_t m = bt.dims[0];
    int32_t *q = malloc(sizeof(int32_t) * ((size_t)m + 1));
    float *scale = malloc(sizeof(float) * ((size_t)m + 1));
    enum qcal_status st = QCAL_OK;
    if (!q || !scale) {
        st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    quant_bias(bt.data, m, sx, sw, ch, q, scale);
    char base[400];
    snprintf(base, sizeof base, "%s", g->values[b].name);
    int bq, s, z, bdq, node;
    if ((st = add_const(g, base, "_quantized", QCAL_I32, 1, &m, q, &bq)) != QCAL_OK) goto done;
    if ((st = add_const(g, base, "_scale", QCAL_F32, 1, &m, scale, &s)) != QCAL_OK) goto done;
    if ((st = add_const(g, base, "_zero_point", QCAL_I32, 1, &m, NULL, &z)) != QCAL_OK) goto done;
    if ((st = named_value(g, base, "_dequantized", &bdq)) != QCAL_OK) goto done;
    g->values[bdq].t = qcal_tensor_make(QCAL_F32, 1, &m);
    g->values[bdq].shape_known = true;
    if ((st = add_node(g, base, "DequantizeLinear", (int[]){bq, s, z}, 3, bdq, &node)) != QCAL_OK) goto done;
    if ((st = qcal_node_add_attr_int(&g->nodes[node], "axis", 0)) != QCAL_OK) goto done;
    g->nodes[ni].inputs[k] = bdq;
done:
    free(q);
    free(scale);
    return st;
}

/* The scale of the DequantizeLinear producing v (one qdq_activation made); 0 if none. */
static float dq_scale(const struct qcal_graph *g, int v)
{
    const int p = g->values[v].producer;
    if (p < 0 || !is_op(&g->nodes[p], "DequantizeLinear")) return 0;
    return ((const float *)g->values[g->nodes[p].inputs[1]].t.data)[0];
}

enum qcal_status qcal_quant_to_qdq(struct qcal_graph *g, const struct qcal_quant_sel *sel,
                                   const struct qcal_calib *c)
{
    enum qcal_status st = QCAL_OK;
    const int n_values0 = g->n_values;
    int *dq = malloc(sizeof(int) * ((size_t)n_values0 + 1));
    int *stat = malloc(sizeof(int) * ((size_t)n_values0 + 1));
    float *sw = NULL;
    if (!dq || !stat) {
        st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        goto cleanup;
    }
    for (int v = 0; v < n_values0; v++) dq[v] = -1, stat[v] = -1;
    for (int i = 0; i < c->n; i++) stat[c->stats[i].value] = i;
    const int n_nodes0 = g->n_nodes;
    for (int i = 0; i < sel->n_values; i++) {
        int v = sel->values[i];
        if (stat[v] < 0) {
            st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "%s: no statistics for tensor '%s'", g->path, g->values[v].name);
            goto cleanup;
        }
        if ((st = qdq_activation(g, v, &c->stats[stat[v]].q, &dq[v])) != QCAL_OK) goto cleanup;
    }
    for (int i = 0; i < sel->n_shared; i++) {
        const int v = sel->shared[2 * i], out = sel->shared[2 * i + 1];
        if (stat[out] >= 0 && (st = qdq_activation(g, v, &c->stats[stat[out]].q, &dq[v])) != QCAL_OK) goto cleanup;
    }
    /* Every consumer of a quantized tensor reads its dequantized value, as an INT8 engine
     * runs it: the HardSigmoid and the Mul of x * HardSigmoid(x) after a convolution both
     * see the int8 x, so the convolution's output is int8 and the activation a function of
     * one byte. Graph outputs and nodes in the ignored scope stay FP32. */
    for (int i = 0; i < n_nodes0; i++) {
        struct qcal_node *n = &g->nodes[i];
        if (sel->fp32[i]) continue;
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0 && n->inputs[k] < n_values0 && dq[n->inputs[k]] >= 0) n->inputs[k] = dq[n->inputs[k]];
    }
    for (int j = 0; j < sel->n_nodes; j++) {
        const int ni = sel->nodes[j];
        struct qcal_node *n = &g->nodes[ni];
        const unsigned mask = quantized_inputs(g, n);
        const float sx = dq_scale(g, n->inputs[0]);
        if (mask & 2u) continue; /* two activations: no weights */
        int axis;
        if (!weight_axis(n, &axis)) continue;
        int64_t ch = 0;
        free(sw);
        sw = NULL;
        if ((st = qdq_weight(g, ni, 1, axis, &sw, &ch)) != QCAL_OK) goto cleanup;
        n = &g->nodes[ni];
        if (bias_input_ok(g, n) && (st = qdq_bias(g, ni, 2, sx, sw, ch)) != QCAL_OK) goto cleanup;
    }
    qcal_graph_update_uses(g);
    st = qcal_graph_toposort(g);
    if (st == QCAL_OK) qcal_graph_compact(g);
cleanup:
    free(sw);
    free(dq);
    free(stat);
    return st;
}

/* ---- opset upgrade ---- */

static enum qcal_status attr_to_input(struct qcal_graph *g, int ni, const char *attr, int slot)
{
    struct qcal_node *n = &g->nodes[ni];
    int64_t vals[QCAL_MAX_DIMS * 8];
    int cnt = qcal_node_attr_ints(n, attr, vals, (int)(sizeof vals / sizeof vals[0]));
    if (cnt < 0) return QCAL_OK; /* absent: the input stays omitted too */
    char base[400];
    snprintf(base, sizeof base, "%s_%s", n->name && n->name[0] ? n->name : n->op_type, attr);
    int64_t len = cnt;
    int id;
    enum qcal_status st = add_const(g, base, "", QCAL_I64, 1, &len, vals, &id);
    if (st != QCAL_OK) return st;
    n = &g->nodes[ni];
    int *ins = realloc(n->inputs, sizeof(int) * (size_t)(slot + 2));
    if (!ins) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    n->inputs = ins;
    for (int k = n->n_inputs; k < slot; k++) n->inputs[k] = -1;
    n->inputs[slot] = id;
    if (n->n_inputs < slot + 1) n->n_inputs = slot + 1;
    remove_attr(n, attr);
    return QCAL_OK;
}

static enum qcal_status clip_to_inputs(struct qcal_graph *g, int ni)
{
    struct qcal_node *n = &g->nodes[ni];
    const float lo = qcal_node_attr_float(n, "min", -FLT_MAX), hi = qcal_node_attr_float(n, "max", FLT_MAX);
    char base[400];
    snprintf(base, sizeof base, "%s", n->name && n->name[0] ? n->name : "Clip");
    int a, b;
    enum qcal_status st;
    if ((st = add_const(g, base, "_min", QCAL_F32, 0, NULL, &lo, &a)) != QCAL_OK) return st;
    if ((st = add_const(g, base, "_max", QCAL_F32, 0, NULL, &hi, &b)) != QCAL_OK) return st;
    n = &g->nodes[ni];
    int *ins = realloc(n->inputs, sizeof(int) * 3);
    if (!ins) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    n->inputs = ins;
    n->inputs[1] = a, n->inputs[2] = b;
    n->n_inputs = 3;
    remove_attr(n, "min");
    remove_attr(n, "max");
    return QCAL_OK;
}

/* Softmax before 13 flattens to 2-D at `axis`; from 13 it works on one axis. Same when the
 * axis is the last; otherwise Flatten -> Softmax(axis 1) -> Reshape back. */
static enum qcal_status softmax_axis(struct qcal_graph *g, int ni)
{
    struct qcal_node *n = &g->nodes[ni];
    const struct qcal_value *x = &g->values[n->inputs[0]];
    const int r = x->t.ndim;
    int64_t axis = qcal_node_attr_int(n, "axis", 1);
    if (axis < 0) axis += r;
    remove_attr(n, "axis");
    if (axis == r - 1 || r <= 1) return qcal_node_add_attr_int(&g->nodes[ni], "axis", r > 0 ? r - 1 : 0);
    if (!x->shape_known)
        return QCAL_ERR(QCAL_UNSUPPORTED, "%s: node '%s' (%s): cannot convert to opset 13 without a known input shape",
                        g->path, n->name, n->op_type);
    char base[400];
    snprintf(base, sizeof base, "%s", n->name && n->name[0] ? n->name : n->op_type);
    int64_t rows = 1, cols = 1, dims[QCAL_MAX_DIMS], nd = r;
    for (int d = 0; d < r; d++) {
        if (d < axis) rows *= x->t.dims[d];
        else cols *= x->t.dims[d];
        dims[d] = x->t.dims[d];
    }
    int flat, sm, shape, node;
    enum qcal_status st;
    const int y = n->outputs[0], xin = n->inputs[0];
    if ((st = named_value(g, base, "_flat", &flat)) != QCAL_OK) return st;
    if ((st = named_value(g, base, "_2d", &sm)) != QCAL_OK) return st;
    if ((st = add_const(g, base, "_shape", QCAL_I64, 1, &nd, dims, &shape)) != QCAL_OK) return st;
    g->values[flat].t = g->values[sm].t = qcal_tensor_make(QCAL_F32, 2, (int64_t[]){rows, cols});
    g->values[flat].shape_known = g->values[sm].shape_known = true;
    if ((st = add_node(g, base, "Flatten", &xin, 1, flat, &node)) != QCAL_OK) return st;
    if ((st = qcal_node_add_attr_int(&g->nodes[node], "axis", axis)) != QCAL_OK) return st;
    n = &g->nodes[ni];
    n->inputs[0] = flat;
    n->outputs[0] = sm;
    g->values[sm].producer = ni;
    if ((st = qcal_node_add_attr_int(&g->nodes[ni], "axis", 1)) != QCAL_OK) return st;
    if ((st = add_node(g, base, "Reshape", (int[]){sm, shape}, 2, y, &node)) != QCAL_OK) return st;
    return QCAL_OK;
}

enum qcal_status qcal_quant_upgrade_opset(struct qcal_graph *g, int64_t opset)
{
    enum qcal_status st = QCAL_OK;
    const int64_t from = g->opset;
    const int n_nodes = g->n_nodes;
    for (int i = 0; from < opset && i < n_nodes; i++) {
        struct qcal_node *n = &g->nodes[i];
        if (n->dead || !qcal_node_default_domain(n)) continue;
        if (is_op(n, "Clip") && from < 11) st = clip_to_inputs(g, i);
        else if ((is_op(n, "Softmax") || is_op(n, "LogSoftmax") || is_op(n, "Hardmax")) && from < 13)
            st = softmax_axis(g, i);
        else if ((is_op(n, "Squeeze") || is_op(n, "Unsqueeze") || is_op(n, "ReduceSum")) && from < 13)
            st = attr_to_input(g, i, "axes", 1);
        else if (is_op(n, "Split") && from < 13) st = attr_to_input(g, i, "split", 1);
        else if ((is_op(n, "Slice") && from < 10) || (is_op(n, "TopK") && from < 10) ||
                 (is_op(n, "Pad") && from < 11) || (is_op(n, "Resize") && from < 11) || is_op(n, "Upsample") ||
                 is_op(n, "Dropout") || is_op(n, "Scatter"))
            st = QCAL_ERR(QCAL_UNSUPPORTED, "%s: node '%s' (%s, opset %lld): converting it to opset %lld is not "
                          "supported yet", g->path, n->name, n->op_type, (long long)from, (long long)opset);
        if (st != QCAL_OK) return st;
    }
    if (g->opset < opset) g->opset = opset;
    for (int i = 0; i < g->n_nodes; i++) {
        struct qcal_node *n = &g->nodes[i];
        if (qcal_node_default_domain(n)) n->opset = (int)g->opset;
    }
    qcal_graph_update_uses(g);
    st = qcal_graph_toposort(g);
    if (st == QCAL_OK) qcal_graph_compact(g);
    return st;
}

/* ---- INT8-simulated twins (quantization error per layer) ---- */

static void layer_clear(struct qcal_quant_layer *l)
{
    free(l->name), free(l->op), free(l->output);
    memset(l, 0, sizeof *l);
}

void qcal_quant_twins_free(struct qcal_quant_twins *tw)
{
    for (int j = 0; tw->layers && j <= tw->n; j++) layer_clear(&tw->layers[j]);
    free(tw->layers);
    memset(tw, 0, sizeof *tw);
}

/* The largest |value| a quantized tensor can take: the range it was observed in, and the
 * ends of its quantization grid. */
static void input_bounds(const struct qcal_calib_stat *s, double *fp, double *q)
{
    double lo, hi;
    qcal_qparams_levels(&s->q, &lo, &hi);
    *fp = fmax(fabs((double)s->min), fabs((double)s->max));
    *q = fmax(fabs(lo - s->q.zero_point), fabs(hi - s->q.zero_point)) * s->q.scale;
    if (!isfinite(*fp)) *fp = FLT_MAX;
}

/* max over channels of sum |w| along the channel slice (axis) */
static double max_channel_l1(const float *w, int64_t outer, int64_t ch, int64_t inner)
{
    double best = 0;
    for (int64_t c = 0; c < ch; c++) {
        double sum = 0;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) sum += fabs((double)w[(o * ch + c) * inner + i]);
        best = fmax(best, sum);
    }
    return best;
}

static double max_abs(const float *x, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)x[i]));
    return m;
}

/* The weight as INT8 sees it (int8 per channel along axis, times its scale): *sim and
 * *scale (ch entries) allocated here; the weight viewed as [outer, ch, inner]. */
static enum qcal_status int8_weight(const struct qcal_tensor *wt, int axis, float **sim, float **scale,
                                    int64_t *outer, int64_t *ch, int64_t *inner)
{
    if (axis < 0) axis += wt->ndim;
    if (wt->ndim == 0 || axis < 0 || axis >= wt->ndim) axis = 0;
    const int64_t n = qcal_tensor_numel(wt);
    *outer = 1, *ch = wt->ndim ? wt->dims[axis] : 1, *inner = 1;
    for (int d = 0; d < axis; d++) *outer *= wt->dims[d];
    for (int d = axis + 1; d < wt->ndim; d++) *inner *= wt->dims[d];
    int8_t *q = malloc((size_t)n + 1);
    *scale = malloc(sizeof(float) * ((size_t)*ch + 1));
    *sim = qcal_malloc(sizeof(float) * ((size_t)n + 1));
    if (!q || !*scale || !*sim) {
        free(q), free(*scale), qcal_free(*sim);
        *scale = *sim = NULL;
        return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    }
    qcal_quant_weights(wt->data, *outer, *ch, *inner, q, *scale);
    for (int64_t o = 0; o < *outer; o++)
        for (int64_t c = 0; c < *ch; c++)
            for (int64_t i = 0; i < *inner; i++) {
                int64_t k = (o * *ch + c) * *inner + i;
                (*sim)[k] = (float)q[k] * (*scale)[c];
            }
    free(q);
    return QCAL_OK;
}

/* A constant holding the weight as INT8 sees it; the largest channel L1 norm of the FP32
 * and of the simulated weight in *l1_fp, *l1_q. */
static enum qcal_status twin_weight(struct qcal_graph *g, int w, int axis, int *out, float **sw, int64_t *ch_out,
                                    double *l1_fp, double *l1_q)
{
    const struct qcal_tensor wt = g->values[w].t;
    float *sim, *scale;
    int64_t outer, ch, inner;
    enum qcal_status st = int8_weight(&wt, axis, &sim, &scale, &outer, &ch, &inner);
    if (st != QCAL_OK) return st;
    *l1_fp = max_channel_l1(wt.data, outer, ch, inner);
    *l1_q = max_channel_l1(sim, outer, ch, inner);
    st = named_value(g, g->values[w].name, "_int8sim", out);
    if (st != QCAL_OK) {
        free(scale), qcal_free(sim);
        return st;
    }
    qcal_graph_set_constant(g, *out, g->values[w].t, sim);
    g->values[*out].owns_data = true;
    *sw = scale;
    *ch_out = ch;
    return QCAL_OK;
}

/* A constant holding the bias as its int32 encoding sees it. */
static enum qcal_status twin_bias(struct qcal_graph *g, int b, float sx, const float *sw, int64_t ch, int *out,
                                  double *max_fp, double *max_q)
{
    const struct qcal_tensor bt = g->values[b].t;
    const int64_t m = bt.dims[0];
    int32_t *q = malloc(sizeof(int32_t) * ((size_t)m + 1));
    float *scale = malloc(sizeof(float) * ((size_t)m + 1));
    float *sim = qcal_malloc(sizeof(float) * ((size_t)m + 1));
    enum qcal_status st = q && scale && sim ? QCAL_OK : QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    if (st == QCAL_OK) {
        quant_bias(bt.data, m, sx, sw, ch, q, scale);
        for (int64_t c = 0; c < m; c++) sim[c] = (float)((double)q[c] * scale[c]);
        *max_fp = max_abs(bt.data, m);
        *max_q = max_abs(sim, m);
        st = named_value(g, g->values[b].name, "_int8sim", out);
    }
    if (st == QCAL_OK) {
        qcal_graph_set_constant(g, *out, bt, sim);
        g->values[*out].owns_data = true;
        sim = NULL;
    }
    free(q), free(scale), qcal_free(sim);
    return st;
}

static enum qcal_status add_layer_record(struct qcal_quant_layer *l, const struct qcal_graph *g,
                                         const struct qcal_node *n)
{
    const struct qcal_value *y = &g->values[n->outputs[0]];
    l->name = qcal_strdup(n->name ? n->name : "");
    l->op = qcal_strdup(n->op_type);
    l->output = qcal_strdup(y->name);
    if (!l->name || !l->op || !l->output) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    l->y = n->outputs[0];
    const bool last = is_op(n, "Gemm") || is_op(n, "MatMul");
    l->axis = y->t.ndim == 0 ? 0 : last ? y->t.ndim - 1 : y->t.ndim >= 2 ? 1 : 0;
    l->channels = y->t.ndim ? y->t.dims[l->axis] : 1;
    return QCAL_OK;
}

/* The twin of selected node j: its quantized activation inputs through Q/DQ pairs (shared
 * by the twins that read the same tensor), its weight and bias as INT8 sees them, then
 * Sub(twin output, FP32 output). */
static enum qcal_status add_twin(struct qcal_graph *g, int ni, const int *stat, const struct qcal_calib *c, int *fq,
                                 struct qcal_quant_layer *l)
{
    enum qcal_status st = add_layer_record(l, g, &g->nodes[ni]);
    if (st != QCAL_OK) return st;
    const unsigned mask = quantized_inputs(g, &g->nodes[ni]);
    const int n_in = g->nodes[ni].n_inputs;
    l->input = mask & 1u ? g->nodes[ni].inputs[0] : -1;
    int ins[8];
    double r_fp[2] = {0, 0}, r_q[2] = {0, 0};
    if (n_in > 8) return QCAL_ERR(QCAL_UNSUPPORTED, "%s: node '%s' has too many inputs", g->path, l->name);
    memcpy(ins, g->nodes[ni].inputs, sizeof(int) * (size_t)n_in);
    for (int k = 0; k < 2; k++) {
        if (!(mask & (1u << k))) continue;
        const int v = ins[k];
        if (stat[v] < 0) return QCAL_ERR(QCAL_INVALID_ARGUMENT, "%s: no statistics for tensor '%s'", g->path,
                                         g->values[v].name);
        const struct qcal_calib_stat *s = &c->stats[stat[v]];
        input_bounds(s, &r_fp[k], &r_q[k]);
        if (fq[v] < 0 && (st = qdq_activation(g, v, &s->q, &fq[v])) != QCAL_OK) return st;
        ins[k] = fq[v];
    }
    const struct qcal_node *n = &g->nodes[ni];
    double bound_fp, bound_q;
    int axis;
    if (mask == 1u && weight_axis(n, &axis)) {
        float *sw = NULL;
        int64_t ch = 0;
        double l1_fp, l1_q, b_fp = 0, b_q = 0;
        const bool bias = bias_input_ok(g, n);
        const float alpha = is_op(n, "Gemm") ? fabsf(qcal_node_attr_float(n, "alpha", 1)) : 1;
        if ((st = twin_weight(g, ins[1], axis, &ins[1], &sw, &ch, &l1_fp, &l1_q)) != QCAL_OK) return st;
        const float sx = c->stats[stat[g->nodes[ni].inputs[0]]].q.scale;
        if (bias) st = twin_bias(g, ins[2], sx, sw, ch, &ins[2], &b_fp, &b_q);
        else if (n_in > 2 && ins[2] >= 0) /* a Gemm C kept in FP32 */
            b_fp = b_q = is_const_f32(g, ins[2]) ? fabs(qcal_node_attr_float(&g->nodes[ni], "beta", 1)) *
                                                      max_abs(g->values[ins[2]].t.data,
                                                              qcal_tensor_numel(&g->values[ins[2]].t))
                                                : INFINITY; /* no bound known: the largest scale */
        free(sw);
        if (st != QCAL_OK) return st;
        n = &g->nodes[ni];
        bound_fp = alpha * l1_fp * r_fp[0] + b_fp;
        bound_q = alpha * l1_q * r_q[0] + b_q;
        l->bias_correctable = (is_op(n, "Conv") || is_op(n, "ConvTranspose") || is_op(n, "Gemm")) &&
                              (bias || n_in < 3 || ins[2] < 0) && alpha == 1 &&
                              qcal_node_attr_float(n, "beta", 1) == 1;
        const struct qcal_tensor *x = &g->values[g->nodes[ni].inputs[0]].t;
        l->input_axis = is_op(n, "Gemm") ? x->ndim - 1 : 1;
        l->input_channels = x->ndim > l->input_axis && l->input_axis >= 0 ? x->dims[l->input_axis] : 0;
    } else if (is_op(n, "Add")) {
        bound_fp = r_fp[0] + r_fp[1], bound_q = r_q[0] + r_q[1];
    } else if (is_op(n, "Mul")) {
        bound_fp = r_fp[0] * r_fp[1], bound_q = r_q[0] * r_q[1];
    } else if (mask == 3u) { /* MatMul / Gemm of two activations: K terms */
        const struct qcal_tensor *a = &g->values[n->inputs[0]].t;
        const double k = a->ndim ? (double)a->dims[a->ndim - 1] : 1;
        const double alpha = is_op(n, "Gemm") ? fabs(qcal_node_attr_float(n, "alpha", 1)) : 1;
        bound_fp = alpha * k * r_fp[0] * r_fp[1], bound_q = alpha * k * r_q[0] * r_q[1];
        if (is_op(n, "Gemm") && n_in > 2 && ins[2] >= 0) return QCAL_OK; /* C: no twin, no error */
    } else { /* average pooling */
        bound_fp = r_fp[0], bound_q = r_q[0];
    }
    l->bound = bound_fp + bound_q;
    if (!isfinite(l->bound) || l->bound <= 0) l->bound = FLT_MAX;
    char base[400];
    snprintf(base, sizeof base, "%s", l->output);
    int sim, err, node;
    if ((st = named_value(g, base, "_int8sim", &sim)) != QCAL_OK) return st;
    if ((st = named_value(g, base, "_int8error", &err)) != QCAL_OK) return st;
    n = &g->nodes[ni];
    const int opset = n->opset;
    char name[480];
    snprintf(name, sizeof name, "%s_int8sim", l->output);
    if ((st = qcal_graph_add_node(g, name, g->nodes[ni].op_type, g->nodes[ni].domain, ins, n_in, &sim, 1, &node)) !=
        QCAL_OK)
        return st;
    g->nodes[node].opset = opset;
    g->values[sim].producer = node;
    if ((st = qcal_node_copy_attrs(&g->nodes[node], &g->nodes[ni])) != QCAL_OK) return st;
    if ((st = add_node(g, base, "Sub", (int[]){sim, l->y}, 2, err, &node)) != QCAL_OK) return st;
    g->values[err].keep = true;
    l->error = err;
    return QCAL_OK;
}

enum qcal_status qcal_quant_add_twins(struct qcal_graph *g, const struct qcal_quant_sel *sel,
                                      const struct qcal_calib *c, struct qcal_quant_twins *tw)
{
    memset(tw, 0, sizeof *tw);
    const int n_values0 = g->n_values, n_nodes0 = g->n_nodes;
    int *fq = malloc(sizeof(int) * ((size_t)n_values0 + 1));
    int *stat = malloc(sizeof(int) * ((size_t)n_values0 + 1));
    int *group = malloc(sizeof(int) * ((size_t)sel->n_nodes + 1) * 2);
    int *order = NULL;
    tw->layers = calloc((size_t)sel->n_nodes + 1, sizeof *tw->layers);
    enum qcal_status st = fq && stat && group && tw->layers ? QCAL_OK : QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    for (int v = 0; st == QCAL_OK && v < n_values0; v++) fq[v] = -1, stat[v] = -1;
    for (int i = 0; st == QCAL_OK && i < c->n; i++) {
        int v = qcal_graph_find_value(g, c->stats[i].name);
        if (v >= 0 && v < n_values0) stat[v] = i;
    }
    for (int j = 0; st == QCAL_OK && j < sel->n_nodes; j++) {
        struct qcal_quant_layer *l = &tw->layers[tw->n];
        group[2 * j] = g->n_nodes;
        l->error = -1;
        st = add_twin(g, sel->nodes[j], stat, c, fq, l);
        group[2 * j + 1] = g->n_nodes;
        tw->n++;
        if (st == QCAL_OK && l->error < 0) { /* nothing to measure */
            layer_clear(l);
            tw->n--;
        }
    }
    /* each twin group right after its node, so the FP32 output dies as early as before */
    if (st == QCAL_OK && !(order = malloc(sizeof(int) * ((size_t)g->n_nodes + 1))))
        st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    if (st == QCAL_OK) {
        int k = 0;
        for (int i = 0, j = 0; i < n_nodes0; i++) {
            order[k++] = i;
            if (j < sel->n_nodes && sel->nodes[j] == i) {
                for (int t = group[2 * j]; t < group[2 * j + 1]; t++) order[k++] = t;
                j++;
            }
        }
        st = qcal_graph_reorder(g, order);
    }
    free(order), free(fq), free(stat), free(group);
    if (st != QCAL_OK) qcal_quant_twins_free(tw);
    return st;
}

enum qcal_status qcal_quant_correct_bias(struct qcal_graph *g, const char *output, const double *shift,
                                         int64_t channels)
{
    const int y = qcal_graph_find_value(g, output);
    const int ni = y >= 0 ? g->values[y].producer : -1;
    if (ni < 0) return QCAL_ERR(QCAL_INVALID_ARGUMENT, "%s: no node produces '%s'", g->path, output);
    struct qcal_node *n = &g->nodes[ni];
    const bool has = n->n_inputs > 2 && n->inputs[2] >= 0;
    if (has && (!bias_input_ok(g, n) || g->values[n->inputs[2]].t.dims[0] != channels))
        return QCAL_ERR(QCAL_INVALID_ARGUMENT, "%s: node '%s': bias cannot be corrected", g->path, n->name);
    char base[400];
    snprintf(base, sizeof base, "%s", has ? g->values[n->inputs[2]].name : output);
    float *b = malloc(sizeof(float) * ((size_t)channels + 1));
    if (!b) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    for (int64_t ch = 0; ch < channels; ch++)
        b[ch] = (has ? ((const float *)g->values[n->inputs[2]].t.data)[ch] : 0.0f) + (float)shift[ch];
    int id;
    enum qcal_status st = add_const(g, base, has ? "_corrected" : "_bias", QCAL_F32, 1, &channels, b, &id);
    free(b);
    if (st != QCAL_OK) return st;
    n = &g->nodes[ni];
    if (!has) {
        int *ins = realloc(n->inputs, sizeof(int) * 3);
        if (!ins) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        n->inputs = ins;
        if (n->n_inputs < 2) return QCAL_ERR(QCAL_INVALID_ARGUMENT, "%s: node '%s' has no weight", g->path, n->name);
        n->n_inputs = 3;
    }
    n->inputs[2] = id;
    qcal_graph_update_uses(g);
    return QCAL_OK;
}

/* Sum over the kernel of the INT8 weight linking output channel c to input channel i. */
static double kernel_sum(const float *w, int64_t at, int64_t k)
{
    double sum = 0;
    for (int64_t j = 0; j < k; j++) sum += w[at + j];
    return sum;
}

enum qcal_status qcal_quant_mean_effect(const struct qcal_graph *g, const char *output, const double *d,
                                        int64_t in_channels, float sx0, float sx1, double *delta, int64_t channels)
{
    const int y = qcal_graph_find_value(g, output);
    const int ni = y >= 0 ? g->values[y].producer : -1;
    if (ni < 0) return QCAL_ERR(QCAL_INVALID_ARGUMENT, "%s: no node produces '%s'", g->path, output);
    const struct qcal_node *n = &g->nodes[ni];
    int axis;
    if (!weight_axis(n, &axis) || is_op(n, "MatMul") || n->n_inputs < 2 || !is_const_f32(g, n->inputs[1]) ||
        (is_op(n, "Gemm") && qcal_node_attr_int(n, "transA", 0)))
        return QCAL_ERR(QCAL_UNSUPPORTED, "%s: node '%s' (%s): no shared bias correction for it", g->path, n->name,
                        n->op_type);
    const struct qcal_tensor *wt = &g->values[n->inputs[1]].t;
    const int64_t groups = is_op(n, "Gemm") ? 1 : qcal_node_attr_int(n, "group", 1);
    float *sim = NULL, *sw = NULL;
    int64_t outer, ch, inner;
    enum qcal_status st = int8_weight(wt, axis, &sim, &sw, &outer, &ch, &inner);
    if (st != QCAL_OK) return st;
    for (int64_t c = 0; c < channels; c++) delta[c] = 0;
    const int64_t numel = qcal_tensor_numel(wt);
    if (is_op(n, "Conv") && wt->ndim >= 2 && groups > 0 && wt->dims[0] == channels &&
        wt->dims[1] * groups == in_channels && channels % groups == 0) { /* [M, C/g, k...] */
        const int64_t cg = wt->dims[1], k = numel / (channels * cg), per = channels / groups;
        for (int64_t c = 0; c < channels; c++)
            for (int64_t j = 0; j < cg; j++) delta[c] += kernel_sum(sim, (c * cg + j) * k, k) * d[c / per * cg + j];
    } else if (is_op(n, "Gemm") && wt->ndim == 2 && wt->dims[axis] == channels && wt->dims[1 - axis] == in_channels) {
        for (int64_t c = 0; c < channels; c++) /* B [K, N] (axis 1) or [N, K] (axis 0) */
            for (int64_t i = 0; i < in_channels; i++)
                delta[c] += (double)sim[axis == 1 ? i * channels + c : c * in_channels + i] * d[i];
    } else if (is_op(n, "ConvTranspose") && wt->ndim >= 3 && groups > 0 && wt->dims[0] == in_channels &&
               wt->dims[1] * groups == channels && in_channels % groups == 0) { /* [C, M/g, k...] */
        /* every input pixel spreads over k output pixels: the mean scales by in/out pixels */
        const struct qcal_tensor *x = &g->values[n->inputs[0]].t, *yt = &g->values[y].t;
        double ratio = x->ndim == yt->ndim && x->ndim == wt->ndim ? 1 : 0;
        for (int a = 2; a < x->ndim && ratio > 0; a++)
            ratio = x->dims[a] > 0 && yt->dims[a] > 0 ? ratio * (double)x->dims[a] / (double)yt->dims[a] : 0;
        if (!(ratio > 0) || !g->values[y].shape_known) {
            st = QCAL_ERR(QCAL_UNSUPPORTED, "%s: node '%s' (ConvTranspose): shared bias correction needs its "
                          "shapes known", g->path, n->name);
        } else {
            const int64_t mg = wt->dims[1], k = numel / (in_channels * mg), per = in_channels / groups;
            for (int64_t i = 0; i < in_channels; i++)
                for (int64_t j = 0; j < mg; j++)
                    delta[i / per * mg + j] += ratio * kernel_sum(sim, (i * mg + j) * k, k) * d[i];
        }
    } else {
        st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "%s: node '%s' (%s): its weight does not match %lld input and %lld "
                      "output channels", g->path, n->name, n->op_type, (long long)in_channels, (long long)channels);
    }
    if (st == QCAL_OK && bias_input_ok(g, n) && g->values[n->inputs[2]].t.dims[0] == channels) {
        /* the int32 bias moves with the input scale: sx * sw[c] */
        int32_t *q = malloc(sizeof(int32_t) * ((size_t)channels + 1));
        float *scale = malloc(sizeof(float) * ((size_t)channels + 1));
        if (!q || !scale) st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        for (int k = 0; st == QCAL_OK && k < 2; k++) {
            quant_bias(g->values[n->inputs[2]].t.data, channels, k ? sx1 : sx0, sw, ch, q, scale);
            for (int64_t c = 0; c < channels; c++) delta[c] += (k ? 1 : -1) * (double)(float)((double)q[c] * scale[c]);
        }
        free(q), free(scale);
    }
    free(sw), qcal_free(sim);
    return st;
}
