/* qcal evaluate JOB.yml --optimized MODEL.int8.onnx -o REPORT.h5: where the optimized model's
 * predictions differ from its parent's. MPI ranks take contiguous blocks of the validation
 * images; OpenMP threads share a rank's images, each thread running the parent (FP32) and
 * the optimized plan on the same input; every image gives one fixed-size record (the
 * adapter's comparison, per-class counts, the distance of every output), gathered to rank
 * 0 in dataset order, which writes the report. A record depends only on its image, so the
 * report's results are the same bytes for any number of ranks and threads. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "git_commit.h"
#include "qcal/data.h"
#include "qcal/eval.h"
#include "qcal/job.h"
#include "qcal/par.h"
#include "qcal/report.h"
#include "qcal/runtime.h"

static const char usage[] =
    "usage: qcal evaluate JOB.yml --optimized MODEL.int8.onnx -o REPORT.h5 [options]\n"
    "\n"
    "Runs the job's model (the parent, FP32) and the optimized model on the job's validation\n"
    "images and writes an HDF5 report of where they differ (docs/report-format.md): per image,\n"
    "the adapter's comparison with the parent's predictions as the reference (classification:\n"
    "both classes, the rank of the parent's class and the confidences; segmentation: mean IoU\n"
    "and per class IoU of the class maps), the distance of every output (MSE, max |diff|,\n"
    "cosine, SNR), and top-1/top-5 accuracy of both when the images are labelled. Under\n"
    "mpirun/srun the images are shared by the ranks; the results are the same bytes for any\n"
    "number of ranks and threads.\n"
    "\n"
    "options:\n"
    "  --optimized FILE   the optimized (INT8 QDQ) model to compare with the job's model\n"
    "  -o FILE            the report (written as a temporary file, renamed when complete)\n"
    "  --subset N         the first N validation images (or the job's seeded subset)\n"
    "  --threads N        OpenMP threads per rank\n"
    "  --kernels K        dnnl, blas or ref\n"
    "  --calibration FILE copy qcal calibrate's summary (calibration.h5: scales, per layer\n"
    "                     SQNR) into the report as /calibration\n"
    "  --bench FILE       copy qcal bench -o FILE's figures into the report as /performance\n"
    "  --quiet            no summary table\n"
    "  -h, --help         this help\n";

enum { NAME_LEN = 192, MAX_OUT = 16, HOST_LEN = 64 };

/* The fixed part of an image's record (the segmentation counts and the output distances
 * follow it). */
struct image_row {
    int64_t index;       /* position in the dataset */
    char name[NAME_LEN]; /* the file, relative to the dataset's folder when shorter */
    int32_t label;       /* -1: not labelled */
    int32_t parent_class, optimized_class, parent_class_rank;
    double parent_conf, optimized_conf, optimized_conf_parent;
    int32_t parent_top5, optimized_top5; /* label among the top 5 */
    double mean_iou;                     /* segmentation: optimized vs parent class maps */
    int32_t n_optimized, n_parent;       /* detection: A and B */
    int32_t matches;                     /* same class, IoU >= 0.5, greedy by score */
    int32_t skipped;                     /* unreadable, skipped (skip_bad_images): not reported */
};

/* One detection in a record. */
struct det_rec {
    float x0, y0, x1, y1;       /* the image file's pixels */
    float score;
    int32_t cls;                /* the model's class */
    uint8_t vs_parent;          /* optimized: QCAL_MATCH_TP/FP against the parent's detections */
    uint8_t voc;                /* against the annotations: Pascal VOC's rule, IoU > 0.5 */
    uint16_t box_tp, box_ign;   /* bit t: COCO's rule at IoU >= 0.5 + 0.05 t: TP / ignored */
    uint16_t mask_tp, mask_ign; /* the same with mask IoU (instance segmentation) */
};
enum { COCO_T = 10 };

struct distance_row {
    int64_t image;
    int32_t output;
    double mse, max_abs, cosine, snr_db;
};

struct class_row {
    int64_t image;
    int32_t cls;
    int64_t intersection, union_;
    double iou;
};

struct setup {
    const struct qcal_job *job;
    const struct qcal_dataset *ds;
    const struct cli_image_input *in;
    const struct qcal_plan *plan[2];
    int kind;            /* enum qcal_adapter_kind */
    int out;             /* the adapter's output */
    int n_out;           /* outputs compared as tensors */
    int64_t classes;     /* classification: scores per image; segmentation: class maps' classes */
    int64_t plane;       /* segmentation: H x W */
    int in_w, in_h;      /* the model input's size */
    int n_labels;        /* the adapter's labels file */
    size_t dist_at;      /* where the output distances start in a record */
    size_t record;       /* bytes per image */
    /* detection and instance segmentation */
    int max_det;         /* detections kept per image */
    int64_t det_classes; /* the model's classes */
    const int32_t *to_model; /* dataset class -> model class (-1: the model has none) */
    bool masks;          /* segmentation: the dataset has class masks */
    size_t seg_gt_at;    /* ... per model: intersections, unions per class, correct, valid pixels */
    bool boxes;          /* the dataset has boxes */
    bool segms;          /* ... and instance masks (instance segmentation) */
    size_t det_at, gt_at; /* det_rec[2][max_det] (parent, optimized), int32 objects per class */
};

/* A record: the image_row, the segmentation counts (intersections then unions, per class),
 * the output distances at s->dist_at. */
static int64_t *seg_counts(char *rec) { return (int64_t *)(rec + sizeof(struct image_row)); }
static struct qcal_tensor_distance *distances(const struct setup *s, char *rec)
{
    return (struct qcal_tensor_distance *)(rec + s->dist_at);
}

static int64_t *seg_gt_counts(const struct setup *s, char *rec, int m)
{
    return (int64_t *)(rec + s->seg_gt_at) + (size_t)m * (size_t)(2 * s->classes + 2);
}
static struct det_rec *det_recs(const struct setup *s, char *rec, int m)
{
    return (struct det_rec *)(rec + s->det_at) + (size_t)m * s->max_det;
}
static int32_t *gt_counts(const struct setup *s, char *rec) { return (int32_t *)(rec + s->gt_at); }

static bool is_detection(int kind)
{
    return kind == QCAL_ADAPTER_SSD || kind == QCAL_ADAPTER_YOLO || kind == QCAL_ADAPTER_INSTANCE_SEGMENTATION;
}

/* A segmentation output's class map: argmax over C > 1 channels, else score > 0.5. */
static void class_map(const struct qcal_tensor *t, int64_t plane, int32_t *map)
{
    const float *d = t->data;
    if (t->dims[1] > 1) {
        qcal_argmax_map(d, t->dims[1], plane, map);
        return;
    }
    for (int64_t i = 0; i < plane; i++) map[i] = d[i] > 0.5f;
}

/* ---- detection and instance segmentation: one image ---- */

/* IoU of two boxes [x0, y0, x1, y1]; against a crowd, the intersection over a's area. */
static float box_overlap(const float *a, const float *b, bool crowd)
{
    float iw = fminf(a[2], b[2]) - fmaxf(a[0], b[0]), ih = fminf(a[3], b[3]) - fmaxf(a[1], b[1]);
    if (iw <= 0 || ih <= 0) return 0;
    float inter = iw * ih, area_a = (a[2] - a[0]) * (a[3] - a[1]);
    float uni = crowd ? area_a : area_a + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    return uni > 0 ? inter / uni : 0;
}

/* Intersection over union of instance masks i and j (model input pixels, n_px each, cropped
 * to their boxes), counting only inside the boxes' overlap. */
static float mask_overlap(const uint8_t *mi, const uint8_t *mj, const struct qcal_detection *bi,
                          const struct qcal_detection *bj, int64_t area_i, int64_t area_j, int w, int h)
{
    int x0 = (int)fmaxf(0, floorf(fmaxf(bi->x0, bj->x0))), y0 = (int)fmaxf(0, floorf(fmaxf(bi->y0, bj->y0)));
    int x1 = (int)fminf((float)w, ceilf(fminf(bi->x1, bj->x1))), y1 = (int)fminf((float)h, ceilf(fminf(bi->y1, bj->y1)));
    int64_t inter = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) inter += mi[(size_t)y * w + x] & mj[(size_t)y * w + x];
    int64_t uni = area_i + area_j - inter;
    return uni > 0 ? (float)inter / (float)uni : 0;
}

/* An image's annotated objects of model class c, counted ones first (COCO's order). */
static int class_objects(const struct setup *s, int64_t k, int32_t c, int *idx)
{
    int n = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int64_t o = s->ds->obj_begin[k]; o < s->ds->obj_begin[k + 1]; o++) {
            const struct qcal_object *ob = &s->ds->objects[o];
            const bool ignored = ob->crowd || ob->difficult;
            if (ob->cls >= 0 && ob->cls < s->ds->n_classes && s->to_model[ob->cls] == c && ignored == (pass == 1))
                idx[n++] = (int)(o - s->ds->obj_begin[k]);
        }
    return n;
}

/* Per image scratch for matching against the annotations. */
struct det_work {
    float *iou;            /* max_det x objects */
    uint8_t *state, *matched, *ignore, *crowd;
    int *det, *obj;        /* indices of one class's detections and objects */
    uint8_t **gt_mask;     /* the image's objects drawn at their annotation size (instance segmentation) */
    int64_t *area;         /* detections' mask areas */
};

/* Detection i's mask at the annotation's size (W x H), counted against each object of the
 * class in obj[0..ng): intersections into inter[], its area returned. The annotation grid's
 * pixel centres are mapped into the model input (an affine map per axis). */
static int64_t file_mask_overlaps(const struct setup *s, const struct cli_axes *ax, const uint8_t *mask,
                                  const struct det_rec *r, uint8_t *const *gt, const int *obj, int ng, int W, int H,
                                  int64_t *inter)
{
    const int w = s->in_w, h = s->in_h;
    int x0 = (int)fmaxf(0, floorf(r->x0)), y0 = (int)fmaxf(0, floorf(r->y0));
    int x1 = (int)fminf((float)W, ceilf(r->x1)), y1 = (int)fminf((float)H, ceilf(r->y1));
    int64_t area = 0;
    for (int g = 0; g < ng; g++) inter[g] = 0;
    for (int y = y0; y < y1; y++) {
        int my = (int)floor((y + 0.5 - ax->oy) / ax->sy);
        if (my < 0 || my >= h) continue;
        for (int x = x0; x < x1; x++) {
            int mx = (int)floor((x + 0.5 - ax->ox) / ax->sx);
            if (mx < 0 || mx >= w || !mask[(size_t)my * w + mx]) continue;
            area++;
            for (int g = 0; g < ng; g++) inter[g] += gt[obj[g]][(size_t)y * W + x];
        }
    }
    return area;
}

