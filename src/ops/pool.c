/* MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool on 1-D/2-D inputs, in either
 * layout (the reference walks strides); oneDNN pooling for 2-D NHWC windows. */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "op-internal.h"
#include "qcal/kernels.h"

enum { POOL_MAX, POOL_AVG, POOL_GAVG, POOL_GMAX };

struct pool_params {
    int kind;
    bool ceil_mode, count_include_pad;
    struct qcal_conv_desc d; /* window geometry, resolved by infer */
};

struct pool_state {
    int kind;
    int32_t dtype; /* float32, or int8/uint8 codes (max pooling commutes with quantization) */
    bool count_include_pad;
    struct qcal_conv_desc d;
    struct qcal_dnnl_prim *prim;
};

static enum qcal_status pool_parse(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = op_check_arity(g, n, 1, 1, 1, n->op == QCAL_OP_MAX_POOL ? 2 : 1);
    if (st != QCAL_OK) return st;
    if (n->op == QCAL_OP_MAX_POOL && n->n_outputs == 2)
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "the Indices output is not supported");
    if ((st = op_alloc_params(g, n, sizeof(struct pool_params))) != QCAL_OK) return st;
    struct pool_params *p = n->params;
    p->kind = n->op == QCAL_OP_MAX_POOL ? POOL_MAX
              : n->op == QCAL_OP_AVERAGE_POOL ? POOL_AVG
              : n->op == QCAL_OP_GLOBAL_AVERAGE_POOL ? POOL_GAVG : POOL_GMAX;
    p->ceil_mode = qcal_node_attr_int(n, "ceil_mode", 0) != 0;
    p->count_include_pad = qcal_node_attr_int(n, "count_include_pad", 0) != 0;
    return QCAL_OK;
}

static int64_t pool_out(int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe, bool ceil_mode)
{
    int64_t span = in + pb + pe - ((k - 1) * d + 1);
    if (span < 0) return 0;
    int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (out - 1) * s >= in + pb) out--; /* last window must start inside */
    return out;
}

