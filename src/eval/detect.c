/* Detection adapters: SSD (decoded boxes + class probabilities, or DetectionOutput), YOLO
 * (v5/v8 heads, optionally with mask coefficients), per-class NMS, YOLO-seg masks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qcal/eval.h"

void qcal_detections_free(struct qcal_detections *d)
{
    if (!d) return;
    free(d->det);
    memset(d, 0, sizeof *d);
}

static enum qcal_status push(struct qcal_detections *d, struct qcal_detection x)
{
    if (d->n == d->cap) {
        int cap = d->cap ? 2 * d->cap : 64;
        struct qcal_detection *n = qcal_realloc_array(d->det, (size_t)cap, sizeof *n);
        if (!n) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory collecting detections");
        d->det = n, d->cap = cap;
    }
    d->det[d->n++] = x;
    return QCAL_OK;
}

float qcal_iou(const struct qcal_detection *a, const struct qcal_detection *b)
{
    float iw = fminf(a->x1, b->x1) - fmaxf(a->x0, b->x0), ih = fminf(a->y1, b->y1) - fmaxf(a->y0, b->y0);
    if (iw <= 0 || ih <= 0) return 0;
    float inter = iw * ih;
    float ua = (a->x1 - a->x0) * (a->y1 - a->y0) + (b->x1 - b->x0) * (b->y1 - b->y0) - inter;
    return ua > 0 ? inter / ua : 0;
}

static int by_score(const void *pa, const void *pb)
{
    const struct qcal_detection *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    if (a->anchor != b->anchor) return a->anchor < b->anchor ? -1 : 1;
    return (a->cls > b->cls) - (a->cls < b->cls);
}

static int by_class_score(const void *pa, const void *pb)
{
    const struct qcal_detection *a = pa, *b = pb;
    if (a->cls != b->cls) return a->cls < b->cls ? -1 : 1;
    return by_score(pa, pb);
}

void qcal_nms(struct qcal_detections *d, float iou)
{
    if (d->n < 2) return;
    qsort(d->det, (size_t)d->n, sizeof *d->det, by_class_score);
    int kept = 0;
    for (int g = 0; g < d->n;) { /* one class at a time */
        int end = g;
        while (end < d->n && d->det[end].cls == d->det[g].cls) end++;
        int first = kept, seen = 0;
        for (int i = g; i < end && seen < QCAL_NMS_TOP_K; i++, seen++) {
            bool keep = true;
            for (int k = first; k < kept && keep; k++)
                if (qcal_iou(&d->det[k], &d->det[i]) > iou) keep = false;
            if (keep) d->det[kept++] = d->det[i];
        }
        g = end;
    }
    d->n = kept;
    qsort(d->det, (size_t)d->n, sizeof *d->det, by_score);
}

static void finish(struct qcal_detections *d, const struct qcal_detect_options *opt, bool nms)
{
    if (nms) qcal_nms(d, opt->nms_iou);
    else if (d->n > 1) qsort(d->det, (size_t)d->n, sizeof *d->det, by_score);
    if (opt->max_detections > 0 && d->n > opt->max_detections) d->n = opt->max_detections;
}

/* The model's class c as a dataset class: -1 for the background. */
static int32_t out_class(int c, int background)
{
    if (background < 0 || c < background) return c;
    return c == background ? -1 : c - 1;
}

enum qcal_status qcal_detect_ssd(const struct qcal_tensor *boxes, const struct qcal_tensor *scores,
                                 const struct qcal_detect_options *opt, struct qcal_detections *out)
{
    memset(out, 0, sizeof *out);
    const float W = (float)opt->input_width, H = (float)opt->input_height;
    enum qcal_status st = QCAL_OK;
    if (boxes->dtype != QCAL_F32 || (scores && scores->dtype != QCAL_F32))
        return QCAL_ERR(QCAL_UNSUPPORTED, "ssd adapter: outputs must be float32");
    if (!scores) { /* DetectionOutput [1, 1, N, 7] */
        if (boxes->ndim != 4 || boxes->dims[0] != 1 || boxes->dims[1] != 1 || boxes->dims[3] != 7)
            return QCAL_ERR(QCAL_INVALID_DATA, "ssd adapter: expected a DetectionOutput [1, 1, N, 7] output or "
                            "boxes [1, A, 4] with scores [1, A, C]");
        const float *r = boxes->data;
        for (int64_t i = 0; i < boxes->dims[2] && st == QCAL_OK; i++, r += 7) {
            if (r[0] < 0) break; /* image id -1 ends the list */
            int32_t c = out_class((int)r[1], opt->background_class);
            if (c < 0 || !(r[2] >= opt->confidence)) continue;
            st = push(out, (struct qcal_detection){r[3] * W, r[4] * H, r[5] * W, r[6] * H, r[2], c, (int32_t)i});
        }
        if (st == QCAL_OK) finish(out, opt, false);
        return st;
    }
    if (boxes->ndim != 3 || scores->ndim != 3 || boxes->dims[0] != 1 || scores->dims[0] != 1 || boxes->dims[2] != 4 ||
        scores->dims[1] != boxes->dims[1])
        return QCAL_ERR(QCAL_INVALID_DATA, "ssd adapter: expected boxes [1, A, 4] and scores [1, A, C] with the "
                        "same A");
    const int64_t A = boxes->dims[1], C = scores->dims[2];
    const float *b = boxes->data, *s = scores->data;
    for (int64_t a = 0; a < A && st == QCAL_OK; a++)
        for (int64_t c = 0; c < C && st == QCAL_OK; c++) {
            float p = s[a * C + c];
            int32_t k = out_class((int)c, opt->background_class);
            if (k < 0 || !(p >= opt->confidence)) continue;
            const float *bb = b + a * 4;
            st = push(out, (struct qcal_detection){bb[0] * W, bb[1] * H, bb[2] * W, bb[3] * H, p, k, (int32_t)a});
        }
    if (st == QCAL_OK) finish(out, opt, true);
    else qcal_detections_free(out);
    return st;
}

