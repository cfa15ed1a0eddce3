/* Pieces shared by the qcal subcommands. */
#ifndef QCAL_CLI_H
#define QCAL_CLI_H

#include <stdio.h>

#include "qcal/tensor.h"

/* Prints an output: top-k classes for 2-D float outputs, shape/min/max/mean otherwise. */
void cli_summarize(const char *name, const struct qcal_tensor *t, int top);
/* A JSON string: quotes, backslashes and control bytes escaped (NULL: ""). */
void cli_json_string(FILE *f, const char *s);
/* Indices of the k largest of row[0..n) in descending order (ties: the lower index),
 * k <= n and k <= 64; returns k. */
int cli_top_k(const float *row, int64_t n, int k, int64_t *out);
struct qcal_input_shape;
/* `[NAME:]DIMS` as in `--input-shape data:1x3x224x224`; *name_store receives the name
 * (strndup, the caller frees it) that s->name points at. */
enum qcal_status cli_parse_shape(const char *arg, struct qcal_input_shape *s, char **name_store);
/* Whether a command-line path is a job file (.yml / .yaml) rather than a model. */
bool cli_is_job_file(const char *path);
/* dnnl | blas | ref | auto -> enum qcal_kernels, -1 for anything else. */
int cli_parse_kernels(const char *s);
/* Replaces characters unfit for file names with '_'. */
void cli_sanitize(char *s);
struct qcal_job;
struct qcal_job_dataset;
struct qcal_dataset;
/* Loads one of the job's datasets with its annotations and subset. */
enum qcal_status cli_load_dataset(const struct qcal_job *job, const struct qcal_job_dataset *d, struct qcal_dataset *ds);
struct qcal_graph;
/* The job's model loaded and prepared with the job's input shapes: BatchNorm folded, and
 * activations fused when `fuse` (plain inference; calibration needs every tensor). */
enum qcal_status cli_job_model(const struct qcal_job *job, bool fuse, struct qcal_graph **g_out);
/* The same for another model file fed the job's images (an optimized model). */
enum qcal_status cli_job_model_at(const struct qcal_job *job, const char *path, bool fuse, struct qcal_graph **g_out);
/* The model's image input: its tensor (no data), channels, and how small a JPEG may decode. */
struct cli_image_input {
    struct qcal_tensor t;
    int channels, min_w, min_h;
};
enum qcal_status cli_image_input(const struct qcal_job *job, const struct qcal_graph *g, struct cli_image_input *in);
/* As cli_image_input for a model planned for batches of `batch` images: in->t is still one
 * image, [1, C, H, W]; image k of a batch starts k * qcal_tensor_bytes(&in->t) bytes in. */
enum qcal_status cli_image_batch_input(const struct qcal_job *job, const struct qcal_graph *g, int64_t batch,
                                       struct cli_image_input *in);
struct cli_image_geometry {
    int width, height; /* decoded */
    float scale;       /* decoded / file */
};
/* Decodes and preprocesses one image into x (x->data allocated by the caller); adds the
 * decoding time to *decode_seconds when not NULL. */
enum qcal_status cli_image_tensor(const struct qcal_job *job, const struct cli_image_input *in, const char *path,
                                  struct qcal_tensor *x, struct cli_image_geometry *geo, double *decode_seconds);
/* Whether cli_image_tensor's failure is the image's (unreadable: what skip_bad_images skips),
 * not the model's or the machine's. */
static inline bool cli_image_unreadable(enum qcal_status st)
{
    return st == QCAL_INVALID_DATA || st == QCAL_IO_ERROR;
}
/* The outcome of one image of a pass run over OpenMP threads: a status, or one of these. */
#define CLI_NOT_RUN QCAL_STATUS_COUNT       /* another image failed first */
#define CLI_SKIPPED (QCAL_STATUS_COUNT + 1) /* a bad image the dataset skips (errors[k] says why) */
/* The first failure of images [0, n) in image order (one deterministic line, whatever the
 * threads did first); warns about skipped images; *ok_out (if not NULL) the images that ran.
 * Frees status, errors and each message. */
enum qcal_status cli_image_outcome(int64_t n, enum qcal_status *status, char **errors, int64_t *ok_out);
/* The zeroed status and message arrays for such a pass (with a message when out of memory). */
enum qcal_status cli_image_outcome_new(int64_t n, enum qcal_status **status, char ***errors);
/* MPI commands: errors are held back (cli_hold_errors) until the next agreement point
 * (cli_agree), where only the lowest failing rank prints its message; returns the agreed
 * status. Collective. */