static enum qcal_status pool_infer(struct qcal_graph *g, struct qcal_node *n)
{
    struct pool_params *p = n->params;
    enum qcal_status st = op_require_inputs(g, n, 1);
    if (st != QCAL_OK) return st;
    const struct qcal_tensor *x = &qcal_in(g, n, 0)->t;
    if (x->ndim != 3 && x->ndim != 4)
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "input has %d dims; 1-D and 2-D pooling only", x->ndim);
    const bool is_max = p->kind == POOL_MAX || p->kind == POOL_GMAX;
    if (x->dtype != QCAL_F32 && !(is_max && qcal_dtype_is_int8(x->dtype)))
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "input must be float32 (or int8/uint8 for max pooling)");
    int sp = x->ndim - 2;
    struct qcal_conv_desc *d = &p->d;
    memset(d, 0, sizeof *d);
    d->n = x->dims[0];
    d->ic = d->oc = x->dims[1];
    d->ih = sp == 2 ? x->dims[2] : 1;
    d->iw = x->dims[x->ndim - 1];
    d->sh = d->sw = d->dh = d->dw = d->kh = d->kw = 1;
    d->group = 1;
    if (p->kind == POOL_GAVG || p->kind == POOL_GMAX) {
        d->kh = d->ih;
        d->kw = d->iw;
    } else {
        int64_t v[4];
        int c = qcal_node_attr_ints(n, "kernel_shape", v, 4);
        if (c != sp) return OP_ERR(g, n, QCAL_INVALID_MODEL, "kernel_shape needs %d values", sp);
        d->kh = sp == 2 ? v[0] : 1;
        d->kw = v[sp - 1];
        if ((c = qcal_node_attr_ints(n, "strides", v, 4)) >= 0) {
            if (c != sp) return OP_ERR(g, n, QCAL_INVALID_MODEL, "strides needs %d values", sp);
            d->sh = sp == 2 ? v[0] : 1;
            d->sw = v[sp - 1];
        }
        if ((c = qcal_node_attr_ints(n, "dilations", v, 4)) >= 0) {
            if (c != sp) return OP_ERR(g, n, QCAL_INVALID_MODEL, "dilations needs %d values", sp);
            d->dh = sp == 2 ? v[0] : 1;
            d->dw = v[sp - 1];
        }
        if ((c = qcal_node_attr_ints(n, "pads", v, 4)) >= 0) {
            if (c != 2 * sp) return OP_ERR(g, n, QCAL_INVALID_MODEL, "pads needs %d values", 2 * sp);
            if (sp == 2) d->pt = v[0], d->pl = v[1], d->pb = v[2], d->pr = v[3];
            else d->pl = v[0], d->pr = v[1];
        }
        const char *ap = qcal_node_attr_string(n, "auto_pad", "NOTSET");
        if (strcmp(ap, "SAME_UPPER") == 0 || strcmp(ap, "SAME_LOWER") == 0) {
            int64_t in[2] = {d->ih, d->iw}, k[2] = {d->kh, d->kw}, s[2] = {d->sh, d->sw};
            int64_t dl[2] = {d->dh, d->dw}, pb[2], pe[2];
            for (int i = 0; i < 2; i++) {
                int64_t out = (in[i] + s[i] - 1) / s[i];
                int64_t total = (out - 1) * s[i] + (k[i] - 1) * dl[i] + 1 - in[i];
                if (total < 0) total = 0;
                pb[i] = ap[5] == 'U' ? total / 2 : total - total / 2;
                pe[i] = total - pb[i];
            }
            d->pt = pb[0], d->pl = pb[1], d->pb = pe[0], d->pr = pe[1];
        } else if (strcmp(ap, "VALID") == 0) {
            d->pt = d->pl = d->pb = d->pr = 0;
        } else if (strcmp(ap, "NOTSET") != 0) {
            return OP_ERR(g, n, QCAL_INVALID_MODEL, "auto_pad '%s' is not valid", ap);
        }
        if (d->kh < 1 || d->kw < 1 || d->sh < 1 || d->sw < 1 || d->pt < 0 || d->pl < 0 ||
            d->pb < 0 || d->pr < 0)
            return OP_ERR(g, n, QCAL_INVALID_MODEL, "invalid kernel, strides or pads");
    }
    d->oh = pool_out(d->ih, d->kh, d->sh, d->dh, d->pt, d->pb, p->ceil_mode);
    d->ow = pool_out(d->iw, d->kw, d->sw, d->dw, d->pl, d->pr, p->ceil_mode);
    if (d->oh < 1 || d->ow < 1) return OP_ERR(g, n, QCAL_INVALID_MODEL, "output would be empty");
    int64_t dims[4] = {d->n, d->oc, d->oh, d->ow};
    if (sp == 1) dims[2] = d->ow;
    op_set_output(g, n, 0, x->dtype, x->ndim, dims);
    return QCAL_OK;
}

static int pool_layout(const struct qcal_graph *g, const struct qcal_node *n, int kernels)
{
    (void)g, (void)n, (void)kernels;
    return -1;
}

static void pool_destroy(void *state)
{
    struct pool_state *s = state;
    if (!s) return;
    qcal_dnnl_destroy(s->prim);
    free(s);
}

