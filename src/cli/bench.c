/* qcal bench JOB.yml|MODEL.onnx [--int8 MODEL.int8.onnx]: latency (one stream) and
 * throughput (several streams) of a model and of its INT8 model, as OpenVINO's
 * benchmark_app reports them. Under MPI the lowest rank of each node benchmarks that node
 * (ranks sharing a node would disturb each other) and rank 0 prints one row per node.
 * The input is decoded once before timing: a job's images (as qcal infer preprocesses them)
 * or a synthetic tensor. */
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "qcal/data.h"
#include "qcal/job.h"
#include "qcal/onnx.h"
#include "qcal/par.h"
#include "qcal/report.h"
#include "qcal/runtime.h"

static const char usage[] =
    "usage: qcal bench JOB.yml|MODEL.onnx [--int8 MODEL.int8.onnx] [options]\n"
    "       mpirun -np N --bind-to none qcal bench ...   one row per node (the lowest rank of\n"
    "                                                each node runs, on the cores it may use)\n"
    "\n"
    "Latency mode: one stream, runs one after the other, each timed. Throughput mode: S\n"
    "streams (one execution context per thread) running for the same time, images per\n"
    "second over all of them. Warm-up runs are not measured; runs farther than 3 standard\n"
    "deviations from the mean are reported as outliers and left out of mean and std.\n"
    "\n"
    "Input, made once before any timing: with a job, the first --images images of its\n"
    "validation dataset (of its calibration dataset when it has no validation one), decoded\n"
    "and preprocessed as the job says and grouped into batches (the last batch completed by\n"
    "repeating images); each run takes the next batch, round robin (in throughput mode the\n"
    "copy into the model input is part of the run, as in an application). A bad image stops\n"
    "the benchmark as in qcal infer, unless the dataset says skip_bad_images. Without a\n"
    "job, with a job that has no dataset, or with --synthetic: one fixed synthetic tensor of\n"
    "the model's input shape (the job's shape for a job). The table and the JSON say which.\n"
    "\n"
    "options (defaults from the job's benchmark section):\n"
    "  --int8 FILE              the INT8 (QDQ) model to compare with\n"
    "  --input-shape DIMS       input shape for a model file, e.g. 1x3x224x224\n"
    "  --batch N                images per run (default 1)\n"
    "  --images N               images of the job's dataset to decode (default 16)\n"
    "  --synthetic              synthetic input even with a job that has a dataset\n"
    "  --streams S              throughput streams (default: the number of cores)\n"
    "  --threads T              threads of the latency stream (default: OpenMP's)\n"
    "  --time SECONDS           measured time per mode and precision (default 10)\n"
    "  --iterations N           measured runs per mode instead of a time\n"
    "  --mode M                 latency | throughput | both (default both)\n"
    "  --per-layer              per-layer table of the latency runs\n"
    "  --kernels dnnl|blas|ref  force a kernel family\n"
    "  --json                   one JSON object on stdout instead of the table\n"
    "  -o FILE.h5               also write the figures as HDF5 (/performance, for qcal evaluate --bench)\n"
    "  -h, --help               this help\n";

enum { MODE_LATENCY = 1, MODE_THROUGHPUT = 2 };
enum { MAX_PREC = 2, HOST_BYTES = 64 };

struct bench_opts {
    const struct qcal_job *job; /* NULL for a model file */
    const char *model, *int8;
    struct qcal_input_shape shape; /* ndim 0: the model's own */
    char *shape_name;              /* owned (cli_parse_shape) */
    int batch, streams, threads, mode, kernels, images;
    double seconds;
    int64_t iterations;
    bool per_layer, json, synthetic;
};

/* The input of the timed runs, made once before any timing and shared by both precisions:
 * n batches used round robin, views into `bytes`. */
struct inputs {
    const struct qcal_job_dataset *data; /* the job's dataset the images come from; NULL: synthetic */
    const char *data_name;               /* "validation" | "calibration" */
    const char *why_synthetic;           /* with a job: why the input is synthetic */
    struct qcal_dataset list;
    int n, images, skipped;              /* batches, distinct images in them, images skipped */
    struct qcal_tensor *batch;           /* owned array of n views */
    void *bytes;                         /* owned */
};

