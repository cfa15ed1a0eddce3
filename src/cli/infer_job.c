/* qcal infer JOB.yml [IMAGE...]: decode, preprocess, run and print through the adapter.
 * Images are spread over OpenMP threads, one execution context each; results are printed
 * in image order. */
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qcal/eval.h"
#include "qcal/job.h"
#include "qcal/onnx.h"
#include "qcal/runtime.h"

static const char usage[] =
    "usage: qcal infer JOB.yml [options] [IMAGE...]\n"
    "\n"
    "Decodes and preprocesses the images as the job says (without IMAGE arguments: the job's\n"
    "validation dataset), runs the model and prints each image's predictions through the job's\n"
    "adapter: top-k labels for classification, class pixel counts for segmentation, output\n"
    "statistics otherwise.\n"
    "\n"
    "options:\n"
    "  --kernels dnnl|blas|ref  force a kernel family\n"
    "  --threads N              OpenMP threads (images are spread over them)\n"
    "  --top K                  predictions shown per image (default: the adapter's top_k)\n"
    "  --output-dir DIR         write each image's preprocessed input and outputs as .npy\n"
    "  --timing                 print the mean time per image of decoding + preprocessing and\n"
    "                           of inference (summed over threads)\n"
    "  --skip-bad-images        skip and count images that cannot be read instead of failing\n"
    "                           (the dataset's skip_bad_images does the same)\n"
    "  -h, --help               this help\n";

/* Appends to a growing string (results are formatted per image, printed in order later). */
static void emit(char **buf, size_t *len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void emit(char **buf, size_t *len, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof tmp) n = sizeof tmp - 1;
    char *nb = realloc(*buf, *len + (size_t)n + 1);
    if (!nb) return;
    memcpy(nb + *len, tmp, (size_t)n + 1);
    *buf = nb;
    *len += (size_t)n;
}

static void classification(const struct qcal_job *job, const struct cli_labels *lb, const struct qcal_tensor *t,
                           int top, char **buf, size_t *len)
{
    int64_t c = qcal_tensor_numel(t) / (t->ndim ? t->dims[0] : 1);
    const float *d = t->data;
    /* probabilities as given, or softmax of logits */
    double sum = 0, mx = -INFINITY;
    bool probs = true;
    for (int64_t i = 0; i < c; i++) {
        sum += d[i];
        probs = probs && d[i] >= 0.0f && d[i] <= 1.0f;
        mx = d[i] > mx ? d[i] : mx;
    }
    probs = probs && fabs(sum - 1.0) < 1e-3;
    double z = 0;
    if (!probs)
        for (int64_t i = 0; i < c; i++) z += exp(d[i] - mx);
    int64_t chosen[64];
    int k = cli_top_k(d, c, top, chosen);
    for (int j = 0; j < k; j++) {
        int64_t b = chosen[j];
        double p = probs ? d[b] : exp(d[b] - mx) / z;
        int64_t li = b - (job->adapter.background_class >= 0 && lb->n == c - 1 ? 1 : 0);
        emit(buf, len, "  %lld %s%s(%.4f)\n", (long long)b, li >= 0 && li < lb->n ? lb->name[li] : "",
             li >= 0 && li < lb->n ? " " : "", p);
    }
}

static void segmentation(const struct cli_labels *lb, const struct qcal_tensor *t, int top, char **buf, size_t *len)
{
    if (t->ndim != 4) {
        emit(buf, len, "  segmentation output must be [1, C, H, W]\n");
        return;
    }
    int64_t c = t->dims[1], plane = t->dims[2] * t->dims[3];
    int64_t *count = calloc((size_t)c, sizeof *count);
    if (!count) return;
    const float *d = t->data;
    for (int64_t i = 0; i < plane; i++) {
        int64_t b = 0;
        for (int64_t k = 1; k < c; k++)
            if (d[k * plane + i] > d[b * plane + i]) b = k;
        count[b]++;
    }
    for (int j = 0; j < top; j++) {
        int64_t b = -1;
        for (int64_t k = 0; k < c; k++)
            if (count[k] > 0 && (b < 0 || count[k] > count[b])) b = k;
        if (b < 0) break;
        emit(buf, len, "  class %lld %s%spixels %lld (%.1f%%)\n", (long long)b, b < lb->n ? lb->name[b] : "",
             b < lb->n ? " " : "", (long long)count[b], 100.0 * count[b] / plane);
        count[b] = -1;
    }
    free(count);
}

