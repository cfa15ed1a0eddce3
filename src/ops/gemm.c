/* Gemm and MatMul. The fast path is a oneDNN matmul with weights packed at plan time when
 * B is a constant matrix; anything else (two activations, batched broadcasting) runs the
 * reference or BLAS loop per matrix. */
#include <stdlib.h>

#include "op-internal.h"
#include "qcal/kernels.h"

struct gemm_params {
    bool trans_a, trans_b;
    float alpha, beta;
};

struct gemm_state {
    int kind;
    bool trans_a, trans_b;
    float alpha, beta;
    int64_t m, n, k;
    int64_t batch;            /* MatMul: number of output matrices */
    int64_t a_off[QCAL_MAX_DIMS], b_off[QCAL_MAX_DIMS]; /* batch strides (0 = broadcast) */
    int64_t bdims[QCAL_MAX_DIMS];
    int nb;                   /* batch rank */
    float *c_row;             /* Gemm: beta * C as a row [N] (owned), or NULL */
    const struct qcal_tensor *c_t; /* Gemm: a C that needs the general [M, N] broadcast */
    struct qcal_post_ops post;
    struct qcal_dnnl_prim *prim;
};

static enum qcal_status gemm_parse(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = op_check_arity(g, n, 2, 3, 1, 1);
    if (st != QCAL_OK) return st;
    if ((st = op_alloc_params(g, n, sizeof(struct gemm_params))) != QCAL_OK) return st;
    struct gemm_params *p = n->params;
    p->trans_a = qcal_node_attr_int(n, "transA", 0) != 0;
    p->trans_b = qcal_node_attr_int(n, "transB", 0) != 0;
    p->alpha = qcal_node_attr_float(n, "alpha", 1.0f);
    p->beta = qcal_node_attr_float(n, "beta", 1.0f);
    return QCAL_OK;
}

static enum qcal_status matmul_parse(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = op_check_arity(g, n, 2, 2, 1, 1);
    if (st != QCAL_OK) return st;
    if ((st = op_alloc_params(g, n, sizeof(struct gemm_params))) != QCAL_OK) return st;
    struct gemm_params *p = n->params;
    p->alpha = 1.0f;
    return QCAL_OK;
}

static enum qcal_status gemm_infer(struct qcal_graph *g, struct qcal_node *n)
{
    const struct gemm_params *p = n->params;
    enum qcal_status st = op_require_inputs(g, n, 2);
    if (st != QCAL_OK) return st;
    const struct qcal_tensor *a = &qcal_in(g, n, 0)->t, *b = &qcal_in(g, n, 1)->t;
    if (a->ndim != 2 || b->ndim != 2)
        return OP_ERR(g, n, QCAL_INVALID_MODEL, "A and B must be 2-D, are %d-D and %d-D", a->ndim,
                      b->ndim);
    int64_t m = p->trans_a ? a->dims[1] : a->dims[0], k = p->trans_a ? a->dims[0] : a->dims[1];
    int64_t kb = p->trans_b ? b->dims[1] : b->dims[0], nn = p->trans_b ? b->dims[0] : b->dims[1];
    if (k != kb)
        return OP_ERR(g, n, QCAL_INVALID_MODEL, "inner dimensions differ (%lld vs %lld)",
                      (long long)k, (long long)kb);
    int64_t dims[2] = {m, nn};
    if (qcal_in(g, n, 2)) {
        struct qcal_tensor out, mn = qcal_tensor_make(QCAL_F32, 2, dims);
        if ((st = op_broadcast(g, n, &mn, &qcal_in(g, n, 2)->t, &out)) != QCAL_OK) return st;
        if (!qcal_shape_equal(&out, &mn))
            return OP_ERR(g, n, QCAL_INVALID_MODEL, "C does not broadcast to [M, N]");
    }
    op_set_output(g, n, 0, QCAL_F32, 2, dims);
    return QCAL_OK;
}

static enum qcal_status matmul_infer(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = op_require_inputs(g, n, 2);
    if (st != QCAL_OK) return st;
    struct qcal_tensor a = qcal_in(g, n, 0)->t, b = qcal_in(g, n, 1)->t;
    if (a.ndim < 1 || b.ndim < 1) return OP_ERR(g, n, QCAL_INVALID_MODEL, "scalar operand");
    bool a1 = a.ndim == 1, b1 = b.ndim == 1;
    if (a1) a = qcal_tensor_make(a.dtype, 2, (int64_t[]){1, a.dims[0]});
    if (b1) b = qcal_tensor_make(b.dtype, 2, (int64_t[]){b.dims[0], 1});
    if (a.dims[a.ndim - 1] != b.dims[b.ndim - 2])
        return OP_ERR(g, n, QCAL_INVALID_MODEL, "inner dimensions differ (%lld vs %lld)",
                      (long long)a.dims[a.ndim - 1], (long long)b.dims[b.ndim - 2]);
    struct qcal_tensor ab = qcal_tensor_make(a.dtype, a.ndim - 2, a.dims);
    struct qcal_tensor bb = qcal_tensor_make(b.dtype, b.ndim - 2, b.dims);
    struct qcal_tensor out;
    if ((st = op_broadcast(g, n, &ab, &bb, &out)) != QCAL_OK) return st;
    if (!a1) out.dims[out.ndim++] = a.dims[a.ndim - 2];
    if (!b1) out.dims[out.ndim++] = b.dims[b.ndim - 1];
    op_set_output(g, n, 0, QCAL_F32, out.ndim, out.dims);
    return QCAL_OK;
}

