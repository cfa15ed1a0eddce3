/* Integer elementwise ops the QDQ passes make (qcal-internal, not ONNX ops): each runs the
 * float arithmetic of the QDQ subgraph it replaces in one pass over the bytes, so its output
 * equals the unfused graph's.
 *
 *   QLinearAdd / QLinearMul (a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp) [Relu]:
 *       y = Q(relu?(DQ(a) op DQ(b)))        b: a's shape, one value, or one per channel (axis 1)
 *   QLinearLookup (x, table[256]):
 *       y = table[byte of x]                 any chain of elementwise ops between one
 *                                            DequantizeLinear and a QuantizeLinear
 */
#include <immintrin.h>
#include <stdlib.h>

#include "op-internal.h"

enum { BLOCK = 16384 };        /* elements per parallel block: elementwise, so any split gives the same bytes */
enum { CHANNELS_MAX = 4096 }; /* per-channel operands dequantized on the stack up to this many */

static int64_t block_count(int64_t n) { return (n + BLOCK - 1) / BLOCK; }

/* ---- QLinearAdd / QLinearMul ---- */

enum bcast { BCAST_INVALID = -1, BCAST_NONE, BCAST_SCALAR, BCAST_CHANNEL };

struct qbin_state {
    float sa, sb, sy;
    int32_t za, zb, zy;
    bool a_u8, b_u8, y_u8, relu, mul;
    bool avx512;   /* read once at prepare (qcal_cpu() is not for inner loops) */
    bool b_images; /* per-channel b holds one row of channels per image */
    enum bcast bcast;
};

/* Where a span's second operand comes from: bytes like a's, one byte for all, or floats
 * already dequantized (one per channel). */
enum bsrc { B_BYTES, B_ONE, B_FLOATS };

static float deq_one(const uint8_t *p, bool u8, int32_t z, float s)
{
    const int32_t q = u8 ? *p : *(const int8_t *)p;
    return (float)(q - z) * s;
}

static float operand_b(const struct qbin_state *s, const void *b, enum bsrc src, int64_t i)
{
    if (src == B_FLOATS) return ((const float *)b)[i];
    return deq_one((const uint8_t *)b + (src == B_ONE ? 0 : i), s->b_u8, s->zb, s->sb);
}

static void qbin_scalar(const struct qbin_state *s, const uint8_t *a, const void *b, enum bsrc src, int64_t n,
                        uint8_t *y)
{
    const float lo = s->y_u8 ? 0.0f : -128.0f, hi = s->y_u8 ? 255.0f : 127.0f;
    for (int64_t i = 0; i < n; i++) {
        const float fa = deq_one(a + i, s->a_u8, s->za, s->sa), fb = operand_b(s, b, src, i);
        float t = s->mul ? fa * fb : fa + fb;
        if (s->relu && t < 0) t = 0;
        const int32_t q = (int32_t)qcal_quantize_one(t, s->sy, (float)s->zy, lo, hi);
        y[i] = (uint8_t)(s->y_u8 ? q : (int8_t)q);
    }
}

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

AVX512 static inline __m512 deq16(const uint8_t *p, __mmask16 m, bool u8, __m512 z, __m512 s)
{
    const __m128i v = _mm_maskz_loadu_epi8(m, p);
    const __m512i w = u8 ? _mm512_cvtepu8_epi32(v) : _mm512_cvtepi8_epi32(v);
    return _mm512_mul_ps(_mm512_sub_ps(_mm512_cvtepi32_ps(w), z), s);
}

/* The broadcast constants of qbin_avx512. */
struct qbin_vec {
    __m512 sa, za, sb, zb, sy, inv, zy, lo, hi, fb_one;
};

/* Codes i..i+15 (lanes of m), lane by lane the arithmetic of qbin_scalar (the quantization as
 * if divided by the scale: op_quantize16). */
AVX512 static inline __m512i qbin16(const struct qbin_state *s, const struct qbin_vec *v, const uint8_t *a,
                                    const void *b, enum bsrc src, int64_t i, __mmask16 m)
{
    const __m512 fa = deq16(a + i, m, s->a_u8, v->za, v->sa);
    const __m512 fb = src == B_ONE     ? v->fb_one
                      : src == B_FLOATS ? _mm512_maskz_loadu_ps(m, (const float *)b + i)
                                        : deq16((const uint8_t *)b + i, m, s->b_u8, v->zb, v->sb);
    __m512 t = s->mul ? _mm512_mul_ps(fa, fb) : _mm512_add_ps(fa, fb);
    if (s->relu) t = _mm512_max_ps(t, _mm512_setzero_ps());
    return op_quantize16(t, v->sy, v->inv, v->zy, v->lo, v->hi);
}

