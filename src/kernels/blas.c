/* OpenBLAS family: im2col + sgemm convolutions and plain sgemm.
 *
 * qcal splits the work itself into tasks of a fixed size (output-channel or column blocks)
 * spread over OpenMP threads; the tasks do not depend on the thread count, so neither do
 * the results. OpenBLAS must then run each task single-threaded: its OpenMP build does so
 * inside an active parallel region (and follows omp_get_max_threads() outside one), so
 * with more than one thread every call is made from inside a parallel region, even when
 * there is a single task. Inside batch work (one image per thread) it is single-threaded
 * as well, and nothing is oversubscribed. */
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "qcal/kernels.h"

#define BLAS_ROWS 64  /* output channels per conv task */
#define BLAS_COLS 256 /* output columns per gemm task */

static bool conv_is_pointwise(const struct qcal_conv_desc *d)
{
    return d->kh == 1 && d->kw == 1 && d->sh == 1 && d->sw == 1 && d->pt == 0 && d->pl == 0 &&
           d->pb == 0 && d->pr == 0;
}

size_t qcal_blas_conv2d_scratch(const struct qcal_conv_desc *d, int threads)
{
    if (conv_is_pointwise(d)) return 0;
    size_t one = sizeof(float) * (size_t)(d->ic / d->group * d->kh * d->kw * d->oh * d->ow);
    /* grouped: one im2col buffer per thread, the groups being the tasks */
    return d->group > 1 ? one * (size_t)threads : one;
}

static void im2col(const struct qcal_conv_desc *d, const float *x, int64_t icg, float *col, int threads)
{
#pragma omp parallel for collapse(3) num_threads(threads) if (threads > 1)
    for (int64_t ic = 0; ic < icg; ic++)
        for (int64_t kh = 0; kh < d->kh; kh++)
            for (int64_t kw = 0; kw < d->kw; kw++) {
                float *cp = col + ((ic * d->kh + kh) * d->kw + kw) * d->oh * d->ow;
                const float *xp = x + ic * d->ih * d->iw;
                for (int64_t oh = 0; oh < d->oh; oh++) {
                    const int64_t ih = oh * d->sh - d->pt + kh * d->dh;
                    for (int64_t ow = 0; ow < d->ow; ow++) {
                        const int64_t iw = ow * d->sw - d->pl + kw * d->dw;
                        cp[oh * d->ow + ow] = (ih >= 0 && ih < d->ih && iw >= 0 && iw < d->iw)
                                                  ? xp[ih * d->iw + iw] : 0.0f;
                    }
                }
            }
}

/* rows [o0, o0 + rows) of group g: y = bias + W x col */
static void conv_rows(const struct qcal_conv_desc *d, int64_t g, int64_t o0, int64_t rows, const float *col,
                      const float *w, const float *bias, float *yg)
{
    const int64_t ocg = d->oc / d->group, plane = d->oh * d->ow, kdim = d->ic / d->group * d->kh * d->kw;
    for (int64_t oc = o0; oc < o0 + rows; oc++) {
        const float b = bias ? bias[g * ocg + oc] : 0.0f;
        for (int64_t i = 0; i < plane; i++) yg[oc * plane + i] = b;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)rows, (blasint)plane, (blasint)kdim, 1.0f,
                w + (g * ocg + o0) * kdim, (blasint)kdim, col, (blasint)plane, 1.0f, yg + o0 * plane,
                (blasint)plane);
}