static void tensors(const struct qcal_exec *ex, char **buf, size_t *len)
{
    for (int i = 0; i < qcal_exec_num_outputs(ex); i++) {
        const struct qcal_tensor *t = qcal_exec_output(ex, i);
        char shape[96];
        emit(buf, len, "  %s: %s %s", qcal_exec_output_name(ex, i), qcal_dtype_name(t->dtype),
             qcal_shape_str(t, shape, sizeof shape));
        if (t->dtype == QCAL_F32 && qcal_tensor_numel(t) > 0) {
            const float *d = t->data;
            double mn = d[0], mx = d[0], s = 0;
            for (int64_t k = 0; k < qcal_tensor_numel(t); k++) {
                mn = d[k] < mn ? d[k] : mn;
                mx = d[k] > mx ? d[k] : mx;
                s += d[k];
            }
            emit(buf, len, " min %.6g max %.6g mean %.6g", mn, mx, s / (double)qcal_tensor_numel(t));
        }
        emit(buf, len, "\n");
    }
}


/* Where the image the model saw came from, to draw boxes on the original file. */

/* Detection and instance segmentation: boxes (in the image file's pixels) with class and
 * score; instance masks are reported by their pixel count. */
static enum qcal_status detection(const struct qcal_job *job, const struct cli_labels *lb, const struct qcal_exec *ex,
                                  const struct qcal_tensor *in, const struct cli_image_geometry *geo, int top, char **buf,
                                  size_t *len)
{
    const int in_w = (int)(job->prep.nhwc ? in->dims[2] : in->dims[3]);
    const int in_h = (int)(job->prep.nhwc ? in->dims[1] : in->dims[2]);
    struct qcal_detections d = {0};
    uint8_t *masks = NULL;
    enum qcal_status st = cli_detect(job, ex, in_w, in_h, top, &d, &masks);
    for (int i = 0; st == QCAL_OK && i < d.n; i++) {
        const struct qcal_detection *k = &d.det[i];
        float x0 = k->x0, y0 = k->y0, x1 = k->x1, y1 = k->y1;
        cli_point_to_file(job, geo, &x0, &y0);
        cli_point_to_file(job, geo, &x1, &y1);
        emit(buf, len, "  %s %.4f [%.1f %.1f %.1f %.1f]", k->cls < lb->n ? lb->name[k->cls] : "", k->score, x0, y0,
             x1, y1);
        if (k->cls >= lb->n) emit(buf, len, " class %d", k->cls);
        if (masks) {
            size_t area = 0, n = (size_t)in_w * in_h;
            for (size_t p = 0; p < n; p++) area += masks[(size_t)i * n + p];
            emit(buf, len, " mask %zu px", area);
        }
        emit(buf, len, "\n");
    }
    if (st == QCAL_OK && d.n == 0) emit(buf, len, "  (no detection >= %g)\n", (double)job->adapter.confidence_threshold);
    free(masks);
    qcal_detections_free(&d);
    return st;
}

static enum qcal_status dump(const char *dir, const char *image, const char *what, const struct qcal_tensor *t)
{
    char stem[512], path[4096];
    const char *base = strrchr(image, '/');
    snprintf(stem, sizeof stem, "%s.%s", base ? base + 1 : image, what);
    cli_sanitize(stem);
    snprintf(path, sizeof path, "%s/%s.npy", dir, stem);
    return qcal_npy_write(path, t);
}