static enum qcal_status pool_prepare(struct qcal_op_prep *pp)
{
    const struct pool_params *p = pp->node->params;
    struct pool_state *s = calloc(1, sizeof *s);
    if (!s) return OP_ERR(pp->g, pp->node, QCAL_OUT_OF_MEMORY, "out of memory");
    pp->state = s;
    s->kind = p->kind;
    s->dtype = qcal_in(pp->g, pp->node, 0)->t.dtype;
    s->count_include_pad = p->count_include_pad;
    s->d = p->d;
    pp->impl = "ref";
    bool windowed = p->kind == POOL_MAX || p->kind == POOL_AVG;
    bool simple_avg = p->kind == POOL_MAX || !p->ceil_mode;
    if (pp->in_layout[0] == QCAL_LAYOUT_NHWC && windowed && simple_avg &&
        pp->kernels != QCAL_KERNELS_REF) {
        struct qcal_conv_desc d = s->d;
        /* ceil_mode windows hang over the end: oneDNN sees that as extra end padding */
        d.pb = (d.oh - 1) * d.sh + (d.kh - 1) * d.dh + 1 - d.ih - d.pt;
        d.pr = (d.ow - 1) * d.sw + (d.kw - 1) * d.dw + 1 - d.iw - d.pl;
        if (d.pb < 0) d.pb = 0;
        if (d.pr < 0) d.pr = 0;
        int kind = p->kind == POOL_MAX ? 0 : p->count_include_pad ? 2 : 1;
        if (qcal_dnnl_pool_create(&d, kind, s->dtype, &s->prim) == QCAL_OK) {
            pp->scratch_size = qcal_dnnl_scratch_size(s->prim);
            pp->impl = qcal_dnnl_impl(s->prim);
        }
    }
    return QCAL_OK;
}

static enum qcal_status pool_bind(const void *state, const struct qcal_op_args *a, void **bound_out)
{
    return op_dnnl_bind(((const struct pool_state *)state)->prim, a, bound_out);
}

/* Global pooling in NHWC: channels are contiguous, so sum whole rows of C. */
static void global_pool_nhwc(const struct qcal_conv_desc *d, bool is_max, const float *x, float *y)
{
    const int64_t c = d->ic, hw = d->ih * d->iw;
    for (int64_t n = 0; n < d->n; n++) {
        const float *xn = x + n * hw * c;
        float *yn = y + n * c;
        for (int64_t k = 0; k < c; k++) yn[k] = is_max ? xn[k] : 0.0f;
        for (int64_t i = is_max ? 1 : 0; i < hw; i++) {
            const float *row = xn + i * c;
            if (is_max)
                for (int64_t k = 0; k < c; k++) yn[k] = row[k] > yn[k] ? row[k] : yn[k];
            else
                for (int64_t k = 0; k < c; k++) yn[k] += row[k];
        }
        if (!is_max)
            for (int64_t k = 0; k < c; k++) yn[k] /= (float)hw;
    }
}

/* Max pooling of int8/uint8 codes (any layout, windows clipped to the input). */
static void max_pool_int8(const struct pool_state *s, const struct qcal_op_args *a)
{
    const struct qcal_conv_desc *d = &s->d;
    const bool u8 = s->dtype == QCAL_U8;
    const uint8_t *x = a->in[0]->data;
    uint8_t *y = a->out[0]->data;
    int64_t xs[4], ys[4];
    if (a->in[0]->ndim == 4) {
        op_strides(a->in[0], op_in_layout(a, 0), xs);
        op_strides(a->out[0], op_out_layout(a, 0), ys);
    } else {
        xs[0] = d->ic * d->iw, xs[1] = d->iw, xs[2] = 0, xs[3] = 1;
        ys[0] = d->oc * d->ow, ys[1] = d->ow, ys[2] = 0, ys[3] = 1;
    }
    const int threads = op_threads();
#pragma omp parallel for collapse(2) num_threads(threads) if (threads > 1)
    for (int64_t n = 0; n < d->n; n++)
        for (int64_t c = 0; c < d->ic; c++)
            for (int64_t oh = 0; oh < d->oh; oh++)
                for (int64_t ow = 0; ow < d->ow; ow++) {
                    const int64_t h0 = oh * d->sh - d->pt, w0 = ow * d->sw - d->pl;
                    int acc = u8 ? 0 : -128;
                    for (int64_t kh = 0; kh < d->kh; kh++) {
                        const int64_t ih = h0 + kh * d->dh;
                        for (int64_t kw = 0; ih >= 0 && ih < d->ih && kw < d->kw; kw++) {
                            const int64_t iw = w0 + kw * d->dw;
                            if (iw < 0 || iw >= d->iw) continue;
                            const uint8_t b = x[n * xs[0] + c * xs[1] + ih * xs[2] + iw * xs[3]];
                            const int v = u8 ? b : (int8_t)b;
                            acc = v > acc ? v : acc;
                        }
                    }
                    y[n * ys[0] + c * ys[1] + oh * ys[2] + ow * ys[3]] = (uint8_t)acc;
                }
}

