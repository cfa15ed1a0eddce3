#include <math.h>

#include "qcal/graph.h"

/* fminf(fmaxf(x, lo), hi) (NaN gives lo) in a form compilers vectorize. */
static inline float clampf(float x, float lo, float hi)
{
    x = x >= lo ? x : lo;
    return x <= hi ? x : hi;
}

float qcal_act_apply(const struct qcal_act *act, float x)
{
    switch (act->kind) {
    case QCAL_ACT_RELU: return x > 0.0f ? x : 0.0f;
    case QCAL_ACT_LEAKY_RELU: return x >= 0.0f ? x : act->alpha * x;
    case QCAL_ACT_CLIP: return clampf(x, act->alpha, act->beta);
    case QCAL_ACT_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case QCAL_ACT_HARD_SIGMOID: return clampf(act->alpha * x + act->beta, 0.0f, 1.0f);
    case QCAL_ACT_HARD_SWISH: return x * clampf(x + 3.0f, 0.0f, 6.0f) * (1.0f / 6.0f);
    case QCAL_ACT_SWISH: return x / (1.0f + expf(-x));
    case QCAL_ACT_TANH: return tanhf(x);
    case QCAL_ACT_LINEAR: return act->alpha * x + act->beta;
    default: return x;
    }
}

void qcal_act_apply_array(const struct qcal_act *act, float *x, size_t n)
{
    if (act->kind == QCAL_ACT_NONE) return;
    if (act->kind == QCAL_ACT_RELU) {
        for (size_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
        return;
    }
    const float a = act->alpha, b = act->beta;
    switch (act->kind) { /* the common ones as loops of their own, vectorized */
    case QCAL_ACT_CLIP:
        for (size_t i = 0; i < n; i++) x[i] = clampf(x[i], a, b);
        return;
    case QCAL_ACT_HARD_SIGMOID:
        for (size_t i = 0; i < n; i++) x[i] = clampf(a * x[i] + b, 0.0f, 1.0f);
        return;
    case QCAL_ACT_HARD_SWISH:
        for (size_t i = 0; i < n; i++) x[i] = x[i] * clampf(x[i] + 3.0f, 0.0f, 6.0f) * (1.0f / 6.0f);
        return;
    default:
        for (size_t i = 0; i < n; i++) x[i] = qcal_act_apply(act, x[i]);
    }
}

void qcal_post_ops_apply(const struct qcal_post_ops *p, float *y, const float *residual, size_t n)
{
    for (int k = 0; k < p->n; k++) {
        if (p->op[k].kind == QCAL_ACT_SUM) {
            for (size_t i = 0; i < n; i++) y[i] += residual[i];
        } else {
            qcal_act_apply_array(&p->op[k], y, n);
        }
    }
}
