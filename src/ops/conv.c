/* Conv and ConvTranspose (1-D and 2-D). */
#include <stdlib.h>

#include "op-internal.h"
#include "qcal/kernels.h"

enum { PAD_NOTSET, PAD_SAME_UPPER, PAD_SAME_LOWER, PAD_VALID };

struct conv_params {
    int spatial;                    /* 1 or 2 */
    int auto_pad;
    int64_t kernel[2], strides[2], dil[2], pads[4]; /* pads: begin h, w, end h, w */
    int64_t out_pad[2], out_shape[2];
    bool has_kernel, has_out_shape;
    int64_t group;
    struct qcal_conv_desc desc;     /* resolved by infer */
};

struct conv_state {
    struct qcal_conv_desc d;
    int kind; /* enum qcal_kernels actually used */
    const float *w, *bias;
    int sum_input;
    int threads; /* BLAS: scratch is sized for this many threads */
    size_t tmp_offset; /* ref/blas with a residual: conv result in scratch */
    struct qcal_dnnl_prim *prim;
    float *packed; /* ConvTranspose as row GEMMs: weights per kernel row */
};

static enum qcal_status read_pair(struct qcal_graph *g, struct qcal_node *n, const char *name,
                                  int spatial, int64_t def, int64_t *out)
{
    int64_t v[4];
    int c = qcal_node_attr_ints(n, name, v, 4);
    out[0] = out[1] = def;
    if (c < 0) return QCAL_OK;
    if (c != spatial)
        return OP_ERR(g, n, QCAL_INVALID_MODEL, "attribute %s has %d values, expected %d", name, c,
                      spatial);
    if (spatial == 1) out[1] = v[0];
    else out[0] = v[0], out[1] = v[1];
    return QCAL_OK;
}

static enum qcal_status conv_parse_attrs(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st;
    if ((st = op_alloc_params(g, n, sizeof(struct conv_params))) != QCAL_OK) return st;
    struct conv_params *p = n->params;
    const char *ap = qcal_node_attr_string(n, "auto_pad", "NOTSET");
    if (strcmp(ap, "NOTSET") == 0) p->auto_pad = PAD_NOTSET;
    else if (strcmp(ap, "SAME_UPPER") == 0) p->auto_pad = PAD_SAME_UPPER;
    else if (strcmp(ap, "SAME_LOWER") == 0) p->auto_pad = PAD_SAME_LOWER;
    else if (strcmp(ap, "VALID") == 0) p->auto_pad = PAD_VALID;
    else return OP_ERR(g, n, QCAL_INVALID_MODEL, "auto_pad '%s' is not valid", ap);
    p->group = qcal_node_attr_int(n, "group", 1);
    if (p->group < 1) return OP_ERR(g, n, QCAL_INVALID_MODEL, "group %lld < 1", (long long)p->group);
    return QCAL_OK;
}

static enum qcal_status conv_parse(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = op_check_arity(g, n, 2, 3, 1, 1);
    return st != QCAL_OK ? st : conv_parse_attrs(g, n);
}

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Inputs of a convolution node: Conv/ConvTranspose (x, w, b) or QLinearConv (x, x_scale,
 * x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, b). */
struct conv_io {
    int x, w, b;
    bool quantized;
};
static const struct conv_io float_io = {0, 1, 2, false}, qlinear_io = {0, 3, 8, true};