/* Matches model m's detections of each class to the image's annotated objects: VOC's and
 * COCO's rules on boxes, COCO's on masks when the dataset has them. */
static enum qcal_status match_annotations(const struct setup *s, int64_t k, const struct cli_image_geometry *geo,
                                          struct det_rec *dr, int nd, const uint8_t *masks, struct det_work *w)
{
    const struct qcal_dataset *ds = s->ds;
    const int64_t first = ds->obj_begin[k];
    int W = 0, H = 0;
    const struct cli_axes ax = cli_file_to_model(s->job, geo); /* annotation pixels -> model input */
    for (int i = 0; i < nd; i++) {
        const int32_t c = dr[i].cls;
        bool seen = false; /* one pass per class, at its first detection */
        for (int j = 0; j < i && !seen; j++) seen = dr[j].cls == c;
        if (seen) continue;
        int n = 0;
        for (int j = i; j < nd; j++)
            if (dr[j].cls == c) w->det[n++] = j;
        const int ng = class_objects(s, k, c, w->obj);
        for (int g = 0; g < ng; g++) {
            const struct qcal_object *ob = &ds->objects[first + w->obj[g]];
            w->ignore[g] = ob->crowd || ob->difficult, w->crowd[g] = ob->crowd;
        }
        for (int a = 0; a < n; a++)
            for (int g = 0; g < ng; g++) {
                const struct qcal_object *ob = &ds->objects[first + w->obj[g]];
                const float gb[4] = {ob->x0, ob->y0, ob->x1, ob->y1};
                w->iou[(size_t)a * ng + g] = box_overlap(&dr[w->det[a]].x0, gb, ob->crowd);
            }
        /* VOC: crowds count as difficult */
        qcal_match_voc(w->iou, n, ng, w->ignore, 0.5f, w->matched, w->state);
        for (int a = 0; a < n; a++) dr[w->det[a]].voc = w->state[a];
        for (int t = 0; t < COCO_T; t++) {
            qcal_match_coco(w->iou, n, ng, w->ignore, w->crowd, 0.5f + 0.05f * t, w->matched, w->state);
            for (int a = 0; a < n; a++) {
                dr[w->det[a]].box_tp |= (uint16_t)((w->state[a] == QCAL_MATCH_TP) << t);
                dr[w->det[a]].box_ign |= (uint16_t)((w->state[a] == QCAL_MATCH_IGNORED) << t);
            }
        }
        if (!masks || !s->segms) continue;
        /* masks: every object of this class has one (else the class is matched on boxes only) */
        bool all = ng > 0;
        for (int g = 0; g < ng && all; g++) all = ds->objects[first + w->obj[g]].segm >= 0;
        if (!all) continue;
        const struct qcal_segm *sg = &ds->segms[ds->objects[first + w->obj[0]].segm];
        W = sg->width, H = sg->height;
        int64_t inter[64];
        for (int a = 0; a < n; a++) {
            int64_t area = 0;
            for (int g0 = 0; g0 < ng; g0 += 64) { /* objects in groups of 64 */
                const int m = ng - g0 < 64 ? ng - g0 : 64;
                area = file_mask_overlaps(s, &ax, masks + (size_t)w->det[a] * s->in_w * s->in_h, &dr[w->det[a]],
                                          w->gt_mask, w->obj + g0, m, W, H, inter);
                for (int g = 0; g < m; g++) {
                    const int64_t ga = w->area[s->max_det + w->obj[g0 + g]];
                    const int64_t uni = w->crowd[g0 + g] ? area : area + ga - inter[g];
                    w->iou[(size_t)a * ng + g0 + g] = uni > 0 ? (float)inter[g] / (float)uni : 0;
                }
            }
        }
        for (int t = 0; t < COCO_T; t++) {
            qcal_match_coco(w->iou, n, ng, w->ignore, w->crowd, 0.5f + 0.05f * t, w->matched, w->state);
            for (int a = 0; a < n; a++) {
                dr[w->det[a]].mask_tp |= (uint16_t)((w->state[a] == QCAL_MATCH_TP) << t);
                dr[w->det[a]].mask_ign |= (uint16_t)((w->state[a] == QCAL_MATCH_IGNORED) << t);
            }
        }
    }
    return QCAL_OK;
}

static void det_work_free(struct det_work *w, int n_obj)
{
    for (int g = 0; w->gt_mask && g < n_obj; g++) free(w->gt_mask[g]);
    free(w->gt_mask), free(w->iou), free(w->state), free(w->matched), free(w->ignore), free(w->crowd);
    free(w->det), free(w->obj), free(w->area);
    memset(w, 0, sizeof *w);
}

/* The image's objects (drawn masks and their areas, for instance segmentation) and room to
 * match max_det detections against them. */
static enum qcal_status det_work_new(const struct setup *s, int64_t k, struct det_work *w)
{
    memset(w, 0, sizeof *w);
    const struct qcal_dataset *ds = s->ds;
    const int n_obj = s->boxes ? (int)(ds->obj_begin[k + 1] - ds->obj_begin[k]) : 0;
    const size_t D = (size_t)s->max_det, G = (size_t)n_obj + 1;
    w->iou = malloc(sizeof *w->iou * D * G);
    w->state = malloc(D), w->matched = malloc(G), w->ignore = malloc(G), w->crowd = malloc(G);
    w->det = malloc(sizeof *w->det * D), w->obj = malloc(sizeof *w->obj * G);
    w->area = calloc(D + G, sizeof *w->area);
    w->gt_mask = s->segms ? calloc(G, sizeof *w->gt_mask) : NULL;
    if (!w->iou || !w->state || !w->matched || !w->ignore || !w->crowd || !w->det || !w->obj || !w->area ||
        (s->segms && !w->gt_mask)) {
        det_work_free(w, n_obj);
        return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory matching detections");
    }
    for (int g = 0; s->segms && g < n_obj; g++) {
        const struct qcal_object *ob = &ds->objects[ds->obj_begin[k] + g];
        if (ob->segm < 0) continue;
        const struct qcal_segm *sg = &ds->segms[ob->segm];
        w->gt_mask[g] = malloc((size_t)sg->width * sg->height + 1);
        if (!w->gt_mask[g]) {
            det_work_free(w, n_obj);
            return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory drawing annotation masks");
        }
        enum qcal_status st = qcal_segm_draw(ds, ob->segm, w->gt_mask[g]);
        if (st != QCAL_OK) {
            det_work_free(w, n_obj);
            return st;
        }
        int64_t a = 0;
        for (size_t p = 0; p < (size_t)sg->width * sg->height; p++) a += w->gt_mask[g][p];
        w->area[D + g] = a;
    }
    return QCAL_OK;
}

/* One image's detections by both models: the lists (image file pixels), the optimized
 * model's matches to the parent's (COCO's rule at IoU 0.5: boxes, or masks), and, when
 * annotated, both models' matches to the objects and the objects per class. */
static enum qcal_status compare_detections(const struct setup *s, struct qcal_exec *const ex[2], int64_t k,
                                           const struct cli_image_geometry *geo, char *rec)
{
    struct image_row *r = (struct image_row *)rec;
    struct qcal_detections d[2] = {{0}, {0}};
    uint8_t *masks[2] = {NULL, NULL};
    const size_t px = (size_t)s->in_w * s->in_h;
    enum qcal_status st = QCAL_OK;
    for (int m = 0; m < 2 && st == QCAL_OK; m++) st = cli_detect(s->job, ex[m], s->in_w, s->in_h, s->max_det, &d[m], &masks[m]);
    struct det_work w = {0};
    const int n_obj = s->boxes ? (int)(s->ds->obj_begin[k + 1] - s->ds->obj_begin[k]) : 0;
    if (st == QCAL_OK) st = det_work_new(s, k, &w);
    for (int m = 0; m < 2 && st == QCAL_OK; m++) {
        struct det_rec *dr = det_recs(s, rec, m);
        for (int i = 0; i < d[m].n; i++) {
            const struct qcal_detection *q = &d[m].det[i];
            dr[i] = (struct det_rec){q->x0, q->y0, q->x1, q->y1, q->score, q->cls, 0, 0, 0, 0, 0, 0};
            cli_point_to_file(s->job, geo, &dr[i].x0, &dr[i].y0);
            cli_point_to_file(s->job, geo, &dr[i].x1, &dr[i].y1);
        }
        if (s->boxes) st = match_annotations(s, k, geo, dr, d[m].n, masks[m], &w);
    }
    if (st == QCAL_OK) {
        r->n_parent = d[0].n, r->n_optimized = d[1].n;
        /* optimized vs parent, class by class */
        struct det_rec *opt = det_recs(s, rec, 1);
        for (int i = 0; i < d[1].n && masks[1]; i++) {
            w.area[i] = 0;
            for (size_t p = 0; p < px; p++) w.area[i] += masks[1][i * px + p];
        }
        int64_t *parea = calloc((size_t)d[0].n + 1, sizeof *parea);
        if (!parea) st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        for (int j = 0; parea && j < d[0].n && masks[0]; j++)
            for (size_t p = 0; p < px; p++) parea[j] += masks[0][j * px + p];
        for (int i = 0; st == QCAL_OK && i < d[1].n; i++) {
            const int32_t c = d[1].det[i].cls;
            bool seen = false;
            for (int j = 0; j < i && !seen; j++) seen = d[1].det[j].cls == c;
            if (seen) continue;
            int n = 0, ng = 0;
            for (int j = i; j < d[1].n; j++)
                if (d[1].det[j].cls == c) w.det[n++] = j;
            int *pj = malloc(sizeof *pj * (size_t)(d[0].n + 1));
            float *iou = malloc(sizeof *iou * (size_t)n * (size_t)(d[0].n + 1));
            uint8_t *matched = malloc((size_t)d[0].n + 1), *state = malloc((size_t)n);
            if (!pj || !iou || !matched || !state) st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
            for (int j = 0; st == QCAL_OK && j < d[0].n; j++)
                if (d[0].det[j].cls == c) pj[ng++] = j;
            for (int a = 0; st == QCAL_OK && a < n; a++)
                for (int g = 0; g < ng; g++) {
                    const struct qcal_detection *x = &d[1].det[w.det[a]], *y = &d[0].det[pj[g]];
                    iou[(size_t)a * ng + g] =
                        masks[1] && masks[0]
                            ? mask_overlap(masks[1] + w.det[a] * px, masks[0] + pj[g] * px, x, y, w.area[w.det[a]],
                                           parea[pj[g]], s->in_w, s->in_h)
                            : qcal_iou(x, y);
                }
            if (st == QCAL_OK) {
                qcal_match_coco(iou, n, ng, NULL, NULL, 0.5f, matched, state);
                for (int a = 0; a < n; a++) {
                    opt[w.det[a]].vs_parent = state[a];
                    r->matches += state[a] == QCAL_MATCH_TP;
                }
            }
            free(pj), free(iou), free(matched), free(state);
        }
        free(parea);
    }
    if (st == QCAL_OK && s->boxes) {
        int32_t *cnt = gt_counts(s, rec);
        for (int64_t o = s->ds->obj_begin[k]; o < s->ds->obj_begin[k + 1]; o++) {
            const struct qcal_object *ob = &s->ds->objects[o];
            if (ob->crowd || ob->difficult || ob->cls < 0 || ob->cls >= s->ds->n_classes) continue;
            const int32_t c = s->to_model[ob->cls];
            if (c >= 0 && c < s->det_classes) cnt[c]++;
        }
    }
    det_work_free(&w, n_obj);
    for (int m = 0; m < 2; m++) {
        qcal_detections_free(&d[m]);
        free(masks[m]);
    }
    return st;
}

