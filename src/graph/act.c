#include <math.h>

#include "qcal/graph.h"

float qcal_act_apply(const struct qcal_act *act, float x)
{
    switch (act->kind) {
    case QCAL_ACT_RELU: return x > 0.0f ? x : 0.0f;
    case QCAL_ACT_LEAKY_RELU: return x >= 0.0f ? x : act->alpha * x;
    case QCAL_ACT_CLIP: return fminf(fmaxf(x, act->alpha), act->beta);
    case QCAL_ACT_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case QCAL_ACT_HARD_SIGMOID: return fminf(fmaxf(act->alpha * x + act->beta, 0.0f), 1.0f);
    case QCAL_ACT_HARD_SWISH: return x * fminf(fmaxf(x + 3.0f, 0.0f), 6.0f) * (1.0f / 6.0f);
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
    for (size_t i = 0; i < n; i++) x[i] = qcal_act_apply(act, x[i]);
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