/* What one precision measured on one node; sent to rank 0 as doubles. */
struct result {
    double ok;
    double median, mean, std, min, max, p90, p99, outliers, runs; /* latency, ms */
    double fps, tp_runs, tp_seconds;
};
#define RESULT_DOUBLES ((int)(sizeof(struct result) / sizeof(double)))

/* Loads and plans `path` with the first input bound to o's shape and batch. */
static enum qcal_status load(const struct bench_opts *o, const char *path, struct qcal_graph **g, struct qcal_plan **plan)
{
    enum qcal_status st = qcal_onnx_load(path, g);
    if (st != QCAL_OK) return st;
    if ((*g)->n_inputs < 1) return QCAL_ERR(QCAL_UNSUPPORTED, "%s: the model has no inputs", path);
    struct qcal_input_shape shape = o->shape;
    const struct qcal_value *in = &(*g)->values[(*g)->inputs[0]];
    if (shape.ndim == 0) { /* the model's declared shape, with the batch below */
        shape.ndim = in->t.ndim;
        memcpy(shape.dims, in->t.dims, sizeof(int64_t) * (size_t)shape.ndim);
    }
    if (shape.ndim > 0) shape.dims[0] = o->batch;
    for (int d = 0; d < shape.ndim; d++)
        if (shape.dims[d] <= 0)
            return QCAL_ERR(QCAL_INVALID_ARGUMENT, "%s: input '%s' has a dynamic dimension %d; give --input-shape", path,
                            in->name, d);
    const struct qcal_prepare_options po = {.n_shapes = 1, .shapes = &shape, .optimize = true};
    if ((st = qcal_model_prepare(*g, &po)) != QCAL_OK) return st;
    const struct qcal_plan_options plo = {.kernels = o->kernels};
    return qcal_plan_create(*g, &plo, plan);
}

/* n batches of the shape of t, as views into one block. */
static enum qcal_status inputs_alloc(struct inputs *in, const struct qcal_tensor *t, int n)
{
    const size_t size = qcal_tensor_bytes(t);
    in->batch = calloc((size_t)n, sizeof *in->batch);
    in->bytes = qcal_malloc(size * (size_t)n + 1);
    if (!in->batch || !in->bytes) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    in->n = n;
    for (int b = 0; b < n; b++) {
        in->batch[b] = *t;
        in->batch[b].data = (char *)in->bytes + size * (size_t)b;
    }
    return QCAL_OK;
}

/* Up to o->images images of the dataset, in its order, decoded and preprocessed as qcal
 * infer does into whole batches; the last batch is completed with the first images. */
static enum qcal_status inputs_decode(const struct bench_opts *o, const struct qcal_graph *g, struct inputs *in)
{
    struct cli_image_input im;
    enum qcal_status st = cli_image_batch_input(o->job, g, o->batch, &im);
    if (st != QCAL_OK) return st;
    const int64_t want = in->list.count < o->images ? in->list.count : o->images;
    if (want == 0) return QCAL_ERR(QCAL_INVALID_DATA, "%s: the %s dataset has no images", in->data->source, in->data_name);
    if ((st = inputs_alloc(in, &g->values[g->inputs[0]].t, (int)((want + o->batch - 1) / o->batch))) != QCAL_OK)
        return st;
    const size_t size = qcal_tensor_bytes(&im.t);
    char *const slot = in->bytes;
    int64_t got = 0;
    for (int64_t i = 0; i < in->list.count && got < want; i++) {
        struct qcal_tensor x = im.t;
        x.data = slot + size * (size_t)got;
        char err[1024];
        qcal_log_capture(err, sizeof err); /* a skipped image's error is a warning */
        st = cli_image_tensor(o->job, &im, in->list.paths[i], &x, NULL, NULL);
        cli_hold_errors();
        if (st == QCAL_OK) {
            got++;
        } else if (in->data->skip_bad_images && cli_image_unreadable(st)) {
            in->skipped++;
            QCAL_LOGW("skipped: %s", err);
        } else {
            return QCAL_ERR(st, "%s", err[0] ? err : qcal_status_str(st));
        }
    }
    if (got == 0)
        return QCAL_ERR(QCAL_INVALID_DATA, "%s: none of the %lld images of the %s dataset could be read",
                        in->data->source, (long long)in->list.count, in->data_name);
    in->images = (int)got;
    in->n = (int)((got + o->batch - 1) / o->batch);
    for (int64_t k = got; k < (int64_t)in->n * o->batch; k++)
        memcpy(slot + size * (size_t)k, slot + size * (size_t)(k % got), size);
    return QCAL_OK;
}

