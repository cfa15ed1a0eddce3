/* QuantizeLinear and DequantizeLinear (opset 10 per tensor, 13 per axis) with constant
 * scales and zero points: what a QDQ model is made of. In the FP32 runtime they simulate
 * INT8 (a Q/DQ pair rounds a tensor to its quantization grid), which is how calibration
 * measures each layer's quantization error.
 *
 *     Q:  y = saturate(round_half_to_even(x / scale) + zero_point)   int8 / uint8
 *     DQ: y = (x - zero_point) * scale                                from int8 / uint8 / int32
 */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>

#include "op-internal.h"

struct qdq_params {
    int64_t axis_attr;
    int axis;          /* resolved by infer; -1 per tensor */
    int64_t count;     /* scales (1 per tensor) */
    int32_t out_dtype; /* Q: int8/uint8; DQ: float */
};

struct qdq_state {
    int op;
    int axis;
    int64_t count;
    float *scale;
    int32_t *zero_point;
};

static enum qcal_status qdq_parse(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = op_check_arity(g, n, 2, 3, 1, 1);
    if (st != QCAL_OK || (st = op_alloc_params(g, n, sizeof(struct qdq_params))) != QCAL_OK) return st;
    struct qdq_params *p = n->params;
    p->axis_attr = qcal_node_attr_int(n, "axis", 1);
    return QCAL_OK;
}

static bool int8_like(int32_t dt) { return dt == QCAL_I8 || dt == QCAL_U8; }

static enum qcal_status qdq_infer(struct qcal_graph *g, struct qcal_node *n)
{
    struct qdq_params *p = n->params;
    enum qcal_status st = op_require_inputs(g, n, 2);
    if (st != QCAL_OK) return st;
    const bool quantize = n->op == QCAL_OP_QUANTIZE_LINEAR;
    const struct qcal_tensor *x = &qcal_in(g, n, 0)->t;
    const struct qcal_value *s = qcal_in(g, n, 1), *z = qcal_in(g, n, 2);
    if (quantize ? x->dtype != QCAL_F32 : !(int8_like(x->dtype) || x->dtype == QCAL_I32))
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "input type %s is not supported", qcal_dtype_name(x->dtype));
    if (!qcal_value_is_const(s) || (z && !qcal_value_is_const(z)))
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "scale and zero point must be constants");
    if (s->t.dtype != QCAL_F32)
        return OP_ERR(g, n, QCAL_INVALID_MODEL, "scale must be float, is %s", qcal_dtype_name(s->t.dtype));
    p->count = qcal_tensor_numel(&s->t);
    if (s->t.ndim > 1) return OP_ERR(g, n, QCAL_INVALID_MODEL, "scale must be a scalar or 1-D");
    p->axis = -1;
    if (p->count > 1) { /* a 1-D scale of one value is per tensor */
        if (n->opset < 13) return OP_ERR(g, n, QCAL_INVALID_MODEL, "per-axis scales need opset 13");
        if ((st = op_axis(g, n, p->axis_attr, x->ndim, &p->axis)) != QCAL_OK) return st;
        if (x->dims[p->axis] != p->count)
            return OP_ERR(g, n, QCAL_INVALID_MODEL, "%lld scales for %lld channels on axis %d", (long long)p->count,
                          (long long)x->dims[p->axis], p->axis);
    } else if (p->count != 1) {
        return OP_ERR(g, n, QCAL_INVALID_MODEL, "scale is empty");
    }
    if (z) {
        if (qcal_tensor_numel(&z->t) != p->count)
            return OP_ERR(g, n, QCAL_INVALID_MODEL, "%lld zero points for %lld scales",
                          (long long)qcal_tensor_numel(&z->t), (long long)p->count);
        if (z->t.dtype != (quantize ? z->t.dtype : x->dtype) || !(int8_like(z->t.dtype) || z->t.dtype == QCAL_I32))
            return OP_ERR(g, n, QCAL_INVALID_MODEL, "zero point type %s does not match", qcal_dtype_name(z->t.dtype));
        if (quantize && !int8_like(z->t.dtype))
            return OP_ERR(g, n, QCAL_UNSUPPORTED, "quantizing to %s is not supported", qcal_dtype_name(z->t.dtype));
    }
    for (int64_t c = 0; c < p->count; c++) {
        float v = ((const float *)s->t.data)[c];
        if (!(v > 0) || !isfinite(v)) return OP_ERR(g, n, QCAL_INVALID_MODEL, "scale %g is not positive", v);
    }
    p->out_dtype = quantize ? (z ? z->t.dtype : QCAL_U8) : QCAL_F32;
    op_set_output(g, n, 0, p->out_dtype, x->ndim, x->dims);
    return QCAL_OK;
}

