/* Resize (opsets 10-17) and Upsample (opset 9): nearest and (bi)linear on the two spatial
 * dims of a 4-D tensor, in either layout. Source coordinates and weights are computed once
 * at plan time. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "op-internal.h"

enum { CT_HALF_PIXEL, CT_PYTORCH_HALF_PIXEL, CT_ALIGN_CORNERS, CT_ASYMMETRIC, CT_TF_HALF_PIXEL_NN };
enum { NM_ROUND_PREFER_FLOOR, NM_ROUND_PREFER_CEIL, NM_FLOOR, NM_CEIL };

struct resize_params {
    bool linear;
    int coord, nearest;
    float scale[2]; /* output/input along H and W */
};

struct resize_state {
    bool linear;
    int64_t ih, oh, ow;
    int threads;                /* scratch holds one row buffer per thread */
    int64_t *h0, *h1, *w0, *w1; /* source rows/cols */
    float *hw, *ww;             /* weight of the second source (linear) */
};

static enum qcal_status resize_parse(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = op_check_arity(g, n, 1, 4, 1, 1);
    if (st != QCAL_OK || (st = op_alloc_params(g, n, sizeof(struct resize_params))) != QCAL_OK) return st;
    struct resize_params *p = n->params;
    const char *mode = qcal_node_attr_string(n, "mode", "nearest");
    if (strcmp(mode, "nearest") == 0) p->linear = false;
    else if (strcmp(mode, "linear") == 0 || strcmp(mode, "bilinear") == 0) p->linear = true;
    else return OP_ERR(g, n, QCAL_UNSUPPORTED, "mode '%s' is not supported (nearest, linear)", mode);
    bool legacy = n->op == QCAL_OP_UPSAMPLE || n->opset < 11;
    const char *ct = qcal_node_attr_string(n, "coordinate_transformation_mode", "half_pixel");
    if (legacy) p->coord = CT_ASYMMETRIC;
    else if (strcmp(ct, "half_pixel") == 0) p->coord = CT_HALF_PIXEL;
    else if (strcmp(ct, "pytorch_half_pixel") == 0) p->coord = CT_PYTORCH_HALF_PIXEL;
    else if (strcmp(ct, "align_corners") == 0) p->coord = CT_ALIGN_CORNERS;
    else if (strcmp(ct, "asymmetric") == 0) p->coord = CT_ASYMMETRIC;
    else if (strcmp(ct, "tf_half_pixel_for_nn") == 0) p->coord = CT_TF_HALF_PIXEL_NN;
    else return OP_ERR(g, n, QCAL_UNSUPPORTED, "coordinate_transformation_mode '%s' is not supported", ct);
    const char *nm = qcal_node_attr_string(n, "nearest_mode", "round_prefer_floor");
    if (legacy) p->nearest = NM_FLOOR;
    else if (strcmp(nm, "round_prefer_floor") == 0) p->nearest = NM_ROUND_PREFER_FLOOR;
    else if (strcmp(nm, "round_prefer_ceil") == 0) p->nearest = NM_ROUND_PREFER_CEIL;
    else if (strcmp(nm, "floor") == 0) p->nearest = NM_FLOOR;
    else if (strcmp(nm, "ceil") == 0) p->nearest = NM_CEIL;
    else return OP_ERR(g, n, QCAL_UNSUPPORTED, "nearest_mode '%s' is not supported", nm);
    return QCAL_OK;
}