static int gemm_layout(const struct qcal_graph *g, const struct qcal_node *n, int kernels)
{
    (void)g, (void)n, (void)kernels;
    return QCAL_LAYOUT_PLAIN;
}

static void gemm_destroy(void *state)
{
    struct gemm_state *s = state;
    if (!s) return;
    qcal_dnnl_destroy(s->prim);
    qcal_free(s->c_row);
    free(s);
}

static enum qcal_status gemm_prepare_common(struct qcal_op_prep *pp, bool is_gemm)
{
    struct qcal_graph *g = pp->g;
    struct qcal_node *n = pp->node;
    const struct gemm_params *p = n->params;
    struct qcal_tensor a = qcal_in(g, n, 0)->t, b = qcal_in(g, n, 1)->t;
    const struct qcal_value *bv = qcal_in(g, n, 1), *cv = is_gemm ? qcal_in(g, n, 2) : NULL;
    struct gemm_state *s = calloc(1, sizeof *s);
    if (!s) return OP_ERR(g, n, QCAL_OUT_OF_MEMORY, "out of memory");
    pp->state = s;
    s->trans_a = p->trans_a;
    s->trans_b = p->trans_b;
    s->alpha = p->alpha;
    s->beta = p->beta;
    s->post = n->post;
    s->batch = 1;
    if (a.dtype != QCAL_F32 || b.dtype != QCAL_F32)
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "only float32 operands are supported");
    if (is_gemm) {
        s->m = p->trans_a ? a.dims[1] : a.dims[0];
        s->k = p->trans_a ? a.dims[0] : a.dims[1];
        s->n = p->trans_b ? b.dims[0] : b.dims[1];
    } else {
        if (a.ndim == 1) a = qcal_tensor_make(a.dtype, 2, (int64_t[]){1, a.dims[0]});
        if (b.ndim == 1) b = qcal_tensor_make(b.dtype, 2, (int64_t[]){b.dims[0], 1});
        s->m = a.dims[a.ndim - 2];
        s->k = a.dims[a.ndim - 1];
        s->n = b.dims[b.ndim - 1];
        int nb = 0;
        int64_t bd[QCAL_MAX_DIMS];
        struct qcal_tensor ab = qcal_tensor_make(a.dtype, a.ndim - 2, a.dims);
        struct qcal_tensor bbt = qcal_tensor_make(b.dtype, b.ndim - 2, b.dims);
        nb = ab.ndim > bbt.ndim ? ab.ndim : bbt.ndim;
        int64_t sa = s->m * s->k, sb = s->k * s->n;
        for (int i = nb - 1; i >= 0; i--) {
            int ia = i - (nb - ab.ndim), ib = i - (nb - bbt.ndim);
            int64_t da = ia >= 0 ? ab.dims[ia] : 1, db = ib >= 0 ? bbt.dims[ib] : 1;
            bd[i] = da > db ? da : db;
            s->a_off[i] = da == 1 ? 0 : sa;
            s->b_off[i] = db == 1 ? 0 : sb;
            sa *= da;
            sb *= db;
            s->batch *= bd[i];
        }
        memcpy(s->bdims, bd, sizeof bd);
        s->nb = nb;
    }
    /* Bias: a constant C broadcast along rows folds into a per-column vector. */
    if (cv) {
        if (!qcal_value_is_const(cv) || cv->t.dtype != QCAL_F32) {
            s->c_t = &cv->t;
        } else {
            const struct qcal_tensor *c = &cv->t;
            bool row = qcal_tensor_numel(c) == s->n || qcal_tensor_numel(c) == 1;
            if (row && !(c->ndim == 2 && c->dims[0] == s->m && s->m > 1 && s->n == 1)) {
                s->c_row = qcal_malloc(sizeof(float) * (size_t)s->n);
                if (!s->c_row) return OP_ERR(g, n, QCAL_OUT_OF_MEMORY, "out of memory");
                const float *cd = c->data;
                for (int64_t j = 0; j < s->n; j++)
                    s->c_row[j] = s->beta * (qcal_tensor_numel(c) == 1 ? cd[0] : cd[j]);
            } else {
                s->c_t = &cv->t;
            }
        }
    }
    bool dnnl_ok = (pp->kernels == QCAL_KERNELS_AUTO || pp->kernels == QCAL_KERNELS_DNNL) &&
                   qcal_value_is_const(bv) && !s->trans_a && !s->c_t && (is_gemm || b.ndim == 2);
    if (!is_gemm && dnnl_ok) {
        /* [.., M, K] x [K, N] with constant B: one matmul over all leading rows. */
        s->m = qcal_tensor_numel(&qcal_in(g, n, 0)->t) / s->k;
    }
    if (dnnl_ok) {
        /* oneDNN's output scale would also scale the bias: fold alpha into the weights */
        const float *w = bv->t.data;
        float *scaled = NULL;
        if (s->alpha != 1.0f) {
            size_t count = (size_t)(s->k * s->n);
            scaled = qcal_malloc(sizeof(float) * count);
            if (!scaled) return OP_ERR(g, n, QCAL_OUT_OF_MEMORY, "out of memory");
            for (size_t i = 0; i < count; i++) scaled[i] = s->alpha * w[i];
            w = scaled;
        }
        enum qcal_status st = qcal_dnnl_matmul_create(s->m, s->n, s->k, w, s->trans_b, s->c_row,
                                                      1.0f, &s->post, &s->prim);
        qcal_free(scaled);
        if (st != QCAL_OK) return OP_ERR(g, n, st, "oneDNN could not create the matmul");
        s->kind = QCAL_KERNELS_DNNL;
        pp->scratch_size = qcal_dnnl_scratch_size(s->prim);
        pp->impl = qcal_dnnl_impl(s->prim);
        return QCAL_OK;
    }
    s->kind = pp->kernels == QCAL_KERNELS_REF ? QCAL_KERNELS_REF : QCAL_KERNELS_BLAS;
    pp->impl = s->kind == QCAL_KERNELS_REF ? "ref" : "blas:sgemm";
    return QCAL_OK;
}