/* Resolves kernel, strides, dilations and pads for the input rank; fills p->desc. */
static enum qcal_status conv_resolve(struct qcal_graph *g, struct qcal_node *n, bool transposed, const struct conv_io *io)
{
    struct conv_params *p = n->params;
    enum qcal_status st = op_require_inputs(g, n, io->w + 1);
    if (st != QCAL_OK) return st;
    const struct qcal_tensor *x = &qcal_in(g, n, io->x)->t, *w = &qcal_in(g, n, io->w)->t;
    if (x->ndim != 3 && x->ndim != 4)
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "input has %d dims; qcal supports 1-D and 2-D "
                      "convolutions (3 or 4 dims)", x->ndim);
    if (w->ndim != x->ndim)
        return OP_ERR(g, n, QCAL_INVALID_MODEL, "weight has %d dims, input has %d", w->ndim, x->ndim);
    if (!io->quantized && (x->dtype != QCAL_F32 || w->dtype != QCAL_F32))
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "input and weight must be float32");
    if (io->quantized && ((x->dtype != QCAL_U8 && x->dtype != QCAL_I8) || w->dtype != QCAL_I8))
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "input must be uint8 or int8 and weight int8 (is %s, %s)",
                      qcal_dtype_name(x->dtype), qcal_dtype_name(w->dtype));
    int sp = x->ndim - 2;
    p->spatial = sp;
    if ((st = read_pair(g, n, "strides", sp, 1, p->strides)) != QCAL_OK) return st;
    if ((st = read_pair(g, n, "dilations", sp, 1, p->dil)) != QCAL_OK) return st;
    if ((st = read_pair(g, n, "output_padding", sp, 0, p->out_pad)) != QCAL_OK) return st;
    int64_t ks[2];
    if ((st = read_pair(g, n, "kernel_shape", sp, 0, ks)) != QCAL_OK) return st;
    p->kernel[0] = sp == 2 ? w->dims[2] : 1;
    p->kernel[1] = w->dims[x->ndim - 1];
    if (ks[1] && (ks[1] != p->kernel[1] || (sp == 2 && ks[0] != p->kernel[0])))
        return OP_ERR(g, n, QCAL_INVALID_MODEL, "kernel_shape does not match the weight shape");
    int64_t pads[4];
    int c = qcal_node_attr_ints(n, "pads", pads, 4);
    memset(p->pads, 0, sizeof p->pads);
    if (c >= 0) {
        if (c != 2 * sp)
            return OP_ERR(g, n, QCAL_INVALID_MODEL, "pads has %d values, expected %d", c, 2 * sp);
        if (sp == 2) memcpy(p->pads, pads, sizeof pads);
        else p->pads[1] = pads[0], p->pads[3] = pads[1];
    }
    p->has_out_shape = read_pair(g, n, "output_shape", sp, 0, p->out_shape) == QCAL_OK &&
                       qcal_node_attr(n, "output_shape") != NULL;
    for (int i = 0; i < 2; i++)
        if (p->strides[i] < 1 || p->dil[i] < 1 || p->pads[i] < 0 || p->pads[i + 2] < 0)
            return OP_ERR(g, n, QCAL_INVALID_MODEL, "invalid strides, dilations or pads");

    int64_t in_sp[2] = {sp == 2 ? x->dims[2] : 1, x->dims[x->ndim - 1]};
    int64_t out_sp[2];
    int64_t cin = x->dims[1], group = p->group, cout;
    if (!transposed) {
        if (cin != w->dims[1] * group || w->dims[0] % group)
            return OP_ERR(g, n, QCAL_INVALID_MODEL, "input has %lld channels; weight [%lld, %lld, "
                          "...] with group %lld needs %lld", (long long)cin, (long long)w->dims[0],
                          (long long)w->dims[1], (long long)group, (long long)(w->dims[1] * group));
        cout = w->dims[0];
    } else {
        if (cin != w->dims[0] || cin % group)
            return OP_ERR(g, n, QCAL_INVALID_MODEL, "input has %lld channels, weight expects %lld",
                          (long long)cin, (long long)w->dims[0]);
        cout = w->dims[1] * group;
    }
    for (int i = 0; i < 2; i++) {
        int64_t keff = (p->kernel[i] - 1) * p->dil[i] + 1;
        if (!transposed) {
            if (p->auto_pad == PAD_SAME_UPPER || p->auto_pad == PAD_SAME_LOWER) {
                out_sp[i] = ceil_div(in_sp[i], p->strides[i]);
                int64_t total = (out_sp[i] - 1) * p->strides[i] + keff - in_sp[i];
                if (total < 0) total = 0;
                int64_t small = total / 2, big = total - small;
                p->pads[i] = p->auto_pad == PAD_SAME_UPPER ? small : big;
                p->pads[i + 2] = p->auto_pad == PAD_SAME_UPPER ? big : small;
            } else {
                if (p->auto_pad == PAD_VALID) p->pads[i] = p->pads[i + 2] = 0;
                int64_t span = in_sp[i] + p->pads[i] + p->pads[i + 2] - keff;
                if (span < 0)
                    return OP_ERR(g, n, QCAL_INVALID_MODEL, "kernel larger than padded input");
                out_sp[i] = span / p->strides[i] + 1;
            }
        } else {
            int64_t full = p->strides[i] * (in_sp[i] - 1) + p->out_pad[i] + keff;
            if (p->has_out_shape) {
                out_sp[i] = p->out_shape[i];
                int64_t total = full - out_sp[i];
                if (total < 0) total = 0;
                if (p->auto_pad == PAD_SAME_UPPER) {
                    p->pads[i] = total / 2;
                    p->pads[i + 2] = total - total / 2;
                } else {
                    p->pads[i] = total - total / 2;
                    p->pads[i + 2] = total / 2;
                }
            } else if (p->auto_pad == PAD_SAME_UPPER || p->auto_pad == PAD_SAME_LOWER) {
                out_sp[i] = in_sp[i] * p->strides[i];
                int64_t total = full - out_sp[i];
                if (total < 0) total = 0;
                p->pads[i] = p->auto_pad == PAD_SAME_UPPER ? total / 2 : total - total / 2;
                p->pads[i + 2] = total - p->pads[i];
            } else {
                if (p->auto_pad == PAD_VALID) p->pads[i] = p->pads[i + 2] = 0;
                out_sp[i] = full - p->pads[i] - p->pads[i + 2];
            }
            if (out_sp[i] < 1) return OP_ERR(g, n, QCAL_INVALID_MODEL, "output would be empty");
        }
    }
    if (n->n_inputs > io->b && qcal_in(g, n, io->b)) {
        const struct qcal_tensor *b = &qcal_in(g, n, io->b)->t;
        if (qcal_tensor_numel(b) != cout || b->ndim != 1)
            return OP_ERR(g, n, QCAL_INVALID_MODEL, "bias has %lld values, expected %lld",
                          (long long)qcal_tensor_numel(b), (long long)cout);
    }
    struct qcal_conv_desc *d = &p->desc;
    memset(d, 0, sizeof *d);
    d->n = x->dims[0];
    d->ic = cin;
    d->ih = in_sp[0];
    d->iw = in_sp[1];
    d->oc = cout;
    d->oh = out_sp[0];
    d->ow = out_sp[1];
    d->kh = p->kernel[0];
    d->kw = p->kernel[1];
    d->sh = p->strides[0];
    d->sw = p->strides[1];
    d->dh = p->dil[0];
    d->dw = p->dil[1];
    d->pt = p->pads[0];
    d->pl = p->pads[1];
    d->pb = p->pads[2];
    d->pr = p->pads[3];
    d->oph = p->out_pad[0];
    d->opw = p->out_pad[1];
    d->group = group;
    d->transposed = transposed;
    int64_t dims[4] = {d->n, cout, d->oh, d->ow};
    if (sp == 1) dims[2] = d->ow;
    int32_t dtype = QCAL_F32;
    if (io->quantized && qcal_in(g, n, 6)) dtype = qcal_in(g, n, 7) ? qcal_in(g, n, 7)->t.dtype : QCAL_U8;
    op_set_output(g, n, 0, dtype, x->ndim, dims);
    return QCAL_OK;
}

