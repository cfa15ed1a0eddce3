/* kernels: oneDNN and OpenBLAS convolutions and matmuls against the reference kernels on
 * many shapes (groups, strides, dilations, asymmetric pads, transposed, fused post-ops),
 * and strided copies against a naive loop. Tolerance: 1e-4 of the output's max. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/ops/op-internal.h" /* op_quantize16 */
#include "check.h"
#include "qcal/kernels.h"

static unsigned long long seed = 0x1234567ull;
static int winograd_cases;

static float *rand_buf(size_t n)
{
    float *p = qcal_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = check_rand(&seed);
    return p;
}

/* plain NCHW <-> NHWC */
static void to_nhwc(const float *x, float *y, int64_t n, int64_t c, int64_t h, int64_t w)
{
    for (int64_t a = 0; a < n; a++)
        for (int64_t k = 0; k < c; k++)
            for (int64_t i = 0; i < h * w; i++) y[(a * h * w + i) * c + k] = x[(a * c + k) * h * w + i];
}

static double max_rel_diff(const float *a, const float *b, size_t n)
{
    double m = 1e-30, d = 0;
    for (size_t i = 0; i < n; i++) {
        m = fabs(a[i]) > m ? fabs(a[i]) : m;
        d = fabs(a[i] - b[i]) > d ? fabs(a[i] - b[i]) : d;
    }
    return d / m;
}

static void conv_case(struct qcal_conv_desc d)
{
    int64_t wn = d.transposed ? d.ic * (d.oc / d.group) * d.kh * d.kw : d.oc * (d.ic / d.group) * d.kh * d.kw;
    size_t xn = (size_t)(d.n * d.ic * d.ih * d.iw), yn = (size_t)(d.n * d.oc * d.oh * d.ow);
    float *x = rand_buf(xn), *w = rand_buf((size_t)wn), *b = rand_buf((size_t)d.oc);
    float *res = rand_buf(yn);
    float *ref = qcal_malloc(yn * 4), *got = qcal_malloc(yn * 4), *xh = qcal_malloc(xn * 4);
    float *refh = qcal_malloc(yn * 4);
    if (d.transposed) qcal_ref_conv_transpose2d(&d, x, w, b, ref, 1);
    else qcal_ref_conv2d(&d, x, w, b, ref, 1);
    qcal_post_ops_apply(&d.post, ref, res, yn);
    to_nhwc(ref, refh, d.n, d.oc, d.oh, d.ow);
    to_nhwc(x, xh, d.n, d.ic, d.ih, d.iw);
    struct qcal_dnnl_prim *p = NULL;
    CHECK(qcal_dnnl_conv_create(&d, w, b, &p) == QCAL_OK);
    if (p) {
        void *scratch = qcal_malloc(qcal_dnnl_scratch_size(p) + 1);
        struct qcal_dnnl_bound *bd = NULL;
        to_nhwc(res, got, d.n, d.oc, d.oh, d.ow); /* the SUM post-op adds what dst holds */
        CHECK(qcal_dnnl_bind(p, xh, got, scratch, &bd) == QCAL_OK);
        CHECK(bd && qcal_dnnl_run(bd) == QCAL_OK);
        if (strstr(qcal_dnnl_impl(p), "wino")) winograd_cases++;
        double e = max_rel_diff(refh, got, yn);
        CHECK(e <= 1e-4);
        if (e > 1e-4)
            fprintf(stderr, "  dnnl conv ic%lld oc%lld k%lldx%lld s%lld d%lld g%lld t%d: rel err %g\n",
                    (long long)d.ic, (long long)d.oc, (long long)d.kh, (long long)d.kw, (long long)d.sh,
                    (long long)d.dh, (long long)d.group, d.transposed, e);
        qcal_dnnl_unbind(bd);
        qcal_free(scratch);
        qcal_dnnl_destroy(p);
    }
    if (!d.transposed) {
        float *scratch = qcal_malloc(qcal_blas_conv2d_scratch(&d, 2) + 4);
        qcal_blas_conv2d(&d, x, w, b, got, scratch, 2);
        qcal_post_ops_apply(&d.post, got, res, yn);
        CHECK(max_rel_diff(ref, got, yn) <= 1e-4);
        qcal_free(scratch);
    }
    qcal_free(x), qcal_free(w), qcal_free(b), qcal_free(res), qcal_free(ref), qcal_free(got), qcal_free(xh),
        qcal_free(refh);
}