/* The images, or one synthetic batch, for a planned model g. */
static enum qcal_status inputs_make(const struct bench_opts *o, const struct qcal_graph *g, struct inputs *in)
{
    if (in->data) return inputs_decode(o, g, in);
    enum qcal_status st = inputs_alloc(in, &g->values[g->inputs[0]].t, 1);
    if (st == QCAL_OK) cli_fill_synthetic(&in->batch[0]);
    return st;
}

static void inputs_free(struct inputs *in)
{
    qcal_dataset_free(&in->list);
    free(in->batch);
    qcal_free(in->bytes);
}

static bool more(const struct bench_opts *o, int64_t runs, double elapsed)
{
    return o->iterations > 0 ? runs < o->iterations : elapsed < o->seconds;
}

/* Latency: one context, o->threads threads inside the ops. */
static enum qcal_status latency(const struct bench_opts *o, const struct qcal_plan *plan, const struct inputs *in,
                                struct result *r, double *step_seconds)
{
    struct qcal_exec *ex = NULL;
    enum qcal_status st = qcal_exec_create(plan, &ex);
    if (st == QCAL_OK) st = qcal_exec_set_input(ex, 0, &in->batch[0]);
    for (int i = 0; st == QCAL_OK && i < 3; i++) st = qcal_exec_run(ex); /* warm-up */
    int64_t n = 0, cap = 1024;
    double *t = st == QCAL_OK ? malloc(sizeof(double) * (size_t)cap) : NULL;
    if (st == QCAL_OK && !t) st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    const double start = qcal_now();
    while (st == QCAL_OK && more(o, n, qcal_now() - start)) {
        if (n == cap) {
            double *m = realloc(t, sizeof(double) * (size_t)(cap *= 2));
            if (!m) {
                st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
                break;
            }
            t = m;
        }
        if (in->n > 1 && (st = qcal_exec_set_input(ex, 0, &in->batch[n % in->n])) != QCAL_OK) break;
        const double t0 = qcal_now();
        st = qcal_exec_run_timed(ex, step_seconds);
        t[n++] = qcal_now() - t0;
    }
    if (st == QCAL_OK && n > 0) {
        struct qcal_latency l;
        qcal_latency_stats(t, n, &l);
        r->median = 1e3 * l.median, r->mean = 1e3 * l.mean, r->std = 1e3 * l.std, r->min = 1e3 * l.min;
        r->max = 1e3 * l.max, r->p90 = 1e3 * l.p90, r->p99 = 1e3 * l.p99;
        r->outliers = (double)l.outliers, r->runs = (double)l.runs;
    }
    free(t);
    qcal_exec_destroy(ex);
    return st;
}

/* Throughput: o->streams contexts, one per thread, each running whole batches until the
 * time (or the shared iteration count) is used up; stream s starts at batch s. */
static enum qcal_status throughput(const struct bench_opts *o, const struct qcal_plan *plan, const struct inputs *in,
                                   struct result *r)
{
    enum qcal_status st = QCAL_OK;
    int64_t total = 0, claimed = 0;
    double start = 0, end = 0;
#pragma omp parallel num_threads(o->streams) reduction(+ : total)
    {
        struct qcal_exec *ex = NULL;
        int next = omp_get_thread_num() % in->n;
        enum qcal_status s = qcal_exec_create(plan, &ex);
        if (s == QCAL_OK) s = qcal_exec_set_input(ex, 0, &in->batch[next]);
        if (s == QCAL_OK) s = qcal_exec_run(ex); /* warm-up */
#pragma omp barrier
#pragma omp single
        start = qcal_now();
        while (s == QCAL_OK) {
            if (o->iterations > 0) {
                int64_t k;
#pragma omp atomic capture
                k = claimed++;
                if (k >= o->iterations) break;
            } else if (qcal_now() - start >= o->seconds) {
                break;
            }
            if (in->n > 1) s = qcal_exec_set_input(ex, 0, &in->batch[next = (next + 1) % in->n]);
            if (s == QCAL_OK) s = qcal_exec_run(ex);
            if (s == QCAL_OK) total++;
        }
        const double done = qcal_now();
#pragma omp critical
        {
            if (done > end) end = done;
            if (s != QCAL_OK && st == QCAL_OK) st = s;
        }
        qcal_exec_destroy(ex);
    }
    r->tp_runs = (double)total;
    r->tp_seconds = end - start;
    r->fps = end > start ? (double)total * o->batch / (end - start) : 0;
    return st;
}