static enum qcal_status conv_infer(struct qcal_graph *g, struct qcal_node *n)
{
    return conv_resolve(g, n, false, &float_io);
}

static enum qcal_status conv_transpose_infer(struct qcal_graph *g, struct qcal_node *n)
{
    return conv_resolve(g, n, true, &float_io);
}

static int conv_layout(const struct qcal_graph *g, const struct qcal_node *n, int kernels)
{
    const struct conv_params *p = n->params;
    bool dnnl = kernels == QCAL_KERNELS_AUTO || kernels == QCAL_KERNELS_DNNL;
    (void)g;
    /* oneDNN wants non-negative end padding; output_padding would make it negative. */
    bool out_pad = p->desc.transposed && (p->desc.oph || p->desc.opw);
    return dnnl && p->spatial == 2 && !out_pad ? QCAL_LAYOUT_NHWC : QCAL_LAYOUT_PLAIN;
}

static void conv_destroy(void *state)
{
    struct conv_state *s = state;
    if (!s) return;
    qcal_dnnl_destroy(s->prim);
    free(s->packed);
    free(s);
}

static enum qcal_status conv_prepare(struct qcal_op_prep *pp)
{
    struct qcal_graph *g = pp->g;
    struct qcal_node *n = pp->node;
    struct conv_params *p = n->params;
    const struct qcal_value *w = qcal_in(g, n, 1), *b = qcal_in(g, n, 2);
    if (!qcal_value_is_const(w) || (b && !qcal_value_is_const(b)))
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "weights and bias must be constant");
    struct conv_state *s = calloc(1, sizeof *s);
    if (!s) return OP_ERR(g, n, QCAL_OUT_OF_MEMORY, "out of memory");
    s->d = p->desc;
    s->d.post = n->post;
    s->sum_input = n->post.sum_input;
    s->w = w->t.data;
    s->bias = b ? b->t.data : NULL;
    pp->state = s;
    bool nhwc = pp->in_layout[0] == QCAL_LAYOUT_NHWC;
    if (nhwc && pp->kernels != QCAL_KERNELS_REF && s->sum_input == 0 && qcal_blas_deconv_fits(&s->d)) {
        /* kernel == stride: row GEMMs into place (oneDNN 2.6's deconvolution is an order of
         * magnitude slower on these, e.g. PP-OCR's 2x2 heads with one output channel) */
        s->packed = malloc(sizeof(float) * qcal_blas_deconv_packed_floats(&s->d));
        if (!s->packed) return OP_ERR(g, n, QCAL_OUT_OF_MEMORY, "out of memory");
        qcal_blas_deconv_pack(&s->d, s->w, s->packed);
        s->kind = QCAL_KERNELS_BLAS;
        pp->impl = "blas:deconv-rows";
    } else if (nhwc) {
        enum qcal_status st = qcal_dnnl_conv_create(&s->d, s->w, s->bias, &s->prim);
        if (st != QCAL_OK) return OP_ERR(g, n, st, "oneDNN could not create the primitive");
        s->kind = QCAL_KERNELS_DNNL;
        pp->scratch_size = qcal_dnnl_scratch_size(s->prim);
        pp->impl = qcal_dnnl_impl(s->prim);
    } else if (pp->kernels == QCAL_KERNELS_BLAS && !s->d.transposed && s->d.ic != s->d.group) {
        /* (depthwise convolutions stay on the direct loop: a GEMM per channel is overhead) */
        s->kind = QCAL_KERNELS_BLAS;
        s->threads = qcal_num_threads();
        pp->scratch_size = qcal_blas_conv2d_scratch(&s->d, s->threads);
        pp->impl = "blas:im2col+sgemm";
    } else {
        s->kind = QCAL_KERNELS_REF;
        pp->impl = "ref";
    }
    if (s->kind != QCAL_KERNELS_DNNL && s->sum_input > 0) {
        /* the output may share the residual's buffer: compute into scratch first */
        s->tmp_offset = qcal_align_up(pp->scratch_size, QCAL_ALIGN);
        pp->scratch_size = s->tmp_offset + qcal_tensor_bytes(&qcal_out(g, n, 0)->t);
    }
    return QCAL_OK;
}