static int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe)
{
    return (in + pb + pe - ((k - 1) * d + 1)) / s + 1;
}

static void test_convs(void)
{
    struct { int64_t n, ic, oc, h, w, k, s, d, g, pt, pl, pb, pr; } cases[] = {
        {1, 3, 16, 15, 17, 3, 1, 1, 1, 1, 1, 1, 1},  {2, 8, 8, 9, 9, 3, 2, 1, 8, 1, 1, 1, 1},
        {1, 16, 24, 7, 6, 1, 1, 1, 1, 0, 0, 0, 0},   {1, 6, 9, 12, 11, 3, 1, 2, 3, 2, 2, 2, 2},
        {1, 5, 7, 10, 13, 4, 2, 1, 1, 1, 2, 2, 1},   {1, 32, 32, 14, 14, 5, 1, 1, 32, 2, 2, 2, 2},
        {1, 4, 64, 33, 31, 7, 2, 1, 1, 3, 3, 3, 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct qcal_conv_desc d = {0};
        d.n = cases[i].n, d.ic = cases[i].ic, d.oc = cases[i].oc, d.ih = cases[i].h, d.iw = cases[i].w;
        d.kh = d.kw = cases[i].k, d.sh = d.sw = cases[i].s, d.dh = d.dw = cases[i].d, d.group = cases[i].g;
        d.pt = cases[i].pt, d.pl = cases[i].pl, d.pb = cases[i].pb, d.pr = cases[i].pr;
        d.oh = out_size(d.ih, d.kh, d.sh, d.dh, d.pt, d.pb);
        d.ow = out_size(d.iw, d.kw, d.sw, d.dw, d.pl, d.pr);
        conv_case(d);
        /* the same with a post-op chain: linear, residual sum, hard-swish */
        d.post.n = 3;
        d.post.op[0] = (struct qcal_act){.kind = QCAL_ACT_LINEAR, .alpha = 0.5f, .beta = 0.25f};
        d.post.op[1] = (struct qcal_act){.kind = QCAL_ACT_SUM};
        d.post.op[2] = (struct qcal_act){.kind = QCAL_ACT_HARD_SWISH};
        conv_case(d);
    }
    /* 3x3 stride-1 convolutions with many channels take oneDNN's Winograd path, through
     * blocked copies of src and dst */
    struct qcal_conv_desc wg = {.n = 1, .ic = 64, .oc = 80, .ih = 12, .iw = 13, .kh = 3, .kw = 3, .sh = 1,
                                .sw = 1, .dh = 1, .dw = 1, .group = 1, .pt = 1, .pl = 1, .pb = 1, .pr = 1};
    wg.oh = 12, wg.ow = 13;
    conv_case(wg);
    wg.post.n = 1;
    wg.post.op[0] = (struct qcal_act){.kind = QCAL_ACT_RELU};
    conv_case(wg);
    wg.post.n = 2; /* no Winograd kernel for this chain: the direct one must take over */
    wg.post.op[0] = (struct qcal_act){.kind = QCAL_ACT_LINEAR, .alpha = 0.5f, .beta = 0.25f};
    wg.post.op[1] = (struct qcal_act){.kind = QCAL_ACT_HARD_SWISH};
    conv_case(wg);
    /* transposed: k2 s2 (upsampling heads) and k4 s2 p1 with groups */
    struct qcal_conv_desc t = {.n = 1, .ic = 8, .oc = 4, .ih = 5, .iw = 6, .kh = 2, .kw = 2, .sh = 2, .sw = 2,
                               .dh = 1, .dw = 1, .group = 1, .transposed = true};
    t.oh = 10, t.ow = 12;
    conv_case(t);
    t.group = 2, t.oc = 6, t.kh = t.kw = 4, t.pt = t.pl = t.pb = t.pr = 1;
    t.oh = 2 * (5 - 1) + 4 - 2, t.ow = 2 * (6 - 1) + 4 - 2;
    t.post.n = 1, t.post.op[0] = (struct qcal_act){.kind = QCAL_ACT_RELU};
    conv_case(t);
}

static void test_matmul(void)
{
    int64_t m = 3, n = 37, k = 70;
    float *a = rand_buf((size_t)(m * k)), *w = rand_buf((size_t)(k * n)), *b = rand_buf((size_t)n);
    float *ref = qcal_malloc((size_t)(m * n) * 4), *got = qcal_malloc((size_t)(m * n) * 4);
    for (int trans = 0; trans < 2; trans++) {
        /* trans: w holds [N, K] */
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) ref[i * n + j] = b[j];
        qcal_ref_gemm(false, trans, m, n, k, 1.0f, a, k, w, trans ? k : n, 1.0f, ref, n, 1);
        struct qcal_post_ops post = {.n = 1, .op = {{.kind = QCAL_ACT_RELU}}};
        qcal_post_ops_apply(&post, ref, NULL, (size_t)(m * n));
        struct qcal_dnnl_prim *p = NULL;
        CHECK(qcal_dnnl_matmul_create(m, n, k, w, trans, b, 1.0f, &post, &p) == QCAL_OK);
        struct qcal_dnnl_bound *bd = NULL;
        void *scratch = qcal_malloc(qcal_dnnl_scratch_size(p) + 1);
        CHECK(qcal_dnnl_bind(p, a, got, scratch, &bd) == QCAL_OK);
        CHECK(qcal_dnnl_run(bd) == QCAL_OK);
        CHECK(max_rel_diff(ref, got, (size_t)(m * n)) <= 1e-5);
        qcal_dnnl_unbind(bd);
        qcal_dnnl_destroy(p);
        qcal_free(scratch);
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) got[i * n + j] = b[j];
        qcal_blas_gemm(false, trans, m, n, k, 1.0f, a, k, w, trans ? k : n, 1.0f, got, n, 1);
        qcal_post_ops_apply(&post, got, NULL, (size_t)(m * n));
        CHECK(max_rel_diff(ref, got, (size_t)(m * n)) <= 1e-5);
    }
    qcal_free(a), qcal_free(w), qcal_free(b), qcal_free(ref), qcal_free(got);
}

