/* QGemm (qcal-internal; what the QDQ pass makes of DequantizeLinear(a) -> Gemm or MatMul
 * (DequantizeLinear(w int8), bias) -> [[act] -> QuantizeLinear]): inputs a [..., M, K] uint8/int8
 * (MatMul: every leading row a row), a_scale, a_zero_point,
 * w [N, K] int8 (zero point 0), w_scale (1 or N), w_zero_point, bias int32 [N] at
 * a_scale * w_scale[n] (optional), y_scale and y_zero_point (optional: without them the output
 * is float, the dequantized product). It is a 1x1 INT8 convolution of M images of K channels:
 * the same oneDNN primitive (VNNI) and reference kernel as QLinearConv, on the same bytes. */
#include <stdlib.h>

#include "op-internal.h"

static enum qcal_status qgemm_parse(struct qcal_graph *g, struct qcal_node *n)
{
    return op_check_arity(g, n, 6, 9, 1, 1);
}

static enum qcal_status qgemm_infer(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = op_require_inputs(g, n, 6);
    if (st != QCAL_OK) return st;
    const struct qcal_tensor *a = &qcal_in(g, n, 0)->t, *w = &qcal_in(g, n, 3)->t;
    const struct qcal_value *ws = qcal_in(g, n, 4), *b = qcal_in(g, n, 6), *ys = qcal_in(g, n, 7);
    if (a->ndim < 1 || !qcal_dtype_is_int8(a->dtype)) return OP_ERR(g, n, QCAL_UNSUPPORTED, "A must be uint8 or int8");
    const int64_t k = a->dims[a->ndim - 1];
    if (!qcal_value_is_const(qcal_in(g, n, 3)) || w->ndim != 2 || w->dtype != QCAL_I8 || w->dims[1] != k)
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "W must be constant int8 [N, %lld]", (long long)k);
    const int64_t nn = w->dims[0], cw = qcal_tensor_numel(&ws->t);
    if (!qcal_value_is_const(ws) || ws->t.dtype != QCAL_F32 || (cw != 1 && cw != nn))
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "w_scale must be constant float with 1 or %lld values", (long long)nn);
    if (b && (!qcal_value_is_const(b) || b->t.dtype != QCAL_I32 || qcal_tensor_numel(&b->t) != nn))
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "bias must be constant int32 [%lld]", (long long)nn);
    for (int i = 1; i < n->n_inputs; i++) {
        if (i == 3 || i == 4 || i == 6 || !qcal_in(g, n, i)) continue;
        if (!qcal_value_is_const(qcal_in(g, n, i)) || qcal_tensor_numel(&qcal_in(g, n, i)->t) != 1)
            return OP_ERR(g, n, QCAL_UNSUPPORTED, "scales and zero points must be constant scalars");
    }
    const struct qcal_value *yz = qcal_in(g, n, 8);
    const int32_t dtype = !ys ? QCAL_F32 : yz ? yz->t.dtype : QCAL_U8;
    int64_t dims[QCAL_MAX_DIMS]; /* MatMul: A's leading dims are rows too (numpy: [K] gives [N]) */
    memcpy(dims, a->dims, sizeof(int64_t) * (size_t)a->ndim);
    dims[a->ndim - 1] = nn;
    op_set_output(g, n, 0, dtype, a->ndim, dims);
    return QCAL_OK;
}

static int qgemm_layout(const struct qcal_graph *g, const struct qcal_node *n, int kernels)
{
    (void)g, (void)n, (void)kernels;
    return QCAL_LAYOUT_PLAIN; /* rows of K are [rows, 1, 1, K] in NHWC: the same bytes */
}

static enum qcal_status qgemm_prepare(struct qcal_op_prep *pp)
{
    struct qcal_graph *g = pp->g;
    struct qcal_node *n = pp->node;
    struct op_qconv *s = calloc(1, sizeof *s);
    if (!s) return OP_ERR(g, n, QCAL_OUT_OF_MEMORY, "out of memory");
    pp->state = s;
    const struct qcal_tensor *a = &qcal_in(g, n, 0)->t, *w = &qcal_in(g, n, 3)->t, *ws = &qcal_in(g, n, 4)->t;
    const int64_t cw = qcal_tensor_numel(ws);
    if (!(s->w_scale = malloc(sizeof(float) * (size_t)cw))) return OP_ERR(g, n, QCAL_OUT_OF_MEMORY, "out of memory");
    memcpy(s->w_scale, ws->data, sizeof(float) * (size_t)cw);
    const int64_t k = a->dims[a->ndim - 1];
    s->d = (struct qcal_conv_desc){.n = qcal_tensor_numel(a) / k, .ic = k, .ih = 1, .iw = 1, .oc = w->dims[0], .oh = 1,
                                   .ow = 1, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1, .group = 1,
                                   .post = n->post};
    const bool f32 = !qcal_in(g, n, 7);
    s->q = (struct qcal_qconv){.x_scale = op_scalar(g, n, 1), .x_zp = (int32_t)op_scalar(g, n, 2),
                               .y_scale = f32 ? 1.0f : op_scalar(g, n, 7), .y_zp = (int32_t)op_scalar(g, n, 8),
                               .x_u8 = a->dtype == QCAL_U8, .y_u8 = qcal_out(g, n, 0)->t.dtype == QCAL_U8,
                               .w_scale = s->w_scale, .per_channel = cw > 1, .y_f32 = f32};
    s->w = w->data;
    s->bias = qcal_in(g, n, 6) ? qcal_in(g, n, 6)->t.data : NULL;
    return op_qconv_kernel(pp, s, pp->kernels != QCAL_KERNELS_REF && pp->kernels != QCAL_KERNELS_BLAS &&
                                      qcal_dnnl_available());
}

const struct qcal_op_def qcal_op_qgemm_def = {
    .name = "QGemm", .parse = qgemm_parse, .infer = qgemm_infer, .layout = qgemm_layout, .prepare = qgemm_prepare,
    .bind = op_qconv_bind, .unbind = op_dnnl_unbind, .run = op_qconv_run, .destroy = op_qconv_destroy,
};