/* Both class maps against the image's annotated mask: per model, intersections and unions
 * per class, correct and valid (not 255, a class of the model) pixels. Each mask pixel's
 * centre is mapped into the model input (an affine map per axis), then into the map. */
static enum qcal_status compare_masks(const struct setup *s, int64_t k, const struct cli_image_geometry *geo,
                                      const struct qcal_tensor *out, const int32_t *maps, char *rec)
{
    struct qcal_mask m;
    enum qcal_status st = qcal_mask_load(s->ds->mask_paths[k], &m);
    if (st != QCAL_OK) return st;
    const struct cli_axes ax = cli_file_to_model(s->job, geo);
    const int64_t mh = out->dims[2], mw = out->dims[3], C = s->classes;
    for (int y = 0; y < m.height; y++) {
        const int64_t my = (int64_t)floor((y + 0.5 - ax.oy) / ax.sy * (double)mh / s->in_h);
        for (int x = 0; x < m.width; x++) {
            const int g = m.pixels[(size_t)y * m.width + x];
            if (g == 255 || g >= C) continue;
            const int64_t mx = (int64_t)floor((x + 0.5 - ax.ox) / ax.sx * (double)mw / s->in_w);
            const bool inside = mx >= 0 && mx < mw && my >= 0 && my < mh;
            for (int model = 0; model < 2; model++) {
                int64_t *c = seg_gt_counts(s, rec, model);
                const int32_t p = inside ? maps[(size_t)model * s->plane + (size_t)(my * mw + mx)] : -1;
                c[2 * C + 1]++; /* valid */
                c[C + g]++;     /* union: the annotated class ... */
                if (p == g) c[g]++, c[2 * C]++;
                else if (p >= 0 && p < C) c[C + p]++; /* ... and a different predicted one */
            }
        }
    }
    qcal_mask_free(&m);
    return QCAL_OK;
}

/* One image's record from the two executions. */
static enum qcal_status compare_image(const struct setup *s, struct qcal_exec *const ex[2], int64_t k,
                                      const struct cli_image_geometry *geo, char *rec, int32_t *maps)
{
    struct image_row *r = (struct image_row *)rec;
    memset(rec, 0, s->record);
    r->index = s->ds->index ? s->ds->index[k] : k;
    cli_image_name(s->ds->paths[k], s->job->validation_data.source, r->name, NAME_LEN);
    r->label = s->ds->labels ? (int32_t)s->ds->labels[k] : -1;
    r->mean_iou = NAN;
    const struct qcal_tensor *a = qcal_exec_output(ex[0], s->out), *b = qcal_exec_output(ex[1], s->out);
    enum qcal_status st = QCAL_OK;
    if (s->kind == QCAL_ADAPTER_CLASSIFICATION) {
        struct qcal_cls_compare c;
        if ((st = qcal_compare_classification(a->data, b->data, s->classes, &c)) != QCAL_OK) return st;
        /* classes as the labels count them: a background class dropped, those above shifted down */
        const int bg = s->job->adapter.background_class;
        r->parent_class = bg < 0 || c.parent_class < bg ? c.parent_class : c.parent_class == bg ? -1 : c.parent_class - 1;
        r->optimized_class = bg < 0 || c.optimized_class < bg ? c.optimized_class
                             : c.optimized_class == bg   ? -1
                                                         : c.optimized_class - 1;
        r->parent_class_rank = c.parent_class_rank;
        r->parent_conf = c.parent_conf, r->optimized_conf = c.optimized_conf;
        r->optimized_conf_parent = c.optimized_conf_parent;
        const int64_t want = bg >= 0 && r->label >= bg ? r->label + 1 : r->label; /* the label's model class */
        const bool labelled = r->label >= 0 && want < s->classes;
        r->parent_top5 = labelled && qcal_class_rank(a->data, s->classes, want) <= 5;
        r->optimized_top5 = labelled && qcal_class_rank(b->data, s->classes, want) <= 5;
    } else if (s->kind == QCAL_ADAPTER_SEGMENTATION) {
        class_map(a, s->plane, maps);
        class_map(b, s->plane, maps + s->plane);
        int64_t *cnt = seg_counts(rec);
        r->mean_iou = qcal_map_iou(maps + s->plane, maps, s->plane, s->classes, cnt, cnt + s->classes);
        if (s->masks) st = compare_masks(s, k, geo, a, maps, rec);
    } else if (is_detection(s->kind)) {
        st = compare_detections(s, ex, k, geo, rec);
    }
    struct qcal_tensor_distance *d = distances(s, rec);
    for (int o = 0; o < s->n_out; o++) {
        const struct qcal_tensor *p = qcal_exec_output(ex[0], o), *q = qcal_exec_output(ex[1], o);
        qcal_tensor_distance(p->data, q->data, qcal_tensor_numel(p), &d[o]);
    }
    return st;
}

/* Runs images [begin, end) into recs (one record each); the first failure in image order
 * is the status (one deterministic line). */
static enum qcal_status run_images(const struct setup *s, int64_t begin, int64_t end, char *recs)
{
    const int64_t n = end - begin;
    enum qcal_status *status;
    char **errors;
    if (cli_image_outcome_new(n, &status, &errors) != QCAL_OK) return QCAL_OUT_OF_MEMORY;
    int failed = 0;
#pragma omp parallel
    {
        struct qcal_exec *ex[2] = {NULL, NULL};
        struct qcal_tensor x = s->in->t;
        x.data = qcal_malloc(qcal_tensor_bytes(&s->in->t));
        int32_t *maps = malloc(sizeof(int32_t) * 2 * (size_t)(s->plane ? s->plane : 1));
        enum qcal_status tst = x.data && maps ? QCAL_OK : QCAL_OUT_OF_MEMORY;
        for (int m = 0; m < 2 && tst == QCAL_OK; m++) tst = qcal_exec_create(s->plan[m], &ex[m]);
#pragma omp for schedule(dynamic)
        for (int64_t k = 0; k < n; k++) {
            int stop;
#pragma omp atomic read
            stop = failed;
            if (stop || tst != QCAL_OK) {
                status[k] = tst != QCAL_OK ? tst : CLI_NOT_RUN;
                continue;
            }
            char err[1024] = "";
            qcal_log_capture(err, sizeof err);
            struct cli_image_geometry geo = {0};
            enum qcal_status st = cli_image_tensor(s->job, s->in, s->ds->paths[begin + k], &x, &geo, NULL);
            const bool bad = cli_image_unreadable(st);
            for (int m = 0; m < 2 && st == QCAL_OK; m++) {
                st = qcal_exec_set_input(ex[m], 0, &x);
                if (st == QCAL_OK) st = qcal_exec_run(ex[m]);
            }
            if (st == QCAL_OK) st = compare_image(s, ex, begin + k, &geo, recs + (size_t)k * s->record, maps);
            qcal_log_capture(NULL, 0);
            status[k] = st;
            if (st != QCAL_OK && bad && s->job->validation_data.skip_bad_images) {
                errors[k] = strdup(err[0] ? err : qcal_status_str(st));
                status[k] = CLI_SKIPPED; /* left out of the report, named in /comparison/skipped */
                struct image_row *r = (struct image_row *)(recs + (size_t)k * s->record);
                memset(r, 0, s->record);
                r->index = s->ds->index ? s->ds->index[begin + k] : begin + k;
                cli_image_name(s->ds->paths[begin + k], s->job->validation_data.source, r->name, NAME_LEN);
                r->skipped = 1;
            } else if (st != QCAL_OK) {
                errors[k] = strdup(err[0] ? err : qcal_status_str(st));
#pragma omp atomic write
                failed = 1;
            }
        }
        for (int m = 0; m < 2; m++) qcal_exec_destroy(ex[m]);
        qcal_free(x.data);
        free(maps);
    }
    return cli_image_outcome(n, status, errors, NULL);
}

/* A detector's classes, from its outputs (as cli_detect reads them) or its labels. */
static int64_t detection_classes(const struct setup *s, const struct qcal_graph *g)
{
    const struct qcal_tensor *outs[MAX_OUT];
    const char *names[MAX_OUT];
    const int n = g->n_outputs < MAX_OUT ? g->n_outputs : MAX_OUT;
    for (int o = 0; o < n; o++) outs[o] = &g->values[g->outputs[o]].t, names[o] = g->values[g->outputs[o]].name;
    int ia, ib;
    cli_detect_outputs(s->job, n, outs, names, &ia, &ib);
    /* SSD: the class scores (none with a DetectionOutput); YOLO: the predictions */
    const struct qcal_tensor *c = s->kind == QCAL_ADAPTER_SSD ? (ib >= 0 ? outs[ib] : NULL) : (ia >= 0 ? outs[ia] : NULL);
    const struct qcal_tensor *protos = s->kind == QCAL_ADAPTER_INSTANCE_SEGMENTATION && ib >= 0 ? outs[ib] : NULL;
    int64_t k = 1024; /* DetectionOutput: the labels say, else this many */
    if (c && s->kind == QCAL_ADAPTER_SSD) k = c->dims[2] - (s->job->adapter.background_class >= 0);
    else if (c) k = (c->dims[1] < c->dims[2] ? c->dims[1] : c->dims[2]) - 4 - (protos ? protos->dims[1] : 0);
    if (s->n_labels > 0 && (s->n_labels > k || !c)) k = s->n_labels;
    return k > 0 ? k : 1;
}