int cli_infer_job(int argc, char **argv)
{
    enum { O_KERNELS = 1000, O_THREADS, O_TOP, O_OUTDIR, O_TIMING, O_SKIP };
    static const struct option opts[] = {
        {"kernels", required_argument, 0, O_KERNELS}, {"threads", required_argument, 0, O_THREADS},
        {"top", required_argument, 0, O_TOP},         {"output-dir", required_argument, 0, O_OUTDIR},
        {"timing", no_argument, 0, O_TIMING},         {"help", no_argument, 0, 'h'},
        {"skip-bad-images", no_argument, 0, O_SKIP},
        {0, 0, 0, 0}};
    enum qcal_status st = QCAL_OK;
    int kernels = QCAL_KERNELS_AUTO, top = 0;
    const char *out_dir = NULL;
    bool timing = false, skip_bad = false;
    double data_seconds = 0, infer_seconds = 0, decode_seconds = 0;
    struct qcal_job *job = NULL;
    struct qcal_graph *g = NULL;
    struct qcal_plan *plan = NULL;
    struct qcal_dataset list = {0};
    struct cli_labels lb = {0};
    char **results = NULL, **errors = NULL;
    uint8_t *bad_image = NULL;
    enum qcal_status *status = NULL;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_KERNELS:
            if ((kernels = cli_parse_kernels(optarg)) < 0) {
                st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "--kernels '%s': expected dnnl, blas or ref", optarg);
                goto cleanup;
            }
            break;
        case O_THREADS:
            if (atoi(optarg) < 1) {
                st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "--threads must be >= 1");
                goto cleanup;
            }
            omp_set_num_threads(atoi(optarg));
            break;
        case O_TOP: top = atoi(optarg); break;
        case O_OUTDIR: out_dir = optarg; break;
        case O_TIMING: timing = true; break;
        case O_SKIP: skip_bad = true; break;
        case 'h': fputs(usage, stdout); goto cleanup;
        default:
            st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "infer: unknown option or missing value in '%s' (see qcal infer "
                          "JOB.yml --help)", argv[optind - 1]);
            goto cleanup;
        }
    }
    QCAL_CHECK(qcal_job_load(argv[optind], &job));
    if (top <= 0) top = job->adapter.top_k;
    QCAL_CHECK(cli_labels_load(job->adapter.labels, &lb));
    if (optind + 1 < argc) {
        for (int i = optind + 1; i < argc; i++) {
            struct qcal_image_list one;
            QCAL_CHECK(qcal_image_list_load(argv[i], &one)); /* a folder expands to its images */
            for (int k = 0; st == QCAL_OK && k < one.count; k++) st = qcal_dataset_push(&list, one.paths[k], -1, NULL);
            qcal_image_list_free(&one);
            if (st != QCAL_OK) goto cleanup;
        }
    } else if (job->validation_data.present) {
        QCAL_CHECK(cli_load_dataset(job, &job->validation_data, &list));
        skip_bad |= job->validation_data.skip_bad_images;
    } else {
        st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "%s: give images, or a validation dataset in the job", job->path);
        goto cleanup;
    }
    QCAL_CHECK(cli_job_model(job, true, &g));
    struct cli_image_input in;
    QCAL_CHECK(cli_image_input(job, g, &in));
    struct qcal_plan_options plo = {.kernels = kernels};
    QCAL_CHECK(qcal_plan_create(g, &plo, &plan));
    const struct qcal_tensor in_t = in.t;
    results = calloc((size_t)list.count, sizeof *results);
    status = calloc((size_t)list.count, sizeof *status);
    errors = calloc((size_t)list.count, sizeof *errors);
    bad_image = calloc((size_t)list.count, 1);
    if (!results || !status || !errors || !bad_image) {
        st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        goto cleanup;
    }
    int failed = 0;
    const int n = (int)list.count;