/* Per tensor, or per channel on the axis a 4-D NHWC arena keeps as its last dim. */
static int qdq_layout(const struct qcal_graph *g, const struct qcal_node *n, int kernels)
{
    (void)kernels;
    const struct qdq_params *p = n->params;
    return p->axis < 0 || (p->axis == 1 && g->values[n->inputs[0]].t.ndim == 4) ? -1 : QCAL_LAYOUT_PLAIN;
}

static void qdq_destroy(void *state)
{
    struct qdq_state *s = state;
    if (!s) return;
    free(s->scale);
    free(s->zero_point);
    free(s);
}

static enum qcal_status qdq_prepare(struct qcal_op_prep *pp)
{
    const struct qdq_params *p = pp->node->params;
    const struct qcal_value *sv = qcal_in(pp->g, pp->node, 1), *zv = qcal_in(pp->g, pp->node, 2);
    struct qdq_state *s = calloc(1, sizeof *s);
    if (s) {
        s->scale = malloc(sizeof(float) * (size_t)p->count);
        s->zero_point = calloc((size_t)p->count, sizeof(int32_t));
    }
    if (!s || !s->scale || !s->zero_point) {
        qdq_destroy(s);
        return OP_ERR(pp->g, pp->node, QCAL_OUT_OF_MEMORY, "out of memory");
    }
    s->op = pp->node->op;
    s->axis = p->axis;
    s->count = p->count;
    for (int64_t c = 0; c < p->count; c++) {
        s->scale[c] = ((const float *)sv->t.data)[c];
        if (zv) s->zero_point[c] = op_int_at(&zv->t, c);
    }
    pp->state = s;
    pp->impl = "ref";
    return QCAL_OK;
}

/* Round half to even of |v| < 2^22 without SSE4.1's roundps: adding and subtracting
 * 1.5 * 2^23 leaves the nearest integer in the default rounding mode (no -ffast-math). */
static inline float round_even(float v)
{
    const float magic = 12582912.0f;
    return (v + magic) - magic;
}

static inline float quantize_one(float x, float scale, float z, float lo, float hi)
{
    const float lim = 4194304.0f; /* 2^22 steps: saturated either way */
    float v = x / scale;
    v = v == v ? v : 0.0f; /* NaN: the zero point */
    v = v < -lim ? -lim : v > lim ? lim : v;
    v = round_even(v) + z;
    return v < lo ? lo : v > hi ? hi : v;
}

/* Eight at a time with AVX2 (same arithmetic lane by lane as quantize_one); returns the
 * number of elements done. */
__attribute__((target("avx2"))) static int64_t quantize_avx2(const float *x, int64_t n, float scale, float z,
                                                              bool u8, uint8_t *y)
{
    const float lo = u8 ? 0.0f : -128.0f, hi = u8 ? 255.0f : 127.0f;
    const __m256 vs = _mm256_set1_ps(scale), vz = _mm256_set1_ps(z), vlo = _mm256_set1_ps(lo);
    const __m256 vhi = _mm256_set1_ps(hi), lim = _mm256_set1_ps(4194304.0f), nlim = _mm256_set1_ps(-4194304.0f);
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_div_ps(_mm256_loadu_ps(x + i), vs);
        v = _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));
        v = _mm256_min_ps(_mm256_max_ps(v, nlim), lim);
        v = _mm256_add_ps(_mm256_sub_ps(_mm256_add_ps(v, magic), magic), vz);
        v = _mm256_min_ps(_mm256_max_ps(v, vlo), vhi);
        const __m256i q = _mm256_cvttps_epi32(v);
        __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        w = u8 ? _mm_packus_epi16(w, w) : _mm_packs_epi16(w, w);
        _mm_storel_epi64((__m128i *)(y + i), w);
    }
    return i;
}

/* Per tensor, four at a time with SSE2 (the calibration error pass runs this on every
 * quantized tensor); the same arithmetic as quantize_one, lane by lane. */