static enum qcal_status resize_infer(struct qcal_graph *g, struct qcal_node *n)
{
    struct resize_params *p = n->params;
    enum qcal_status st = op_require_inputs(g, n, 1);
    if (st != QCAL_OK) return st;
    const struct qcal_tensor *x = &qcal_in(g, n, 0)->t;
    const bool codes = !p->linear && qcal_dtype_is_int8(x->dtype); /* nearest copies bytes */
    if (x->ndim != 4 || (x->dtype != QCAL_F32 && !codes))
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "only 4-D float32 inputs (or int8/uint8 with mode nearest) are supported");
    float scales[8];
    int64_t sizes[8];
    int ns = -1, nz = -1;
    int scales_input = n->op == QCAL_OP_UPSAMPLE || n->opset < 11 ? 1 : 2;
    if (n->op == QCAL_OP_UPSAMPLE && n->opset < 9) {
        ns = qcal_node_attr(n, "scales") ? qcal_node_attr(n, "scales")->n : -1;
        for (int i = 0; i < ns && i < 8; i++) scales[i] = qcal_node_attr(n, "scales")->floats[i];
    } else if (qcal_in(g, n, scales_input) && qcal_tensor_numel(&qcal_in(g, n, scales_input)->t) > 0) {
        if ((st = op_const_floats(g, n, scales_input, scales, 8, &ns)) != QCAL_OK) return st;
    }
    if (scales_input == 2 && qcal_in(g, n, 3) && qcal_tensor_numel(&qcal_in(g, n, 3)->t) > 0)
        if ((st = op_const_ints(g, n, 3, sizes, 8, &nz)) != QCAL_OK) return st;
    int64_t dims[4];
    if (nz == 4) {
        memcpy(dims, sizes, sizeof dims);
        p->scale[0] = (float)dims[2] / (float)x->dims[2];
        p->scale[1] = (float)dims[3] / (float)x->dims[3];
    } else if (ns == 4) {
        for (int i = 0; i < 4; i++) dims[i] = (int64_t)floorf((float)x->dims[i] * scales[i]);
        p->scale[0] = scales[2];
        p->scale[1] = scales[3];
    } else {
        return OP_ERR(g, n, QCAL_INVALID_MODEL, "needs 4 scales or 4 sizes (has %d and %d)", ns, nz);
    }
    if (dims[0] != x->dims[0] || dims[1] != x->dims[1])
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "only the spatial dims can be resized");
    if (dims[2] < 1 || dims[3] < 1 || p->scale[0] <= 0 || p->scale[1] <= 0)
        return OP_ERR(g, n, QCAL_INVALID_MODEL, "output would be empty");
    op_set_output(g, n, 0, x->dtype, 4, dims);
    return QCAL_OK;
}

static int resize_layout(const struct qcal_graph *g, const struct qcal_node *n, int kernels)
{
    (void)g, (void)n, (void)kernels;
    return -1;
}

static float source_coord(int coord, int64_t x, float scale, int64_t in, int64_t out)
{
    switch (coord) {
    case CT_HALF_PIXEL: return ((float)x + 0.5f) / scale - 0.5f;
    case CT_PYTORCH_HALF_PIXEL: return out > 1 ? ((float)x + 0.5f) / scale - 0.5f : 0.0f;
    case CT_ALIGN_CORNERS: return out == 1 ? 0.0f : (float)x * (float)(in - 1) / (float)(out - 1);
    case CT_TF_HALF_PIXEL_NN: return ((float)x + 0.5f) / scale;
    default: return (float)x / scale;
    }
}

static int64_t nearest_index(int mode, float v, int64_t in)
{
    float r;
    switch (mode) {
    case NM_ROUND_PREFER_FLOOR: r = (v == floorf(v) + 0.5f) ? floorf(v) : roundf(v); break;
    case NM_ROUND_PREFER_CEIL: r = roundf(v); break;
    case NM_FLOOR: r = floorf(v); break;
    default: r = ceilf(v); break;
    }
    int64_t i = (int64_t)r;
    return i < 0 ? 0 : i >= in ? in - 1 : i;
}

static void axis_table(const struct resize_params *p, float scale, int64_t in, int64_t out,
                       int64_t *i0, int64_t *i1, float *w)
{
    for (int64_t x = 0; x < out; x++) {
        float v = source_coord(p->coord, x, scale, in, out);
        if (!p->linear) {
            i0[x] = i1[x] = nearest_index(p->nearest, v, in);
            w[x] = 0.0f;
            continue;
        }
        if (v < 0.0f) v = 0.0f;
        if (v > (float)(in - 1)) v = (float)(in - 1);
        int64_t a = (int64_t)v;
        i0[x] = a;
        i1[x] = a + 1 < in ? a + 1 : in - 1;
        w[x] = v - (float)a;
    }
}

