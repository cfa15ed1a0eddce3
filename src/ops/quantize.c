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
    bool avx2, avx512, vbmi; /* read at prepare */
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

static enum qcal_status qdq_infer(struct qcal_graph *g, struct qcal_node *n)
{
    struct qdq_params *p = n->params;
    enum qcal_status st = op_require_inputs(g, n, 2);
    if (st != QCAL_OK) return st;
    const bool quantize = n->op == QCAL_OP_QUANTIZE_LINEAR;
    const struct qcal_tensor *x = &qcal_in(g, n, 0)->t;
    const struct qcal_value *s = qcal_in(g, n, 1), *z = qcal_in(g, n, 2);
    if (quantize ? x->dtype != QCAL_F32 : !(qcal_dtype_is_int8(x->dtype) || x->dtype == QCAL_I32))
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
        if (z->t.dtype != (quantize ? z->t.dtype : x->dtype) || !(qcal_dtype_is_int8(z->t.dtype) || z->t.dtype == QCAL_I32))
            return OP_ERR(g, n, QCAL_INVALID_MODEL, "zero point type %s does not match", qcal_dtype_name(z->t.dtype));
        if (quantize && !qcal_dtype_is_int8(z->t.dtype))
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
    s->avx2 = qcal_cpu()->avx2;
    s->avx512 = qcal_cpu()->avx512f && qcal_cpu()->avx512bw && qcal_cpu()->avx512vl;
    s->vbmi = s->avx512 && qcal_cpu()->avx512_vbmi;
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
/* Sixteen at a time with AVX-512 (op_quantize16: the division only next to half-integers). */
__attribute__((target("avx512f,avx512bw,avx512vl"))) static void quantize_avx512(const float *x, int64_t n, float scale,
                                                                                float z, bool u8, uint8_t *y)
{
    const __m512 vs = _mm512_set1_ps(scale), inv = _mm512_set1_ps(1.0f / scale), vz = _mm512_set1_ps(z);
    const __m512 lo = _mm512_set1_ps(u8 ? 0.0f : -128.0f), hi = _mm512_set1_ps(u8 ? 255.0f : 127.0f);
    int64_t i = 0;
    for (; i + 64 <= n; i += 64)
        _mm512_storeu_si512(y + i, op_pack64(op_quantize16(_mm512_loadu_ps(x + i), vs, inv, vz, lo, hi),
                                             op_quantize16(_mm512_loadu_ps(x + i + 16), vs, inv, vz, lo, hi),
                                             op_quantize16(_mm512_loadu_ps(x + i + 32), vs, inv, vz, lo, hi),
                                             op_quantize16(_mm512_loadu_ps(x + i + 48), vs, inv, vz, lo, hi), u8));
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_cvtepi32_storeu_epi8(y + i, m, op_quantize16(_mm512_maskz_loadu_ps(m, x + i), vs, inv, vz, lo, hi));
    }
}

static void quantize_tensor(const struct qdq_state *s, const float *x, int64_t n, float scale, int32_t zp,
                            int32_t dtype, void *out)
{
    const bool u8 = dtype == QCAL_U8;
    const float lo = u8 ? 0.0f : -128.0f, hi = u8 ? 255.0f : 127.0f, z = (float)zp;
    uint8_t *y = out; /* int8 stored through its two's complement bytes */
    if (s->avx512) {
        quantize_avx512(x, n, scale, z, u8, y);
        return;
    }
    const __m128 vs = _mm_set1_ps(scale), vz = _mm_set1_ps(z), vlo = _mm_set1_ps(lo), vhi = _mm_set1_ps(hi);
    const __m128 lim = _mm_set1_ps(4194304.0f), nlim = _mm_set1_ps(-4194304.0f), magic = _mm_set1_ps(12582912.0f);
    int64_t i = s->avx2 ? quantize_avx2(x, n, scale, z, u8, y) : 0;
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
        const int32_t q = (int32_t)qcal_quantize_one(x[i], scale, z, lo, hi);
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

/* C <= 4 float channel rows x[c][0..W) quantized into one NHWC row y[W][C], sixteen pixels
 * at a time: each channel's codes packed into 16 bytes of one register, then one VBMI byte
 * permutation interleaves them (the model input's 3 planes into the first QLinearConv's
 * pixels, without a reorder pass). */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi"))) static void
quantize_interleave(const float *const *x, int C, int64_t W, const float *scale, const int32_t *zp, bool u8,
                    uint8_t *y)
{
    uint8_t idx[64];
    for (int j = 0; j < 64; j++) idx[j] = (uint8_t)(j < 16 * C ? j % C * 16 + j / C : 0);
    const __m512i perm = _mm512_loadu_si512(idx);
    const __m512 lo = _mm512_set1_ps(u8 ? 0.0f : -128.0f), hi = _mm512_set1_ps(u8 ? 255.0f : 127.0f);
    __m512 vs[4], inv[4], vz[4];
    for (int c = 0; c < C; c++) {
        vs[c] = _mm512_set1_ps(scale[c]);
        inv[c] = _mm512_set1_ps(1.0f / scale[c]);
        vz[c] = _mm512_set1_ps((float)zp[c]);
    }
    for (int64_t w = 0; w < W; w += 16) {
        const int64_t left = W - w < 16 ? W - w : 16;
        const __mmask16 m = (__mmask16)((1u << left) - 1);
        __m512i packed = _mm512_setzero_si512();
        for (int c = 0; c < C; c++) {
            const __m128i b = _mm512_cvtepi32_epi8(op_quantize16(_mm512_maskz_loadu_ps(m, x[c] + w), vs[c], inv[c], vz[c], lo, hi));
            switch (c) {
            case 0: packed = _mm512_inserti32x4(packed, b, 0); break;
            case 1: packed = _mm512_inserti32x4(packed, b, 1); break;
            case 2: packed = _mm512_inserti32x4(packed, b, 2); break;
            default: packed = _mm512_inserti32x4(packed, b, 3); break;
            }
        }
        const int bytes = (int)left * C;
        const __mmask64 bm = bytes >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << bytes) - 1);
        _mm512_mask_storeu_epi8(y + w * C, bm, _mm512_permutexvar_epi8(perm, packed));
    }
}