static void test_copy_strided(void)
{
    /* transpose a 2x3x4 tensor to 4x2x3 through strides */
    float x[24], y[24];
    for (int i = 0; i < 24; i++) x[i] = (float)i;
    int64_t dims[3] = {4, 2, 3}, src[3] = {1, 12, 4}, dst[3] = {6, 3, 1};
    qcal_copy_strided(3, dims, 4, x, src, y, dst);
    int bad = 0;
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 3; c++) bad += y[a * 6 + b * 3 + c] != x[b * 12 + c * 4 + a];
    CHECK_EQ_INT(bad, 0);
    /* contiguous dims merge into one memcpy; unit dims are dropped */
    int64_t d2[3] = {2, 1, 12}, s2[3] = {12, 12, 1};
    memset(y, 0, sizeof y);
    qcal_copy_strided(3, d2, 4, x, s2, y, s2);
    CHECK(memcmp(x, y, sizeof x) == 0);
}

/* ---- INT8 reference convolution ----
 * Two oracles written here: (1) the same integer arithmetic in another loop order over an
 * explicitly zero-point-padded input, with the documented requantization: exactly equal;
 * (2) the QDQ graph in double (dequantize, convolve, activation, quantize): at most one step
 * apart, and equal almost everywhere. */
struct qcase {
    int64_t n, ic, ih, iw, oc, k, stride, pad, dil, group;
    bool x_u8, y_u8;
    int act; /* 0 none, 1 relu, 2 clip(0, 6), 3 hardswish, 4 hardsigmoid (PP-LCNet: 0.2x + 0.5) */
};

static int32_t rand_int(int lo, int hi) { return lo + (int32_t)((check_rand(&seed) * 0.5 + 0.5) * (hi - lo + 1) * 0.999999); }