#pragma omp parallel if (n > 1) reduction(+ : data_seconds, infer_seconds, decode_seconds)
    {
        struct qcal_exec *ex = NULL;
        struct qcal_tensor x = in_t;
        x.data = qcal_malloc(qcal_tensor_bytes(&in_t));
        enum qcal_status tst = x.data ? qcal_exec_create(plan, &ex) : QCAL_OUT_OF_MEMORY;
#pragma omp for schedule(dynamic)
        for (int i = 0; i < n; i++) {
            int stop;
            bool bad = false;
#pragma omp atomic read
            stop = failed;
            if (stop || tst != QCAL_OK) {
                status[i] = tst != QCAL_OK ? tst : QCAL_STATUS_COUNT; /* not run: another image failed */
                continue;
            }
            char err[1024];
            qcal_log_capture(err, sizeof err); /* reported below, in image order */
            double t0 = qcal_now();
            struct cli_image_geometry geo = {0};
            enum qcal_status s = cli_image_tensor(job, &in, list.paths[i], &x, &geo, &decode_seconds);
            double t1 = qcal_now();
            if (cli_image_unreadable(s)) bad = true;
            if (s == QCAL_OK) s = qcal_exec_set_input(ex, 0, &x);
            if (s == QCAL_OK) s = qcal_exec_run(ex);
            data_seconds += t1 - t0;
            infer_seconds += qcal_now() - t1;
            char *buf = NULL;
            size_t len = 0;
            if (s == QCAL_OK) {
                emit(&buf, &len, "%s\n", list.paths[i]);
                int oi = cli_output_index(ex, job->adapter.output);
                if (oi < 0) {
                    s = QCAL_ERR(QCAL_INVALID_JOB, "%s: adapter output '%s' is not an output of %s", job->path,
                                 job->adapter.output, job->model);
                } else if (job->adapter.kind == QCAL_ADAPTER_CLASSIFICATION) {
                    classification(job, &lb, qcal_exec_output(ex, oi), top, &buf, &len);
                } else if (job->adapter.kind == QCAL_ADAPTER_SEGMENTATION) {
                    segmentation(&lb, qcal_exec_output(ex, oi), top, &buf, &len);
                } else if (job->adapter.kind == QCAL_ADAPTER_SSD || job->adapter.kind == QCAL_ADAPTER_YOLO ||
                           job->adapter.kind == QCAL_ADAPTER_INSTANCE_SEGMENTATION) {
                    s = detection(job, &lb, ex, &x, &geo, top, &buf, &len);
                } else {
                    tensors(ex, &buf, &len);
                }
            }
            if (s == QCAL_OK && out_dir) {
                s = dump(out_dir, list.paths[i], "input", &x);
                for (int k = 0; s == QCAL_OK && k < qcal_exec_num_outputs(ex); k++)
                    s = dump(out_dir, list.paths[i], qcal_exec_output_name(ex, k), qcal_exec_output(ex, k));
            }
            qcal_log_capture(NULL, 0);
            status[i] = s;
            results[i] = buf;
            if (s != QCAL_OK) errors[i] = strdup(err[0] ? err : qcal_status_str(s));
            bad_image[i] = bad;
            if (s != QCAL_OK && !(bad && skip_bad)) {
#pragma omp atomic write
                failed = 1;
            }
        }
        qcal_exec_destroy(ex);
        qcal_free(x.data);
    }
    int skipped = 0, first_skipped = -1;
    for (int i = 0; i < n; i++) { /* the first failure in image order: one deterministic line */
        if (status[i] == QCAL_OK || status[i] == QCAL_STATUS_COUNT || (skip_bad && bad_image[i])) continue;
        st = QCAL_ERR(status[i], "%s", errors[i] ? errors[i] : qcal_status_str(status[i]));
        goto cleanup;
    }
    for (int i = 0; i < n; i++) {
        if (status[i] != QCAL_OK && skip_bad && bad_image[i] && errors[i]) {
            if (first_skipped < 0) first_skipped = i;
            skipped++;
            QCAL_LOGW("skipped: %s", errors[i]);
            continue;
        }
        fputs(results[i] ? results[i] : "", stdout);
    }
    if (st == QCAL_OK && skipped == n) {
        st = QCAL_ERR(QCAL_INVALID_DATA, "all %d images could not be read (first: %s)", n, errors[first_skipped]);
    } else if (st == QCAL_OK && skipped) {
        printf("skipped %d of %d images that could not be read\n", skipped, n);
    }
    if (st == QCAL_OK && timing)
        printf("timing_ms_per_image data %.3f inference %.3f data/inference %.3f images %d threads %d "
               "(decode %.3f, preprocess %.3f)\n",
               1e3 * data_seconds / n, 1e3 * infer_seconds / n, data_seconds / infer_seconds, n,
               omp_get_max_threads(), 1e3 * decode_seconds / n, 1e3 * (data_seconds - decode_seconds) / n);
cleanup:
    for (int i = 0; results && i < list.count; i++) free(results[i]);
    for (int i = 0; errors && i < list.count; i++) free(errors[i]);
    free(errors);
    free(bad_image);
    free(results);
    free(status);
    cli_labels_free(&lb);
    qcal_dataset_free(&list);
    qcal_plan_destroy(plan);
    qcal_graph_destroy(g);
    qcal_job_destroy(job);
    return qcal_status_exit_code(st);
}