static enum qcal_status conv_bind(const void *state, const struct qcal_op_args *a, void **bound_out)
{
    const struct conv_state *s = state;
    return op_dnnl_bind(s->kind == QCAL_KERNELS_DNNL ? s->prim : NULL, a, bound_out);
}

static enum qcal_status conv_run(const void *state, const struct qcal_op_args *a)
{
    const struct conv_state *s = state;
    const float *x = a->in[0]->data;
    float *y = a->out[0]->data;
    const float *residual = s->sum_input > 0 ? a->in[s->sum_input]->data : NULL;
    size_t count = (size_t)qcal_tensor_numel(a->out[0]);
    switch (s->kind) {
    case QCAL_KERNELS_DNNL:
        /* oneDNN's sum post-op adds what dst holds; the planner usually makes them share */
        if (residual && residual != y) memcpy(y, residual, count * sizeof(float));
        return qcal_dnnl_run(a->bound);
    default: break;
    }
    float *acc = residual ? (float *)((char *)a->scratch + s->tmp_offset) : y;
    int threads = op_threads() < s->threads ? op_threads() : s->threads;
    if (s->kind == QCAL_KERNELS_BLAS && s->packed)
        qcal_blas_deconv2d_nhwc(&s->d, x, s->packed, s->bias, acc, op_threads());
    else if (s->kind == QCAL_KERNELS_BLAS)
        qcal_blas_conv2d(&s->d, x, s->w, s->bias, acc, a->scratch, threads);
    else if (s->d.transposed)
        qcal_ref_conv_transpose2d(&s->d, x, s->w, s->bias, acc, op_threads());
    else
        qcal_ref_conv2d(&s->d, x, s->w, s->bias, acc, op_threads());
    qcal_post_ops_apply(&s->d.post, acc, residual, count);
    if (acc != y) memcpy(y, acc, count * sizeof(float));
    return QCAL_OK;
}