/* One element of x into y with scale and zero point ch. */
static void convert_one(const struct qdq_state *s, int32_t xt, const void *x, int32_t yt, void *y, int64_t ch)
{
    if (s->op == QCAL_OP_QUANTIZE_LINEAR) {
        const bool u8 = yt == QCAL_U8;
        float v;
        memcpy(&v, x, sizeof v);
        const int32_t q = (int32_t)qcal_quantize_one(v, s->scale[ch], (float)s->zero_point[ch], u8 ? 0.0f : -128.0f,
                                                     u8 ? 255.0f : 127.0f);
        if (u8) *(uint8_t *)y = (uint8_t)q;
        else *(int8_t *)y = (int8_t)q;
        return;
    }
    int32_t q;
    switch (xt) {
    case QCAL_I8: q = *(const int8_t *)x; break;
    case QCAL_U8: q = *(const uint8_t *)x; break;
    default: memcpy(&q, x, sizeof q); break;
    }
    const float v = (float)((int64_t)q - s->zero_point[ch]) * s->scale[ch];
    memcpy(y, &v, sizeof v);
}

/* Values [0, m) (m <= RUN) of a strided run x into the strided run y with scale and zero
 * point ch: gathered into a stack buffer when x is strided, converted as a block, scattered
 * when y is. */
enum { RUN = 256 };
static void convert_run(const struct qdq_state *s, int32_t xt, const char *x, int64_t xstride, int32_t yt, char *y,
                        int64_t ystride, int64_t m, int64_t ch)
{
    const size_t is = qcal_dtype_size(xt), os = qcal_dtype_size(yt);
    _Alignas(64) char in[RUN * sizeof(float)], out[RUN * sizeof(float)];
    const char *src = x;
    char *dst = ystride == 1 ? y : out;
    if (xstride != 1) {
        for (int64_t w = 0; w < m; w++) memcpy(in + (size_t)w * is, x + (size_t)(w * xstride) * is, is);
        src = in;
    }
    if (s->op == QCAL_OP_QUANTIZE_LINEAR) quantize_tensor(s, (const float *)src, m, s->scale[ch], s->zero_point[ch], yt, dst);
    else dequantize_tensor(src, xt, m, s->scale[ch], s->zero_point[ch], (float *)dst);
    if (ystride != 1 && os == 1)
        for (int64_t w = 0; w < m; w++) y[w * ystride] = out[w];
    else if (ystride != 1)
        for (int64_t w = 0; w < m; w++) memcpy(y + (size_t)(w * ystride) * os, out + (size_t)w * os, os);
}

/* A 4-D tensor from one layout into the other (the graph input quantized straight into the
 * NHWC codes the first QLinearConv reads): row by row, channel by channel, in runs. */
