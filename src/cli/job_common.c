/* What the job subcommands share: the job's model prepared with its input shapes, and one
 * image decoded and preprocessed into the model's input tensor. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qcal/eval.h"
#include "qcal/par.h"
#include "qcal/job.h"
#include "qcal/onnx.h"
#include "qcal/report.h"
#include "qcal/runtime.h"

enum qcal_status cli_job_model(const struct qcal_job *job, bool fuse, struct qcal_graph **g_out)
{
    return cli_job_model_at(job, job->model, fuse, g_out);
}

enum qcal_status cli_job_model_at(const struct qcal_job *job, const char *path, bool fuse, struct qcal_graph **g_out)
{
    struct qcal_graph *g = NULL;
    enum qcal_status st = qcal_onnx_load(path, &g);
    if (st != QCAL_OK) return st;
    struct qcal_input_shape shapes[QCAL_JOB_MAX_INPUTS];
    int n_shapes = 0;
    for (int i = 0; i < job->n_inputs; i++) {
        if (!job->inputs[i].ndim) continue;
        shapes[n_shapes].name = job->inputs[i].name ? job->inputs[i].name
                                                    : (i < g->n_inputs ? g->values[g->inputs[i]].name : NULL);
        shapes[n_shapes].ndim = job->inputs[i].ndim;
        memcpy(shapes[n_shapes].dims, job->inputs[i].shape, sizeof shapes[n_shapes].dims);
        n_shapes++;
    }
    struct qcal_prepare_options po = {.n_shapes = n_shapes, .shapes = shapes, .optimize = fuse, .fold_batchnorm = true};
    if ((st = qcal_model_prepare(g, &po)) != QCAL_OK) {
        qcal_graph_destroy(g);
        return st;
    }
    *g_out = g;
    return QCAL_OK;
}

enum qcal_status cli_image_input(const struct qcal_job *job, const struct qcal_graph *g, struct cli_image_input *in)
{
    return cli_image_batch_input(job, g, 1, in);
}

enum qcal_status cli_image_batch_input(const struct qcal_job *job, const struct qcal_graph *g, int64_t batch,
                                       struct cli_image_input *in)
{
    memset(in, 0, sizeof *in);
    if (g->n_inputs != 1)
        return QCAL_ERR(QCAL_UNSUPPORTED, "%s: images feed models with one input; this one has %d", job->model,
                        g->n_inputs);
    in->t = g->values[g->inputs[0]].t;
    in->t.data = NULL;
    char shape[96];
    if (in->t.ndim != 4 || in->t.dims[0] != batch || in->t.dtype != QCAL_F32)
        return QCAL_ERR(QCAL_UNSUPPORTED, "%s: image input must be float32 [%lld, C, H, W] (or NHWC), is %s %s",
                        job->model, (long long)batch, qcal_dtype_name(in->t.dtype),
                        qcal_shape_str(&in->t, shape, sizeof shape));
    in->t.dims[0] = 1;
    in->channels = (int)(job->prep.nhwc ? in->t.dims[3] : in->t.dims[1]);
    if (in->channels != 1 && in->channels != 3)
        return QCAL_ERR(QCAL_UNSUPPORTED, "%s: image input has %d channels; 1 or 3 expected%s", job->model,
                        in->channels, job->prep.nhwc ? "" : " (layout NHWC in the job?)");
    /* decode_scaling: the first geometric step, if a resize, says how small a JPEG may decode */
    for (int k = 0; job->n_inputs && job->inputs[0].decode_scaling && k < job->prep.n; k++) {
        const struct qcal_prep_step *s = &job->prep.steps[k];
        if (s->kind == QCAL_PREP_CENTER_CROP) break;
        if (s->kind != QCAL_PREP_RESIZE) continue;
        if (s->mode == QCAL_RESIZE_EXACT) in->min_w = s->width, in->min_h = s->height;
        else if (s->mode == QCAL_RESIZE_SHORTER_SIDE) in->min_w = in->min_h = s->width;
        break;
    }
    return QCAL_OK;
}

enum qcal_status cli_image_tensor(const struct qcal_job *job, const struct cli_image_input *in, const char *path,
                                  struct qcal_tensor *x, struct cli_image_geometry *geo, double *decode_seconds)
{
    struct qcal_image im;
    double t0 = qcal_now();
    enum qcal_status s = qcal_image_load_scaled(path, in->channels == 1 ? 1 : 3, in->min_w, in->min_h, &im);
    if (decode_seconds) *decode_seconds += qcal_now() - t0;
    if (s != QCAL_OK) return s;
    float *work = qcal_malloc(2 * sizeof(float) * qcal_prep_work_floats(&job->prep, im.width, im.height, im.channels));
    s = work ? qcal_prep_run(&job->prep, &im, path, work, x) : QCAL_ERR(QCAL_OUT_OF_MEMORY, "%s: out of memory", path);
    qcal_free(work);
    if (geo) *geo = (struct cli_image_geometry){im.width, im.height, im.scale};
    qcal_image_free(&im);
    return s;
}

