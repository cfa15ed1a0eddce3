/* Reference INT8 kernels: the oracle for the fast (oneDNN) INT8 paths. Integer
 * accumulation is exact; requantization follows the QDQ graph it replaces:
 *
 *     DequantizeLinear(x) -> Conv(DequantizeLinear(w), DequantizeLinear(b)) -> [act] -> QuantizeLinear
 *     acc = sum((x - zp_x) * w) + b                  int32, exact
 *     v   = act((float)acc * (scale_x * scale_w[c])) float, as the dequantized conv would give it
 *     y   = saturate(round_half_even(v / scale_y) + zp_y)
 *
 * so it differs from ONNX Runtime running the QDQ model only where the FP32 accumulation
 * of the dequantized values rounds across a .5 boundary (at most one step). */
#include <math.h>

#include "qcal/kernels.h"

static inline int32_t load_q(const void *p, bool u8, int64_t i)
{
    return u8 ? (int32_t)((const uint8_t *)p)[i] : (int32_t)((const int8_t *)p)[i];
}

static inline void store_q(void *p, bool u8, int64_t i, float v, int32_t zp)
{
    float q = rintf(v) + (float)zp; /* default rounding mode: half to even */
    const float lo = u8 ? 0.0f : -128.0f, hi = u8 ? 255.0f : 127.0f;
    q = q != q ? (float)zp : q < lo ? lo : q > hi ? hi : q;
    if (u8) ((uint8_t *)p)[i] = (uint8_t)q;
    else ((int8_t *)p)[i] = (int8_t)q;
}

void qcal_ref_conv2d_int8(const struct qcal_conv_desc *d, const struct qcal_qconv *q, const void *x,
                          const int8_t *w, const int32_t *bias, void *y, int threads)
{
    const int64_t icg = d->ic / d->group, ocg = d->oc / d->group;
    const int64_t plane = d->oh * d->ow;
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t n = 0; n < d->n; n++) {
        for (int64_t oc = 0; oc < d->oc; oc++) {
            const int64_t g = oc / ocg;
            const float mult = q->x_scale * q->w_scale[q->per_channel ? oc : 0];
            for (int64_t oh = 0; oh < d->oh; oh++) {
                for (int64_t ow = 0; ow < d->ow; ow++) {
                    int64_t acc = bias ? bias[oc] : 0; /* int64: no overflow whatever the sizes */
                    for (int64_t ic = 0; ic < icg; ic++) {
                        const int64_t xc = (n * d->ic + g * icg + ic) * d->ih * d->iw;
                        for (int64_t kh = 0; kh < d->kh; kh++) {
                            const int64_t ih = oh * d->sh - d->pt + kh * d->dh;
                            if (ih < 0 || ih >= d->ih) continue; /* padding holds zp_x: (x - zp_x) = 0 */
                            for (int64_t kw = 0; kw < d->kw; kw++) {
                                const int64_t iw = ow * d->sw - d->pl + kw * d->dw;
                                if (iw < 0 || iw >= d->iw) continue;
                                const int32_t xv = load_q(x, q->x_u8, xc + ih * d->iw + iw) - q->x_zp;
                                acc += (int64_t)xv * w[((oc * icg + ic) * d->kh + kh) * d->kw + kw];
                            }
                        }
                    }
                    float v = (float)acc * mult;
                    for (int k = 0; k < d->post.n; k++) v = qcal_act_apply(&d->post.op[k], v);
                    const int64_t at = (n * d->oc + oc) * plane + oh * d->ow + ow;
                    if (q->y_f32) ((float *)y)[at] = v;
                    else store_q(y, q->y_u8, at, v / q->y_scale, q->y_zp);
                }
            }
        }
    }
}