/* 64 codes per step in the body (one packed store), sixteen with masks in the tail. */
AVX512 static void qbin_avx512(const struct qbin_state *s, const uint8_t *a, const void *b, enum bsrc src, int64_t n,
                               uint8_t *y)
{
    const struct qbin_vec v = {
        .sa = _mm512_set1_ps(s->sa), .za = _mm512_set1_ps((float)s->za), .sb = _mm512_set1_ps(s->sb),
        .zb = _mm512_set1_ps((float)s->zb), .sy = _mm512_set1_ps(s->sy), .inv = _mm512_set1_ps(1.0f / s->sy),
        .zy = _mm512_set1_ps((float)s->zy), .lo = _mm512_set1_ps(s->y_u8 ? 0.0f : -128.0f),
        .hi = _mm512_set1_ps(s->y_u8 ? 255.0f : 127.0f),
        .fb_one = _mm512_set1_ps(src == B_ONE ? operand_b(s, b, src, 0) : 0.0f)};
    const __mmask16 all = 0xffff;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64)
        _mm512_storeu_si512(y + i, op_pack64(qbin16(s, &v, a, b, src, i, all), qbin16(s, &v, a, b, src, i + 16, all),
                                          qbin16(s, &v, a, b, src, i + 32, all), qbin16(s, &v, a, b, src, i + 48, all),
                                          s->y_u8));
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? all : (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_cvtepi32_storeu_epi8(y + i, m, qbin16(s, &v, a, b, src, i, m));
    }
}

static bool has_avx512(void)
{
    const struct qcal_cpu_features *c = qcal_cpu();
    return c->avx512f && c->avx512bw && c->avx512vl;
}

/* y[0..n) from a[0..n) and the second operand (see enum bsrc). */
static void qbin_span(const struct qbin_state *s, const uint8_t *a, const void *b, enum bsrc src, int64_t n,
                      uint8_t *y)
{
    if (s->avx512) qbin_avx512(s, a, b, src, n, y);
    else qbin_scalar(s, a, b, src, n, y);
}

static enum qcal_status qbin_parse(struct qcal_graph *g, struct qcal_node *n)
{
    return op_check_arity(g, n, 8, 8, 1, 1);
}

/* b broadcast to a: same shape, one value, or one per channel of axis 1 (e.g. [1,C,1,1]
 * against [N,C,H,W], an SE gate). */
static enum bcast bcast_of(const struct qcal_tensor *a, const struct qcal_tensor *b)
{
    if (a->ndim == b->ndim && memcmp(a->dims, b->dims, sizeof(int64_t) * (size_t)a->ndim) == 0) return BCAST_NONE;
    if (qcal_tensor_numel(b) == 1) return BCAST_SCALAR;
    if (a->ndim < 2 || b->ndim > a->ndim) return BCAST_INVALID;
    const int off = a->ndim - b->ndim; /* numpy: b's dims align with a's last ones */
    for (int d = 0; d < a->ndim; d++) {
        const int64_t bd = d < off ? 1 : b->dims[d - off];
        if (bd != (d == 1 ? a->dims[1] : 1) && !(d == 0 && bd == a->dims[0])) return BCAST_INVALID;
    }
    return BCAST_CHANNEL; /* one per channel, or one per image and channel ([N, C, 1, 1]) */
}

bool qcal_ops_qlinear_broadcasts(const struct qcal_tensor *a, const struct qcal_tensor *b)
{
    return bcast_of(a, b) != BCAST_INVALID;
}

static enum qcal_status qbin_infer(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = op_require_inputs(g, n, 8);
    if (st != QCAL_OK) return st;
    const struct qcal_tensor *a = &qcal_in(g, n, 0)->t, *b = &qcal_in(g, n, 3)->t;
    if (!qcal_dtype_is_int8(a->dtype) || !qcal_dtype_is_int8(b->dtype))
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "inputs must be uint8 or int8");
    if (bcast_of(a, b) == BCAST_INVALID)
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "input B must have A's shape, one value or one per channel");
    for (int i = 1; i < 8; i++) {
        if (i == 3) continue;
        const struct qcal_value *v = qcal_in(g, n, i);
        if (!qcal_value_is_const(v) || qcal_tensor_numel(&v->t) != 1)
            return OP_ERR(g, n, QCAL_UNSUPPORTED, "scales and zero points must be constant scalars");
    }
    op_set_output(g, n, 0, qcal_in(g, n, 7)->t.dtype, a->ndim, a->dims);
    return QCAL_OK;
}