static float quantize_ref(double v, float scale, int32_t zp, bool u8)
{
    double q = nearbyint(v) + zp; /* v already divided by the scale */
    (void)scale;
    const double lo = u8 ? 0 : -128, hi = u8 ? 255 : 127;
    return (float)(q < lo ? lo : q > hi ? hi : q);
}

static void test_conv_int8_case(const struct qcase *c)
{
    struct qcal_conv_desc d = {.n = c->n, .ic = c->ic, .ih = c->ih, .iw = c->iw, .oc = c->oc, .kh = c->k, .kw = c->k,
                               .sh = c->stride, .sw = c->stride, .dh = c->dil, .dw = c->dil, .pt = c->pad, .pl = c->pad,
                               .pb = c->pad, .pr = c->pad, .group = c->group};
    d.oh = (c->ih + 2 * c->pad - c->dil * (c->k - 1) - 1) / c->stride + 1;
    d.ow = (c->iw + 2 * c->pad - c->dil * (c->k - 1) - 1) / c->stride + 1;
    static const struct qcal_act acts[5] = {{.kind = QCAL_ACT_NONE}, {.kind = QCAL_ACT_RELU},
                                            {.kind = QCAL_ACT_CLIP, .alpha = 0, .beta = 6},
                                            {.kind = QCAL_ACT_HARD_SWISH},
                                            {.kind = QCAL_ACT_HARD_SIGMOID, .alpha = 0.2f, .beta = 0.5f}};
    if (c->act) d.post = (struct qcal_post_ops){.n = 1, .op = {acts[c->act]}};
    const int64_t icg = c->ic / c->group, ocg = c->oc / c->group;
    const int64_t nx = c->n * c->ic * c->ih * c->iw, nw = c->oc * icg * c->k * c->k, ny = c->n * c->oc * d.oh * d.ow;
    uint8_t *x = malloc((size_t)nx), *y = malloc((size_t)ny);
    int8_t *w = malloc((size_t)nw);
    int32_t *b = malloc(sizeof(int32_t) * (size_t)c->oc);
    float *ws = malloc(sizeof(float) * (size_t)c->oc);
    struct qcal_qconv q = {.x_scale = 0.02f + 0.01f * (float)(check_rand(&seed) + 1), .y_scale = 0.05f,
                           .x_zp = c->x_u8 ? rand_int(0, 255) : rand_int(-20, 20), .y_zp = c->y_u8 ? 3 : -5,
                           .x_u8 = c->x_u8, .y_u8 = c->y_u8, .w_scale = ws, .per_channel = true};
    for (int64_t i = 0; i < nx; i++) x[i] = (uint8_t)(c->x_u8 ? rand_int(0, 255) : rand_int(-128, 127));
    for (int64_t i = 0; i < nw; i++) w[i] = (int8_t)rand_int(-127, 127);
    for (int64_t o = 0; o < c->oc; o++) {
        ws[o] = 0.002f + 0.002f * (float)(check_rand(&seed) + 1);
        b[o] = rand_int(-3000, 3000);
    }
    /* y_scale so that outputs spread over the range without saturating everything */
    q.y_scale = q.x_scale * ws[0] * 127.0f * (float)(icg * c->k * c->k) / 40.0f;
    qcal_ref_conv2d_int8(&d, &q, x, w, b, y, 1);

    /* oracle 1: zero-point padded input, output-position-major integer sums */
    const int64_t ph = c->ih + 2 * c->pad, pw = c->iw + 2 * c->pad;
    int32_t *xp = malloc(sizeof(int32_t) * (size_t)(c->n * c->ic * ph * pw));
    for (int64_t i = 0; i < c->n * c->ic * ph * pw; i++) xp[i] = 0; /* (zp - zp) */
    for (int64_t a = 0; a < c->n * c->ic; a++)
        for (int64_t i = 0; i < c->ih; i++)
            for (int64_t j = 0; j < c->iw; j++) {
                int32_t v = c->x_u8 ? x[(a * c->ih + i) * c->iw + j] : (int8_t)x[(a * c->ih + i) * c->iw + j];
                xp[(a * ph + i + c->pad) * pw + j + c->pad] = v - q.x_zp;
            }
    int64_t exact = 0, near = 0, same = 0;
    for (int64_t a = 0; a < c->n; a++)
        for (int64_t o = 0; o < c->oc; o++)
            for (int64_t i = 0; i < d.oh; i++)
                for (int64_t j = 0; j < d.ow; j++) {
                    long long acc = b[o];
                    double fsum = (double)b[o] * ((double)q.x_scale * ws[o]);
                    for (int64_t k = 0; k < icg; k++)
                        for (int64_t u = 0; u < c->k; u++)
                            for (int64_t v = 0; v < c->k; v++) {
                                const int32_t xv = xp[((a * c->ic + (o / ocg) * icg + k) * ph + i * c->stride +
                                                       u * c->dil) * pw + j * c->stride + v * c->dil];
                                const int8_t wv = w[((o * icg + k) * c->k + u) * c->k + v];
                                acc += (long long)xv * wv;
                                fsum += ((double)xv * q.x_scale) * ((double)wv * ws[o]);
                            }
                    float f = (float)acc * (q.x_scale * ws[o]);
                    double g = fsum;
                    if (c->act) f = qcal_act_apply(&acts[c->act], f), g = qcal_act_apply(&acts[c->act], (float)g);
                    const float want = quantize_ref(rintf(f / q.y_scale), q.y_scale, q.y_zp, c->y_u8);
                    const float qdq = quantize_ref(g / q.y_scale, q.y_scale, q.y_zp, c->y_u8);
                    const int64_t at = ((a * c->oc + o) * d.oh + i) * d.ow + j;
                    const float got = c->y_u8 ? (float)y[at] : (float)(int8_t)y[at];
                    exact += got == want;
                    near += fabsf(got - qdq) <= 1.0f;
                    same += got == qdq;
                }
    CHECK_EQ_INT(exact, ny);
    CHECK_EQ_INT(near, ny);
    CHECK(same >= ny * 99 / 100);

    /* oneDNN INT8 (NHWC bytes) against the reference: within one step, equal almost everywhere */
    struct qcal_dnnl_prim *prim = NULL;
    const bool created = qcal_dnnl_available() && qcal_dnnl_conv_int8_create(&d, &q, w, b, &prim) == QCAL_OK;
    /* HardSigmoid (linear + clip post-ops) is refused on purpose: oneDNN 2.6 gets it wrong */
    CHECK(created == (qcal_dnnl_available() && c->act != 4));
    if (created) {
        uint8_t *xh = malloc((size_t)nx), *yh = malloc((size_t)ny);
        void *scratch = qcal_malloc(qcal_dnnl_scratch_size(prim) + 64);
        for (int64_t a = 0; a < c->n; a++)
            for (int64_t k = 0; k < c->ic; k++)
                for (int64_t i = 0; i < c->ih * c->iw; i++)
                    xh[(a * c->ih * c->iw + i) * c->ic + k] = x[(a * c->ic + k) * c->ih * c->iw + i];
        struct qcal_dnnl_bound *bound = NULL;
        CHECK(qcal_dnnl_bind(prim, xh, yh, scratch, &bound) == QCAL_OK);
        CHECK(bound && qcal_dnnl_run(bound) == QCAL_OK);
        int64_t within = 0, equal = 0;
        for (int64_t a = 0; a < c->n; a++)
            for (int64_t o = 0; o < c->oc; o++)
                for (int64_t i = 0; i < d.oh * d.ow; i++) {
                    const int64_t r = (a * c->oc + o) * d.oh * d.ow + i, h = (a * d.oh * d.ow + i) * c->oc + o;
                    const int dv = c->y_u8 ? yh[h] : (int8_t)yh[h], rv = c->y_u8 ? y[r] : (int8_t)y[r];
                    within += abs(dv - rv) <= 1;
                    equal += dv == rv;
                }
        CHECK_EQ_INT(within, ny);
        CHECK(equal >= ny * 99 / 100);
        if (within != ny || equal < ny * 99 / 100)
            fprintf(stderr, "  oneDNN INT8 (%s): %lld of %lld equal, %lld within one step\n", qcal_dnnl_impl(prim),
                    (long long)equal, (long long)ny, (long long)within);
        qcal_dnnl_unbind(bound);
        qcal_free(scratch);
        free(xh), free(yh);
    }
    qcal_dnnl_destroy(prim);
    free(x), free(y), free(w), free(b), free(ws), free(xp);
}