/* The adapter's view of the outputs; both models must have the same outputs. */
static enum qcal_status describe(struct setup *s, const struct qcal_graph *g0, const struct qcal_graph *g1,
                                 const char *opt_path)
{
    const struct qcal_job *job = s->job;
    if (g0->n_outputs != g1->n_outputs)
        return QCAL_ERR(QCAL_INVALID_MODEL, "%s has %d outputs, %s has %d", job->model, g0->n_outputs, opt_path,
                        g1->n_outputs);
    s->n_out = g0->n_outputs < MAX_OUT ? g0->n_outputs : MAX_OUT;
    for (int o = 0; o < g0->n_outputs; o++) {
        const struct qcal_tensor *a = &g0->values[g0->outputs[o]].t, *b = &g1->values[g1->outputs[o]].t;
        char sa[96], sb[96];
        if (!qcal_shape_equal(a, b) || a->dtype != QCAL_F32 || b->dtype != QCAL_F32)
            return QCAL_ERR(QCAL_INVALID_MODEL, "output %d: %s gives %s %s, %s gives %s %s", o, job->model,
                            qcal_dtype_name(a->dtype), qcal_shape_str(a, sa, sizeof sa), opt_path,
                            qcal_dtype_name(b->dtype), qcal_shape_str(b, sb, sizeof sb));
    }
    s->out = 0;
    if (job->adapter.output) {
        s->out = -1;
        for (int o = 0; o < g0->n_outputs; o++)
            if (strcmp(g0->values[g0->outputs[o]].name, job->adapter.output) == 0) s->out = o;
        if (s->out < 0)
            return QCAL_ERR(QCAL_INVALID_JOB, "%s: the adapter's output '%s' is not an output of %s", job->path,
                            job->adapter.output, job->model);
    }
    const struct qcal_tensor *t = &g0->values[g0->outputs[s->out]].t;
    s->kind = job->adapter.kind;
    char shape[96];
    if (s->kind == QCAL_ADAPTER_CLASSIFICATION) {
        s->classes = qcal_tensor_numel(t) / (t->ndim ? t->dims[0] : 1);
        if (t->ndim < 1 || t->dims[0] != 1 || s->classes < 1)
            return QCAL_ERR(QCAL_UNSUPPORTED, "%s: a classification output must be [1, classes], is %s", job->model,
                            qcal_shape_str(t, shape, sizeof shape));
    } else if (s->kind == QCAL_ADAPTER_SEGMENTATION) {
        if (t->ndim != 4 || t->dims[0] != 1)
            return QCAL_ERR(QCAL_UNSUPPORTED, "%s: a segmentation output must be [1, C, H, W], is %s", job->model,
                            qcal_shape_str(t, shape, sizeof shape));
        s->classes = t->dims[1] > 1 ? t->dims[1] : 2; /* one channel: background and object */
        s->plane = t->dims[2] * t->dims[3];
    } else if (is_detection(s->kind)) {
        s->det_classes = detection_classes(s, g0);
        s->max_det = job->adapter.top_k;
    }
    s->in_w = (int)(job->prep.nhwc ? s->in->t.dims[2] : s->in->t.dims[3]);
    s->in_h = (int)(job->prep.nhwc ? s->in->t.dims[1] : s->in->t.dims[2]);
    s->seg_gt_at = sizeof(struct image_row) +
                   (s->kind == QCAL_ADAPTER_SEGMENTATION ? 2 * sizeof(int64_t) * (size_t)s->classes : 0);
    s->det_at = s->seg_gt_at + (s->masks ? 2 * sizeof(int64_t) * (size_t)(2 * s->classes + 2) : 0);
    s->gt_at = s->det_at + 2 * sizeof(struct det_rec) * (size_t)s->max_det;
    s->dist_at = s->gt_at + (s->boxes ? sizeof(int32_t) * (size_t)s->det_classes : 0);
    s->dist_at = (s->dist_at + 7) / 8 * 8;
    s->record = s->dist_at + sizeof(struct qcal_tensor_distance) * (size_t)s->n_out;
    s->record = (s->record + 7) / 8 * 8;
    return QCAL_OK;
}

/* ---- detection and instance segmentation: rank 0's pooling of every image's records ---- */

/* One model's detections of every image grouped by class (image order, then score order
 * within an image: the ranking's tie order). */
struct pool {
    int64_t *start;              /* det_classes + 1 offsets */
    const struct det_rec **det;
    float *score;
    uint8_t *state;              /* scratch for one class */
};

static void pool_free(struct pool *p)
{
    free(p->start), free(p->det), free(p->score), free(p->state);
    memset(p, 0, sizeof *p);
}

static enum qcal_status pool_build(const struct setup *s, const char *all, int64_t n_img, int m, struct pool *p)
{
    const int64_t K = s->det_classes;
    int64_t total = 0;
    for (int64_t k = 0; k < n_img; k++) {
        const struct image_row *r = (const struct image_row *)(all + (size_t)k * s->record);
        total += m ? r->n_optimized : r->n_parent;
    }
    p->start = calloc((size_t)K + 2, sizeof *p->start);
    p->det = malloc(sizeof *p->det * (size_t)(total + 1));
    p->score = malloc(sizeof *p->score * (size_t)(total + 1));
    p->state = malloc((size_t)total + 1);
    if (!p->start || !p->det || !p->score || !p->state) {
        pool_free(p);
        return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory pooling detections");
    }
    for (int pass = 0; pass < 2; pass++) { /* counts, then places (a stable counting sort) */
        for (int64_t k = 0; k < n_img; k++) {
            char *rec = (char *)all + (size_t)k * s->record;
            const struct image_row *r = (const struct image_row *)rec;
            const struct det_rec *dr = det_recs(s, rec, m);
            for (int i = 0; i < (m ? r->n_optimized : r->n_parent); i++) {
                const int64_t c = dr[i].cls >= 0 && dr[i].cls < K ? dr[i].cls : K; /* K: out of range */
                if (pass == 0) {
                    p->start[c + 1]++;
                } else {
                    const int64_t at = p->start[c]++;
                    p->det[at] = &dr[i], p->score[at] = dr[i].score;
                }
            }
        }
        if (pass == 0)
            for (int64_t c = 0; c <= K; c++) p->start[c + 1] += p->start[c];
        else
            for (int64_t c = K; c > 0; c--) p->start[c] = p->start[c - 1]; /* back to the starts */
    }
    p->start[0] = 0;
    return QCAL_OK;
}

enum det_rule { RULE_PARENT, RULE_VOC, RULE_BOX, RULE_MASK };

/* Mean over classes with reference objects of the classes' AP under a rule (threshold t for
 * the COCO rules); ap_out[c] (if not NULL) each class's AP. */
static double pooled_map(const struct setup *s, struct pool *p, const int64_t *n_ref, int rule, int t, int method,
                         double *ap_out)
{
    double sum = 0;
    int64_t classes = 0;
    for (int64_t c = 0; c < s->det_classes; c++) {
        const int64_t b = p->start[c], n = p->start[c + 1] - b;
        for (int64_t i = 0; i < n; i++) {
            const struct det_rec *d = p->det[b + i];
            const uint16_t tp = rule == RULE_MASK ? d->mask_tp : d->box_tp;
            const uint16_t ign = rule == RULE_MASK ? d->mask_ign : d->box_ign;
            p->state[i] = rule == RULE_PARENT ? d->vs_parent
                          : rule == RULE_VOC  ? d->voc
                          : (ign >> t) & 1    ? QCAL_MATCH_IGNORED
                                              : (uint8_t)((tp >> t) & 1);
        }
        const double ap = qcal_average_precision(p->score + b, p->state, n, n_ref[c], method);
        if (ap_out) ap_out[c] = ap;
        if (!isnan(ap)) sum += ap, classes++;
    }
    return classes ? sum / (double)classes : NAN;
}

struct det_summary {
    int64_t a, b, matches, identical; /* detections, and images whose lists match one to one */
    double map_vs_parent;
    bool annotated, masks;
    int64_t objects;
    double voc11[2], voc[2], coco[2], coco50[2], coco75[2], segm[2], segm50[2];
    double *class_ap;                 /* [4][det_classes]: parent / optimized VOC AP, COCO AP */
    int64_t *class_objects;           /* objects per class */
};

static double coco_mean(const struct setup *s, struct pool *p, const int64_t *n_ref, int rule, double *at50,
                        double *at75, double *per_class)
{
    double sum = 0;
    for (int t = 0; t < COCO_T; t++) {
        double *ap = per_class ? per_class + (size_t)t * s->det_classes : NULL;
        const double v = pooled_map(s, p, n_ref, rule, t, QCAL_AP_COCO101, ap);
        if (t == 0) *at50 = v;
        if (t == 5 && at75) *at75 = v;
        sum += v;
    }
    return sum / COCO_T;
}

static enum qcal_status det_summarize(const struct setup *s, const char *all, int64_t n_img, struct det_summary *m)
{
    const int64_t K = s->det_classes;
    memset(m, 0, sizeof *m);
    struct pool p[2] = {{0}, {0}};
    int64_t *n_parent = calloc((size_t)K + 1, sizeof *n_parent), *n_obj = calloc((size_t)K + 1, sizeof *n_obj);
    double *coco_class = malloc(sizeof *coco_class * (size_t)K * COCO_T + 1);
    m->class_ap = calloc((size_t)K * 4 + 1, sizeof *m->class_ap);
    m->class_objects = n_obj;
    enum qcal_status st = n_parent && n_obj && coco_class && m->class_ap ? QCAL_OK
                                                                         : QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    for (int i = 0; i < 2 && st == QCAL_OK; i++) st = pool_build(s, all, n_img, i, &p[i]);
    if (st != QCAL_OK) goto done;
    for (int64_t k = 0; k < n_img; k++) {
        char *rec = (char *)all + (size_t)k * s->record;
        const struct image_row *r = (const struct image_row *)rec;
        m->a += r->n_optimized, m->b += r->n_parent, m->matches += r->matches;
        m->identical += r->n_optimized == r->n_parent && r->matches == r->n_parent;
        for (int64_t c = 0; s->boxes && c < K; c++) n_obj[c] += gt_counts(s, rec)[c];
    }
    for (int64_t c = 0; c < K; c++) n_parent[c] = p[0].start[c + 1] - p[0].start[c];
    m->map_vs_parent = pooled_map(s, &p[1], n_parent, RULE_PARENT, 0, QCAL_AP_ALL_POINTS, NULL);
    m->annotated = s->boxes, m->masks = s->segms;
    for (int64_t c = 0; c < K; c++) m->objects += n_obj[c];
    for (int i = 0; s->boxes && i < 2; i++) {
        m->voc11[i] = pooled_map(s, &p[i], n_obj, RULE_VOC, 0, QCAL_AP_VOC11, NULL);
        m->voc[i] = pooled_map(s, &p[i], n_obj, RULE_VOC, 0, QCAL_AP_ALL_POINTS, m->class_ap + (size_t)i * K);
        m->coco[i] = coco_mean(s, &p[i], n_obj, RULE_BOX, &m->coco50[i], &m->coco75[i], coco_class);
        for (int64_t c = 0; c < K; c++) { /* a class's COCO AP: the mean over the thresholds */
            double v = 0;
            for (int t = 0; t < COCO_T; t++) v += coco_class[(size_t)t * K + c];
            m->class_ap[(size_t)(2 + i) * K + c] = v / COCO_T;
        }
        if (s->segms) m->segm[i] = coco_mean(s, &p[i], n_obj, RULE_MASK, &m->segm50[i], NULL, NULL);
    }
done:
    for (int i = 0; i < 2; i++) pool_free(&p[i]);
    free(n_parent), free(coco_class);
    return st;
}