static enum qcal_status pool_run(const void *state, const struct qcal_op_args *a)
{
    const struct pool_state *s = state;
    if (s->prim) return qcal_dnnl_run(a->bound);
    if (s->dtype != QCAL_F32) {
        max_pool_int8(s, a);
        return QCAL_OK;
    }
    const struct qcal_conv_desc *d = &s->d;
    const float *x = a->in[0]->data;
    float *y = a->out[0]->data;
    int layout = op_in_layout(a, 0);
    if (layout == QCAL_LAYOUT_NHWC && (s->kind == POOL_GAVG || s->kind == POOL_GMAX)) {
        global_pool_nhwc(d, s->kind == POOL_GMAX, x, y);
        return QCAL_OK;
    }
    /* strides in (n, c, h, w) for both tensors; 1-D tensors are [N, C, W] */
    int64_t xs[4], ys[4];
    if (a->in[0]->ndim == 4) {
        op_strides(a->in[0], layout, xs);
        op_strides(a->out[0], op_out_layout(a, 0), ys);
    } else {
        xs[0] = d->ic * d->iw, xs[1] = d->iw, xs[2] = 0, xs[3] = 1;
        ys[0] = d->oc * d->ow, ys[1] = d->ow, ys[2] = 0, ys[3] = 1;
    }
    const bool is_max = s->kind == POOL_MAX || s->kind == POOL_GMAX;
    int threads = op_threads();
#pragma omp parallel for collapse(2) num_threads(threads) if (threads > 1)
    for (int64_t n = 0; n < d->n; n++)
        for (int64_t c = 0; c < d->ic; c++)
            for (int64_t oh = 0; oh < d->oh; oh++)
                for (int64_t ow = 0; ow < d->ow; ow++) {
                    int64_t h0 = oh * d->sh - d->pt, w0 = ow * d->sw - d->pl;
                    float acc = is_max ? -FLT_MAX : 0.0f;
                    int64_t count = 0;
                    for (int64_t kh = 0; kh < d->kh; kh++) {
                        int64_t ih = h0 + kh * d->dh;
                        if (ih < 0 || ih >= d->ih) continue;
                        for (int64_t kw = 0; kw < d->kw; kw++) {
                            int64_t iw = w0 + kw * d->dw;
                            if (iw < 0 || iw >= d->iw) continue;
                            float v = x[n * xs[0] + c * xs[1] + ih * xs[2] + iw * xs[3]];
                            if (is_max) acc = v > acc ? v : acc;
                            else acc += v;
                            count++;
                        }
                    }
                    if (!is_max) {
                        if (s->count_include_pad) {
                            int64_t he = h0 + d->kh < d->ih + d->pb ? h0 + d->kh : d->ih + d->pb;
                            int64_t we = w0 + d->kw < d->iw + d->pr ? w0 + d->kw : d->iw + d->pr;
                            count = (he - h0) * (we - w0);
                        }
                        acc = count ? acc / (float)count : 0.0f;
                    }
                    y[n * ys[0] + c * ys[1] + oh * ys[2] + ow * ys[3]] = acc;
                }
    return QCAL_OK;
}

const struct qcal_op_def qcal_op_pool_def = {
    .name = "pool", .parse = pool_parse, .infer = pool_infer, .layout = pool_layout,
    .prepare = pool_prepare, .bind = pool_bind, .unbind = op_dnnl_unbind, .run = pool_run,
    .destroy = pool_destroy,
};
