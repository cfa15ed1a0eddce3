/* eval: detection adapters on hand-made outputs whose answers are worked out by hand. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "qcal/eval.h"

static struct qcal_detection box(float x0, float y0, float x1, float y1, float score, int cls, int anchor)
{
    return (struct qcal_detection){x0, y0, x1, y1, score, cls, anchor};
}

static void test_iou(void)
{
    struct qcal_detection a = box(0, 0, 10, 10, 1, 0, 0), b = box(5, 0, 15, 10, 1, 0, 1);
    CHECK_NEAR(qcal_iou(&a, &b), 50.0f / 150.0f, 1e-6); /* overlap 5x10, union 150 */
    struct qcal_detection c = box(10, 10, 20, 20, 1, 0, 2);
    CHECK_NEAR(qcal_iou(&a, &c), 0.0f, 0); /* touching corners */
    CHECK_NEAR(qcal_iou(&a, &a), 1.0f, 1e-6);
    struct qcal_detection e = box(3, 3, 3, 8, 1, 0, 3); /* empty */
    CHECK_NEAR(qcal_iou(&a, &e), 0.0f, 0);
}

static void test_nms(void)
{
    struct qcal_detection v[] = {
        box(0, 0, 10, 10, 0.9f, 1, 0),   /* kept */
        box(1, 0, 11, 10, 0.8f, 1, 1),   /* IoU 90/110 = 0.82 with the first: dropped */
        box(1, 0, 11, 10, 0.85f, 2, 2),  /* other class: kept */
        box(20, 20, 30, 30, 0.3f, 1, 3), /* no overlap: kept */
        box(5, 0, 15, 10, 0.7f, 1, 4),   /* IoU 1/3 with the first: kept at 0.45 */
        box(0, 0, 10, 10, 0.7f, 1, 5),   /* same score as anchor 4, overlaps the first: dropped */
    };
    struct qcal_detections d = {.n = 6, .cap = 6, .det = malloc(sizeof v)};
    memcpy(d.det, v, sizeof v);
    qcal_nms(&d, 0.45f);
    CHECK_EQ_INT(d.n, 4);
    int want[] = {0, 2, 4, 3}; /* by score */
    for (int i = 0; i < d.n && i < 4; i++) CHECK_EQ_INT(d.det[i].anchor, want[i]);
    qcal_detections_free(&d);
}

static void test_ssd(void)
{
    /* 3 anchors x 3 classes (0 = background); boxes normalized, input 200 x 100 */
    float boxes[] = {0.1f, 0.1f, 0.5f, 0.5f, 0.12f, 0.1f, 0.52f, 0.5f, 0.6f, 0.6f, 0.9f, 0.9f};
    float scores[] = {0.1f, 0.7f, 0.2f, /* class 1 at 0.7 */
                      0.2f, 0.6f, 0.2f, /* class 1 at 0.6, overlaps anchor 0: suppressed */
                      0.9f, 0.05f, 0.05f /* background */};
    struct qcal_tensor b = {.dtype = QCAL_F32, .ndim = 3, .dims = {1, 3, 4}, .data = boxes};
    struct qcal_tensor s = {.dtype = QCAL_F32, .ndim = 3, .dims = {1, 3, 3}, .data = scores};
    struct qcal_detect_options opt = {.confidence = 0.15f, .nms_iou = 0.5f, .background_class = 0,
                                      .input_width = 200, .input_height = 100};
    struct qcal_detections d;
    CHECK(qcal_detect_ssd(&b, &s, &opt, &d) == QCAL_OK);
    /* kept: anchor 0 class 1 -> 0 (0.7), anchor 0 class 2 -> 1 (0.2), anchor 1 class 2 -> 1 (0.2)
     * overlaps anchor 0's class-2 box (IoU 0.9): dropped */
    CHECK_EQ_INT(d.n, 2);
    if (d.n == 2) {
        CHECK_EQ_INT(d.det[0].cls, 0);
        CHECK_NEAR(d.det[0].score, 0.7f, 0);
        CHECK_NEAR(d.det[0].x0, 20.0f, 1e-4);
        CHECK_NEAR(d.det[0].y1, 50.0f, 1e-4);
        CHECK_EQ_INT(d.det[1].cls, 1);
        CHECK_EQ_INT(d.det[1].anchor, 0);
    }
    qcal_detections_free(&d);
    /* DetectionOutput [1, 1, N, 7], ending at image id -1 */
    float det[] = {0, 3, 0.8f, 0.1f, 0.2f, 0.3f, 0.4f, 0, 1, 0.3f, 0, 0, 1, 1, -1, 0, 0, 0, 0, 0, 0};
    struct qcal_tensor t = {.dtype = QCAL_F32, .ndim = 4, .dims = {1, 1, 3, 7}, .data = det};
    opt.confidence = 0.5f;
    CHECK(qcal_detect_ssd(&t, NULL, &opt, &d) == QCAL_OK);
    CHECK_EQ_INT(d.n, 1);
    if (d.n == 1) {
        CHECK_EQ_INT(d.det[0].cls, 2); /* 3 with background 0 */
        CHECK_NEAR(d.det[0].x1, 60.0f, 1e-4);
        CHECK_NEAR(d.det[0].y1, 40.0f, 1e-4);
    }
    qcal_detections_free(&d);
    struct qcal_tensor bad = {.dtype = QCAL_F32, .ndim = 3, .dims = {1, 3, 5}, .data = boxes};
    CHECK(qcal_detect_ssd(&bad, &s, &opt, &d) == QCAL_INVALID_DATA);
}