/* Benchmarks one model; the inputs are made from the first one. */
static enum qcal_status bench_one(const struct bench_opts *o, const char *path, struct inputs *in, struct result *r,
                                  FILE *per_layer)
{
    struct qcal_graph *g = NULL;
    struct qcal_plan *plan = NULL;
    double *steps = NULL;
    /* before the plan: oneDNN primitives split their work for the thread count at creation
     * and spawn that many threads when run, whatever the count is by then */
    omp_set_num_threads(o->threads);
    enum qcal_status st = load(o, path, &g, &plan);
    if (st == QCAL_OK && !in->n) st = inputs_make(o, g, in);
    if (st == QCAL_OK && per_layer && !(steps = calloc((size_t)qcal_plan_num_steps(plan) + 1, sizeof *steps)))
        st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    if (st == QCAL_OK && (o->mode & MODE_LATENCY)) {
        st = latency(o, plan, in, r, steps);
        if (st == QCAL_OK && per_layer) {
            fprintf(per_layer, "== per layer: %s (%d threads, mean of %.0f runs)\n", path, o->threads, r->runs);
            qcal_plan_describe_timed(plan, per_layer, steps, (int)r->runs);
        }
    }
    if (st == QCAL_OK && (o->mode & MODE_THROUGHPUT)) st = throughput(o, plan, in, r);
    r->ok = st == QCAL_OK;
    free(steps);
    qcal_plan_destroy(plan);
    qcal_graph_destroy(g);
    return st;
}

static void print_json(const struct bench_opts *o, const struct inputs *in, const char *const *paths, int n_prec,
                       const char *hosts, const int *leader, const double *all, int size)
{
    static const char *const names[MAX_PREC] = {"fp32", "int8"};
    printf("{\"model\": \"%s\", \"batch\": %d, \"threads\": %d, \"streams\": %d, ", o->model, o->batch, o->threads,
           o->streams);
    if (in->data)
        printf("\"input\": {\"source\": \"images\", \"images\": %d, \"skipped\": %d, \"dataset\": \"%s\", "
               "\"path\": \"%s\"}, ", in->images, in->skipped, in->data_name, in->data->source);
    else
        printf("\"input\": {\"source\": \"synthetic\", \"reason\": \"%s\"}, ", in->why_synthetic);
    printf("\"nodes\": [");
    bool first = true;
    for (int rk = 0; rk < size; rk++) {
        if (!leader[rk]) continue;
        printf("%s\n  {\"host\": \"%s\", \"rank\": %d, \"precisions\": [", first ? "" : ",", hosts + rk * HOST_BYTES, rk);
        first = false;
        for (int p = 0; p < n_prec; p++) {
            const struct result *r = (const struct result *)(all + ((size_t)rk * MAX_PREC + p) * RESULT_DOUBLES);
            printf("%s{\"precision\": \"%s\", \"path\": \"%s\"", p ? ", " : "", names[p], paths[p]);
            if (o->mode & MODE_LATENCY)
                printf(", \"latency_ms\": {\"median\": %.6f, \"mean\": %.6f, \"std\": %.6f, \"min\": %.6f, \"max\": %.6f, "
                       "\"p90\": %.6f, \"p99\": %.6f, \"outliers\": %.0f, \"runs\": %.0f}",
                       r->median, r->mean, r->std, r->min, r->max, r->p90, r->p99, r->outliers, r->runs);
            if (o->mode & MODE_THROUGHPUT)
                printf(", \"throughput_fps\": %.6f, \"throughput_runs\": %.0f, \"throughput_seconds\": %.9f", r->fps,
                       r->tp_runs, r->tp_seconds);
            printf("}");
        }
        printf("]");
        if (n_prec == 2) {
            const struct result *a = (const struct result *)(all + (size_t)rk * MAX_PREC * RESULT_DOUBLES), *b = a + 1;
            printf(", \"speedup\": {");
            if (o->mode & MODE_LATENCY) printf("\"latency\": %.6f", b->median > 0 ? a->median / b->median : 0);
            if (o->mode == (MODE_LATENCY | MODE_THROUGHPUT)) printf(", ");
            if (o->mode & MODE_THROUGHPUT) printf("\"throughput\": %.6f", a->fps > 0 ? b->fps / a->fps : 0);
            printf("}");
        }
        printf("}");
    }
    printf("\n]}\n");
}