static void det_summary_free(struct det_summary *m)
{
    free(m->class_ap), free(m->class_objects);
    m->class_ap = NULL, m->class_objects = NULL;
}

static void iso_time(time_t t, char *buf, size_t cap)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

struct summary {
    int64_t images, labelled, agree, p_top1, o_top1, p_top5, o_top5;
    double mean_iou;
    double gt_mean_iou[2], pixel_accuracy[2]; /* segmentation vs annotated masks: parent, optimized */
};

/* Per model, the intersections and unions per class summed over the images (then correct and
 * valid pixels), into sums[2][2 C + 2]. */
static void sum_mask_counts(const struct setup *s, const char *all, int64_t n, int64_t *sums)
{
    const size_t w = (size_t)(2 * s->classes + 2);
    memset(sums, 0, sizeof *sums * 2 * w);
    for (int64_t k = 0; k < n; k++)
        for (int m = 0; m < 2; m++) {
            const int64_t *c = seg_gt_counts(s, (char *)all + (size_t)k * s->record, m);
            for (size_t j = 0; j < w; j++) sums[m * w + j] += c[j];
        }
}

static double class_iou(const int64_t *c, int64_t classes, int64_t j)
{
    return c[classes + j] ? (double)c[j] / (double)c[classes + j] : NAN;
}

static struct summary summarize(const struct setup *s, const char *all, int64_t n)
{
    struct summary m = {.images = n};
    double iou = 0;
    for (int64_t k = 0; k < n; k++) {
        const struct image_row *r = (const struct image_row *)(all + (size_t)k * s->record);
        if (s->kind == QCAL_ADAPTER_CLASSIFICATION) {
            m.agree += r->parent_class == r->optimized_class;
            if (r->label >= 0) {
                m.labelled++;
                m.p_top1 += r->parent_class == r->label, m.o_top1 += r->optimized_class == r->label;
                m.p_top5 += r->parent_top5, m.o_top5 += r->optimized_top5;
            }
        }
        if (s->kind == QCAL_ADAPTER_SEGMENTATION) iou += r->mean_iou;
    }
    m.mean_iou = n ? iou / (double)n : NAN;
    if (s->masks) {
        const size_t w = (size_t)(2 * s->classes + 2);
        int64_t *sums = malloc(sizeof *sums * 2 * w);
        for (int i = 0; i < 2; i++) m.gt_mean_iou[i] = m.pixel_accuracy[i] = NAN;
        if (!sums) return m;
        sum_mask_counts(s, all, n, sums);
        for (int i = 0; i < 2; i++) {
            const int64_t *c = sums + i * w;
            double sum = 0;
            int64_t present = 0;
            for (int64_t j = 0; j < s->classes; j++)
                if (c[s->classes + j]) sum += class_iou(c, s->classes, j), present++;
            m.gt_mean_iou[i] = present ? sum / (double)present : NAN;
            m.pixel_accuracy[i] = c[2 * s->classes + 1] ? (double)c[2 * s->classes] / (double)c[2 * s->classes + 1] : NAN;
        }
        free(sums);
    }
    return m;
}

static double ratio(int64_t a, int64_t b) { return b ? (double)a / (double)b : NAN; }

#define COL(T, f, dt) {#f, dt, offsetof(T, f), 0}

/* Files whose contents the report takes in: qcal calibrate's calibration.h5, qcal bench -o. */
struct extras {
    const char *calibration, *bench;
    char **hosts;        /* per rank */
    char **skipped;      /* the names of the images skipped */
    int n_skipped;
};

struct det_row {
    int64_t image;
    int32_t model;       /* 0: parent, 1: optimized */
    int32_t rank;        /* in the image's list, best first */
    int32_t cls;
    float score, x0, y0, x1, y1;
    int32_t parent_match; /* optimized: 1 when it matches a parent detection; parent: -1 */
};

struct det_class_row {
    int64_t image;
    int32_t cls;
    int32_t optimized, parent, matches;
    double ap;           /* the optimized model's AP with the parent's detections as the truth */
};

struct acc_class_row {
    int32_t cls;
    char name[64];
    int64_t objects;
    double parent_ap50, optimized_ap50, parent_ap, optimized_ap;
};

/* One image's per class rows: classes either model found, in class order. */
static int64_t image_class_rows(const struct setup *s, char *rec, int64_t k, struct det_class_row *out)
{
    const struct image_row *r = (const struct image_row *)rec;
    const struct det_rec *par = det_recs(s, rec, 0), *opt = det_recs(s, rec, 1);
    int32_t cls[512];
    int n_cls = 0;
    for (int m = 0; m < 2; m++) /* the classes, sorted, without repeats */
        for (int i = 0; i < (m ? r->n_optimized : r->n_parent); i++) {
            const int32_t c = (m ? opt : par)[i].cls;
            int at = 0;
            while (at < n_cls && cls[at] < c) at++;
            if ((at < n_cls && cls[at] == c) || n_cls == 512) continue;
            memmove(cls + at + 1, cls + at, sizeof *cls * (size_t)(n_cls - at));
            cls[at] = c, n_cls++;
        }
    float score[1024];
    uint8_t state[1024];
    for (int j = 0; j < n_cls; j++) {
        struct det_class_row *row = &out[j];
        *row = (struct det_class_row){.image = k, .cls = cls[j]};
        for (int i = 0; i < r->n_parent; i++) row->parent += par[i].cls == cls[j];
        for (int i = 0; i < r->n_optimized; i++)
            if (opt[i].cls == cls[j]) {
                score[row->optimized] = opt[i].score, state[row->optimized++] = opt[i].vs_parent;
                row->matches += opt[i].vs_parent == QCAL_MATCH_TP;
            }
        row->ap = qcal_average_precision(score, state, row->optimized, row->parent, QCAL_AP_ALL_POINTS);
    }
    return n_cls;
}

/* The detection tables, the agreement summary and, when annotated, the accuracy of both. */
static enum qcal_status write_detections(struct qcal_h5 *f, const struct setup *s, const char *all, int64_t n,
                                         const struct det_summary *dm, const struct cli_labels *lb)
{
    int64_t n_det = 0;
    for (int64_t k = 0; k < n; k++) {
        const struct image_row *r = (const struct image_row *)(all + (size_t)k * s->record);
        n_det += r->n_parent + r->n_optimized;
    }
    struct det_row *dets = malloc(sizeof *dets * (size_t)(n_det + 1));
    struct det_class_row *cls = malloc(sizeof *cls * (size_t)(n_det + 1));
    struct acc_class_row *acc = malloc(sizeof *acc * (size_t)(s->det_classes + 1));
    enum qcal_status st = dets && cls && acc ? QCAL_OK : QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    int64_t nd = 0, nc = 0, na = 0;
    for (int64_t k = 0; st == QCAL_OK && k < n; k++) {
        char *rec = (char *)all + (size_t)k * s->record;
        const struct image_row *r = (const struct image_row *)rec;
        for (int m = 0; m < 2; m++) {
            const struct det_rec *d = det_recs(s, rec, m);
            for (int i = 0; i < (m ? r->n_optimized : r->n_parent); i++)
                dets[nd++] = (struct det_row){k, m, i, d[i].cls, d[i].score, d[i].x0, d[i].y0, d[i].x1, d[i].y1,
                                              m ? d[i].vs_parent == QCAL_MATCH_TP : -1};
        }
        nc += image_class_rows(s, rec, k, cls + nc);
    }
    for (int64_t c = 0; dm->annotated && c < s->det_classes; c++) {
        if (!dm->class_objects[c]) continue;
        struct acc_class_row *a = &acc[na++];
        memset(a, 0, sizeof *a);
        a->cls = (int32_t)c, a->objects = dm->class_objects[c];
        snprintf(a->name, sizeof a->name, "%s", c < lb->n ? lb->name[c] : "");
        const int64_t K = s->det_classes;
        a->parent_ap50 = dm->class_ap[c], a->optimized_ap50 = dm->class_ap[K + c];
        a->parent_ap = dm->class_ap[2 * K + c], a->optimized_ap = dm->class_ap[3 * K + c];
    }
    const struct qcal_h5_column det_cols[] = {
        COL(struct det_row, image, QCAL_I64),       COL(struct det_row, model, QCAL_I32),
        COL(struct det_row, rank, QCAL_I32),        {"class", QCAL_I32, offsetof(struct det_row, cls), 0},
        COL(struct det_row, score, QCAL_F32),       COL(struct det_row, x0, QCAL_F32),
        COL(struct det_row, y0, QCAL_F32),          COL(struct det_row, x1, QCAL_F32),
        COL(struct det_row, y1, QCAL_F32),          COL(struct det_row, parent_match, QCAL_I32)};
    const struct qcal_h5_column class_cols[] = {
        COL(struct det_class_row, image, QCAL_I64),     {"class", QCAL_I32, offsetof(struct det_class_row, cls), 0},
        COL(struct det_class_row, optimized, QCAL_I32), COL(struct det_class_row, parent, QCAL_I32),
        COL(struct det_class_row, matches, QCAL_I32),   COL(struct det_class_row, ap, QCAL_F64)};
    const struct qcal_h5_column acc_cols[] = {
        {"class", QCAL_I32, offsetof(struct acc_class_row, cls), 0},
        {"name", QCAL_H5_STRING, offsetof(struct acc_class_row, name), 64},
        COL(struct acc_class_row, objects, QCAL_I64),
        COL(struct acc_class_row, parent_ap50, QCAL_F64), COL(struct acc_class_row, optimized_ap50, QCAL_F64),
        COL(struct acc_class_row, parent_ap, QCAL_F64),   COL(struct acc_class_row, optimized_ap, QCAL_F64)};
    if (st == QCAL_OK) st = qcal_h5_write_table(f, "/comparison/detections", 10, det_cols, nd, sizeof *dets, dets);
    if (st == QCAL_OK) st = qcal_h5_write_table(f, "/comparison/image_class", 6, class_cols, nc, sizeof *cls, cls);
    if (st == QCAL_OK) st = qcal_h5_attr_i64(f, "/summary", "optimized_detections", dm->a);
    if (st == QCAL_OK) st = qcal_h5_attr_i64(f, "/summary", "parent_detections", dm->b);
    if (st == QCAL_OK) st = qcal_h5_attr_i64(f, "/summary", "matches", dm->matches);
    if (st == QCAL_OK) st = qcal_h5_attr_i64(f, "/summary", "identical_images", dm->identical);
    if (st == QCAL_OK) st = qcal_h5_attr_f64(f, "/summary", "map_vs_parent", dm->map_vs_parent);
    if (st == QCAL_OK && dm->annotated) {
        struct {
            const char *name;
            const double *v;
        } const metrics[] = {{"voc_map_11pt", dm->voc11}, {"voc_map", dm->voc},       {"coco_map", dm->coco},
                             {"coco_map50", dm->coco50},  {"coco_map75", dm->coco75}, {"coco_segm_map", dm->segm},
                             {"coco_segm_map50", dm->segm50}};
        const int n_metrics = dm->masks ? 7 : 5;
        st = qcal_h5_attr_i64(f, "/accuracy", "objects", dm->objects);
        for (int i = 0; i < n_metrics && st == QCAL_OK; i++) {
            char name[64];
            snprintf(name, sizeof name, "parent_%s", metrics[i].name);
            st = qcal_h5_attr_f64(f, "/accuracy", name, metrics[i].v[0]);
            snprintf(name, sizeof name, "optimized_%s", metrics[i].name);
            if (st == QCAL_OK) st = qcal_h5_attr_f64(f, "/accuracy", name, metrics[i].v[1]);
            snprintf(name, sizeof name, "%s_drop", metrics[i].name);
            if (st == QCAL_OK) st = qcal_h5_attr_f64(f, "/accuracy", name, metrics[i].v[0] - metrics[i].v[1]);
        }
        if (st == QCAL_OK) st = qcal_h5_write_table(f, "/accuracy/classes", 7, acc_cols, na, sizeof *acc, acc);
    }
    free(dets), free(cls), free(acc);
    return st;
}