static int conv_inplace(const struct qcal_graph *g, const struct qcal_node *n)
{
    (void)g;
    return n->post.sum_input > 0 ? n->post.sum_input : -1;
}

const struct qcal_op_def qcal_op_conv_def = {
    .name = "Conv", .parse = conv_parse, .infer = conv_infer, .layout = conv_layout,
    .prepare = conv_prepare, .bind = conv_bind, .unbind = op_dnnl_unbind, .run = conv_run,
    .destroy = conv_destroy, .inplace = conv_inplace,
};

const struct qcal_op_def qcal_op_conv_transpose_def = {
    .name = "ConvTranspose", .parse = conv_parse, .infer = conv_transpose_infer,
    .layout = conv_layout, .prepare = conv_prepare, .bind = conv_bind, .unbind = op_dnnl_unbind,
    .run = conv_run, .destroy = conv_destroy,
};

/* ---- QLinearConv: the INT8 convolution (ONNX op, and what the QDQ pass turns
 * DequantizeLinear -> Conv -> [activation] -> QuantizeLinear into). qcal's own extension:
 * without y_scale and y_zero_point the output is float, acc · x_scale · w_scale[c] and the
 * post-ops (a QDQ convolution that no QuantizeLinear reads, like ORT's QGemm) ---- */

static enum qcal_status qconv_parse(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = op_check_arity(g, n, 6, 9, 1, 1);
    return st != QCAL_OK ? st : conv_parse_attrs(g, n);
}

/* A constant scalar (or one-value) input as float or int32. */
static enum qcal_status const_scalar(struct qcal_graph *g, struct qcal_node *n, int i, bool zero_point, double *out)
{
    const struct qcal_value *v = qcal_in(g, n, i);
    if (!v) {
        *out = 0;
        return zero_point ? QCAL_OK : OP_ERR(g, n, QCAL_INVALID_MODEL, "input %d is missing", i);
    }
    if (!qcal_value_is_const(v) || qcal_tensor_numel(&v->t) != 1)
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "input %d ('%s') must be a constant scalar", i, v->name);
    switch (v->t.dtype) {
    case QCAL_F32: *out = ((const float *)v->t.data)[0]; break;
    case QCAL_U8: case QCAL_I8: case QCAL_I32: *out = op_int_at(&v->t, 0); break;
    default: return OP_ERR(g, n, QCAL_INVALID_MODEL, "input %d has type %s", i, qcal_dtype_name(v->t.dtype));
    }
    return QCAL_OK;
}

static enum qcal_status qconv_infer(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = conv_resolve(g, n, false, &qlinear_io);
    if (st != QCAL_OK) return st;
    const struct conv_params *p = n->params;
    const struct qcal_value *ws = qcal_in(g, n, 4), *wz = qcal_in(g, n, 5), *b = qcal_in(g, n, 8);
    if (!qcal_value_is_const(qcal_in(g, n, 3)) || !qcal_value_is_const(ws) || (wz && !qcal_value_is_const(wz)) ||
        (b && !qcal_value_is_const(b)))
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "weights, their scales and zero points and the bias must be constant");
    const int64_t cw = qcal_tensor_numel(&ws->t);
    if (ws->t.dtype != QCAL_F32 || (cw != 1 && cw != p->desc.oc))
        return OP_ERR(g, n, QCAL_INVALID_MODEL, "w_scale must be float with 1 or %lld values", (long long)p->desc.oc);
    for (int64_t i = 0; wz && i < qcal_tensor_numel(&wz->t); i++)
        if (((const int8_t *)wz->t.data)[i] != 0)
            return OP_ERR(g, n, QCAL_UNSUPPORTED, "weight zero points other than 0 are not supported");
    if (b && b->t.dtype != QCAL_I32) return OP_ERR(g, n, QCAL_INVALID_MODEL, "bias must be int32");
    double v;
    const bool f32 = !qcal_in(g, n, 6);
    if (f32 && qcal_in(g, n, 7)) return OP_ERR(g, n, QCAL_INVALID_MODEL, "y_zero_point without y_scale");
    for (int i = 1; i <= 7; i++) {
        if (i == 3 || i == 4 || i == 5 || (f32 && i >= 6)) continue;
        if ((st = const_scalar(g, n, i, i == 2 || i == 7, &v)) != QCAL_OK) return st;
        if ((i == 1 || i == 6) && !(v > 0)) return OP_ERR(g, n, QCAL_INVALID_MODEL, "scale %g is not positive", v);
    }
    return QCAL_OK;
}