static void print_table(const struct bench_opts *o, const struct inputs *in, const char *const *paths, int n_prec,
                        const char *hosts, const int *leader, const double *all, int size)
{
    static const char *const names[MAX_PREC] = {"fp32", "int8"};
    printf("qcal bench %s: batch %d, latency %d thread%s, throughput %d stream%s, ", o->model, o->batch, o->threads,
           o->threads == 1 ? "" : "s", o->streams, o->streams == 1 ? "" : "s");
    if (o->iterations > 0) printf("%lld runs per mode\n", (long long)o->iterations);
    else printf("%.1f s per mode\n", o->seconds);
    for (int p = 0; p < n_prec; p++) printf("  %s: %s\n", names[p], paths[p]);
    if (in->data) {
        printf("  input: %d images from %s (%s dataset", in->images, in->data->source, in->data_name);
        if (in->skipped) printf("; %d skipped: could not be read", in->skipped);
        printf(")\n");
    } else {
        printf("  input: synthetic (%s)\n", in->why_synthetic);
    }
    printf("%-16s %-5s %9s %9s %8s %9s %9s %9s %9s %5s %7s %11s\n", "node", "prec", "median", "mean", "std", "min",
           "max", "p90", "p99", "outl", "runs", "FPS");
    for (int rk = 0; rk < size; rk++) {
        if (!leader[rk]) continue;
        for (int p = 0; p < n_prec; p++) {
            const struct result *r = (const struct result *)(all + ((size_t)rk * MAX_PREC + p) * RESULT_DOUBLES);
            printf("%-16.16s %-5s", p ? "" : hosts + rk * HOST_BYTES, names[p]);
            if (o->mode & MODE_LATENCY)
                printf(" %9.3f %9.3f %8.3f %9.3f %9.3f %9.3f %9.3f %5.0f %7.0f", r->median, r->mean, r->std, r->min,
                       r->max, r->p90, r->p99, r->outliers, r->runs);
            else
                printf(" %9s %9s %8s %9s %9s %9s %9s %5s %7s", "-", "-", "-", "-", "-", "-", "-", "-", "-");
            if (o->mode & MODE_THROUGHPUT) printf(" %11.2f\n", r->fps);
            else printf(" %11s\n", "-");
        }
        if (n_prec == 2) {
            const struct result *a = (const struct result *)(all + (size_t)rk * MAX_PREC * RESULT_DOUBLES), *b = a + 1;
            printf("%-16s int8/fp32 speed-up:", "");
            if (o->mode & MODE_LATENCY) printf(" latency %.2fx", b->median > 0 ? a->median / b->median : 0);
            if (o->mode & MODE_THROUGHPUT) printf(" throughput %.2fx", a->fps > 0 ? b->fps / a->fps : 0);
            printf("\n");
        }
    }
    printf("latency in ms\n");
}

struct perf_row {
    char host[HOST_BYTES];
    int32_t rank;
    char precision[8];
    double latency_median_ms, latency_mean_ms, latency_std_ms, latency_min_ms, latency_max_ms, latency_p90_ms,
        latency_p99_ms, outliers, latency_runs;
    double throughput_fps, throughput_runs, throughput_seconds;
    double latency_speedup, throughput_speedup; /* int8 rows: over fp32 on the node; else NaN */
};

/* The figures as HDF5 (/performance: attributes and one row per node x precision), for the
 * evaluation report. */