struct seg_class_row {
    int32_t cls;
    char name[64];
    double parent_iou, optimized_iou;
};

/* Segmentation against the annotated masks: mean IoU and pixel accuracy of both models, and
 * per class IoU. */
static enum qcal_status write_mask_accuracy(struct qcal_h5 *f, const struct setup *s, const char *all, int64_t n,
                                            const struct summary *m, const struct cli_labels *lb)
{
    const int64_t C = s->classes;
    const size_t w = (size_t)(2 * C + 2);
    int64_t *sums = malloc(sizeof *sums * 2 * w);
    struct seg_class_row *rows = malloc(sizeof *rows * (size_t)(C + 1));
    enum qcal_status st = sums && rows ? QCAL_OK : QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    int64_t nr = 0;
    if (st == QCAL_OK) {
        sum_mask_counts(s, all, n, sums);
        for (int64_t j = 0; j < C; j++) {
            if (!sums[C + j] && !sums[w + C + j]) continue;
            struct seg_class_row *r = &rows[nr++];
            memset(r, 0, sizeof *r);
            r->cls = (int32_t)j;
            snprintf(r->name, sizeof r->name, "%s", j < lb->n ? lb->name[j] : "");
            r->parent_iou = class_iou(sums, C, j), r->optimized_iou = class_iou(sums + w, C, j);
        }
    }
    const struct qcal_h5_column cols[] = {
        {"class", QCAL_I32, offsetof(struct seg_class_row, cls), 0},
        {"name", QCAL_H5_STRING, offsetof(struct seg_class_row, name), 64},
        COL(struct seg_class_row, parent_iou, QCAL_F64), COL(struct seg_class_row, optimized_iou, QCAL_F64)};
    if (st == QCAL_OK) st = qcal_h5_attr_i64(f, "/accuracy", "pixels", sums[2 * C + 1]);
    if (st == QCAL_OK) st = qcal_h5_attr_f64(f, "/accuracy", "parent_mean_iou", m->gt_mean_iou[0]);
    if (st == QCAL_OK) st = qcal_h5_attr_f64(f, "/accuracy", "optimized_mean_iou", m->gt_mean_iou[1]);
    if (st == QCAL_OK) st = qcal_h5_attr_f64(f, "/accuracy", "mean_iou_drop", m->gt_mean_iou[0] - m->gt_mean_iou[1]);
    if (st == QCAL_OK) st = qcal_h5_attr_f64(f, "/accuracy", "parent_pixel_accuracy", m->pixel_accuracy[0]);
    if (st == QCAL_OK) st = qcal_h5_attr_f64(f, "/accuracy", "optimized_pixel_accuracy", m->pixel_accuracy[1]);
    if (st == QCAL_OK)
        st = qcal_h5_attr_f64(f, "/accuracy", "pixel_accuracy_drop", m->pixel_accuracy[0] - m->pixel_accuracy[1]);
    if (st == QCAL_OK) st = qcal_h5_write_table(f, "/accuracy/classes", 4, cols, nr, sizeof *rows, rows);
    free(sums), free(rows);
    return st;
}

struct distance_summary {
    int32_t output;
    double snr_db_min, snr_db_p05, snr_db_median, cosine_min, cosine_median, max_abs_max, mse_mean;
};

