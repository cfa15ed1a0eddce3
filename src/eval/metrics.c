/* Detection metrics: matching detections to reference objects (COCO's and Pascal VOC's
 * rules) and average precision (VOC 11-point, VOC all-points, COCO 101-point). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qcal/eval.h"

void qcal_match_coco(const float *iou, int nd, int ng, const uint8_t *ignore, const uint8_t *crowd, float thr,
                     uint8_t *matched, uint8_t *state)
{
    memset(matched, 0, (size_t)ng);
    const float t = fminf(thr, 1.0f - 1e-10f);
    for (int d = 0; d < nd; d++) {
        float best = t;
        int m = -1;
        for (int g = 0; g < ng; g++) {
            if (matched[g] && !(crowd && crowd[g])) continue;
            /* a match to a counted object is never traded for an ignored one */
            if (m >= 0 && !(ignore && ignore[m]) && ignore && ignore[g]) break;
            if (iou[(size_t)d * ng + g] < best) continue;
            best = iou[(size_t)d * ng + g], m = g;
        }
        if (m < 0) {
            state[d] = QCAL_MATCH_FP;
            continue;
        }
        matched[m] = 1;
        state[d] = ignore && ignore[m] ? QCAL_MATCH_IGNORED : QCAL_MATCH_TP;
    }
}

void qcal_match_voc(const float *iou, int nd, int ng, const uint8_t *difficult, float thr, uint8_t *matched,
                    uint8_t *state)
{
    memset(matched, 0, (size_t)ng);
    for (int d = 0; d < nd; d++) {
        float best = -INFINITY;
        int m = -1;
        for (int g = 0; g < ng; g++)
            if (iou[(size_t)d * ng + g] > best) best = iou[(size_t)d * ng + g], m = g;
        if (m < 0 || !(best > thr)) state[d] = QCAL_MATCH_FP;
        else if (difficult && difficult[m]) state[d] = QCAL_MATCH_IGNORED;
        else if (matched[m]) state[d] = QCAL_MATCH_FP; /* a second detection of the same object */
        else matched[m] = 1, state[d] = QCAL_MATCH_TP;
    }
}

struct ranked {
    float score;
    int64_t at;
};

static int by_score_then_order(const void *pa, const void *pb)
{
    const struct ranked *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->at > b->at) - (a->at < b->at);
}

double qcal_average_precision(const float *score, const uint8_t *state, int64_t n, int64_t n_ref, int method)
{
    if (n_ref <= 0) return NAN;
    struct ranked *r = malloc(sizeof *r * (size_t)(n > 0 ? n : 1));
    double *prec = malloc(sizeof *prec * (size_t)(n + 2)), *rec = malloc(sizeof *rec * (size_t)(n + 2));
    if (!r || !prec || !rec) {
        free(r), free(prec), free(rec);
        return NAN;
    }
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        if (state[i] != QCAL_MATCH_IGNORED) r[m++] = (struct ranked){score[i], i};
    if (m > 1) qsort(r, (size_t)m, sizeof *r, by_score_then_order);
    /* precision and recall after each ranked detection */
    int64_t tp = 0;
    for (int64_t i = 0; i < m; i++) {
        tp += state[r[i].at] == QCAL_MATCH_TP;
        prec[i] = (double)tp / (double)(i + 1);
        rec[i] = (double)tp / (double)n_ref;
    }
    double ap = 0;
    if (method == QCAL_AP_VOC11) {
        for (int k = 0; k <= 10; k++) {
            double p = 0;
            for (int64_t i = 0; i < m; i++) /* k * 0.1: the devkit's np.arange(0, 1.1, 0.1) */
                if (rec[i] >= k * 0.1 && prec[i] > p) p = prec[i];
            ap += p / 11;
        }
    } else {
        for (int64_t i = m - 2; i >= 0; i--) /* the precision envelope */
            if (prec[i + 1] > prec[i]) prec[i] = prec[i + 1];
        if (method == QCAL_AP_ALL_POINTS) {
            double last = 0;
            for (int64_t i = 0; i < m; i++) {
                if (rec[i] != last) ap += (rec[i] - last) * prec[i];
                last = rec[i];
            }
        } else { /* COCO: the envelope at recall 0, 0.01 .. 1 (the first rank reaching it) */
            int64_t i = 0;
            for (int k = 0; k <= 100; k++) {
                const double want = k < 100 ? k * 0.01 : 1.0; /* numpy's linspace(0, 1, 101) */
                while (i < m && rec[i] < want) i++;
                if (i == m) break;
                ap += prec[i];
            }
            ap /= 101;
        }
    }
    free(r), free(prec), free(rec);
    return ap;
}