static enum qcal_status write_h5(const char *path, const struct bench_opts *o, const struct inputs *in,
                                 const char *const *paths, int n_prec, const char *hosts, const int *leader,
                                 const double *all, int size)
{
    static const char *const names[MAX_PREC] = {"fp32", "int8"};
    struct perf_row *rows = calloc((size_t)size * MAX_PREC, sizeof *rows);
    if (!rows) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    int n = 0;
    for (int rk = 0; rk < size; rk++) {
        if (!leader[rk]) continue;
        const struct result *a = (const struct result *)(all + (size_t)rk * MAX_PREC * RESULT_DOUBLES);
        for (int p = 0; p < n_prec; p++) {
            const struct result *r = a + p;
            struct perf_row *w = &rows[n++];
            snprintf(w->host, sizeof w->host, "%s", hosts + rk * HOST_BYTES);
            snprintf(w->precision, sizeof w->precision, "%s", names[p]);
            w->rank = rk;
            const bool lat = o->mode & MODE_LATENCY, tp = o->mode & MODE_THROUGHPUT;
            w->latency_median_ms = lat ? r->median : NAN, w->latency_mean_ms = lat ? r->mean : NAN;
            w->latency_std_ms = lat ? r->std : NAN, w->latency_min_ms = lat ? r->min : NAN;
            w->latency_max_ms = lat ? r->max : NAN, w->latency_p90_ms = lat ? r->p90 : NAN;
            w->latency_p99_ms = lat ? r->p99 : NAN, w->outliers = lat ? r->outliers : NAN;
            w->latency_runs = lat ? r->runs : NAN;
            w->throughput_fps = tp ? r->fps : NAN, w->throughput_runs = tp ? r->tp_runs : NAN;
            w->throughput_seconds = tp ? r->tp_seconds : NAN;
            w->latency_speedup = p && lat && r->median > 0 ? a->median / r->median : NAN;
            w->throughput_speedup = p && tp && a->fps > 0 ? r->fps / a->fps : NAN;
        }
    }
#define PCOL(f) {#f, QCAL_F64, offsetof(struct perf_row, f), 0}
    const struct qcal_h5_column cols[] = {
        {"host", QCAL_H5_STRING, offsetof(struct perf_row, host), HOST_BYTES},
        {"rank", QCAL_I32, offsetof(struct perf_row, rank), 0},
        {"precision", QCAL_H5_STRING, offsetof(struct perf_row, precision), 8},
        PCOL(latency_median_ms), PCOL(latency_mean_ms), PCOL(latency_std_ms), PCOL(latency_min_ms),
        PCOL(latency_max_ms), PCOL(latency_p90_ms), PCOL(latency_p99_ms), PCOL(outliers), PCOL(latency_runs),
        PCOL(throughput_fps), PCOL(throughput_runs), PCOL(throughput_seconds), PCOL(latency_speedup),
        PCOL(throughput_speedup)};
#undef PCOL
    struct qcal_h5 *f = NULL;
    enum qcal_status st = qcal_h5_create(path, &f);
    if (st == QCAL_OK) st = qcal_h5_attr_string(f, "/performance", "fp32_model", paths[0]);
    if (st == QCAL_OK && n_prec == 2) st = qcal_h5_attr_string(f, "/performance", "int8_model", paths[1]);
    if (st == QCAL_OK) st = qcal_h5_attr_i64(f, "/performance", "batch", o->batch);
    if (st == QCAL_OK) st = qcal_h5_attr_i64(f, "/performance", "latency_threads", o->threads);
    if (st == QCAL_OK) st = qcal_h5_attr_i64(f, "/performance", "throughput_streams", o->streams);
    if (st == QCAL_OK) st = qcal_h5_attr_f64(f, "/performance", "seconds_per_mode", o->iterations > 0 ? NAN : o->seconds);
    if (st == QCAL_OK) st = qcal_h5_attr_string(f, "/performance", "input", in->data ? "images" : "synthetic");
    if (st == QCAL_OK)
        st = qcal_h5_write_table(f, "/performance/nodes", (int)(sizeof cols / sizeof *cols), cols, n, sizeof *rows, rows);
    free(rows);
    enum qcal_status cst = f ? qcal_h5_close(f, st == QCAL_OK) : QCAL_OK;
    return st != QCAL_OK ? st : cst;
}

