/* Comparisons of an optimized model's outputs with its parent's, image by image: the
 * parent's predictions are the reference, no annotations needed. Every sum runs in double
 * in index order, so a record depends only on the two outputs (not on threads or ranks). */
#include <math.h>
#include <stdlib.h>

#include "qcal/eval.h"

void qcal_scores_to_probs(const float *s, int64_t n, double *p)
{
    double sum = 0, mx = -INFINITY;
    bool probs = n > 0;
    for (int64_t i = 0; i < n; i++) {
        sum += s[i];
        probs = probs && s[i] >= 0.0f && s[i] <= 1.0f;
        mx = s[i] > mx ? s[i] : mx;
    }
    if (probs && fabs(sum - 1.0) < 1e-3) {
        for (int64_t i = 0; i < n; i++) p[i] = s[i];
        return;
    }
    double z = 0;
    for (int64_t i = 0; i < n; i++) z += exp((double)s[i] - mx);
    for (int64_t i = 0; i < n; i++) p[i] = exp((double)s[i] - mx) / z;
}

int64_t qcal_argmax(const float *s, int64_t n)
{
    int64_t b = 0;
    for (int64_t i = 1; i < n; i++)
        if (s[i] > s[b]) b = i;
    return b;
}

int64_t qcal_class_rank(const float *s, int64_t n, int64_t c)
{
    int64_t r = 1;
    for (int64_t i = 0; i < n; i++)
        if (s[i] > s[c] || (s[i] == s[c] && i < c)) r++;
    return r;
}

enum qcal_status qcal_compare_classification(const float *parent, const float *optimized, int64_t n,
                                             struct qcal_cls_compare *out)
{
    if (n < 1) return QCAL_ERR(QCAL_INVALID_ARGUMENT, "a classification output needs at least one class");
    double *pp = malloc(sizeof(double) * (size_t)n), *po = malloc(sizeof(double) * (size_t)n);
    if (!pp || !po) {
        free(pp);
        free(po);
        return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    }
    qcal_scores_to_probs(parent, n, pp);
    qcal_scores_to_probs(optimized, n, po);
    const int64_t a = qcal_argmax(parent, n), b = qcal_argmax(optimized, n);
    *out = (struct qcal_cls_compare){.parent_class = (int32_t)a, .optimized_class = (int32_t)b,
                                     .parent_class_rank = (int32_t)qcal_class_rank(optimized, n, a),
                                     .parent_conf = pp[a], .optimized_conf = po[b], .optimized_conf_parent = po[a]};
    free(pp);
    free(po);
    return QCAL_OK;
}

void qcal_tensor_distance(const float *parent, const float *optimized, int64_t n, struct qcal_tensor_distance *d)
{
    double se = 0, mx = 0, dot = 0, np = 0, no = 0;
    for (int64_t i = 0; i < n; i++) {
        const double p = parent[i], o = optimized[i], e = o - p;
        se += e * e;
        mx = fabs(e) > mx || isnan(e) ? fabs(e) : mx;
        dot += p * o;
        np += p * p;
        no += o * o;
    }
    d->mse = n > 0 ? se / (double)n : 0.0;
    d->max_abs = mx;
    /* two zero tensors are the same direction; one zero tensor has none */
    d->cosine = np == 0 && no == 0 ? 1.0 : np == 0 || no == 0 ? 0.0 : dot / (sqrt(np) * sqrt(no));
    d->snr_db = se == 0 ? INFINITY : np == 0 ? -INFINITY : 10.0 * log10(np / se);
}

void qcal_argmax_map(const float *scores, int64_t classes, int64_t plane, int32_t *map)
{
    for (int64_t i = 0; i < plane; i++) {
        int32_t b = 0;
        for (int64_t k = 1; k < classes; k++)
            if (scores[k * plane + i] > scores[b * plane + i]) b = (int32_t)k;
        map[i] = b;
    }
}

double qcal_map_iou(const int32_t *a, const int32_t *b, int64_t plane, int64_t classes, int64_t *inter, int64_t *uni)
{
    for (int64_t k = 0; k < classes; k++) inter[k] = uni[k] = 0;
    for (int64_t i = 0; i < plane; i++) {
        const int32_t x = a[i], y = b[i];
        if (x < 0 || x >= classes || y < 0 || y >= classes) continue; /* ignored pixels */
        if (x == y) {
            inter[x]++;
            uni[x]++;
        } else {
            uni[x]++;
            uni[y]++;
        }
    }
    double sum = 0;
    int64_t present = 0;
    for (int64_t k = 0; k < classes; k++) {
        if (uni[k] == 0) continue;
        sum += (double)inter[k] / (double)uni[k];
        present++;
    }
    return present ? sum / (double)present : 1.0;
}