static int any_layout(const struct qcal_graph *g, const struct qcal_node *n, int kernels)
{
    (void)g, (void)n, (void)kernels;
    return -1; /* elementwise: any layout, the inputs' */
}

static enum qcal_status qbin_prepare(struct qcal_op_prep *pp)
{
    struct qcal_graph *g = pp->g;
    struct qcal_node *n = pp->node;
    struct qbin_state *s = calloc(1, sizeof *s);
    if (!s) return OP_ERR(g, n, QCAL_OUT_OF_MEMORY, "out of memory");
    s->sa = op_scalar(g, n, 1), s->za = (int32_t)op_scalar(g, n, 2);
    s->sb = op_scalar(g, n, 4), s->zb = (int32_t)op_scalar(g, n, 5);
    s->sy = op_scalar(g, n, 6), s->zy = (int32_t)op_scalar(g, n, 7);
    s->a_u8 = qcal_in(g, n, 0)->t.dtype == QCAL_U8;
    s->b_u8 = qcal_in(g, n, 3)->t.dtype == QCAL_U8;
    s->y_u8 = qcal_out(g, n, 0)->t.dtype == QCAL_U8;
    s->relu = n->post.n == 1 && n->post.op[0].kind == QCAL_ACT_RELU;
    s->mul = n->op == QCAL_OP_QLINEAR_MUL;
    s->bcast = bcast_of(&qcal_in(g, n, 0)->t, &qcal_in(g, n, 3)->t);
    s->avx512 = has_avx512();
    s->b_images = s->bcast == BCAST_CHANNEL && qcal_in(g, n, 3)->t.ndim == qcal_in(g, n, 0)->t.ndim &&
                  qcal_in(g, n, 3)->t.dims[0] > 1;
    pp->state = s;
    pp->impl = s->avx512 ? "int8:avx512" : "int8";
    return QCAL_OK;
}

static enum qcal_status qbin_run(const void *state, const struct qcal_op_args *args)
{
    const struct qbin_state *s = state;
    const struct qcal_tensor *at = args->in[0];
    const uint8_t *a = at->data, *b = args->in[3]->data;
    uint8_t *y = args->out[0]->data;
    const int64_t count = qcal_tensor_numel(at);
    const int threads = op_threads();
    if (s->bcast != BCAST_CHANNEL) {
        const int64_t blocks = block_count(count);
        const bool one = s->bcast == BCAST_SCALAR;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && blocks > 1)
        for (int64_t blk = 0; blk < blocks; blk++) {
            const int64_t i0 = blk * BLOCK, m = count - i0 < BLOCK ? count - i0 : BLOCK;
            qbin_span(s, a + i0, one ? b : b + i0, one ? B_ONE : B_BYTES, m, y + i0);
        }
        return QCAL_OK;
    }
    const int64_t channels = at->dims[1], batch = at->dims[0];
    if (op_in_layout(args, 0) == QCAL_LAYOUT_NHWC && at->ndim == 4 && channels <= CHANNELS_MAX) {
        /* channels last: b dequantized once per image, then blocks of whole pixels */
        float fb[CHANNELS_MAX];
        const int64_t pixels = count / (batch * channels), step = BLOCK / channels > 0 ? BLOCK / channels : 1;
        const int64_t blocks = (pixels + step - 1) / step;
        for (int64_t img = 0; img < batch; img++) {
            const uint8_t *bi = b + (s->b_images ? img * channels : 0);
            for (int64_t c = 0; c < channels; c++) fb[c] = operand_b(s, bi, B_BYTES, c);
            const uint8_t *ai = a + img * pixels * channels;
            uint8_t *yi = y + img * pixels * channels;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && blocks > 1)
            for (int64_t blk = 0; blk < blocks; blk++)
                for (int64_t p = blk * step; p < pixels && p < (blk + 1) * step; p++)
                    qbin_span(s, ai + p * channels, fb, B_FLOATS, channels, yi + p * channels);
        }
        return QCAL_OK;
    }
    /* plain: rows of one image's channel (H*W values), b[channel] or b[image, channel] */
    const int64_t row = count / (batch * channels), rows = count / row;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && count > BLOCK)
    for (int64_t r = 0; r < rows; r++)
        qbin_span(s, a + r * row, b + (s->b_images ? r : r % channels), B_ONE, row, y + r * row);
    return QCAL_OK;
}

static void free_state(void *state) { free(state); }