int cli_bench(int argc, char **argv)
{
    enum { O_INT8 = 1000, O_SHAPE, O_BATCH, O_STREAMS, O_THREADS, O_TIME, O_ITER, O_MODE, O_PER_LAYER, O_KERNELS, O_JSON,
           O_IMAGES, O_SYNTHETIC, O_OUT };
    static const struct option opts[] = {
        {"int8", required_argument, 0, O_INT8},       {"input-shape", required_argument, 0, O_SHAPE},
        {"batch", required_argument, 0, O_BATCH},     {"streams", required_argument, 0, O_STREAMS},
        {"threads", required_argument, 0, O_THREADS}, {"time", required_argument, 0, O_TIME},
        {"iterations", required_argument, 0, O_ITER}, {"mode", required_argument, 0, O_MODE},
        {"per-layer", no_argument, 0, O_PER_LAYER},   {"kernels", required_argument, 0, O_KERNELS},
        {"json", no_argument, 0, O_JSON},             {"help", no_argument, 0, 'h'},
        {"images", required_argument, 0, O_IMAGES},   {"synthetic", no_argument, 0, O_SYNTHETIC},
        {"output", required_argument, 0, 'o'},        {0, 0, 0, 0}};
    struct bench_opts o = {.batch = 0, .streams = 0, .threads = 0, .mode = MODE_LATENCY | MODE_THROUGHPUT,
                           .kernels = QCAL_KERNELS_AUTO, .images = 16, .seconds = -1, .iterations = -1};
    struct inputs in = {.why_synthetic = "no job file"};
    struct qcal_job *job = NULL;
    enum qcal_status st = QCAL_OK;
    double *mine = NULL, *all = NULL;
    char *hosts = NULL;
    int *leader = NULL;
    optind = 1;
    opterr = 0;
    cli_hold_errors();
    int ch;
    const char *h5_out = NULL;
    while (st == QCAL_OK && (ch = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (ch) {
        case 'o': h5_out = optarg; break;
        case O_INT8: o.int8 = optarg; break;
        case O_SHAPE:
            free(o.shape_name);
            o.shape_name = NULL;
            st = cli_parse_shape(optarg, &o.shape, &o.shape_name);
            break;
        case O_BATCH: o.batch = atoi(optarg) > 0 ? atoi(optarg) : -1; break;
        case O_IMAGES: o.images = atoi(optarg) > 0 ? atoi(optarg) : -1; break;
        case O_SYNTHETIC: o.synthetic = true; break;
        case O_STREAMS: o.streams = atoi(optarg) > 0 ? atoi(optarg) : -1; break;
        case O_THREADS: o.threads = atoi(optarg) > 0 ? atoi(optarg) : -1; break;
        case O_TIME: o.seconds = atof(optarg) > 0 ? atof(optarg) : 0; break;
        case O_ITER: o.iterations = atoll(optarg) > 0 ? atoll(optarg) : 0; break;
        case O_MODE:
            o.mode = strcmp(optarg, "latency") == 0      ? MODE_LATENCY
                     : strcmp(optarg, "throughput") == 0 ? MODE_THROUGHPUT
                     : strcmp(optarg, "both") == 0       ? MODE_LATENCY | MODE_THROUGHPUT
                                                         : 0;
            if (!o.mode) st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "--mode '%s': expected latency, throughput or both", optarg);
            break;
        case O_PER_LAYER: o.per_layer = true; break;
        case O_KERNELS:
            if ((o.kernels = cli_parse_kernels(optarg)) < 0)
                st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "--kernels '%s': expected dnnl, blas or ref", optarg);
            break;
        case O_JSON: o.json = true; break;
        case 'h':
            if (qcal_par_rank() == 0) fputs(usage, stdout);
            goto done;
        default:
            st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "bench: unknown option or missing value in '%s' (see qcal bench --help)",
                          argv[optind - 1]);
        }
    }
    if (st == QCAL_OK && optind != argc - 1)
        st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "bench: expected one JOB.yml or MODEL.onnx (see qcal bench --help)");
    if (st == QCAL_OK &&
        (o.batch < 0 || o.images < 0 || o.streams < 0 || o.threads < 0 || o.seconds == 0 || o.iterations == 0))
        st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "bench: --batch, --images, --streams, --threads, --time and --iterations "
                      "must be positive");
    if (st == QCAL_OK && cli_is_job_file(argv[optind])) {
        if ((st = qcal_job_load(argv[optind], &job)) == QCAL_OK) {
            o.job = job;
            o.model = job->model;
            if (o.shape.ndim == 0 && job->n_inputs > 0 && job->inputs[0].ndim > 0) {
                o.shape.ndim = job->inputs[0].ndim;
                memcpy(o.shape.dims, job->inputs[0].shape, sizeof(int64_t) * (size_t)o.shape.ndim);
            }
            if (!o.batch) o.batch = job->benchmark.batch;
            if (!o.streams) o.streams = job->benchmark.streams;
            if (!o.threads) o.threads = job->benchmark.threads;
            if (o.seconds < 0 && o.iterations < 0) {
                if (job->benchmark.iterations > 0) o.iterations = job->benchmark.iterations;
                else o.seconds = job->benchmark.time;
            }
            /* what qcal infer runs on, else what calibration sees */
            in.data = job->validation_data.present ? &job->validation_data
                      : job->calibration_data.present ? &job->calibration_data : NULL;
            in.data_name = in.data == &job->validation_data ? "validation" : "calibration";
            in.why_synthetic = o.synthetic ? "--synthetic" : "the job has no dataset";
            if (o.synthetic) in.data = NULL;
            if (in.data) st = cli_load_dataset(job, in.data, &in.list);
        }
    } else if (st == QCAL_OK) {
        o.model = argv[optind];
    }
    if (!o.batch) o.batch = 1;
    if (!o.streams) o.streams = omp_get_num_procs();
    if (!o.threads) o.threads = omp_get_max_threads();
    if (o.seconds < 0 && o.iterations < 0) o.seconds = 10;
    if (o.iterations > 0) o.seconds = 0;

    /* one benchmarking rank per node: the lowest rank with that host name */
    const int size = qcal_par_size(), rank = qcal_par_rank();
    char host[HOST_BYTES] = {0};
    gethostname(host, sizeof host - 1);
    hosts = calloc((size_t)size, HOST_BYTES);
    leader = calloc((size_t)size, sizeof *leader);
    mine = calloc((size_t)MAX_PREC * RESULT_DOUBLES, sizeof *mine);
    all = calloc((size_t)size * MAX_PREC * RESULT_DOUBLES, sizeof *all);
    if (!hosts || !leader || !mine || !all) st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    if ((st = cli_agree(st)) != QCAL_OK) goto done;
    if ((st = qcal_par_allgather_bytes(host, HOST_BYTES, hosts)) != QCAL_OK) goto done;
    for (int r = 0; r < size; r++) {
        leader[r] = 1;
        for (int q = 0; q < r; q++)
            if (strncmp(hosts + q * HOST_BYTES, hosts + r * HOST_BYTES, HOST_BYTES) == 0) leader[r] = 0;
    }
    const char *paths[MAX_PREC] = {o.model, o.int8};
    const int n_prec = o.int8 ? 2 : 1;
    for (int p = 0; leader[rank] && st == QCAL_OK && p < n_prec; p++)
        st = bench_one(&o, paths[p], &in, (struct result *)(mine + (size_t)p * RESULT_DOUBLES),
                       o.per_layer && !o.json && rank == 0 ? stdout : NULL);
    if ((st = cli_agree(st)) != QCAL_OK) goto done;
    {
        int *counts = malloc(sizeof(int) * (size_t)size);
        if (!counts) {
            st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
            goto done;
        }
        for (int r = 0; r < size; r++) counts[r] = MAX_PREC * RESULT_DOUBLES;
        st = qcal_par_allgather_f64(mine, counts, all);
        free(counts);
    }
    if (st == QCAL_OK && rank == 0) {
        if (o.json) print_json(&o, &in, paths, n_prec, hosts, leader, all, size);
        else print_table(&o, &in, paths, n_prec, hosts, leader, all, size);
        if (h5_out) st = write_h5(h5_out, &o, &in, paths, n_prec, hosts, leader, all, size);
    }
    st = cli_agree(st);
done:
    qcal_log_capture(NULL, 0);
    free(hosts), free(leader), free(mine), free(all);
    free(o.shape_name);
    inputs_free(&in);
    qcal_job_destroy(job);
    return qcal_status_exit_code(st);
}