static void resize_destroy(void *state)
{
    struct resize_state *s = state;
    if (!s) return;
    free(s->h0);
    free(s);
}

static enum qcal_status resize_prepare(struct qcal_op_prep *pp)
{
    const struct resize_params *p = pp->node->params;
    const struct qcal_tensor *x = &qcal_in(pp->g, pp->node, 0)->t, *y = &qcal_out(pp->g, pp->node, 0)->t;
    struct resize_state *s = calloc(1, sizeof *s);
    if (!s) return OP_ERR(pp->g, pp->node, QCAL_OUT_OF_MEMORY, "out of memory");
    pp->state = s;
    s->linear = p->linear;
    s->ih = x->dims[2];
    s->threads = qcal_num_threads();
    s->oh = y->dims[2];
    s->ow = y->dims[3];
    size_t nh = (size_t)s->oh, nw = (size_t)s->ow;
    /* one block: h0 h1 w0 w1 (int64) then hw ww (float) */
    s->h0 = malloc((2 * nh + 2 * nw) * sizeof(int64_t) + (nh + nw) * sizeof(float));
    if (!s->h0) return OP_ERR(pp->g, pp->node, QCAL_OUT_OF_MEMORY, "out of memory");
    s->h1 = s->h0 + nh;
    s->w0 = s->h1 + nh;
    s->w1 = s->w0 + nw;
    s->hw = (float *)(s->w1 + nw);
    s->ww = s->hw + nh;
    axis_table(p, p->scale[0], x->dims[2], s->oh, s->h0, s->h1, s->hw);
    axis_table(p, p->scale[1], x->dims[3], s->ow, s->w0, s->w1, s->ww);
    /* separable linear: input rows interpolated along W once, then lerped along H */
    if (s->linear) pp->scratch_size = sizeof(float) * (size_t)(s->threads * s->ih * s->ow);
    pp->impl = "ref";
    return QCAL_OK;
}

/* Nearest neighbour on int8/uint8 codes (quantized tensors), any layouts. */
static void nearest_bytes(const struct resize_state *s, const struct qcal_op_args *a)
{
    const struct qcal_tensor *x = a->in[0], *y = a->out[0];
    const uint8_t *xd = x->data;
    uint8_t *yd = y->data;
    int64_t xs[4], ys[4];
    op_strides(x, op_in_layout(a, 0), xs);
    op_strides(y, op_out_layout(a, 0), ys);
    const int64_t N = x->dims[0], C = x->dims[1];
    const int threads = op_threads();
#pragma omp parallel for collapse(2) num_threads(threads) if (threads > 1)
    for (int64_t n = 0; n < N; n++)
        for (int64_t oh = 0; oh < s->oh; oh++) {
            const uint8_t *r = xd + n * xs[0] + s->h0[oh] * xs[2];
            uint8_t *yr = yd + n * ys[0] + oh * ys[2];
            for (int64_t ow = 0; ow < s->ow; ow++) {
                const uint8_t *src = r + s->w0[ow] * xs[3];
                uint8_t *dst = yr + ow * ys[3];
                if (xs[1] == 1 && ys[1] == 1) memcpy(dst, src, (size_t)C);
                else
                    for (int64_t c = 0; c < C; c++) dst[c * ys[1]] = src[c * xs[1]];
            }
        }
}