void qcal_blas_conv2d(const struct qcal_conv_desc *d, const float *x, const float *w,
                      const float *bias, float *y, float *scratch, int threads)
{
    const int64_t icg = d->ic / d->group, ocg = d->oc / d->group, plane = d->oh * d->ow;
    const bool pointwise = conv_is_pointwise(d);
    for (int64_t n = 0; n < d->n; n++) {
        const float *xn = x + n * d->ic * d->ih * d->iw;
        float *yn = y + n * d->oc * plane;
        if (d->group > 1) { /* groups are the tasks; each thread has its own im2col buffer */
            const size_t one = qcal_blas_conv2d_scratch(d, 1) / sizeof(float);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
            for (int64_t g = 0; g < d->group; g++) {
                const float *xg = xn + g * icg * d->ih * d->iw, *col = xg;
                if (!pointwise) {
                    float *mine = scratch + (size_t)omp_get_thread_num() * one;
                    im2col(d, xg, icg, mine, 1);
                    col = mine;
                }
                conv_rows(d, g, 0, ocg, col, w, bias, yn + g * ocg * plane);
            }
            continue;
        }
        const float *col = xn;
        if (!pointwise) {
            im2col(d, xn, icg, scratch, threads);
            col = scratch;
        }
        const int64_t tasks = (ocg + BLAS_ROWS - 1) / BLAS_ROWS;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
        for (int64_t t = 0; t < tasks; t++) {
            const int64_t o0 = t * BLAS_ROWS;
            conv_rows(d, 0, o0, ocg - o0 < BLAS_ROWS ? ocg - o0 : BLAS_ROWS, col, w, bias, yn);
        }
    }
}

void qcal_blas_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                    float *c, int64_t ldc, int threads)
{
    const int64_t tasks = (n + BLAS_COLS - 1) / BLAS_COLS;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t t = 0; t < tasks; t++) {
        const int64_t j0 = t * BLAS_COLS, cols = n - j0 < BLAS_COLS ? n - j0 : BLAS_COLS;
        /* columns j0.. of op(B): offset along B's columns, or its rows when transposed */
        const float *bt = trans_b ? b + j0 * ldb : b + j0;
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                    (blasint)m, (blasint)cols, (blasint)k, alpha, a, (blasint)lda, bt, (blasint)ldb, beta,
                    c + j0, (blasint)ldc);
    }
}

/* ConvTranspose whose kernel equals its stride (no overlap), without padding, dilation,
 * output padding or groups, on NHWC: output row s*i + a is input row i [W x IC] times the
 * weights of kernel row a [IC x s*OC] (columns b*OC + oc), written straight into place
 * (consecutive input columns land s output pixels apart: s*OC floats). */
bool qcal_blas_deconv_fits(const struct qcal_conv_desc *d)
{
    return d->transposed && d->group == 1 && d->kh == d->sh && d->kw == d->sw && d->dh == 1 && d->dw == 1 &&
           d->pt == 0 && d->pl == 0 && d->pb == 0 && d->pr == 0 && d->oph == 0 && d->opw == 0 &&
           d->oh == d->ih * d->sh && d->ow == d->iw * d->sw;
}

size_t qcal_blas_deconv_packed_floats(const struct qcal_conv_desc *d)
{
    return (size_t)(d->kh * d->ic * d->kw * d->oc);
}

void qcal_blas_deconv_pack(const struct qcal_conv_desc *d, const float *w, float *packed)
{
    /* w: [IC, OC, KH, KW]; packed: KH blocks of [IC][KW * OC] */
    for (int64_t a = 0; a < d->kh; a++)
        for (int64_t ic = 0; ic < d->ic; ic++)
            for (int64_t b = 0; b < d->kw; b++)
                for (int64_t oc = 0; oc < d->oc; oc++)
                    packed[((a * d->ic + ic) * d->kw + b) * d->oc + oc] = w[((ic * d->oc + oc) * d->kh + a) * d->kw + b];
}

void qcal_blas_deconv2d_nhwc(const struct qcal_conv_desc *d, const float *x, const float *packed, const float *bias,
                             float *y, int threads)
{
    const int64_t rows = d->n * d->ih * d->kh, n_cols = d->kw * d->oc;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t r = 0; r < rows; r++) { /* one output row per task: the same bytes for any thread count */
        const int64_t a = r % d->kh, i = r / d->kh % d->ih, n = r / (d->kh * d->ih);
        const float *xr = x + (n * d->ih + i) * d->iw * d->ic;
        float *yr = y + ((n * d->oh + i * d->sh + a) * d->ow) * d->oc;
        for (int64_t j = 0; j < d->iw * d->kw; j++)
            for (int64_t oc = 0; oc < d->oc; oc++) yr[j * d->oc + oc] = bias ? bias[oc] : 0.0f;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)d->iw, (blasint)n_cols, (blasint)d->ic, 1.0f, xr,
                    (blasint)d->ic, packed + a * d->ic * n_cols, (blasint)n_cols, 1.0f, yr, (blasint)n_cols);
    }
}
