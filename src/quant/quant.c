/* FP32 graph -> QDQ graph: which nodes are quantized, per-channel int8 weights, int32
 * biases, QuantizeLinear/DequantizeLinear pairs on activations, and the opset upgrade the
 * QDQ encoding needs (opset >= 13). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcal/quant.h"

static bool default_domain(const struct qcal_node *n)
{
    return !n->domain || !n->domain[0] || strcmp(n->domain, "ai.onnx") == 0;
}

static bool is_op(const struct qcal_node *n, const char *op)
{
    return default_domain(n) && strcmp(n->op_type, op) == 0;
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

void qcal_quant_sel_free(struct qcal_quant_sel *sel)
{
    free(sel->nodes);
    free(sel->values);
    memset(sel, 0, sizeof *sel);
}

enum qcal_status qcal_quant_select(const struct qcal_graph *g, const struct qcal_quant_options *o,
                                   struct qcal_quant_sel *sel)
{
    memset(sel, 0, sizeof *sel);
    sel->nodes = malloc(sizeof(int) * ((size_t)g->n_nodes + 1));
    sel->values = malloc(sizeof(int) * ((size_t)g->n_values + 1));
    bool *marked = calloc((size_t)g->n_values + 1, 1);
    if (!sel->nodes || !sel->values || !marked) {
        free(marked);
        qcal_quant_sel_free(sel);
        return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const struct qcal_node *n = &g->nodes[i];
        unsigned mask = n->dead || !in_scope(n, o) ? 0 : quantized_inputs(g, n);
        if (!mask) continue;
        sel->nodes[sel->n_nodes++] = i;
        for (int k = 0; k < 2; k++) {
            int v = n->inputs[k];
            if (!(mask & (1u << k)) || marked[v]) continue;
            marked[v] = true;
            sel->values[sel->n_values++] = v;
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

static enum qcal_status add_attr_int(struct qcal_graph *g, int node, const char *name, int64_t v)
{
    struct qcal_node *n = &g->nodes[node];
    struct qcal_attr *a = realloc(n->attrs, sizeof *a * ((size_t)n->n_attrs + 1));
    if (!a) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    n->attrs = a;
    memset(&a[n->n_attrs], 0, sizeof *a);
    a[n->n_attrs].name = strdup(name);
    a[n->n_attrs].type = QCAL_ATTR_INT;
    a[n->n_attrs].i = v;
    if (!a[n->n_attrs].name) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    n->n_attrs++;
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
    if (!per_tensor && (st = add_attr_int(g, node, "axis", axis)) != QCAL_OK) goto fail;
    g->nodes[ni].inputs[k] = wdq;
    *scale_out = scale;
    *ch_out = ch;
    return QCAL_OK;
fail:
    free(scale);
    return st;
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
    const float *bd = bt.data;
    for (int64_t c = 0; c < m; c++) {
        scale[c] = sx * sw[c % ch];
        double r = rint((double)bd[c] / scale[c]);
        q[c] = (int32_t)(r > INT32_MAX ? INT32_MAX : r < -INT32_MAX ? -INT32_MAX : r);
    }
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
    if ((st = add_attr_int(g, node, "axis", 0)) != QCAL_OK) goto done;
    g->nodes[ni].inputs[k] = bdq;
done:
    free(q);
    free(scale);
    return st;
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
    for (int i = 0; i < sel->n_values; i++) {
        int v = sel->values[i];
        if (stat[v] < 0) {
            st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "%s: no statistics for tensor '%s'", g->path, g->values[v].name);
            goto cleanup;
        }
        if ((st = qdq_activation(g, v, &c->stats[stat[v]].q, &dq[v])) != QCAL_OK) goto cleanup;
    }
    for (int j = 0; j < sel->n_nodes; j++) {
        const int ni = sel->nodes[j];
        struct qcal_node *n = &g->nodes[ni];
        unsigned mask = quantized_inputs(g, n);
        const int x = n->inputs[0];
        const float sx = stat[x] >= 0 ? c->stats[stat[x]].q.scale : 0;
        for (int k = 0; k < 2; k++)
            if (mask & (1u << k)) g->nodes[ni].inputs[k] = dq[g->nodes[ni].inputs[k]];
        n = &g->nodes[ni];
        if (mask & 2u) continue; /* two activations: no weights */
        int axis = 0;
        if (is_op(n, "ConvTranspose")) axis = 1;
        else if (is_op(n, "Gemm")) axis = qcal_node_attr_int(n, "transB", 0) ? 0 : 1;
        else if (is_op(n, "MatMul")) axis = -1;
        else if (!is_op(n, "Conv")) continue;
        int64_t ch = 0;
        free(sw);
        sw = NULL;
        if ((st = qdq_weight(g, ni, 1, axis, &sw, &ch)) != QCAL_OK) goto cleanup;
        n = &g->nodes[ni];
        bool bias_ok = n->n_inputs > 2 && is_const_f32(g, n->inputs[2]);
        if (is_op(n, "Gemm"))
            bias_ok = bias_ok && qcal_node_attr_float(n, "alpha", 1) == 1 && qcal_node_attr_float(n, "beta", 1) == 1;
        if (bias_ok && (st = qdq_bias(g, ni, 2, sx, sw, ch)) != QCAL_OK) goto cleanup;
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
    if (axis == r - 1 || r <= 1) return add_attr_int(g, ni, "axis", r > 0 ? r - 1 : 0);
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
    if ((st = add_attr_int(g, node, "axis", axis)) != QCAL_OK) return st;
    n = &g->nodes[ni];
    n->inputs[0] = flat;
    n->outputs[0] = sm;
    g->values[sm].producer = ni;
    if ((st = add_attr_int(g, ni, "axis", 1)) != QCAL_OK) return st;
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
        if (n->dead || !default_domain(n)) continue;
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
        if (default_domain(n)) n->opset = (int)g->opset;
    }
    qcal_graph_update_uses(g);
    st = qcal_graph_toposort(g);
    if (st == QCAL_OK) qcal_graph_compact(g);
    return st;
}