enum qcal_status qcal_detect_yolo(const struct qcal_tensor *t, int n_classes, bool objectness,
                                  const struct qcal_detect_options *opt, struct qcal_detections *out,
                                  float **coefficients, int *n_coef)
{
    memset(out, 0, sizeof *out);
    if (coefficients) *coefficients = NULL;
    if (t->dtype != QCAL_F32 || t->ndim != 3 || t->dims[0] != 1)
        return QCAL_ERR(QCAL_INVALID_DATA, "yolo adapter: expected a float32 [1, 4 + C, N] or [1, N, 4 + C] output");
    /* N is the longer axis (thousands of predictions against tens of fields) */
    const bool fields_first = t->dims[1] < t->dims[2];
    const int64_t N = fields_first ? t->dims[2] : t->dims[1], F = fields_first ? t->dims[1] : t->dims[2];
    const int64_t first = 4 + (objectness ? 1 : 0);
    if (n_classes <= 0) n_classes = (int)(F - first); /* no mask coefficients */
    const int64_t M = F - first - n_classes;
    if (M < 0)
        return QCAL_ERR(QCAL_INVALID_DATA, "yolo adapter: %lld fields per prediction, fewer than 4%s + %d classes",
                        (long long)F, objectness ? " + 1" : "", n_classes);
    const float *d = t->data;
#define AT(i, f) (fields_first ? d[(f) * N + (i)] : d[(i) * F + (f)])
    enum qcal_status st = QCAL_OK;
    for (int64_t i = 0; i < N && st == QCAL_OK; i++) {
        float obj = objectness ? AT(i, 4) : 1.0f;
        for (int c = 0; c < n_classes && st == QCAL_OK; c++) {
            float p = AT(i, first + c) * obj;
            int32_t k = out_class(c, opt->background_class);
            if (k < 0 || !(p >= opt->confidence)) continue;
            float cx = AT(i, 0), cy = AT(i, 1), w = AT(i, 2), h = AT(i, 3);
            st = push(out, (struct qcal_detection){cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, p, k, (int32_t)i});
        }
    }
    if (st == QCAL_OK) finish(out, opt, true);
    if (st == QCAL_OK && coefficients && M > 0 && out->n > 0) {
        float *cf = malloc(sizeof *cf * (size_t)out->n * (size_t)M);
        if (!cf) st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        for (int k = 0; st == QCAL_OK && k < out->n; k++)
            for (int64_t m = 0; m < M; m++) cf[(size_t)k * M + m] = AT(out->det[k].anchor, first + n_classes + m);
        *coefficients = cf;
    }
#undef AT
    if (n_coef) *n_coef = (int)M;
    if (st != QCAL_OK) qcal_detections_free(out);
    return st;
}

enum qcal_status qcal_yolo_masks(const struct qcal_detections *d, const float *coefficients, int n_coef,
                                 const struct qcal_tensor *protos, const struct qcal_detect_options *opt,
                                 uint8_t *masks)
{
    if (protos->dtype != QCAL_F32 || protos->ndim != 4 || protos->dims[0] != 1 || protos->dims[1] != n_coef)
        return QCAL_ERR(QCAL_INVALID_DATA, "instance_segmentation adapter: prototypes must be float32 [1, %d, H, W]",
                        n_coef);
    const int ph = (int)protos->dims[2], pw = (int)protos->dims[3];
    const int W = opt->input_width, H = opt->input_height;
    const float *P = protos->data;
    float *logit = malloc(sizeof *logit * (size_t)ph * pw);
    if (!logit) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    for (int k = 0; k < d->n; k++) {
        const float *cf = coefficients + (size_t)k * n_coef;
        for (int i = 0; i < ph * pw; i++) {
            float v = 0;
            for (int m = 0; m < n_coef; m++) v += cf[m] * P[(size_t)m * ph * pw + i];
            logit[i] = v;
        }
        /* nearest upsampling to the input size; sigmoid(v) > 0.5 <=> v > 0; inside the box only */
        const struct qcal_detection *b = &d->det[k];
        uint8_t *mk = masks + (size_t)k * W * H;
        for (int y = 0; y < H; y++) {
            int py = (int)((int64_t)y * ph / H);
            for (int x = 0; x < W; x++) {
                int px = (int)((int64_t)x * pw / W);
                float cx = x + 0.5f, cy = y + 0.5f;
                bool in = cx >= b->x0 && cx < b->x1 && cy >= b->y0 && cy < b->y1;
                mk[(size_t)y * W + x] = (uint8_t)(in && logit[py * pw + px] > 0);
            }
        }
    }
    free(logit);
    return QCAL_OK;
}