static void test_conv_int8(void)
{
    static const struct qcase cases[] = {
        {1, 3, 9, 9, 8, 3, 1, 1, 1, 1, true, true, 1},    /* first layer: uint8 in, ReLU */
        {2, 8, 7, 6, 8, 3, 2, 1, 1, 8, false, false, 0}, /* depthwise, stride 2, int8 */
        {1, 4, 10, 10, 6, 1, 1, 0, 1, 1, true, false, 3}, /* 1x1, HardSwish to int8 */
        {1, 6, 8, 8, 4, 3, 1, 2, 2, 2, false, true, 2},  /* dilation 2, groups 2, ReLU6 */
        {1, 8, 6, 6, 8, 3, 1, 1, 1, 1, true, true, 4},   /* HardSigmoid (linear + clip post-ops): 1x1 on pooled features, HardSigmoid */
        {1, 8, 6, 6, 8, 3, 1, 1, 1, 1, false, false, 3}, /* 3x3 int8, HardSwish */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) test_conv_int8_case(&cases[i]);
}

/* op_quantize16 (multiply by 1/scale, divide next to half-integers) against the scalar
 * QuantizeLinear that divides, on random values and on values a few ulp around every
 * half-integer code boundary, for scales that are not powers of two. */
__attribute__((target("avx512f"))) static void quantize16_all(const float *x, int n, float sc, uint8_t *out)
{
    for (int i = 0; i < n; i += 16) {
        const __m512i q = op_quantize16(_mm512_loadu_ps(x + i), _mm512_set1_ps(sc), _mm512_set1_ps(1.0f / sc),
                                        _mm512_set1_ps(3.0f), _mm512_set1_ps(-128.0f), _mm512_set1_ps(127.0f));
        int32_t lanes[16];
        _mm512_storeu_si512(lanes, q);
        for (int k = 0; k < 16; k++) out[i + k] = (uint8_t)lanes[k];
    }
}