static enum qcal_status gemm_prepare(struct qcal_op_prep *pp) { return gemm_prepare_common(pp, true); }
static enum qcal_status matmul_prepare(struct qcal_op_prep *pp) { return gemm_prepare_common(pp, false); }

static enum qcal_status gemm_bind(const void *state, const struct qcal_op_args *a, void **bound_out)
{
    const struct gemm_state *s = state;
    return op_dnnl_bind(s->kind == QCAL_KERNELS_DNNL ? s->prim : NULL, a, bound_out);
}

static enum qcal_status gemm_run(const void *state, const struct qcal_op_args *args)
{
    const struct gemm_state *s = state;
    if (s->kind == QCAL_KERNELS_DNNL) return qcal_dnnl_run(args->bound);
    const float *a = args->in[0]->data, *b = args->in[1]->data;
    float *y = args->out[0]->data;
    int threads = op_threads();
    int64_t lda = s->trans_a ? s->m : s->k, ldb = s->trans_b ? s->k : s->n;
    for (int64_t bi = 0; bi < s->batch; bi++) {
        int64_t ao = 0, bo = 0, rem = bi;
        for (int i = s->nb - 1; i >= 0; i--) {
            int64_t idx = rem % s->bdims[i];
            rem /= s->bdims[i];
            ao += idx * s->a_off[i];
            bo += idx * s->b_off[i];
        }
        float *yb = y + bi * s->m * s->n;
        float beta = 0.0f;
        if (s->c_row) {
            for (int64_t i = 0; i < s->m; i++) memcpy(yb + i * s->n, s->c_row, sizeof(float) * (size_t)s->n);
            beta = 1.0f;
        } else if (s->c_t) {
            /* general broadcast of C to [M, N] */
            const struct qcal_tensor *c = s->c_t;
            const float *cd = c->data;
            int64_t cm = c->ndim == 2 ? c->dims[0] : 1, cn = c->ndim >= 1 ? c->dims[c->ndim - 1] : 1;
            for (int64_t i = 0; i < s->m; i++)
                for (int64_t j = 0; j < s->n; j++)
                    yb[i * s->n + j] = s->beta * cd[(cm == 1 ? 0 : i) * cn + (cn == 1 ? 0 : j)];
            beta = 1.0f;
        }
        if (s->kind == QCAL_KERNELS_REF)
            qcal_ref_gemm(s->trans_a, s->trans_b, s->m, s->n, s->k, s->alpha, a + ao, lda, b + bo,
                          ldb, beta, yb, s->n, threads);
        else
            qcal_blas_gemm(s->trans_a, s->trans_b, s->m, s->n, s->k, s->alpha, a + ao, lda, b + bo,
                           ldb, beta, yb, s->n, threads);
    }
    qcal_post_ops_apply(&s->post, y, NULL, (size_t)(s->batch * s->m * s->n));
    return QCAL_OK;
}

const struct qcal_op_def qcal_op_gemm_def = {
    .name = "Gemm", .parse = gemm_parse, .infer = gemm_infer, .layout = gemm_layout,
    .prepare = gemm_prepare, .bind = gemm_bind, .unbind = op_dnnl_unbind, .run = gemm_run,
    .destroy = gemm_destroy,
};

const struct qcal_op_def qcal_op_matmul_def = {
    .name = "MatMul", .parse = matmul_parse, .infer = matmul_infer, .layout = gemm_layout,
    .prepare = matmul_prepare, .bind = gemm_bind, .unbind = op_dnnl_unbind, .run = gemm_run,
    .destroy = gemm_destroy,
};