static void test_yolo(void)
{
    /* 9 predictions (the layout is told by N being the longer axis) x (4 + 2 classes + 1
     * coefficient); only the first two score above the threshold */
    float rows[9][7] = {{50, 40, 20, 10, 0.1f, 0.9f, 1.0f}, {80, 40, 20, 20, 0.6f, 0.2f, -1.0f}};
    float nf[9 * 7], fn[7 * 9];
    for (int i = 0; i < 9; i++)
        for (int f = 0; f < 7; f++) nf[i * 7 + f] = rows[i][f], fn[f * 9 + i] = rows[i][f];
    struct qcal_tensor a = {.dtype = QCAL_F32, .ndim = 3, .dims = {1, 9, 7}, .data = nf};
    struct qcal_tensor b = {.dtype = QCAL_F32, .ndim = 3, .dims = {1, 7, 9}, .data = fn};
    struct qcal_detect_options opt = {.confidence = 0.5f, .nms_iou = 0.5f, .background_class = -1,
                                      .input_width = 100, .input_height = 80};
    struct qcal_detections d1, d2;
    float *c1 = NULL, *c2 = NULL;
    int m1 = 0, m2 = 0;
    CHECK(qcal_detect_yolo(&b, 2, false, &opt, &d1, &c1, &m1) == QCAL_OK);
    CHECK(qcal_detect_yolo(&a, 2, false, &opt, &d2, &c2, &m2) == QCAL_OK); /* [1, N, F]: the same */
    CHECK(d1.n == d2.n && m1 == m2 && !memcmp(d1.det, d2.det, sizeof *d1.det * (size_t)d1.n) &&
          !memcmp(c1, c2, sizeof *c1 * (size_t)(d1.n * m1)));
    free(c2);
    qcal_detections_free(&d2);
    CHECK_EQ_INT(d1.n, 2);
    CHECK_EQ_INT(m1, 1);
    if (d1.n == 2) {
        CHECK_EQ_INT(d1.det[0].cls, 1);
        CHECK_NEAR(d1.det[0].x0, 40.0f, 0);
        CHECK_NEAR(d1.det[0].y0, 35.0f, 0);
        CHECK_NEAR(d1.det[0].x1, 60.0f, 0);
        CHECK_EQ_INT(d1.det[1].cls, 0);
        CHECK_NEAR(c1[0], 1.0f, 0);
        CHECK_NEAR(c1[1], -1.0f, 0);
    }
    /* masks: prototypes 1 x 4 x 5 = +1 on the left half, -1 on the right; coefficient +1
     * keeps the left half inside the box, -1 the right half */
    float protos[4 * 5];
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 5; x++) protos[y * 5 + x] = x < 2 ? 1.0f : -1.0f;
    struct qcal_tensor p = {.dtype = QCAL_F32, .ndim = 4, .dims = {1, 1, 4, 5}, .data = protos};
    uint8_t *masks = calloc(2, 100 * 80);
    CHECK(qcal_yolo_masks(&d1, c1, m1, &p, &opt, masks) == QCAL_OK);
    /* detection 0: box x 40..60 -> proto column x*5/100 < 2 means x < 40: none inside */
    size_t area0 = 0, area1 = 0;
    for (int i = 0; i < 100 * 80; i++) area0 += masks[i], area1 += masks[100 * 80 + i];
    CHECK_EQ_INT(area0, 0);
    CHECK_EQ_INT(area1, 20 * 20); /* box 70..90 x 30..50, right half everywhere: the whole box */
    free(masks);
    free(c1);
    qcal_detections_free(&d1);
    /* v5 objectness multiplies the class scores: 0.1 * 0.9 < 0.5 */
    CHECK(qcal_detect_yolo(&b, 1, true, &opt, &d1, NULL, NULL) == QCAL_OK);
    CHECK_EQ_INT(d1.n, 0);
    qcal_detections_free(&d1);
}