static void quantize_tensor(const float *x, int64_t n, float scale, int32_t zp, int32_t dtype, void *out)
{
    const bool u8 = dtype == QCAL_U8;
    const float lo = u8 ? 0.0f : -128.0f, hi = u8 ? 255.0f : 127.0f, z = (float)zp;
    uint8_t *y = out; /* int8 stored through its two's complement bytes */
    const __m128 vs = _mm_set1_ps(scale), vz = _mm_set1_ps(z), vlo = _mm_set1_ps(lo), vhi = _mm_set1_ps(hi);
    const __m128 lim = _mm_set1_ps(4194304.0f), nlim = _mm_set1_ps(-4194304.0f), magic = _mm_set1_ps(12582912.0f);
    int64_t i = qcal_cpu()->avx2 ? quantize_avx2(x, n, scale, z, u8, y) : 0;
    for (; i + 4 <= n; i += 4) {
        __m128 v = _mm_div_ps(_mm_loadu_ps(x + i), vs);
        v = _mm_and_ps(v, _mm_cmpord_ps(v, v));
        v = _mm_min_ps(_mm_max_ps(v, nlim), lim);
        v = _mm_add_ps(_mm_sub_ps(_mm_add_ps(v, magic), magic), vz);
        v = _mm_min_ps(_mm_max_ps(v, vlo), vhi);
        __m128i q = _mm_cvttps_epi32(v);
        q = _mm_packs_epi32(q, q);
        q = u8 ? _mm_packus_epi16(q, q) : _mm_packs_epi16(q, q);
        const int32_t four = _mm_cvtsi128_si32(q);
        memcpy(y + i, &four, 4);
    }
    for (; i < n; i++) {
        const int32_t q = (int32_t)quantize_one(x[i], scale, z, lo, hi);
        y[i] = (uint8_t)(u8 ? q : (int8_t)q);
    }
}

static void dequantize_tensor(const void *in, int32_t dtype, int64_t n, float scale, int32_t zp, float *y)
{
    if (dtype == QCAL_U8) {
        const uint8_t *x = in;
        for (int64_t i = 0; i < n; i++) y[i] = (float)((int32_t)x[i] - zp) * scale;
    } else if (dtype == QCAL_I8) {
        const int8_t *x = in;
        for (int64_t i = 0; i < n; i++) y[i] = (float)((int32_t)x[i] - zp) * scale;
    } else {
        const int32_t *x = in;
        for (int64_t i = 0; i < n; i++) y[i] = (float)((int64_t)x[i] - zp) * scale;
    }
}

static enum qcal_status qdq_run(const void *state, const struct qcal_op_args *a)
{
    const struct qdq_state *s = state;
    const struct qcal_tensor *x = a->in[0];
    struct qcal_tensor *y = a->out[0];
    const int64_t count = qcal_tensor_numel(x);
    int64_t stride = count, channels = 1;
    if (s->axis >= 0) {
        int64_t st[QCAL_MAX_DIMS] = {0};
        op_strides(x, op_in_layout(a, 0), st);
        stride = st[s->axis];
        channels = x->dims[s->axis];
    }
    if (s->axis < 0) {
        if (s->op == QCAL_OP_QUANTIZE_LINEAR)
            quantize_tensor(x->data, count, s->scale[0], s->zero_point[0], y->dtype, y->data);
        else
            dequantize_tensor(x->data, x->dtype, count, s->scale[0], s->zero_point[0], y->data);
        return QCAL_OK;
    }
    for (int64_t i = 0; i < count; i++) {
        const int64_t c = (i / stride) % channels;
        const float scale = s->scale[c];
        const int32_t zp = s->zero_point[c];
        if (s->op == QCAL_OP_QUANTIZE_LINEAR) {
            const bool u8 = y->dtype == QCAL_U8;
            const float v = quantize_one(((const float *)x->data)[i], scale, (float)zp, u8 ? 0.0f : -128.0f,
                                         u8 ? 255.0f : 127.0f);
            if (u8) ((uint8_t *)y->data)[i] = (uint8_t)(int32_t)v;
            else ((int8_t *)y->data)[i] = (int8_t)(int32_t)v;
            continue;
        }
        int32_t q;
        switch (x->dtype) {
        case QCAL_I8: q = ((const int8_t *)x->data)[i]; break;
        case QCAL_U8: q = ((const uint8_t *)x->data)[i]; break;
        default: q = ((const int32_t *)x->data)[i]; break;
        }
        ((float *)y->data)[i] = (float)((int64_t)q - zp) * scale;
    }
    return QCAL_OK;
}

const struct qcal_op_def qcal_op_qdq_def = {
    .name = "QuantizeLinear/DequantizeLinear", .parse = qdq_parse, .infer = qdq_infer, .layout = qdq_layout,
    .prepare = qdq_prepare, .run = qdq_run, .destroy = qdq_destroy,
};

/* ---- QLinearAdd (internal; what the QDQ pass turns DequantizeLinear(a) + DequantizeLinear(b)
 * -> [Relu] -> QuantizeLinear into): inputs a, a_scale, a_zp, b, b_scale, b_zp, y_scale,
 * y_zp, same shapes; the float arithmetic of the QDQ graph in one pass over the bytes. ---- */