static int qconv_layout(const struct qcal_graph *g, const struct qcal_node *n, int kernels)
{
    const struct conv_params *p = n->params;
    (void)g;
    return (kernels == QCAL_KERNELS_AUTO || kernels == QCAL_KERNELS_DNNL) && p->spatial == 2 && qcal_dnnl_available()
               ? QCAL_LAYOUT_NHWC
               : QCAL_LAYOUT_PLAIN;
}

void op_qconv_destroy(void *state)
{
    struct op_qconv *s = state;
    if (!s) return;
    qcal_dnnl_destroy(s->prim);
    free(s->w_scale);
    free(s);
}

enum qcal_status op_qconv_kernel(struct qcal_op_prep *pp, struct op_qconv *s, bool dnnl)
{
    if (!dnnl) {
        pp->impl = "ref:int8";
        return QCAL_OK;
    }
    enum qcal_status st = qcal_dnnl_conv_int8_create(&s->d, &s->q, s->w, s->bias, &s->prim);
    if (st != QCAL_OK) return OP_ERR(pp->g, pp->node, st, "oneDNN could not create the INT8 primitive");
    pp->scratch_size = qcal_dnnl_scratch_size(s->prim);
    pp->impl = qcal_dnnl_impl(s->prim);
    return QCAL_OK;
}

static enum qcal_status qconv_prepare(struct qcal_op_prep *pp)
{
    struct qcal_graph *g = pp->g;
    struct qcal_node *n = pp->node;
    const struct conv_params *p = n->params;
    struct op_qconv *s = calloc(1, sizeof *s);
    if (!s) return OP_ERR(g, n, QCAL_OUT_OF_MEMORY, "out of memory");
    pp->state = s;
    s->d = p->desc;
    s->d.post = n->post;
    const struct qcal_value *ws = qcal_in(g, n, 4), *b = qcal_in(g, n, 8);
    const int64_t cw = qcal_tensor_numel(&ws->t);
    if (!(s->w_scale = malloc(sizeof(float) * (size_t)cw))) return OP_ERR(g, n, QCAL_OUT_OF_MEMORY, "out of memory");
    memcpy(s->w_scale, ws->t.data, sizeof(float) * (size_t)cw);
    double v[8] = {0};
    const bool f32 = !qcal_in(g, n, 6);
    v[6] = 1.0;
    for (int i = 1; i <= 7; i++)
        if (i != 3 && i != 4 && i != 5 && !(f32 && i >= 6)) const_scalar(g, n, i, i == 2 || i == 7, &v[i]);
    s->q = (struct qcal_qconv){.x_scale = (float)v[1], .x_zp = (int32_t)v[2], .y_scale = (float)v[6],
                               .y_zp = (int32_t)v[7], .x_u8 = qcal_in(g, n, 0)->t.dtype == QCAL_U8,
                               .y_u8 = qcal_out(g, n, 0)->t.dtype == QCAL_U8, .w_scale = s->w_scale,
                               .per_channel = cw > 1, .y_f32 = f32};
    s->w = qcal_in(g, n, 3)->t.data;
    s->bias = b ? b->t.data : NULL;
    if (s->d.post.sum_input > 0) return OP_ERR(g, n, QCAL_UNSUPPORTED, "a fused residual add is not supported");
    return op_qconv_kernel(pp, s, pp->in_layout[0] == QCAL_LAYOUT_NHWC);
}

enum qcal_status op_qconv_bind(const void *state, const struct qcal_op_args *a, void **bound_out)
{
    const struct op_qconv *s = state;
    return op_dnnl_bind(s->prim, a, bound_out);
}

enum qcal_status op_qconv_run(const void *state, const struct qcal_op_args *a)
{
    const struct op_qconv *s = state;
    if (s->prim) return qcal_dnnl_run(a->bound);
    qcal_ref_conv2d_int8(&s->d, &s->q, a->in[0]->data, s->w, s->bias, a->out[0]->data, op_threads());
    return QCAL_OK;
}

const struct qcal_op_def qcal_op_qlinear_conv_def = {
    .name = "QLinearConv", .parse = qconv_parse, .infer = qconv_infer, .layout = qconv_layout,
    .prepare = qconv_prepare, .bind = op_qconv_bind, .unbind = op_dnnl_unbind, .run = op_qconv_run,
    .destroy = op_qconv_destroy,
};