/* Classification comparison on hand-made scores whose answers are known. */
static void test_compare_classification(void)
{
    /* probabilities: parent says 2 (0.6), optimized says 1 (0.5) and gives class 2 0.3 */
    const float parent[4] = {0.1f, 0.2f, 0.6f, 0.1f}, optimized[4] = {0.1f, 0.5f, 0.3f, 0.1f};
    struct qcal_cls_compare c;
    CHECK(qcal_compare_classification(parent, optimized, 4, &c) == QCAL_OK);
    CHECK_EQ_INT(c.parent_class, 2);
    CHECK_EQ_INT(c.optimized_class, 1);
    CHECK_EQ_INT(c.parent_class_rank, 2);
    CHECK_NEAR(c.parent_conf, 0.6, 1e-7);
    CHECK_NEAR(c.optimized_conf, 0.5, 1e-7);
    CHECK_NEAR(c.optimized_conf_parent, 0.3, 1e-7);
    /* logits: softmax of (0, ln 3) = (0.25, 0.75); equal logits tie to the lower index */
    const float lp[2] = {0.0f, 1.0986123f}, lo[3] = {1.0f, 1.0f, 1.0f};
    CHECK(qcal_compare_classification(lp, lp, 2, &c) == QCAL_OK);
    CHECK_EQ_INT(c.parent_class, 1);
    CHECK_EQ_INT(c.parent_class_rank, 1);
    CHECK_NEAR(c.parent_conf, 0.75, 1e-6);
    CHECK_EQ_INT(qcal_argmax(lo, 3), 0);
    CHECK_EQ_INT(qcal_class_rank(lo, 3, 2), 3);
    CHECK(qcal_compare_classification(lp, lp, 0, &c) != QCAL_OK);
}

static void test_tensor_distance(void)
{
    const float p[4] = {1, 2, 3, 4}, o[4] = {1, 2, 3, 6}, z[4] = {0};
    struct qcal_tensor_distance d;
    qcal_tensor_distance(p, o, 4, &d);
    CHECK_NEAR(d.mse, 1.0, 1e-12);     /* (6-4)^2 / 4 */
    CHECK_NEAR(d.max_abs, 2.0, 1e-12);
    CHECK_NEAR(d.cosine, 38.0 / (sqrt(30.0) * sqrt(50.0)), 1e-12); /* 1+4+9+24 = 38 */
    CHECK_NEAR(d.snr_db, 10.0 * log10(30.0 / 4.0), 1e-9);
    qcal_tensor_distance(p, p, 4, &d);
    CHECK(d.mse == 0 && isinf(d.snr_db) && d.snr_db > 0 && d.cosine == 1.0);
    qcal_tensor_distance(z, z, 4, &d);
    CHECK(d.cosine == 1.0);
    qcal_tensor_distance(z, p, 4, &d);
    CHECK(d.cosine == 0.0 && isinf(d.snr_db) && d.snr_db < 0);
}

static void test_map_iou(void)
{
    /* 2 classes over 3 pixels: scores [class][pixel] */
    const float s[6] = {0.9f, 0.2f, 0.5f, 0.1f, 0.8f, 0.5f};
    int32_t m[3], other[3] = {0, 0, 1};
    qcal_argmax_map(s, 2, 3, m);
    CHECK(m[0] == 0 && m[1] == 1 && m[2] == 0); /* the tie goes to class 0 */
    int64_t inter[3], uni[3];
    /* class 0: inter {0}, union {0,1,2} -> 1/3; class 1: inter {}, union {1,2} -> 0 */
    CHECK_NEAR(qcal_map_iou(m, other, 3, 2, inter, uni), (1.0 / 3.0 + 0.0) / 2.0, 1e-12);
    CHECK(inter[0] == 1 && uni[0] == 3 && inter[1] == 0 && uni[1] == 2);
    /* a class absent from both maps does not count; ignored pixels (255) neither */
    const int32_t a[3] = {0, 255, 0}, b[3] = {0, 1, 0};
    CHECK_NEAR(qcal_map_iou(a, b, 3, 3, inter, uni), 1.0, 1e-12);
}

/* Detections: TP at 0.9, FP 0.8, TP 0.7, FP 0.6, TP 0.5 against 3 objects. Precision 1, 1/2,
 * 2/3, 1/2, 3/5 at recall 1/3, 1/3, 2/3, 2/3, 1; its envelope 1, 2/3, 2/3, 3/5, 3/5. */
