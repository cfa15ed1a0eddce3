/*
 * qcal eval: adapters that turn raw model outputs into predictions. Detection: boxes with a
 * score and a class, after per-class non-maximum suppression; instance segmentation adds a
 * mask per box.
 *
 *     struct qcal_detections d = {0};
 *     qcal_detect_ssd(boxes, scores, &opt, &d);   // or qcal_detect_yolo(...)
 *     for (int i = 0; i < d.n; i++) ... d.det[i].x0 ...
 *     qcal_detections_free(&d);
 *
 * Everything is deterministic: sorts break ties by anchor index, so any thread count gives
 * the same list.
 */
#ifndef QCAL_EVAL_H
#define QCAL_EVAL_H

#include "qcal/tensor.h"

struct qcal_detection {
    float x0, y0, x1, y1; /* model input pixels */
    float score;
    int32_t cls;          /* the model's class index, background removed (see background_class) */
    int32_t anchor;       /* the prediction it came from */
};

struct qcal_detections {
    int n, cap;
    struct qcal_detection *det; /* owned */
};
void qcal_detections_free(struct qcal_detections *d);

struct qcal_detect_options {
    float confidence;     /* keep class scores >= this */
    float nms_iou;        /* suppress boxes of the same class with IoU > this */
    int background_class; /* this class is never a detection, and classes above it shift down by one; -1: none */
    int max_detections;   /* after NMS, the best ones (0: all) */
    int input_width, input_height;
};

/* Intersection over union of two boxes (0 when either is empty). */
float qcal_iou(const struct qcal_detection *a, const struct qcal_detection *b);

/* Greedy per-class NMS in place: per class, the QCAL_NMS_TOP_K best candidates by score
 * (ties: lower anchor first) are visited in order and a box is dropped when it overlaps a
 * kept box by more than iou (SSD's nms_top_k, torchvision's 300 per class for SSDlite).
 * The result is sorted by score. */
#define QCAL_NMS_TOP_K 400
void qcal_nms(struct qcal_detections *d, float iou);

/* SSD-style outputs: either one DetectionOutput tensor [1, 1, N, 7] (image, class, score, x0,
 * y0, x1, y1 normalized; NMS already done), or boxes [1, A, 4] (x0, y0, x1, y1 normalized)
 * with class probabilities [1, A, C]. */
enum qcal_status qcal_detect_ssd(const struct qcal_tensor *boxes, const struct qcal_tensor *scores,
                                 const struct qcal_detect_options *opt, struct qcal_detections *out);

/* YOLO (v5/v8-style) outputs [1, 4 + C (+ M), N] or [1, N, 4 + C (+ M)]: box centre and size in
 * input pixels, then C class scores (and M mask coefficients, which `coefficients` receives
 * per kept detection when not NULL, n_coef = M). The layout is told by which axis is N:
 * the longer one. `objectness`: v5 has a score at index 4 multiplying the class scores. */
enum qcal_status qcal_detect_yolo(const struct qcal_tensor *t, int n_classes, bool objectness,
                                  const struct qcal_detect_options *opt, struct qcal_detections *out,
                                  float **coefficients, int *n_coef);

/* YOLO-seg masks: for detection i, sigmoid(coefficients[i] . protos) upsampled to the input
 * size, cropped to its box, > 0.5. masks: n x input_height x input_width bytes. */
enum qcal_status qcal_yolo_masks(const struct qcal_detections *d, const float *coefficients, int n_coef,
                                 const struct qcal_tensor *protos, const struct qcal_detect_options *opt,
                                 uint8_t *masks);

/* ---- Comparisons (eval/compare.c): the optimized model against its parent, per image ---- */

/* Class scores as probabilities: as given when they already are (in [0, 1], summing to 1
 * within 1e-3), else their softmax. */
void qcal_scores_to_probs(const float *s, int64_t n, double *p);
/* The first index of the largest score; the rank (1 = top) of class c among the scores,
 * ties going to the lower index as argmax does. */
int64_t qcal_argmax(const float *s, int64_t n);
int64_t qcal_class_rank(const float *s, int64_t n, int64_t c);

/* One image's classification comparison (DL Workbench's columns). */
struct qcal_cls_compare {
    int32_t parent_class, optimized_class;
    int32_t parent_class_rank;    /* rank of the parent's class in the optimized scores */
    double parent_conf;           /* parent's probability of its class */
    double optimized_conf;        /* optimized model's probability of its class */
    double optimized_conf_parent; /* optimized model's probability of the parent's class */
};
enum qcal_status qcal_compare_classification(const float *parent, const float *optimized, int64_t n,
                                             struct qcal_cls_compare *out);

/* Distance of two tensors of n values: mean squared error, largest |difference|, cosine
 * similarity (1 for two zero tensors) and signal-to-noise ratio 10 log10(Σp² / Σ(o-p)²) in
 * dB (+inf when equal). */
struct qcal_tensor_distance {
    double mse, max_abs, cosine, snr_db;
};
void qcal_tensor_distance(const float *parent, const float *optimized, int64_t n, struct qcal_tensor_distance *d);

/* Semantic segmentation: the class map of [classes, plane] scores (first largest), and
 * the IoU of two class maps: per class intersections and unions (pixels outside
 * [0, classes) ignored), mean over the classes present in either map (1 when none is). */
void qcal_argmax_map(const float *scores, int64_t classes, int64_t plane, int32_t *map);
double qcal_map_iou(const int32_t *a, const int32_t *b, int64_t plane, int64_t classes, int64_t *inter, int64_t *uni);

/* ---- Detection metrics (eval/metrics.c) ---- */

/* What a detection became when matched to reference objects (ground truth, or the parent
 * model's detections). */
enum { QCAL_MATCH_FP = 0, QCAL_MATCH_TP = 1, QCAL_MATCH_IGNORED = 2 };

/* COCO's matching of one image and class: nd detections in score order (best first) against
 * ng reference objects, the ignored ones (crowds) last; iou[d * ng + g] (for a crowd: the
 * intersection over the detection's area). Each detection in turn takes the not yet matched
 * object (crowds: any) of the largest IoU >= thr, a later object winning a tie, and never
 * trades a counted object for an ignored one; a detection matched to an ignored object is
 * IGNORED. ignore/crowd may be NULL (none); matched: ng bytes of scratch. */
void qcal_match_coco(const float *iou, int nd, int ng, const uint8_t *ignore, const uint8_t *crowd, float thr,
                     uint8_t *matched, uint8_t *state);
/* Pascal VOC's (devkit) matching: each detection in score order takes the object of the
 * largest IoU (the first of equals); IoU > thr: TP if that object is not difficult and not yet
 * taken, FP if taken, IGNORED if difficult; else FP. */
void qcal_match_voc(const float *iou, int nd, int ng, const uint8_t *difficult, float thr, uint8_t *matched,
                    uint8_t *state);

enum qcal_ap_method {
    QCAL_AP_VOC11,      /* VOC2007: mean of the best precision at recall >= 0, 0.1 .. 1 */
    QCAL_AP_ALL_POINTS, /* VOC2010+: area under the precision envelope */
    QCAL_AP_COCO101,    /* COCO: mean of the envelope at recall 0, 0.01 .. 1 */
};
/* Average precision of n detections of one class pooled over images (score, state from a
 * matching) against n_ref counted reference objects: ranked by score, ties in input order;
 * IGNORED detections dropped. NAN when n_ref is 0 (the class is left out of means). */
double qcal_average_precision(const float *score, const uint8_t *state, int64_t n, int64_t n_ref, int method);

#endif