/* Every rank reaches the same agreement points, so one rank's failure stops all of them
 * at the next one with a non-zero status (par.h). Error messages are held back until then
 * and only the lowest failing rank prints its own: one line, whatever the number of ranks
 * that failed the same way (a bad option, a missing file). */
static char held_error[2048];

void cli_hold_errors(void) { qcal_log_capture(held_error, sizeof held_error); }

enum qcal_status cli_agree(enum qcal_status st)
{
    enum qcal_status all = qcal_par_agree(st);
    if (all != QCAL_OK && qcal_par_failed_rank() == qcal_par_rank() && held_error[0]) {
        qcal_log_capture(NULL, 0);
        QCAL_LOGE("%s", held_error);
    }
    cli_hold_errors();
    return all;
}

enum qcal_status cli_image_outcome(int64_t n, enum qcal_status *status, char **errors, int64_t *ok_out)
{
    enum qcal_status st = QCAL_OK;
    int64_t ok = 0;
    for (int64_t k = 0; k < n; k++) {
        if (status[k] == QCAL_OK) {
            ok++;
            continue;
        }
        if (status[k] == CLI_NOT_RUN) continue;
        if (status[k] == CLI_SKIPPED) {
            if (errors[k]) QCAL_LOGW("skipped: %s", errors[k]);
            continue;
        }
        if (st == QCAL_OK) st = QCAL_ERR(status[k], "%s", errors[k] ? errors[k] : qcal_status_str(status[k]));
    }
    for (int64_t k = 0; k < n; k++) free(errors[k]);
    free(errors);
    free(status);
    if (ok_out) *ok_out = ok;
    return st;
}

enum qcal_status cli_image_outcome_new(int64_t n, enum qcal_status **status, char ***errors)
{
    *status = calloc((size_t)n + 1, sizeof **status);
    *errors = calloc((size_t)n + 1, sizeof **errors);
    if (*status && *errors) return QCAL_OK;
    free(*status), free(*errors);
    return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
}

int cli_output_index(const struct qcal_exec *ex, const char *name)
{
    for (int i = 0; name && i < qcal_exec_num_outputs(ex); i++)
        if (strcmp(qcal_exec_output_name(ex, i), name) == 0) return i;
    return name ? -1 : 0;
}

void cli_detect_outputs(const struct qcal_job *job, int n, const struct qcal_tensor *const *t, const char *const *names,
                        int *a_out, int *b_out)
{
    const struct qcal_job_adapter *ad = &job->adapter;
    int a = -1, b = -1;
    for (int i = 0; ad->output && i < n; i++)
        if (strcmp(names[i], ad->output) == 0) a = i;
    for (int i = 0; i < n; i++) {
        if (ad->kind == QCAL_ADAPTER_SSD) {
            if (n == 1) a = i;
            else if (t[i]->ndim == 3 && t[i]->dims[2] == 4 && !ad->output) a = i;
            else if (t[i]->ndim == 3 && i != a && b < 0) b = i;
        } else {
            if (t[i]->ndim == 3 && a < 0) a = i;
            else if (t[i]->ndim == 4 && b < 0) b = i;
        }
    }
    *a_out = a, *b_out = b;
}

enum qcal_status cli_detect(const struct qcal_job *job, const struct qcal_exec *ex, int in_w, int in_h, int max_det,
                            struct qcal_detections *d, uint8_t **masks)
{
    const struct qcal_job_adapter *ad = &job->adapter;
    const struct qcal_detect_options opt = {.confidence = ad->confidence_threshold, .nms_iou = ad->nms_threshold,
                                            .background_class = ad->background_class, .max_detections = max_det,
                                            .input_width = in_w, .input_height = in_h};
    memset(d, 0, sizeof *d);
    *masks = NULL;
    const int n_out = qcal_exec_num_outputs(ex);
    const struct qcal_tensor **outs = malloc(sizeof *outs * (size_t)(n_out + 1));
    const char **names = malloc(sizeof *names * (size_t)(n_out + 1));
    if (!outs || !names) {
        free(outs), free(names);
        return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    }
    for (int i = 0; i < n_out; i++) outs[i] = qcal_exec_output(ex, i), names[i] = qcal_exec_output_name(ex, i);
    int ia, ib;
    cli_detect_outputs(job, n_out, outs, names, &ia, &ib);
    const struct qcal_tensor *a = ia >= 0 ? outs[ia] : NULL, *b = ib >= 0 ? outs[ib] : NULL;
    free(outs), free(names);
    if (!a || (ad->kind == QCAL_ADAPTER_SSD && n_out > 1 && !b))
        return QCAL_ERR(QCAL_INVALID_JOB, "%s: the model's outputs are not what the %s adapter reads", job->path,
                        ad->kind == QCAL_ADAPTER_SSD ? "ssd" : "yolo");
    if (ad->kind == QCAL_ADAPTER_SSD) return qcal_detect_ssd(a, b, &opt, d);
    const bool seg = ad->kind == QCAL_ADAPTER_INSTANCE_SEGMENTATION;
    if (seg && (!b || b->ndim != 4))
        return QCAL_ERR(QCAL_INVALID_JOB, "%s: instance_segmentation needs predictions [1, 4 + C + M, N] and "
                        "prototypes [1, M, H, W] outputs", job->path);
    const int n_classes = seg ? (int)((a->dims[1] < a->dims[2] ? a->dims[1] : a->dims[2]) - 4 - b->dims[1]) : 0;
    float *coef = NULL;
    int n_coef = 0;
    enum qcal_status st = qcal_detect_yolo(a, n_classes, false, &opt, d, seg ? &coef : NULL, &n_coef);
    if (st == QCAL_OK && seg && d->n) {
        *masks = malloc((size_t)d->n * in_w * in_h);
        st = *masks ? qcal_yolo_masks(d, coef, n_coef, b, &opt, *masks)
                    : QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory drawing instance masks");
    }
    free(coef);
    if (st != QCAL_OK) {
        qcal_detections_free(d);
        free(*masks);
        *masks = NULL;
    }
    return st;
}

