/* Reference kernels: plain loops, NCHW, deterministic. Parallel only over independent
 * output planes, so every output element is summed in the same order for any thread
 * count. */
#include <string.h>

#include "qcal/kernels.h"

void qcal_ref_conv2d(const struct qcal_conv_desc *d, const float *x, const float *w,
                     const float *bias, float *y, int threads)
{
    const int64_t icg = d->ic / d->group, ocg = d->oc / d->group;
    const int64_t plane = d->oh * d->ow;
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t n = 0; n < d->n; n++) {
        for (int64_t oc = 0; oc < d->oc; oc++) {
            const int64_t g = oc / ocg;
            float *yp = y + (n * d->oc + oc) * plane;
            const float b = bias ? bias[oc] : 0.0f;
            for (int64_t i = 0; i < plane; i++) yp[i] = b;
            for (int64_t ic = 0; ic < icg; ic++) {
                const float *xp = x + (n * d->ic + g * icg + ic) * d->ih * d->iw;
                for (int64_t kh = 0; kh < d->kh; kh++) {
                    for (int64_t kw = 0; kw < d->kw; kw++) {
                        const float wv = w[((oc * icg + ic) * d->kh + kh) * d->kw + kw];
                        for (int64_t oh = 0; oh < d->oh; oh++) {
                            const int64_t ih = oh * d->sh - d->pt + kh * d->dh;
                            if (ih < 0 || ih >= d->ih) continue;
                            const float *xr = xp + ih * d->iw;
                            float *yr = yp + oh * d->ow;
                            for (int64_t ow = 0; ow < d->ow; ow++) {
                                const int64_t iw = ow * d->sw - d->pl + kw * d->dw;
                                if (iw >= 0 && iw < d->iw) yr[ow] += wv * xr[iw];
                            }
                        }
                    }
                }
            }
        }
    }
}

void qcal_ref_conv_transpose2d(const struct qcal_conv_desc *d, const float *x, const float *w,
                               const float *bias, float *y, int threads)
{
    /* Gather form: each output element sums the inputs that scatter onto it, so outputs are
     * independent and the loop parallelises without races. */
    const int64_t icg = d->ic / d->group, ocg = d->oc / d->group;
    const int64_t plane = d->oh * d->ow;
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t n = 0; n < d->n; n++) {
        for (int64_t oc = 0; oc < d->oc; oc++) {
            const int64_t g = oc / ocg, ocl = oc % ocg;
            float *yp = y + (n * d->oc + oc) * plane;
            const float b = bias ? bias[oc] : 0.0f;
            for (int64_t i = 0; i < plane; i++) yp[i] = b;
            for (int64_t ic = 0; ic < icg; ic++) {
                const int64_t icf = g * icg + ic;
                const float *xp = x + (n * d->ic + icf) * d->ih * d->iw;
                for (int64_t kh = 0; kh < d->kh; kh++) {
                    for (int64_t kw = 0; kw < d->kw; kw++) {
                        const float wv = w[((icf * ocg + ocl) * d->kh + kh) * d->kw + kw];
                        for (int64_t oh = 0; oh < d->oh; oh++) {
                            int64_t t = oh + d->pt - kh * d->dh;
                            if (t < 0 || t % d->sh) continue;
                            int64_t ih = t / d->sh;
                            if (ih >= d->ih) continue;
                            for (int64_t ow = 0; ow < d->ow; ow++) {
                                int64_t u = ow + d->pl - kw * d->dw;
                                if (u < 0 || u % d->sw) continue;
                                int64_t iw = u / d->sw;
                                if (iw < d->iw) yp[oh * d->ow + ow] += wv * xp[ih * d->iw + iw];
                            }
                        }
                    }
                }
            }
        }
    }
}

void qcal_ref_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                   float *c, int64_t ldc, int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && m > 1)
    for (int64_t i = 0; i < m; i++) {
        float *cr = c + i * ldc;
        for (int64_t j = 0; j < n; j++) cr[j] = beta == 0.0f ? 0.0f : beta * cr[j];
        for (int64_t p = 0; p < k; p++) {
            const float av = alpha * (trans_a ? a[p * lda + i] : a[i * lda + p]);
            if (!trans_b) {
                const float *br = b + p * ldb;
                for (int64_t j = 0; j < n; j++) cr[j] += av * br[j];
            } else {
                for (int64_t j = 0; j < n; j++) cr[j] += av * b[j * ldb + p];
            }
        }
    }
}
