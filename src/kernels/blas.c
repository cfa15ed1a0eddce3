/* OpenBLAS family: im2col + sgemm convolutions and plain sgemm. Debian's OpenMP build of
 * OpenBLAS runs single-threaded inside an OpenMP parallel region, so batch work (one image
 * per thread) never oversubscribes the cores. */
#include <cblas.h>
#include <string.h>

#include "qcal/kernels.h"

#include <omp.h>

/* The thread count is global state in OpenBLAS: only set it outside parallel regions. */
static void blas_threads(int threads)
{
    if (!omp_in_parallel()) openblas_set_num_threads(threads);
}

static bool conv_is_pointwise(const struct qcal_conv_desc *d)
{
    return d->kh == 1 && d->kw == 1 && d->sh == 1 && d->sw == 1 && d->pt == 0 && d->pl == 0 &&
           d->pb == 0 && d->pr == 0;
}

size_t qcal_blas_conv2d_scratch(const struct qcal_conv_desc *d)
{
    if (conv_is_pointwise(d)) return 0;
    return sizeof(float) * (size_t)(d->ic / d->group * d->kh * d->kw * d->oh * d->ow);
}

static void im2col(const struct qcal_conv_desc *d, const float *x, int64_t icg, float *col)
{
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

void qcal_blas_conv2d(const struct qcal_conv_desc *d, const float *x, const float *w,
                      const float *bias, float *y, float *scratch, int threads)
{
    const int64_t icg = d->ic / d->group, ocg = d->oc / d->group;
    const int64_t plane = d->oh * d->ow, kdim = icg * d->kh * d->kw;
    blas_threads(threads);
    for (int64_t n = 0; n < d->n; n++) {
        for (int64_t g = 0; g < d->group; g++) {
            const float *xg = x + (n * d->ic + g * icg) * d->ih * d->iw;
            float *yg = y + (n * d->oc + g * ocg) * plane;
            const float *col = xg;
            if (!conv_is_pointwise(d)) {
                im2col(d, xg, icg, scratch);
                col = scratch;
            }
            for (int64_t oc = 0; oc < ocg; oc++) {
                const float b = bias ? bias[g * ocg + oc] : 0.0f;
                for (int64_t i = 0; i < plane; i++) yg[oc * plane + i] = b;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)ocg, (blasint)plane,
                        (blasint)kdim, 1.0f, w + g * ocg * kdim, (blasint)kdim, col,
                        (blasint)plane, 1.0f, yg, (blasint)plane);
        }
    }
}

void qcal_blas_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                    float *c, int64_t ldc, int threads)
{
    blas_threads(threads);
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (blasint)m, (blasint)n, (blasint)k, alpha, a,
                (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
}