static void test_quantize16(void)
{
    if (!qcal_cpu()->avx512f) return;
    const float scales[] = {0.04f, 0.1f, 1.0f / 3.0f, 0.0123457f, 7.3f, 1e-3f};
    int64_t mismatches = 0, near_ties = 0;
    for (size_t si = 0; si < sizeof scales / sizeof scales[0]; si++) {
        const float sc = scales[si];
        float x[4096];
        uint8_t fast[4096];
        for (int round = 0; round < 64; round++) {
            for (int i = 0; i < 4096; i++) {
                if (i % 2) { /* next to (k + 0.5) * scale */
                    float v = ((float)(i / 2 % 400) - 200.0f + 0.5f) * sc;
                    for (int u = 0; u < (i + round) % 7; u++) v = nextafterf(v, (i + round) % 3 ? INFINITY : -INFINITY);
                    x[i] = v;
                    near_ties++;
                } else {
                    x[i] = check_rand(&seed) * 300.0f * sc;
                }
            }
            quantize16_all(x, 4096, sc, fast);
            for (int i = 0; i < 4096; i++)
                mismatches += fast[i] != (uint8_t)(int32_t)qcal_quantize_one(x[i], sc, 3.0f, -128.0f, 127.0f);
        }
    }
    CHECK(near_ties > 100000);
    CHECK_EQ_INT(mismatches, 0);
}

int main(void)
{
    qcal_log_set_level(QCAL_LOG_ERROR);
    CHECK(qcal_dnnl_available());
    test_convs();
    CHECK_EQ_INT(winograd_cases, 2);
    test_matmul();
    test_copy_strided();
    test_conv_int8();
    test_quantize16();
    return check_report();
}