static enum qcal_status resize_run(const void *state, const struct qcal_op_args *a)
{
    const struct resize_state *s = state;
    const struct qcal_tensor *x = a->in[0], *y = a->out[0];
    if (x->dtype != QCAL_F32) {
        nearest_bytes(s, a);
        return QCAL_OK;
    }
    const float *xd = x->data;
    float *yd = y->data;
    int64_t xs[4], ys[4];
    op_strides(x, op_in_layout(a, 0), xs);
    op_strides(y, op_out_layout(a, 0), ys);
    const int64_t N = x->dims[0], C = x->dims[1];
    const bool nhwc = op_in_layout(a, 0) == QCAL_LAYOUT_NHWC && op_out_layout(a, 0) == QCAL_LAYOUT_NHWC;
    int threads = op_threads();
    if (op_out_layout(a, 0) == QCAL_LAYOUT_PLAIN) {
        /* plain output: each channel plane written contiguously, whatever the input layout */
        if (threads > s->threads) threads = s->threads;
#pragma omp parallel for collapse(2) num_threads(threads) if (threads > 1)
        for (int64_t n = 0; n < N; n++)
            for (int64_t c = 0; c < C; c++) {
                const float *xc = xd + n * xs[0] + c * xs[1];
                float *yc = yd + n * ys[0] + c * ys[1];
                if (!s->linear) {
                    for (int64_t oh = 0; oh < s->oh; oh++)
                        for (int64_t ow = 0; ow < s->ow; ow++)
                            yc[oh * ys[2] + ow] = xc[s->h0[oh] * xs[2] + s->w0[ow] * xs[3]];
                    continue;
                }
                float *rows = (float *)a->scratch + (size_t)omp_get_thread_num() * (size_t)(s->ih * s->ow);
                for (int64_t ih = 0; ih < s->ih; ih++) {
                    const float *xr = xc + ih * xs[2];
                    float *t = rows + ih * s->ow;
                    for (int64_t ow = 0; ow < s->ow; ow++) {
                        float l = xr[s->w0[ow] * xs[3]], r = xr[s->w1[ow] * xs[3]];
                        t[ow] = l + (r - l) * s->ww[ow];
                    }
                }
                for (int64_t oh = 0; oh < s->oh; oh++) {
                    const float *top = rows + s->h0[oh] * s->ow, *bot = rows + s->h1[oh] * s->ow;
                    const float fh = s->hw[oh];
                    float *yr = yc + oh * ys[2];
                    for (int64_t ow = 0; ow < s->ow; ow++) yr[ow] = top[ow] + (bot[ow] - top[ow]) * fh;
                }
            }
        return QCAL_OK;
    }
#pragma omp parallel for collapse(2) num_threads(threads) if (threads > 1)
    for (int64_t n = 0; n < N; n++)
        for (int64_t oh = 0; oh < s->oh; oh++) {
            const float *r0 = xd + n * xs[0] + s->h0[oh] * xs[2];
            const float *r1 = xd + n * xs[0] + s->h1[oh] * xs[2];
            const float fh = s->hw[oh];
            float *yr = yd + n * ys[0] + oh * ys[2];
            for (int64_t ow = 0; ow < s->ow; ow++) {
                const int64_t c0 = s->w0[ow] * xs[3], c1 = s->w1[ow] * xs[3];
                const float fw = s->ww[ow];
                float *yp = yr + ow * ys[3];
                if (!s->linear) {
                    if (nhwc) memcpy(yp, r0 + c0, sizeof(float) * (size_t)C);
                    else
                        for (int64_t c = 0; c < C; c++) yp[c * ys[1]] = r0[c * xs[1] + c0];
                    continue;
                }
                for (int64_t c = 0; c < C; c++) {
                    const int64_t co = c * xs[1];
                    float top = r0[co + c0] + (r0[co + c1] - r0[co + c0]) * fw;
                    float bot = r1[co + c0] + (r1[co + c1] - r1[co + c0]) * fw;
                    yp[c * ys[1]] = top + (bot - top) * fh;
                }
            }
        }
    return QCAL_OK;
}

const struct qcal_op_def qcal_op_resize_def = {
    .name = "Resize", .parse = resize_parse, .infer = resize_infer, .layout = resize_layout,
    .prepare = resize_prepare, .run = resize_run, .destroy = resize_destroy, .any_out_layout = true,
};