const struct qcal_op_def qcal_op_qlinear_binary_def = {
    .name = "QLinearAdd/QLinearMul", .parse = qbin_parse, .infer = qbin_infer, .layout = any_layout,
    .prepare = qbin_prepare, .run = qbin_run, .destroy = free_state,
};

/* ---- QLinearLookup ---- */

static enum qcal_status lookup_parse(struct qcal_graph *g, struct qcal_node *n)
{
    return op_check_arity(g, n, 2, 2, 1, 1);
}

static enum qcal_status lookup_infer(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = op_require_inputs(g, n, 2);
    if (st != QCAL_OK) return st;
    const struct qcal_value *x = qcal_in(g, n, 0), *t = qcal_in(g, n, 1);
    if (!qcal_dtype_is_int8(x->t.dtype)) return OP_ERR(g, n, QCAL_UNSUPPORTED, "input must be uint8 or int8");
    if (!qcal_value_is_const(t) || !qcal_dtype_is_int8(t->t.dtype) || qcal_tensor_numel(&t->t) != 256)
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "table must be 256 constant uint8 or int8 values");
    op_set_output(g, n, 0, t->t.dtype, x->t.ndim, x->t.dims);
    return QCAL_OK;
}

static bool has_vbmi(void) { return has_avx512() && qcal_cpu()->avx512_vbmi; }

struct lookup_state {
    uint8_t table[256];
    bool vbmi;
};

static enum qcal_status lookup_prepare(struct qcal_op_prep *pp)
{
    struct lookup_state *t = malloc(sizeof *t);
    if (!t) return OP_ERR(pp->g, pp->node, QCAL_OUT_OF_MEMORY, "out of memory");
    memcpy(t->table, qcal_in(pp->g, pp->node, 1)->t.data, 256);
    t->vbmi = has_vbmi();
    pp->state = t;
    pp->impl = t->vbmi ? "lut:avx512_vbmi" : "lut";
    return QCAL_OK;
}

/* 64 bytes at a time: two 128-entry permutes (index bits 0..6), the high bit picks one. */
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) static void lookup_vbmi(const uint8_t *t, const uint8_t *x,
                                                                               int64_t n, uint8_t *y)
{
    const __m512i t0 = _mm512_loadu_si512(t), t1 = _mm512_loadu_si512(t + 64);
    const __m512i t2 = _mm512_loadu_si512(t + 128), t3 = _mm512_loadu_si512(t + 192);
    for (int64_t i = 0; i < n; i += 64) {
        const __mmask64 m = n - i >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << (n - i)) - 1;
        const __m512i v = _mm512_maskz_loadu_epi8(m, x + i);
        const __m512i low = _mm512_permutex2var_epi8(t0, v, t1), high = _mm512_permutex2var_epi8(t2, v, t3);
        _mm512_mask_storeu_epi8(y + i, m, _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), low, high));
    }
}

static enum qcal_status lookup_run(const void *state, const struct qcal_op_args *args)
{
    const struct lookup_state *ls = state;
    const uint8_t *t = ls->table, *x = args->in[0]->data;
    uint8_t *y = args->out[0]->data;
    const int64_t count = qcal_tensor_numel(args->in[0]), blocks = block_count(count);
    const bool vbmi = ls->vbmi;
    const int threads = op_threads();
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && blocks > 1)
    for (int64_t blk = 0; blk < blocks; blk++) {
        const int64_t i0 = blk * BLOCK, m = count - i0 < BLOCK ? count - i0 : BLOCK;
        if (vbmi) {
            lookup_vbmi(t, x + i0, m, y + i0);
            continue;
        }
        for (int64_t i = i0; i < i0 + m; i++) y[i] = t[x[i]];
    }
    return QCAL_OK;
}

const struct qcal_op_def qcal_op_qlinear_lookup_def = {
    .name = "QLinearLookup", .parse = lookup_parse, .infer = lookup_infer, .layout = any_layout,
    .prepare = lookup_prepare, .run = lookup_run, .destroy = free_state,
};

/* ---- QLinearGlobalAveragePool (x, x_scale, x_zp, y_scale, y_zp): per image and channel
 * the mean of DQ(x) = x_scale * (sum of (x - x_zp)) / (H*W), the sum exact in integers,
 * then QuantizeLinear. (The QDQ graph sums floats: a last-bit difference of the mean can
 * move a value sitting on a rounding tie by one step.) ---- */

struct qgap_state {
    float sx, sy;
    int32_t zx, zy;
    bool x_u8, y_u8;
};