void cli_hold_errors(void);
enum qcal_status cli_agree(enum qcal_status st);
/* In a subcommand with an `enum qcal_status st` and a `cleanup:` label: agree on expr's
 * status and leave on a failure. */
#define AGREE(expr)                                                                                                \
    do {                                                                                                           \
        if ((st = cli_agree(expr)) != QCAL_OK) goto cleanup;                                                       \
    } while (0)
/* A point of the model input in the image file's pixels (undoes the preprocessing and a
 * JPEG's scaled decoding). */
void cli_point_to_file(const struct qcal_job *job, const struct cli_image_geometry *geo, float *x, float *y);
/* The inverse, per axis: model input x = (file x - ox) / sx (the preprocessing is an affine
 * map per axis: resizes, crops and pads). */
struct cli_axes {
    double ox, oy, sx, sy;
};
struct cli_axes cli_file_to_model(const struct qcal_job *job, const struct cli_image_geometry *geo);
/* The name an image has in reports: its path relative to the dataset folder root (the last
 * cap - 1 bytes of a longer one). */
void cli_image_name(const char *path, const char *root, char *out, size_t cap);
/* A labels file: one class name per line (path NULL: none, n = 0). */
struct cli_labels {
    int n;
    char **name;
};
enum qcal_status cli_labels_load(const char *path, struct cli_labels *l);
void cli_labels_free(struct cli_labels *l);
struct qcal_exec;
struct qcal_detections;
/* The index of the output called name (NULL: 0), -1 when there is none. */
int cli_output_index(const struct qcal_exec *ex, const char *name);
/* Which of n outputs the job's detection adapter reads (-1: none): SSD one DetectionOutput
 * (a), or boxes [1, A, 4] (a) and scores [1, A, C] (b); YOLO predictions (a: the adapter's
 * output, or the first 3-D one) and, for masks, prototypes (b: the first 4-D one). */
void cli_detect_outputs(const struct qcal_job *job, int n, const struct qcal_tensor *const *t, const char *const *names,
                        int *a, int *b);
/* The job's detection adapter (ssd, yolo, instance_segmentation) on an execution's outputs:
 * at most max_det detections in model input pixels (in_w x in_h), best first, and for
 * instance segmentation their masks (d->n x in_h x in_w bytes, malloc'd; else NULL). */
enum qcal_status cli_detect(const struct qcal_job *job, const struct qcal_exec *ex, int in_w, int in_h, int max_det,
                            struct qcal_detections *d, uint8_t **masks);
/* The metric the job's accuracy budget is about, from an evaluation report: the job's
 * accuracy_aware.metric, else the first annotated one (top1, top5, voc_map, coco_map,
 * coco_segm_map, mean_iou, pixel_accuracy), else the agreement with the parent (whose value
 * is then 1); name receives which. */
enum qcal_status cli_report_metric(const struct qcal_job *job, const char *report, double *parent, double *optimized,
                                   char *name, size_t cap);
/* parent - optimized, or relative to parent (accuracy_aware.drop_type). */
double cli_metric_drop(const struct qcal_job *job, double parent, double optimized);
/* `qcal calibrate JOB.yml -o OUTDIR`. */
int cli_calibrate(int argc, char **argv);
/* qcal sweep: keep calibrate --shared-bias's last recording in memory between calls (true),
 * or drop it (false). */
void cli_calibrate_keep_recorded(bool keep);
/* `qcal report REPORT.h5`: an evaluation report in the terminal, as CSV or JSON. */
int cli_report(int argc, char **argv);
/* `qcal run JOB.yml -o OUTDIR`: calibrate, evaluate, bench. */
/* `qcal visualize REPORT.h5 --image NAME -o OUT.png`. */
int cli_visualize(int argc, char **argv);
/* `qcal sweep JOB.yml -o DIR`, `qcal sweep --summarize DIR`. */
int cli_sweep(int argc, char **argv);
/* `qcal accuracy-aware JOB.yml -o OUTDIR`. */
int cli_accuracy_aware(int argc, char **argv);
int cli_run(int argc, char **argv);
/* `qcal evaluate JOB.yml --optimized MODEL.int8.onnx -o REPORT.h5`. */
int cli_evaluate(int argc, char **argv);
/* `qcal bench JOB.yml|MODEL.onnx [--int8 MODEL.int8.onnx]`. */
int cli_bench(int argc, char **argv);
/* Fills t with a fixed pseudo-random pattern in [-1, 1) (float; zeros for other types). */
void cli_fill_synthetic(struct qcal_tensor *t);
/* `qcal dataset JOB.yml`. */
int cli_dataset(int argc, char **argv);
/* `qcal infer JOB.yml [IMAGE...]`. */
int cli_infer_job(int argc, char **argv);

#endif