static void test_average_precision(void)
{
    float score[] = {0.6f, 0.9f, 0.75f, 0.7f, 0.5f, 0.8f};
    uint8_t state[] = {QCAL_MATCH_FP, QCAL_MATCH_TP, QCAL_MATCH_IGNORED, QCAL_MATCH_TP, QCAL_MATCH_TP,
                       QCAL_MATCH_FP}; /* out of order, one ignored: the same ranking */
    /* all points: 1/3 (1 + 2/3 + 3/5) */
    CHECK_NEAR(qcal_average_precision(score, state, 6, 3, QCAL_AP_ALL_POINTS), (1 + 2.0 / 3 + 0.6) / 3, 1e-12);
    /* 11 points: recall >= 0 .. 0.3 -> 1 (4), 0.4 .. 0.6 -> 2/3 (3), 0.7 .. 1 -> 3/5 (4) */
    CHECK_NEAR(qcal_average_precision(score, state, 6, 3, QCAL_AP_VOC11), (4 + 3 * 2.0 / 3 + 4 * 0.6) / 11, 1e-12);
    /* 101 points: 0 .. 0.33 -> 1 (34), 0.34 .. 0.66 -> 2/3 (33), 0.67 .. 1 -> 3/5 (34) */
    CHECK_NEAR(qcal_average_precision(score, state, 6, 3, QCAL_AP_COCO101), (34 + 33 * 2.0 / 3 + 34 * 0.6) / 101,
               1e-12);
    CHECK(isnan(qcal_average_precision(score, state, 6, 0, QCAL_AP_COCO101))); /* no objects: left out */
    CHECK_NEAR(qcal_average_precision(score, state, 0, 2, QCAL_AP_ALL_POINTS), 0.0, 0); /* nothing found */
    /* half the objects found with perfect precision */
    uint8_t tp[] = {QCAL_MATCH_TP};
    CHECK_NEAR(qcal_average_precision(score, tp, 1, 2, QCAL_AP_ALL_POINTS), 0.5, 1e-12);
    CHECK_NEAR(qcal_average_precision(score, tp, 1, 2, QCAL_AP_VOC11), 6.0 / 11, 1e-12);
    CHECK_NEAR(qcal_average_precision(score, tp, 1, 2, QCAL_AP_COCO101), 51.0 / 101, 1e-12);
}

static void test_matching(void)
{
    uint8_t matched[4], state[4];
    /* COCO: object 0 counted, object 1 a crowd (ignored, last) */
    const float iou[] = {0.6f, 0.9f,  /* takes object 0: never traded for the crowd */
                         0.8f, 0.7f,  /* object 0 taken: the crowd (matchable again) -> ignored */
                         0.8f, 0.3f,  /* nothing left >= 0.5: FP */
                         0.4f, 0.55f}; /* the crowd again -> ignored */
    const uint8_t ignore[] = {0, 1}, crowd[] = {0, 1};
    qcal_match_coco(iou, 4, 2, ignore, crowd, 0.5f, matched, state);
    CHECK_EQ_INT(state[0], QCAL_MATCH_TP);
    CHECK_EQ_INT(state[1], QCAL_MATCH_IGNORED);
    CHECK_EQ_INT(state[2], QCAL_MATCH_FP);
    CHECK_EQ_INT(state[3], QCAL_MATCH_IGNORED);
    /* a tie goes to the later object; a higher threshold turns the match into FP */
    const float tie[] = {0.7f, 0.7f, 0.7f, 0.7f};
    qcal_match_coco(tie, 2, 2, NULL, NULL, 0.5f, matched, state);
    CHECK_EQ_INT(state[0], QCAL_MATCH_TP);
    CHECK_EQ_INT(matched[1], 1);
    CHECK_EQ_INT(state[1], QCAL_MATCH_TP); /* then object 0 */
    qcal_match_coco(tie, 2, 2, NULL, NULL, 0.75f, matched, state);
    CHECK_EQ_INT(state[0], QCAL_MATCH_FP);
    /* VOC: the largest IoU decides, even when that object is taken */
    const float v[] = {0.7f, 0.6f,  /* object 0: TP */
                       0.8f, 0.55f, /* object 0 again: FP although object 1 is free */
                       0.2f, 0.6f,  /* object 1 is difficult: ignored */
                       0.5f, 0.1f}; /* not above 0.5: FP */
    const uint8_t difficult[] = {0, 1};
    qcal_match_voc(v, 4, 2, difficult, 0.5f, matched, state);
    CHECK_EQ_INT(state[0], QCAL_MATCH_TP);
    CHECK_EQ_INT(state[1], QCAL_MATCH_FP);
    CHECK_EQ_INT(state[2], QCAL_MATCH_IGNORED);
    CHECK_EQ_INT(state[3], QCAL_MATCH_FP);
}

int main(void)
{
    qcal_log_set_level(QCAL_LOG_QUIET);
    test_iou();
    test_nms();
    test_ssd();
    test_yolo();
    test_compare_classification();
    test_tensor_distance();
    test_map_iou();
    test_average_precision();
    test_matching();
    return check_report();
}