static enum qcal_status qgap_parse(struct qcal_graph *g, struct qcal_node *n)
{
    return op_check_arity(g, n, 5, 5, 1, 1);
}

static enum qcal_status qgap_infer(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = op_require_inputs(g, n, 5);
    if (st != QCAL_OK) return st;
    const struct qcal_tensor *x = &qcal_in(g, n, 0)->t;
    if (!qcal_dtype_is_int8(x->dtype) || x->ndim != 4)
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "input must be 4-D uint8 or int8");
    for (int i = 1; i < 5; i++)
        if (!qcal_value_is_const(qcal_in(g, n, i)) || qcal_tensor_numel(&qcal_in(g, n, i)->t) != 1)
            return OP_ERR(g, n, QCAL_UNSUPPORTED, "scales and zero points must be constant scalars");
    const int64_t dims[4] = {x->dims[0], x->dims[1], 1, 1};
    op_set_output(g, n, 0, qcal_in(g, n, 4)->t.dtype, 4, dims);
    return QCAL_OK;
}

static enum qcal_status qgap_prepare(struct qcal_op_prep *pp)
{
    struct qcal_graph *g = pp->g;
    struct qcal_node *n = pp->node;
    struct qgap_state *s = calloc(1, sizeof *s);
    if (!s) return OP_ERR(g, n, QCAL_OUT_OF_MEMORY, "out of memory");
    s->sx = op_scalar(g, n, 1), s->zx = (int32_t)op_scalar(g, n, 2);
    s->sy = op_scalar(g, n, 3), s->zy = (int32_t)op_scalar(g, n, 4);
    s->x_u8 = qcal_in(g, n, 0)->t.dtype == QCAL_U8;
    s->y_u8 = qcal_out(g, n, 0)->t.dtype == QCAL_U8;
    pp->state = s;
    pp->impl = "int8";
    return QCAL_OK;
}

static enum qcal_status qgap_run(const void *state, const struct qcal_op_args *args)
{
    const struct qgap_state *s = state;
    const struct qcal_tensor *x = args->in[0];
    const uint8_t *xd = x->data;
    uint8_t *yd = args->out[0]->data;
    const int64_t N = x->dims[0], C = x->dims[1], hw = x->dims[2] * x->dims[3];
    int64_t xs[QCAL_MAX_DIMS] = {0};
    op_strides(x, op_in_layout(args, 0), xs);
    const int64_t pix = xs[3]; /* element step between pixels (C in NHWC, 1 in NCHW) */
    const float lo = s->y_u8 ? 0.0f : -128.0f, hi = s->y_u8 ? 255.0f : 127.0f;
    const int threads = op_threads();
    /* channels in blocks of GAP_BLOCK: with channels last, each block sums whole pixel rows of
     * its channels (cache lines, not one byte per line); integer sums, any split is exact */
    enum { GAP_BLOCK = 64 };
    const int64_t cblocks = (C + GAP_BLOCK - 1) / GAP_BLOCK;
#pragma omp parallel for collapse(2) num_threads(threads) if (threads > 1 && N * C * hw > BLOCK)
    for (int64_t n = 0; n < N; n++)
        for (int64_t cb = 0; cb < cblocks; cb++) {
            const int64_t c0 = cb * GAP_BLOCK, cn = C - c0 < GAP_BLOCK ? C - c0 : GAP_BLOCK;
            int64_t sum[GAP_BLOCK] = {0};
            for (int64_t i = 0; i < hw; i++) {
                const uint8_t *p = xd + n * xs[0] + c0 * xs[1] + i * pix;
                if (s->x_u8)
                    for (int64_t c = 0; c < cn; c++) sum[c] += p[c * xs[1]];
                else
                    for (int64_t c = 0; c < cn; c++) sum[c] += (int8_t)p[c * xs[1]];
            }
            for (int64_t c = 0; c < cn; c++) {
                const double total = (double)(sum[c] - (int64_t)s->zx * hw);
                const float mean = (float)(total * (double)s->sx / (double)hw);
                const int32_t q = (int32_t)qcal_quantize_one(mean, s->sy, (float)s->zy, lo, hi);
                yd[n * C + c0 + c] = (uint8_t)(s->y_u8 ? q : (int8_t)q);
            }
        }
    return QCAL_OK;
}

const struct qcal_op_def qcal_op_qlinear_gap_def = {
    .name = "QLinearGlobalAveragePool", .parse = qgap_parse, .infer = qgap_infer, .layout = any_layout,
    .prepare = qgap_prepare, .run = qgap_run, .destroy = free_state,
};