static void qdq_relayout(const struct qdq_state *s, const struct qcal_op_args *a)
{
    const struct qcal_tensor *x = a->in[0], *y = a->out[0];
    const int64_t C = x->dims[1], H = x->dims[2], W = x->dims[3], rows = x->dims[0] * H;
    const size_t in_size = qcal_dtype_size(x->dtype), out_size = qcal_dtype_size(y->dtype);
    int64_t xs[QCAL_MAX_DIMS] = {0}, ys[QCAL_MAX_DIMS] = {0};
    op_strides(x, op_in_layout(a, 0), xs);
    op_strides(y, op_out_layout(a, 0), ys);
    const int threads = op_threads();
    const bool interleave = s->vbmi && s->op == QCAL_OP_QUANTIZE_LINEAR && C <= 4 && xs[3] == 1 && ys[1] == 1 &&
                            ys[3] == C && (s->axis < 0 || s->axis == 1);
    float scale4[4];
    int32_t zp4[4];
    for (int c = 0; c < 4; c++) scale4[c] = s->scale[0], zp4[c] = s->zero_point[0];
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        const int64_t n = r / H, h = r % H;
        if (interleave) {
            const float *planes[4];
            for (int64_t c = 0; c < C; c++) planes[c] = (const float *)x->data + n * xs[0] + c * xs[1] + h * xs[2];
            quantize_interleave(planes, (int)C, W, s->axis == 1 ? s->scale : scale4, s->axis == 1 ? s->zero_point : zp4,
                                y->dtype == QCAL_U8, (uint8_t *)y->data + n * ys[0] + h * ys[2]);
            continue;
        }
        for (int64_t c = 0; c < C; c++) {
            const char *xp = (const char *)x->data + (size_t)(n * xs[0] + c * xs[1] + h * xs[2]) * in_size;
            char *yp = (char *)y->data + (size_t)(n * ys[0] + c * ys[1] + h * ys[2]) * out_size;
            if (s->axis == 3) { /* a scale per column: element by element */
                for (int64_t w = 0; w < W; w++)
                    convert_one(s, x->dtype, xp + w * xs[3] * in_size, y->dtype, yp + w * ys[3] * out_size, w);
                continue;
            }
            const int64_t ch = s->axis < 0 ? 0 : s->axis == 0 ? n : s->axis == 1 ? c : h;
            for (int64_t w = 0; w < W; w += RUN)
                convert_run(s, x->dtype, xp + (size_t)(w * xs[3]) * in_size, xs[3], y->dtype,
                            yp + (size_t)(w * ys[3]) * out_size, ys[3], W - w < RUN ? W - w : RUN, ch);
        }
    }
}

static enum qcal_status qdq_run(const void *state, const struct qcal_op_args *a)
{
    const struct qdq_state *s = state;
    const struct qcal_tensor *x = a->in[0];
    struct qcal_tensor *y = a->out[0];
    const int64_t count = qcal_tensor_numel(x);
    const size_t in_size = qcal_dtype_size(x->dtype), out_size = qcal_dtype_size(y->dtype);
    if (x->ndim == 4 && op_in_layout(a, 0) != op_out_layout(a, 0)) {
        qdq_relayout(s, a);
        return QCAL_OK;
    }
    int64_t stride = count, channels = 1;
    if (s->axis >= 0) {
        int64_t st[QCAL_MAX_DIMS] = {0};
        op_strides(x, op_in_layout(a, 0), st);
        stride = st[s->axis];
        channels = x->dims[s->axis];
    }
    if (s->axis < 0) { /* elementwise in blocks over the threads: the same bytes for any count */
        enum { BLOCK = 16384 };
        const int64_t blocks = (count + BLOCK - 1) / BLOCK;
        const int threads = op_threads();
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && blocks > 1)
        for (int64_t blk = 0; blk < blocks; blk++) {
            const int64_t i0 = blk * BLOCK, m = count - i0 < BLOCK ? count - i0 : BLOCK;
            const void *in = (const char *)x->data + (size_t)i0 * in_size;
            void *out = (char *)y->data + (size_t)i0 * out_size;
            if (s->op == QCAL_OP_QUANTIZE_LINEAR)
                quantize_tensor(s, in, m, s->scale[0], s->zero_point[0], y->dtype, out);
            else
                dequantize_tensor(in, x->dtype, m, s->scale[0], s->zero_point[0], out);
        }
        return QCAL_OK;
    }
    for (int64_t i = 0; i < count; i++)
        convert_one(s, x->dtype, (const char *)x->data + (size_t)i * in_size, y->dtype,
                    (char *)y->data + (size_t)i * out_size, (i / stride) % channels);
    return QCAL_OK;
}

const struct qcal_op_def qcal_op_qdq_def = {
    .name = "QuantizeLinear/DequantizeLinear", .parse = qdq_parse, .infer = qdq_infer, .layout = qdq_layout,
    .prepare = qdq_prepare, .run = qdq_run, .destroy = qdq_destroy, .any_out_layout = true,
};
