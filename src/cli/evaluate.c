/* qcal evaluate JOB.yml --optimized MODEL.int8.onnx -o REPORT.h5: where the optimized model's
 * predictions differ from its parent's. MPI ranks take contiguous blocks of the validation
 * images; OpenMP threads share a rank's images, each thread running the parent (FP32) and
 * the optimized plan on the same input; every image gives one fixed-size record (the
 * adapter's comparison, per-class counts, the distance of every output), gathered to rank
 * 0 in dataset order, which writes the report. A record depends only on its image, so the
 * report's results are the same bytes for any number of ranks and threads. */
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
    "  --quiet            no summary table\n"
    "  -h, --help         this help\n";

enum { NAME_LEN = 192, MAX_OUT = 16 };

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
};

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
    size_t dist_at;      /* where the output distances start in a record */
    size_t record;       /* bytes per image */
};

/* A record: the image_row, the segmentation counts (intersections then unions, per class),
 * the output distances at s->dist_at. */
static int64_t *seg_counts(char *rec) { return (int64_t *)(rec + sizeof(struct image_row)); }
static struct qcal_tensor_distance *distances(const struct setup *s, char *rec)
{
    return (struct qcal_tensor_distance *)(rec + s->dist_at);
}

static void image_name(const char *path, const char *root, char *out)
{
    size_t n = root ? strlen(root) : 0;
    const char *p = n && strncmp(path, root, n) == 0 && path[n] == '/' ? path + n + 1 : path;
    size_t len = strlen(p);
    if (len >= NAME_LEN) p += len - (NAME_LEN - 1); /* the end of a long path says most */
    snprintf(out, NAME_LEN, "%s", p);
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

/* One image's record from the two executions. */
static enum qcal_status compare_image(const struct setup *s, struct qcal_exec *const ex[2], int64_t k, char *rec,
                                      int32_t *maps)
{
    struct image_row *r = (struct image_row *)rec;
    memset(rec, 0, s->record);
    r->index = s->ds->index ? s->ds->index[k] : k;
    image_name(s->ds->paths[k], s->job->validation_data.source, r->name);
    r->label = s->ds->labels ? (int32_t)s->ds->labels[k] : -1;
    r->mean_iou = NAN;
    const struct qcal_tensor *a = qcal_exec_output(ex[0], s->out), *b = qcal_exec_output(ex[1], s->out);
    enum qcal_status st = QCAL_OK;
    if (s->kind == QCAL_ADAPTER_CLASSIFICATION) {
        struct qcal_cls_compare c;
        if ((st = qcal_compare_classification(a->data, b->data, s->classes, &c)) != QCAL_OK) return st;
        r->parent_class = c.parent_class, r->optimized_class = c.optimized_class;
        r->parent_class_rank = c.parent_class_rank;
        r->parent_conf = c.parent_conf, r->optimized_conf = c.optimized_conf;
        r->optimized_conf_parent = c.optimized_conf_parent;
        const bool labelled = r->label >= 0 && r->label < s->classes;
        r->parent_top5 = labelled && qcal_class_rank(a->data, s->classes, r->label) <= 5;
        r->optimized_top5 = labelled && qcal_class_rank(b->data, s->classes, r->label) <= 5;
    } else if (s->kind == QCAL_ADAPTER_SEGMENTATION) {
        class_map(a, s->plane, maps);
        class_map(b, s->plane, maps + s->plane);
        int64_t *cnt = seg_counts(rec);
        r->mean_iou = qcal_map_iou(maps + s->plane, maps, s->plane, s->classes, cnt, cnt + s->classes);
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
            enum qcal_status st = cli_image_tensor(s->job, s->in, s->ds->paths[begin + k], &x, NULL, NULL);
            for (int m = 0; m < 2 && st == QCAL_OK; m++) {
                st = qcal_exec_set_input(ex[m], 0, &x);
                if (st == QCAL_OK) st = qcal_exec_run(ex[m]);
            }
            if (st == QCAL_OK) st = compare_image(s, ex, begin + k, recs + (size_t)k * s->record, maps);
            qcal_log_capture(NULL, 0);
            status[k] = st;
            if (st != QCAL_OK) {
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
    } else {
        s->kind = QCAL_ADAPTER_TENSOR; /* detection compares the raw outputs for now */
    }
    s->dist_at = sizeof(struct image_row) +
                 (s->kind == QCAL_ADAPTER_SEGMENTATION ? 2 * sizeof(int64_t) * (size_t)s->classes : 0);
    s->record = s->dist_at + sizeof(struct qcal_tensor_distance) * (size_t)s->n_out;
    s->record = (s->record + 7) / 8 * 8;
    return QCAL_OK;
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
};

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
    return m;
}

static double ratio(int64_t a, int64_t b) { return b ? (double)a / (double)b : NAN; }

/* Rank 0: the report from every image's record (all, in dataset order). */
static enum qcal_status write_report(const char *path, const struct setup *s, const struct qcal_graph *g0,
                                     const char *opt_path, const char *all, int64_t n, const struct summary *m,
                                     int argc, char **argv, time_t start)
{
    struct qcal_h5 *f = NULL;
    enum qcal_status st = qcal_h5_create(path, &f);
    if (st != QCAL_OK) return st;
    const char *kind = s->kind == QCAL_ADAPTER_CLASSIFICATION ? "classification"
                       : s->kind == QCAL_ADAPTER_SEGMENTATION   ? "segmentation"
                                                                 : "tensor";
    char cmd[4096] = "qcal ", when[32];
    for (int i = 0; i < argc; i++) {
        strncat(cmd, argv[i], sizeof cmd - strlen(cmd) - 2);
        if (i + 1 < argc) strncat(cmd, " ", sizeof cmd - strlen(cmd) - 1);
    }
    st = qcal_h5_attr_string(f, "/provenance", "qcal_version", QCAL_VERSION);
    if (st == QCAL_OK) st = qcal_h5_attr_string(f, "/provenance", "job_file", s->job->path);
    if (st == QCAL_OK) st = qcal_h5_attr_string(f, "/provenance", "job_text", s->job->text ? s->job->text : "");
    if (st == QCAL_OK) st = qcal_h5_attr_string(f, "/provenance", "parent_model", s->job->model);
    if (st == QCAL_OK) st = qcal_h5_attr_string(f, "/provenance", "optimized_model", opt_path);
    if (st == QCAL_OK) st = qcal_h5_attr_string(f, "/provenance", "adapter", kind);
    /* what differs from run to run, apart from the results */
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    if (st == QCAL_OK) st = qcal_h5_attr_string(f, "/provenance/run", "command_line", cmd);
    if (st == QCAL_OK) st = qcal_h5_attr_i64(f, "/provenance/run", "ranks", qcal_par_size());
    if (st == QCAL_OK) st = qcal_h5_attr_i64(f, "/provenance/run", "threads_per_rank", omp_get_max_threads());
    if (st == QCAL_OK) st = qcal_h5_attr_string(f, "/provenance/run", "host_rank0", host);
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
#define COL(T, f, dt) {#f, dt, offsetof(T, f), 0}
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
    const struct qcal_h5_column dist_cols[] = {
        COL(struct distance_row, image, QCAL_I64), COL(struct distance_row, output, QCAL_I32),
        COL(struct distance_row, mse, QCAL_F64),   COL(struct distance_row, max_abs, QCAL_F64),
        COL(struct distance_row, cosine, QCAL_F64), COL(struct distance_row, snr_db, QCAL_F64)};
    const struct qcal_h5_column class_cols[] = {
        COL(struct class_row, image, QCAL_I64), {"class", QCAL_I32, offsetof(struct class_row, cls), 0},
        COL(struct class_row, intersection, QCAL_I64), {"union", QCAL_I64, offsetof(struct class_row, union_), 0},
        COL(struct class_row, iou, QCAL_F64)};
#undef COL
    const bool is_cls = s->kind == QCAL_ADAPTER_CLASSIFICATION, is_seg = s->kind == QCAL_ADAPTER_SEGMENTATION;
    const struct qcal_h5_column *ic = is_cls ? cls_cols : is_seg ? seg_cols : base;
    const int n_ic = is_cls ? (int)(sizeof cls_cols / sizeof *cls_cols)
                     : is_seg ? (int)(sizeof seg_cols / sizeof *seg_cols)
                              : (int)(sizeof base / sizeof *base);
    if (st == QCAL_OK) st = qcal_h5_write_table(f, "/comparison/images", n_ic, ic, n, sizeof *rows, rows);
    if (st == QCAL_OK && is_seg)
        st = qcal_h5_write_table(f, "/comparison/image_class", 5, class_cols, nc, sizeof *cls, cls);
    if (st == QCAL_OK)
        st = qcal_h5_write_table(f, "/comparison/tensors", 6, dist_cols, n * s->n_out, sizeof *dist, dist);
    const char *names[MAX_OUT];
    for (int o = 0; o < s->n_out; o++) names[o] = g0->values[g0->outputs[o]].name;
    if (st == QCAL_OK) st = qcal_h5_write_strings(f, "/comparison/output_names", s->n_out, names);
    if (st == QCAL_OK) st = qcal_h5_attr_i64(f, "/summary", "images", n);
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
    free(rows);
    free(dist);
    free(cls);
    enum qcal_status cst = qcal_h5_close(f, st == QCAL_OK);
    return st != QCAL_OK ? st : cst;
}

#define AGREE(expr)                                                                                                \
    do {                                                                                                           \
        if ((st = cli_agree(expr)) != QCAL_OK) goto cleanup;                                                       \
    } while (0)

int cli_evaluate(int argc, char **argv)
{
    enum { O_OPT = 1000, O_SUBSET, O_THREADS, O_KERNELS, O_QUIET };
    static const struct option opts[] = {
        {"optimized", required_argument, 0, O_OPT}, {"output", required_argument, 0, 'o'},
        {"subset", required_argument, 0, O_SUBSET}, {"threads", required_argument, 0, O_THREADS},
        {"kernels", required_argument, 0, O_KERNELS}, {"quiet", no_argument, 0, O_QUIET},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    const time_t start = time(NULL);
    enum qcal_status st = QCAL_OK;
    const char *out = NULL, *opt_path = NULL;
    int64_t subset = -1;
    int kernels = QCAL_KERNELS_AUTO;
    bool quiet = false;
    struct qcal_job *job = NULL;
    struct qcal_graph *g[2] = {NULL, NULL};
    struct qcal_plan *plan[2] = {NULL, NULL};
    struct qcal_dataset ds = {0};
    char *mine = NULL, *all = NULL;
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
        case 'h': fputs(usage, stdout); goto cleanup;
        default:
            AGREE(QCAL_ERR(QCAL_INVALID_ARGUMENT, "evaluate: unknown option or missing value in '%s' (see qcal "
                           "evaluate --help)", argv[optind - 1]));
        }
    }
    if (optind != argc - 1 || !out || !opt_path)
        AGREE(QCAL_ERR(QCAL_INVALID_ARGUMENT, "evaluate: expected JOB.yml, --optimized MODEL and -o REPORT.h5 (see "
                       "qcal evaluate --help)"));
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
    if (rank == 0) { /* close the gaps of short blocks */
        int64_t at = 0;
        for (int r = 0; r < size; r++) {
            int64_t b, e;
            qcal_shard(ds.count, r, size, &b, &e);
            memmove(all + (size_t)at * s.record, all + (size_t)(r * block) * s.record, (size_t)(e - b) * s.record);
            at += e - b;
        }
    }
    const struct summary m = summarize(&s, all, ds.count);
    if (rank == 0) st = write_report(out, &s, g[0], opt_path, all, ds.count, &m, argc, argv, start);
    AGREE(st);
    if (rank == 0 && !quiet) {
        printf("evaluated %lld images (%d ranks x %d threads): %s vs %s\n", (long long)ds.count, size,
               omp_get_max_threads(), job->model, opt_path);
        if (s.kind == QCAL_ADAPTER_CLASSIFICATION) {
            printf("  top-1 agreement with the parent: %.4f (%lld of %lld)\n", ratio(m.agree, m.images),
                   (long long)m.agree, (long long)m.images);
            if (m.labelled)
                printf("  top-1 accuracy: parent %.4f, optimized %.4f (drop %.4f) on %lld labelled images\n",
                       ratio(m.p_top1, m.labelled), ratio(m.o_top1, m.labelled),
                       ratio(m.p_top1, m.labelled) - ratio(m.o_top1, m.labelled), (long long)m.labelled);
        }
        if (s.kind == QCAL_ADAPTER_SEGMENTATION) printf("  mean IoU of the class maps: %.4f\n", m.mean_iou);
        printf("wrote %s\n", out);
    }
cleanup:
    free(mine);
    free(all);
    for (int k = 0; k < 2; k++) {
        qcal_plan_destroy(plan[k]);
        qcal_graph_destroy(g[k]);
    }
    qcal_dataset_free(&ds);
    qcal_job_destroy(job);
    return qcal_status_exit_code(st);
}