static int by_value(const void *pa, const void *pb)
{
    const double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

/* The distribution of each output's distances over the images: /summary/tensors. Quantiles
 * are nearest-rank (the value at rank ceil(q n)). */
static enum qcal_status write_distance_summary(struct qcal_h5 *f, const struct setup *s,
                                               const struct distance_row *dist, int64_t n)
{
    struct distance_summary rows[MAX_OUT];
    double *v = malloc(sizeof *v * (size_t)(n + 1));
    if (!v) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
#define RANK(q) v[(int64_t)ceil((q) * (double)n) > 0 ? (int64_t)ceil((q) * (double)n) - 1 : 0]
    for (int o = 0; o < s->n_out; o++) {
        struct distance_summary *r = &rows[o];
        r->output = o, r->max_abs_max = 0, r->mse_mean = 0;
        for (int64_t k = 0; k < n; k++) {
            const struct distance_row *d = &dist[k * s->n_out + o];
            v[k] = d->snr_db;
            if (d->max_abs > r->max_abs_max) r->max_abs_max = d->max_abs;
            r->mse_mean += d->mse / (double)n;
        }
        qsort(v, (size_t)n, sizeof *v, by_value);
        r->snr_db_min = v[0], r->snr_db_p05 = RANK(0.05), r->snr_db_median = RANK(0.5);
        for (int64_t k = 0; k < n; k++) v[k] = dist[k * s->n_out + o].cosine;
        qsort(v, (size_t)n, sizeof *v, by_value);
        r->cosine_min = v[0], r->cosine_median = RANK(0.5);
    }
#undef RANK
    free(v);
    const struct qcal_h5_column cols[] = {
        COL(struct distance_summary, output, QCAL_I32),        COL(struct distance_summary, snr_db_min, QCAL_F64),
        COL(struct distance_summary, snr_db_p05, QCAL_F64),    COL(struct distance_summary, snr_db_median, QCAL_F64),
        COL(struct distance_summary, cosine_min, QCAL_F64),    COL(struct distance_summary, cosine_median, QCAL_F64),
        COL(struct distance_summary, max_abs_max, QCAL_F64),   COL(struct distance_summary, mse_mean, QCAL_F64)};
    return qcal_h5_write_table(f, "/summary/tensors", 8, cols, s->n_out, sizeof *rows, rows);
}

/* Rank 0: the report from every image's record (all, in dataset order). */
static enum qcal_status write_report(const char *path, const struct setup *s, const struct qcal_graph *g0,
                                     const char *opt_path, const char *all, int64_t n, const struct summary *m,
                                     const struct det_summary *dm, const struct cli_labels *lb,
                                     const struct extras *extra, int argc, char **argv, time_t start)
{
    struct qcal_h5 *f = NULL;
    enum qcal_status st = qcal_h5_create(path, &f);
    if (st != QCAL_OK) return st;
    static const char *const kinds[] = {"tensor", "classification", "ssd", "yolo", "segmentation",
                                        "instance_segmentation"};
    const char *kind = kinds[s->kind];
    char cmd[4096] = "qcal ", when[32];
    for (int i = 0; i < argc; i++) {
        strncat(cmd, argv[i], sizeof cmd - strlen(cmd) - 2);
        if (i + 1 < argc) strncat(cmd, " ", sizeof cmd - strlen(cmd) - 1);
    }
    st = qcal_h5_attr_string(f, "/provenance", "qcal_version", QCAL_VERSION);
    if (st == QCAL_OK) st = qcal_h5_attr_string(f, "/provenance", "git_commit", QCAL_GIT_COMMIT);
    if (st == QCAL_OK) st = qcal_h5_attr_string(f, "/provenance", "job_file", s->job->path);
    if (st == QCAL_OK) st = qcal_h5_attr_string(f, "/provenance", "job_text", s->job->text ? s->job->text : "");
    if (st == QCAL_OK) st = qcal_h5_attr_string(f, "/provenance", "parent_model", s->job->model);
    if (st == QCAL_OK) st = qcal_h5_attr_string(f, "/provenance", "optimized_model", opt_path);
    if (st == QCAL_OK) st = qcal_h5_attr_string(f, "/provenance", "adapter", kind);
    /* what differs from run to run, apart from the results */
    if (st == QCAL_OK) st = qcal_h5_attr_string(f, "/provenance/run", "command_line", cmd);
    if (st == QCAL_OK) st = qcal_h5_attr_i64(f, "/provenance/run", "ranks", qcal_par_size());
    if (st == QCAL_OK) st = qcal_h5_attr_i64(f, "/provenance/run", "threads_per_rank", omp_get_max_threads());
    if (st == QCAL_OK) st = qcal_h5_attr_string(f, "/provenance/run", "host_rank0", extra->hosts[0]);
    if (st == QCAL_OK) /* every rank's host, in rank order */
        st = qcal_h5_write_strings(f, "/provenance/run/hosts", qcal_par_size(), (const char *const *)extra->hosts);
    iso_time(start, when, sizeof when);
    if (st == QCAL_OK) st = qcal_h5_attr_string(f, "/provenance/run", "start", when);
    iso_time(time(NULL), when, sizeof when);
    if (st == QCAL_OK) st = qcal_h5_attr_string(f, "/provenance/run", "end", when);

    struct image_row *rows = malloc(sizeof *rows * (size_t)(n ? n : 1));
    struct distance_row *dist = malloc(sizeof *dist * (size_t)(n * s->n_out + 1));
    int64_t n_cls = 0;
    for (int64_t k = 0; k < n && s->kind == QCAL_ADAPTER_SEGMENTATION; k++) {
        const int64_t *c = seg_counts((char *)all + (size_t)k * s->record);
        for (int64_t j = 0; j < s->classes; j++) n_cls += c[s->classes + j] > 0;
    }
    struct class_row *cls = malloc(sizeof *cls * (size_t)(n_cls + 1));
    if (st == QCAL_OK && (!rows || !dist || !cls)) st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    int64_t nc = 0;
    for (int64_t k = 0; st == QCAL_OK && k < n; k++) {
        char *rec = (char *)all + (size_t)k * s->record;
        memcpy(&rows[k], rec, sizeof rows[k]);
        const struct qcal_tensor_distance *d = distances(s, rec);
        for (int o = 0; o < s->n_out; o++)
            dist[k * s->n_out + o] = (struct distance_row){k, o, d[o].mse, d[o].max_abs, d[o].cosine, d[o].snr_db};
        if (s->kind != QCAL_ADAPTER_SEGMENTATION) continue;
        const int64_t *c = seg_counts(rec);
        for (int64_t j = 0; j < s->classes; j++)
            if (c[s->classes + j] > 0)
                cls[nc++] = (struct class_row){k, (int32_t)j, c[j], c[s->classes + j],
                                               (double)c[j] / (double)c[s->classes + j]};
    }
    const struct qcal_h5_column base[] = {
        COL(struct image_row, index, QCAL_I64), {"name", QCAL_H5_STRING, offsetof(struct image_row, name), NAME_LEN},
        COL(struct image_row, label, QCAL_I32)};
    const struct qcal_h5_column cls_cols[] = {
        COL(struct image_row, index, QCAL_I64), {"name", QCAL_H5_STRING, offsetof(struct image_row, name), NAME_LEN},
        COL(struct image_row, label, QCAL_I32), COL(struct image_row, optimized_class, QCAL_I32),
        COL(struct image_row, parent_class, QCAL_I32), COL(struct image_row, parent_class_rank, QCAL_I32),
        COL(struct image_row, optimized_conf, QCAL_F64), COL(struct image_row, optimized_conf_parent, QCAL_F64),
        COL(struct image_row, parent_conf, QCAL_F64), COL(struct image_row, parent_top5, QCAL_I32),
        COL(struct image_row, optimized_top5, QCAL_I32)};
    const struct qcal_h5_column seg_cols[] = {
        COL(struct image_row, index, QCAL_I64), {"name", QCAL_H5_STRING, offsetof(struct image_row, name), NAME_LEN},
        COL(struct image_row, mean_iou, QCAL_F64)};
    const struct qcal_h5_column det_cols[] = {
        COL(struct image_row, index, QCAL_I64), {"name", QCAL_H5_STRING, offsetof(struct image_row, name), NAME_LEN},
        COL(struct image_row, n_optimized, QCAL_I32), COL(struct image_row, n_parent, QCAL_I32),
        COL(struct image_row, matches, QCAL_I32)};
    const struct qcal_h5_column dist_cols[] = {
        COL(struct distance_row, image, QCAL_I64), COL(struct distance_row, output, QCAL_I32),
        COL(struct distance_row, mse, QCAL_F64),   COL(struct distance_row, max_abs, QCAL_F64),
        COL(struct distance_row, cosine, QCAL_F64), COL(struct distance_row, snr_db, QCAL_F64)};
    const struct qcal_h5_column class_cols[] = {
        COL(struct class_row, image, QCAL_I64), {"class", QCAL_I32, offsetof(struct class_row, cls), 0},
        COL(struct class_row, intersection, QCAL_I64), {"union", QCAL_I64, offsetof(struct class_row, union_), 0},
        COL(struct class_row, iou, QCAL_F64)};
    const bool is_cls = s->kind == QCAL_ADAPTER_CLASSIFICATION, is_seg = s->kind == QCAL_ADAPTER_SEGMENTATION;
    const bool is_det = is_detection(s->kind);
    const struct qcal_h5_column *ic = is_cls ? cls_cols : is_seg ? seg_cols : is_det ? det_cols : base;
    const int n_ic = is_cls   ? (int)(sizeof cls_cols / sizeof *cls_cols)
                     : is_seg ? (int)(sizeof seg_cols / sizeof *seg_cols)
                     : is_det ? (int)(sizeof det_cols / sizeof *det_cols)
                              : (int)(sizeof base / sizeof *base);
    if (st == QCAL_OK) st = qcal_h5_write_table(f, "/comparison/images", n_ic, ic, n, sizeof *rows, rows);
    if (st == QCAL_OK && is_seg)
        st = qcal_h5_write_table(f, "/comparison/image_class", 5, class_cols, nc, sizeof *cls, cls);
    if (st == QCAL_OK)
        st = qcal_h5_write_table(f, "/comparison/tensors", 6, dist_cols, n * s->n_out, sizeof *dist, dist);
    if (st == QCAL_OK) st = write_distance_summary(f, s, dist, n);
    const char *names[MAX_OUT];
    for (int o = 0; o < s->n_out; o++) names[o] = g0->values[g0->outputs[o]].name;
    if (st == QCAL_OK) st = qcal_h5_write_strings(f, "/comparison/output_names", s->n_out, names);
    if (st == QCAL_OK) st = qcal_h5_attr_i64(f, "/summary", "images", n);
    if (st == QCAL_OK && extra->n_skipped) {
        st = qcal_h5_attr_i64(f, "/summary", "skipped_images", extra->n_skipped);
        if (st == QCAL_OK)
            st = qcal_h5_write_strings(f, "/comparison/skipped", extra->n_skipped, (const char *const *)extra->skipped);
    }
    if (st == QCAL_OK && is_cls) {
        st = qcal_h5_attr_f64(f, "/summary", "top1_agreement", ratio(m->agree, n));
        if (st == QCAL_OK) st = qcal_h5_attr_i64(f, "/summary", "labelled_images", m->labelled);
        if (st == QCAL_OK && m->labelled) {
            const double p1 = ratio(m->p_top1, m->labelled), o1 = ratio(m->o_top1, m->labelled);
            st = qcal_h5_attr_f64(f, "/accuracy", "parent_top1", p1);
            if (st == QCAL_OK) st = qcal_h5_attr_f64(f, "/accuracy", "optimized_top1", o1);
            if (st == QCAL_OK) st = qcal_h5_attr_f64(f, "/accuracy", "top1_drop", p1 - o1);
            if (st == QCAL_OK) st = qcal_h5_attr_f64(f, "/accuracy", "parent_top5", ratio(m->p_top5, m->labelled));
            if (st == QCAL_OK) st = qcal_h5_attr_f64(f, "/accuracy", "optimized_top5", ratio(m->o_top5, m->labelled));
        }
    }
    if (st == QCAL_OK && is_seg) st = qcal_h5_attr_f64(f, "/summary", "mean_iou_agreement", m->mean_iou);
    if (st == QCAL_OK && is_seg && s->masks) st = write_mask_accuracy(f, s, all, n, m, lb);
    if (st == QCAL_OK && is_detection(s->kind)) st = write_detections(f, s, all, n, dm, lb);
    if (st == QCAL_OK && extra->calibration) { /* the calibration summary: scales, per layer SQNR */
        st = qcal_h5_copy(f, "/calibration/scales", extra->calibration, "/scales");
        if (st == QCAL_OK) st = qcal_h5_copy(f, "/calibration/scales/tensor", extra->calibration, "/tensors/name");
        if (st == QCAL_OK && qcal_h5_file_has(extra->calibration, "/layers")) /* not with --no-error-pass */
            st = qcal_h5_copy(f, "/calibration/layers", extra->calibration, "/layers");
    }
    if (st == QCAL_OK && extra->bench) st = qcal_h5_copy(f, "/performance", extra->bench, "/performance");
    free(rows);
    free(dist);
    free(cls);
    enum qcal_status cst = qcal_h5_close(f, st == QCAL_OK);
    return st != QCAL_OK ? st : cst;
}

/* The dataset's classes as the model's: by name when both the dataset and the adapter's
 * labels name them, else by index. */
static enum qcal_status class_mapping(const struct qcal_job *job, const struct qcal_dataset *ds,
                                      const struct cli_labels *lb, int32_t **out)
{
    int32_t *map = malloc(sizeof *map * (size_t)(ds->n_classes + 1));
    if (!map) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    int named = 0;
    for (int c = 0; c < ds->n_classes; c++) {
        map[c] = c;
        if (!ds->classes || !lb->n) continue;
        map[c] = -1;
        for (int j = 0; j < lb->n && map[c] < 0; j++)
            if (strcmp(ds->classes[c], lb->name[j]) == 0) map[c] = j, named++;
    }
    if (ds->classes && lb->n && ds->n_classes && !named) {
        free(map);
        return QCAL_ERR(QCAL_INVALID_JOB, "%s: none of the dataset's %d classes ('%s', ...) is among the adapter's "
                        "labels (%s)", job->path, ds->n_classes, ds->classes[0], job->adapter.labels);
    }
    *out = map;
    return QCAL_OK;
}

int cli_evaluate(int argc, char **argv)
{
    enum { O_OPT = 1000, O_SUBSET, O_THREADS, O_KERNELS, O_QUIET, O_CALIB, O_BENCH };
    static const struct option opts[] = {
        {"optimized", required_argument, 0, O_OPT}, {"output", required_argument, 0, 'o'},
        {"subset", required_argument, 0, O_SUBSET}, {"threads", required_argument, 0, O_THREADS},
        {"kernels", required_argument, 0, O_KERNELS}, {"quiet", no_argument, 0, O_QUIET},
        {"calibration", required_argument, 0, O_CALIB}, {"bench", required_argument, 0, O_BENCH},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    const time_t start = time(NULL);
    enum qcal_status st = QCAL_OK;
    const char *out = NULL, *opt_path = NULL;
    struct extras extra = {0};
    int64_t subset = -1;
    int kernels = QCAL_KERNELS_AUTO;
    bool quiet = false;
    struct qcal_job *job = NULL;
    struct qcal_graph *g[2] = {NULL, NULL};
    struct qcal_plan *plan[2] = {NULL, NULL};
    struct qcal_dataset ds = {0};
    struct cli_labels lb = {0};
    struct det_summary dm = {0};
    int32_t *to_model = NULL;
    char *mine = NULL, *all = NULL, *hosts = NULL, **host_ptr = NULL, **skipped = NULL;
    int n_skipped = 0;
    optind = 1;
    opterr = 0;
    cli_hold_errors();
    int ch;
    while ((ch = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (ch) {
        case 'o': out = optarg; break;
        case O_OPT: opt_path = optarg; break;
        case O_SUBSET: subset = atoll(optarg); break;
        case O_THREADS:
            if (atoi(optarg) < 1) AGREE(QCAL_ERR(QCAL_INVALID_ARGUMENT, "--threads must be >= 1"));
            omp_set_num_threads(atoi(optarg));
            break;
        case O_KERNELS:
            if ((kernels = cli_parse_kernels(optarg)) < 0)
                AGREE(QCAL_ERR(QCAL_INVALID_ARGUMENT, "--kernels '%s': expected dnnl, blas or ref", optarg));
            break;
        case O_QUIET: quiet = true; break;
        case O_CALIB: extra.calibration = optarg; break;
        case O_BENCH: extra.bench = optarg; break;
        case 'h': fputs(usage, stdout); goto cleanup;
        default:
            AGREE(QCAL_ERR(QCAL_INVALID_ARGUMENT, "evaluate: unknown option or missing value in '%s' (see qcal "
                           "evaluate --help)", argv[optind - 1]));
        }
    }
    if (optind != argc - 1 || !out || !opt_path)
        AGREE(QCAL_ERR(QCAL_INVALID_ARGUMENT, "evaluate: expected JOB.yml, --optimized MODEL and -o REPORT.h5 (see "
                       "qcal evaluate --help)"));
    for (int i = 0; i < 2; i++) {
        const char *x = i ? extra.bench : extra.calibration;
        if (x && access(x, R_OK) != 0)
            AGREE(QCAL_ERR(QCAL_IO_ERROR, "%s: cannot open: %s", x, strerror(errno)));
    }
    AGREE(qcal_job_load(argv[optind], &job));
    if (!job->validation_data.present) AGREE(QCAL_ERR(QCAL_INVALID_JOB, "%s: no validation dataset", job->path));
    AGREE(cli_load_dataset(job, &job->validation_data, &ds));
    if (subset > 0) AGREE(qcal_dataset_subset(&ds, subset, job->validation_data.subset_random,
                                              (uint64_t)job->validation_data.seed));
    if (ds.count == 0) AGREE(QCAL_ERR(QCAL_INVALID_DATA, "%s: the validation dataset has no images", job->path));
    AGREE(cli_job_model(job, true, &g[0]));
    AGREE(cli_job_model_at(job, opt_path, true, &g[1]));
    struct cli_image_input in, in1;
    AGREE(cli_image_input(job, g[0], &in));
    AGREE(cli_image_input(job, g[1], &in1));
    if (!qcal_shape_equal(&in.t, &in1.t))
        AGREE(QCAL_ERR(QCAL_INVALID_MODEL, "%s and %s take different input shapes", job->model, opt_path));
    struct setup s = {.job = job, .ds = &ds, .in = &in};
    AGREE(cli_labels_load(job->adapter.labels, &lb));
    s.n_labels = lb.n;
    s.masks = job->adapter.kind == QCAL_ADAPTER_SEGMENTATION && ds.mask_paths;
    if (is_detection(job->adapter.kind) && ds.obj_begin) {
        s.boxes = true;
        s.segms = job->adapter.kind == QCAL_ADAPTER_INSTANCE_SEGMENTATION && ds.n_segms > 0;
        AGREE(class_mapping(job, &ds, &lb, &to_model));
        s.to_model = to_model;
    }
    AGREE(describe(&s, g[0], g[1], opt_path));
    const struct qcal_plan_options plo = {.kernels = kernels};
    for (int m = 0; m < 2; m++) AGREE(qcal_plan_create(g[m], &plo, &plan[m]));
    s.plan[0] = plan[0], s.plan[1] = plan[1];

    /* contiguous blocks, each padded to the largest, gathered in rank order = dataset order */
    const int size = qcal_par_size(), rank = qcal_par_rank();
    const int64_t block = (ds.count + size - 1) / size;
    if ((double)block * (double)s.record > 2e9)
        AGREE(QCAL_ERR(QCAL_UNSUPPORTED, "%lld images of %zu bytes per rank: use more ranks", (long long)block,
                       s.record));
    int64_t begin, end;
    qcal_shard(ds.count, rank, size, &begin, &end);
    mine = calloc((size_t)block + 1, s.record);
    all = rank == 0 || size > 1 ? calloc((size_t)(block * size) + 1, s.record) : NULL;
    AGREE(mine && all ? QCAL_OK : QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory"));
    AGREE(run_images(&s, begin, end, mine));
    AGREE(qcal_par_allgather_bytes(mine, (int)((size_t)block * s.record), all));
    /* every rank's host name, for the provenance */
    char host[HOST_LEN] = "";
    gethostname(host, sizeof host - 1);
    hosts = calloc((size_t)size, HOST_LEN);
    host_ptr = calloc((size_t)size, sizeof *host_ptr);
    AGREE(hosts && host_ptr ? QCAL_OK : QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory"));
    AGREE(qcal_par_allgather_bytes(host, HOST_LEN, hosts));
    for (int r = 0; r < size; r++) host_ptr[r] = hosts + (size_t)r * HOST_LEN;
    extra.hosts = host_ptr;
    if (rank == 0) { /* close the gaps of short blocks */
        int64_t at = 0;
        for (int r = 0; r < size; r++) {
            int64_t b, e;
            qcal_shard(ds.count, r, size, &b, &e);
            memmove(all + (size_t)at * s.record, all + (size_t)(r * block) * s.record, (size_t)(e - b) * s.record);
            at += e - b;
        }
    }
    /* skipped images leave the tables; their names go to /comparison/skipped */
    int64_t n_img = 0;
    for (int64_t k = 0; rank == 0 && k < ds.count; k++) {
        const struct image_row *r = (const struct image_row *)(all + (size_t)k * s.record);
        if (r->skipped) {
            char **nn = realloc(skipped, sizeof *nn * (size_t)(n_skipped + 1));
            if (!nn || !(nn[n_skipped] = strdup(r->name))) {
                if (nn) skipped = nn;
                st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
                break;
            }
            skipped = nn, n_skipped++;
            continue;
        }
        if (n_img != k) memmove(all + (size_t)n_img * s.record, all + (size_t)k * s.record, s.record);
        n_img++;
    }
    if (rank == 0 && st == QCAL_OK && n_img == 0)
        st = QCAL_ERR(QCAL_INVALID_DATA, "%s: every validation image was skipped", job->path);
    AGREE(st);
    extra.skipped = skipped, extra.n_skipped = n_skipped;
    const struct summary m = summarize(&s, all, n_img);
    if (rank == 0 && is_detection(s.kind)) st = det_summarize(&s, all, n_img, &dm);
    if (rank == 0 && st == QCAL_OK) st = write_report(out, &s, g[0], opt_path, all, n_img, &m, &dm, &lb, &extra, argc, argv, start);
    AGREE(st);
    if (rank == 0 && !quiet) {
        printf("evaluated %lld images (%d ranks x %d threads): %s vs %s\n", (long long)n_img, size,
               omp_get_max_threads(), job->model, opt_path);
        if (n_skipped) printf("  %d unreadable images skipped (in /comparison/skipped)\n", n_skipped);
        if (s.kind == QCAL_ADAPTER_CLASSIFICATION) {
            printf("  top-1 agreement with the parent: %.4f (%lld of %lld)\n", ratio(m.agree, m.images),
                   (long long)m.agree, (long long)m.images);
            if (m.labelled)
                printf("  top-1 accuracy: parent %.4f, optimized %.4f (drop %.4f) on %lld labelled images\n",
                       ratio(m.p_top1, m.labelled), ratio(m.o_top1, m.labelled),
                       ratio(m.p_top1, m.labelled) - ratio(m.o_top1, m.labelled), (long long)m.labelled);
        }
        if (s.kind == QCAL_ADAPTER_SEGMENTATION) printf("  mean IoU of the class maps: %.4f\n", m.mean_iou);
        if (s.masks)
            printf("  against the masks: mean IoU parent %.4f, optimized %.4f (drop %.4f); pixel accuracy parent "
                   "%.4f, optimized %.4f\n", m.gt_mean_iou[0], m.gt_mean_iou[1], m.gt_mean_iou[0] - m.gt_mean_iou[1],
                   m.pixel_accuracy[0], m.pixel_accuracy[1]);
        if (is_detection(s.kind)) {
            printf("  detections: optimized %lld, parent %lld, matched %lld; mAP vs the parent %.4f\n",
                   (long long)dm.a, (long long)dm.b, (long long)dm.matches, dm.map_vs_parent);
            if (dm.annotated)
                printf("  %s mAP@[.5:.95] on %lld objects: parent %.4f, optimized %.4f (drop %.4f)\n",
                       dm.masks ? "box" : "COCO", (long long)dm.objects, dm.coco[0], dm.coco[1], dm.coco[0] - dm.coco[1]);
            if (dm.masks)
                printf("  mask mAP@[.5:.95]: parent %.4f, optimized %.4f (drop %.4f)\n", dm.segm[0], dm.segm[1],
                       dm.segm[0] - dm.segm[1]);
        }
        printf("wrote %s\n", out);
    }
cleanup:
    free(mine);
    free(all);
    free(hosts);
    free(host_ptr);
    for (int i = 0; i < n_skipped; i++) free(skipped[i]);
    free(skipped);
    free(to_model);
    det_summary_free(&dm);
    cli_labels_free(&lb);
    for (int k = 0; k < 2; k++) {
        qcal_plan_destroy(plan[k]);
        qcal_graph_destroy(g[k]);
    }
    qcal_dataset_free(&ds);
    qcal_job_destroy(job);
    return qcal_status_exit_code(st);
}