void cli_labels_free(struct cli_labels *l)
{
    for (int i = 0; i < l->n; i++) free(l->name[i]);
    free(l->name);
    memset(l, 0, sizeof *l);
}

enum qcal_status cli_labels_load(const char *path, struct cli_labels *l)
{
    memset(l, 0, sizeof *l);
    if (!path) return QCAL_OK;
    FILE *f = fopen(path, "r");
    if (!f) return QCAL_ERR(QCAL_IO_ERROR, "%s: cannot open the labels file", path);
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char **nn = realloc(l->name, sizeof *nn * (size_t)(l->n + 1));
        if (!nn) {
            fclose(f);
            return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        }
        l->name = nn;
        l->name[l->n++] = strdup(line);
    }
    fclose(f);
    return QCAL_OK;
}

void cli_point_to_file(const struct qcal_job *job, const struct cli_image_geometry *geo, float *x, float *y)
{
    qcal_prep_map_back(&job->prep, geo->width, geo->height, x, y);
    const float s = geo->scale > 0 ? geo->scale : 1;
    *x /= s, *y /= s;
}

struct cli_axes cli_file_to_model(const struct qcal_job *job, const struct cli_image_geometry *geo)
{
    float ox = 0, oy = 0, ux = 1, uy = 1;
    cli_point_to_file(job, geo, &ox, &oy);
    cli_point_to_file(job, geo, &ux, &uy);
    return (struct cli_axes){ox, oy, (double)ux - ox, (double)uy - oy};
}

void cli_image_name(const char *path, const char *root, char *out, size_t cap)
{
    size_t n = root ? strlen(root) : 0;
    const char *p = n && strncmp(path, root, n) == 0 && path[n] == '/' ? path + n + 1 : path;
    size_t len = strlen(p);
    if (len >= cap) p += len - (cap - 1); /* the end of a long path says most */
    snprintf(out, cap, "%s", p);
}

enum qcal_status cli_report_metric(const struct qcal_job *job, const char *path, double *parent, double *metric,
                                   char *name, size_t cap)
{
    static const char *const names[] = {"top1", "top5", "voc_map", "coco_map", "coco_segm_map", "mean_iou",
                                        "pixel_accuracy"};
    struct qcal_h5 *f = NULL;
    enum qcal_status st = qcal_h5_open(path, &f);
    if (st != QCAL_OK) return st;
    const int want = job->accuracy_aware.metric;
    bool found = false;
    qcal_log_capture((char[1]){0}, 1);
    for (int m = 0; m < 7 && !found; m++) {
        if (want >= 0 && want != m) continue;
        char p[64], o[64];
        snprintf(p, sizeof p, "parent_%s", names[m]);
        snprintf(o, sizeof o, "optimized_%s", names[m]);
        found = qcal_h5_read_attr_f64(f, "/accuracy", p, parent) == QCAL_OK &&
                qcal_h5_read_attr_f64(f, "/accuracy", o, metric) == QCAL_OK;
        if (found) snprintf(name, cap, "%s", names[m]);
    }
    static const char *const agree[] = {"top1_agreement", "mean_iou_agreement", "map_vs_parent"};
    for (int m = 0; m < 3 && !found && (want < 0 || want == 7); m++) {
        found = qcal_h5_read_attr_f64(f, "/summary", agree[m], metric) == QCAL_OK;
        if (found) *parent = 1, snprintf(name, cap, "%s", agree[m]);
    }
    qcal_log_capture(NULL, 0);
    qcal_h5_close(f, false);
    return found ? QCAL_OK : QCAL_ERR(QCAL_INVALID_DATA, "%s: the report has no metric to keep within max_drop", path);
}

double cli_metric_drop(const struct qcal_job *job, double parent, double metric)
{
    const double d = parent - metric;
    return job->accuracy_aware.drop_type == QCAL_DROP_RELATIVE ? (parent != 0 ? d / parent : INFINITY) : d;
}