struct qadd_state {
    float sa, sb, sy;
    int32_t za, zb, zy;
    bool a_u8, b_u8, y_u8, relu;
};

static enum qcal_status qadd_parse(struct qcal_graph *g, struct qcal_node *n)
{
    return op_check_arity(g, n, 8, 8, 1, 1);
}

static enum qcal_status qadd_infer(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = op_require_inputs(g, n, 8);
    if (st != QCAL_OK) return st;
    const struct qcal_tensor *a = &qcal_in(g, n, 0)->t, *b = &qcal_in(g, n, 3)->t;
    if (!int8_like(a->dtype) || !int8_like(b->dtype))
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "inputs must be uint8 or int8");
    if (qcal_tensor_numel(a) != qcal_tensor_numel(b) || a->ndim != b->ndim)
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "inputs must have the same shape");
    for (int i = 1; i < 8; i++) {
        if (i == 3) continue;
        const struct qcal_value *v = qcal_in(g, n, i);
        if (!qcal_value_is_const(v) || qcal_tensor_numel(&v->t) != 1)
            return OP_ERR(g, n, QCAL_UNSUPPORTED, "scales and zero points must be constant scalars");
    }
    op_set_output(g, n, 0, qcal_in(g, n, 7)->t.dtype, a->ndim, a->dims);
    return QCAL_OK;
}

static int qadd_layout(const struct qcal_graph *g, const struct qcal_node *n, int kernels)
{
    (void)g, (void)n, (void)kernels;
    return -1; /* elementwise: any layout, the inputs' */
}

static enum qcal_status qadd_prepare(struct qcal_op_prep *pp)
{
    struct qcal_graph *g = pp->g;
    struct qcal_node *n = pp->node;
    struct qadd_state *s = calloc(1, sizeof *s);
    if (!s) return OP_ERR(g, n, QCAL_OUT_OF_MEMORY, "out of memory");
    s->sa = ((const float *)qcal_in(g, n, 1)->t.data)[0];
    s->sb = ((const float *)qcal_in(g, n, 4)->t.data)[0];
    s->sy = ((const float *)qcal_in(g, n, 6)->t.data)[0];
    s->za = op_int_at(&qcal_in(g, n, 2)->t, 0);
    s->zb = op_int_at(&qcal_in(g, n, 5)->t, 0);
    s->zy = op_int_at(&qcal_in(g, n, 7)->t, 0);
    s->a_u8 = qcal_in(g, n, 0)->t.dtype == QCAL_U8;
    s->b_u8 = qcal_in(g, n, 3)->t.dtype == QCAL_U8;
    s->y_u8 = qcal_out(g, n, 0)->t.dtype == QCAL_U8;
    s->relu = n->post.n == 1 && n->post.op[0].kind == QCAL_ACT_RELU;
    pp->state = s;
    pp->impl = "int8";
    return QCAL_OK;
}

static enum qcal_status qadd_run(const void *state, const struct qcal_op_args *a)
{
    const struct qadd_state *s = state;
    const int64_t count = qcal_tensor_numel(a->in[0]);
    enum { BLOCK = 1024 };
    const int64_t blocks = (count + BLOCK - 1) / BLOCK;
    const int threads = op_threads();
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && blocks > 8)
    for (int64_t blk = 0; blk < blocks; blk++) { /* elementwise: the same bytes for any thread count */
        const int64_t i0 = blk * BLOCK, m = count - i0 < BLOCK ? count - i0 : BLOCK;
        float fa[BLOCK], fb[BLOCK], tmp[BLOCK];
        dequantize_tensor((const int8_t *)a->in[0]->data + i0, s->a_u8 ? QCAL_U8 : QCAL_I8, m, s->sa, s->za, fa);
        dequantize_tensor((const int8_t *)a->in[3]->data + i0, s->b_u8 ? QCAL_U8 : QCAL_I8, m, s->sb, s->zb, fb);
        for (int64_t k = 0; k < m; k++) tmp[k] = s->relu && fa[k] + fb[k] < 0 ? 0.0f : fa[k] + fb[k];
        quantize_tensor(tmp, m, s->sy, s->zy, s->y_u8 ? QCAL_U8 : QCAL_I8, (int8_t *)a->out[0]->data + i0);
    }
    return QCAL_OK;
}

static void qadd_destroy(void *state) { free(state); }

const struct qcal_op_def qcal_op_qlinear_add_def = {
    .name = "QLinearAdd", .parse = qadd_parse, .infer = qadd_infer, .layout = qadd_layout,
    .prepare = qadd_prepare, .run = qadd_run, .destroy = qadd_destroy,
};
