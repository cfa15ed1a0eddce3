/* qcal accuracy-aware JOB.yml -o OUTDIR: the job's INT8 model within its accuracy budget
 * (accuracy_aware: max_drop, drop_type, ranking_subset, metric), POT's AccuracyAwareQuantization
 * done across MPI ranks:
 *   1. calibrate as usual, evaluate on the validation images: within the budget, done;
 *   2. the ranking subset: the validation images with the largest FP32-vs-INT8 output error;
 *   3. every quantized layer not yet reverted is a candidate: its model (the others still
 *      quantized) is written from the saved statistics and error pass (calibrate
 *      --reuse-errors --ignore: no image pass), and scored on the ranking subset by the
 *      normalised squared error of the outputs against the parent — candidates are shared by
 *      the ranks, each rank scoring its own with its OpenMP threads;
 *   4. the best candidate is reverted and validated on the whole validation set; a revert
 *      that makes the metric worse is undone and the next candidate tried;
 *   5. repeat from 3 until the drop is within the budget or no candidate is left.
 * OUTDIR: model.int8.onnx (the final mixed-precision QDQ model), report.h5 (its evaluation),
 * accuracy_aware.h5 (every iteration), base/ (the full calibration), work files. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "qcal/data.h"
#include "qcal/job.h"
#include "qcal/par.h"
#include "qcal/report.h"
#include "qcal/runtime.h"

static const char usage[] =
    "usage: qcal accuracy-aware JOB.yml -o OUTDIR [options]   (under mpirun/srun: the ranks share the work)\n"
    "\n"
    "Quantizes the job's model, then keeps the fewest layers in FP32 that bring the metric's\n"
    "drop within the job's accuracy_aware.max_drop (POT's AccuracyAwareQuantization): layers\n"
    "are ranked by how much reverting each alone to FP32 reduces the output error on the\n"
    "ranking subset (the images with the largest FP32-vs-INT8 error), the best is reverted and\n"
    "validated on all validation images, a revert that makes things worse is undone. The\n"
    "candidates are scored in parallel over the MPI ranks. Writes OUTDIR/model.int8.onnx,\n"
    "OUTDIR/report.h5 (its evaluation, and /accuracy_aware: every iteration; also alone in\n"
    "OUTDIR/accuracy_aware.h5). When no set of reverted\n"
    "layers reaches the budget, the best model found is written, the summary says NOT within the\n"
    "budget and accuracy_aware.h5's within_budget is 0 (the exit status is still 0).\n"
    "\n"
    "options:\n"
    "  --max-iterations N   validations after the first (default: until done)\n"
    "  --threads N          OpenMP threads per rank\n"
    "  -h, --help           this help\n";

enum { NAME_CAP = 256 };

struct iteration {
    int32_t iteration;
    char layer[NAME_CAP];  /* reverted (tried) layer; "" for the full INT8 model */
    double score;          /* its ranking score: output NMSE on the ranking subset */
    double metric, drop;
    int32_t accepted, reverted; /* kept; layers in FP32 after it */
    double seconds;
};

/* Runs a step with its stdout silenced (the subcommands' own summaries). */
static int quietly(int (*fn)(int, char **), int argc, char **argv)
{
    fflush(stdout);
    const int saved = dup(STDOUT_FILENO), null = open("/dev/null", O_WRONLY);
    if (saved >= 0 && null >= 0) dup2(null, STDOUT_FILENO);
    const int rc = fn(argc, argv);
    fflush(stdout);
    if (saved >= 0) dup2(saved, STDOUT_FILENO), close(saved);
    if (null >= 0) close(null);
    return rc;
}

/* ---- scoring on the ranking subset (rank-local, no collectives) ---- */

struct scorer {
    const struct qcal_job *job;
    struct cli_image_input in;
    int n_images;
    char **paths;
    int n_out;
    int64_t *out_numel;
    float **parent;        /* [image][output...] the parent's outputs, concatenated */
    int64_t per_image;     /* floats per image */
};

static void scorer_free(struct scorer *s)
{
    for (int i = 0; s->parent && i < s->n_images; i++) free(s->parent[i]);
    free(s->parent);
    free(s->out_numel);
}

/* Runs model g on every ranking image; with ref NULL stores the outputs into s->parent,
 * else returns the mean over images of Σ(o - p)² / Σp² (all outputs together). */
static enum qcal_status run_subset(struct scorer *s, struct qcal_graph *g, double *nmse)
{
    struct qcal_plan *plan = NULL;
    const struct qcal_plan_options plo = {.kernels = QCAL_KERNELS_AUTO};
    enum qcal_status st = qcal_plan_create(g, &plo, &plan);
    if (st != QCAL_OK) return st;
    double *per = calloc((size_t)s->n_images + 1, sizeof *per);
    if (!per) st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    int failed = 0;
    enum qcal_status first = QCAL_OK;
#pragma omp parallel if (st == QCAL_OK)
    {
        struct qcal_exec *ex = NULL;
        struct qcal_tensor x = s->in.t;
        x.data = qcal_malloc(qcal_tensor_bytes(&s->in.t));
        enum qcal_status tst = x.data ? qcal_exec_create(plan, &ex) : QCAL_OUT_OF_MEMORY;
#pragma omp for schedule(dynamic)
        for (int i = 0; i < s->n_images; i++) {
            enum qcal_status r = tst;
            if (r == QCAL_OK) r = cli_image_tensor(s->job, &s->in, s->paths[i], &x, NULL, NULL);
            if (r == QCAL_OK) r = qcal_exec_set_input(ex, 0, &x);
            if (r == QCAL_OK) r = qcal_exec_run(ex);
            double num = 0, den = 0;
            for (int o = 0, at = 0; r == QCAL_OK && o < s->n_out; at += (int)s->out_numel[o], o++) {
                const struct qcal_tensor *t = qcal_exec_output(ex, o);
                const float *v = t->data;
                if (!nmse) {
                    memcpy(s->parent[i] + at, v, sizeof(float) * (size_t)s->out_numel[o]);
                    continue;
                }
                const float *p = s->parent[i] + at;
                for (int64_t k = 0; k < s->out_numel[o]; k++) {
                    const double d = (double)v[k] - p[k];
                    num += d * d, den += (double)p[k] * p[k];
                }
            }
            per[i] = den > 0 ? num / den : num;
            if (r != QCAL_OK) {
#pragma omp critical
                if (!failed) failed = 1, first = r;
            }
        }
        qcal_exec_destroy(ex);
        qcal_free(x.data);
    }
    if (st == QCAL_OK && failed) st = first;
    if (st == QCAL_OK && nmse) {
        double sum = 0;
        for (int i = 0; i < s->n_images; i++) sum += per[i]; /* in image order: the same on any thread count */
        *nmse = s->n_images ? sum / s->n_images : 0;
    }
    free(per);
    qcal_plan_destroy(plan);
    return st;
}

static enum qcal_status scorer_init(struct scorer *s, const struct qcal_job *job, char **paths, int n)
{
    memset(s, 0, sizeof *s);
    s->job = job, s->paths = paths, s->n_images = n;
    struct qcal_graph *g = NULL;
    enum qcal_status st = cli_job_model(job, true, &g);
    if (st == QCAL_OK) st = cli_image_input(job, g, &s->in);
    if (st == QCAL_OK) {
        s->n_out = g->n_outputs;
        s->out_numel = calloc((size_t)s->n_out + 1, sizeof *s->out_numel);
        s->parent = calloc((size_t)n + 1, sizeof *s->parent);
        if (!s->out_numel || !s->parent) st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    }
    for (int o = 0; st == QCAL_OK && o < s->n_out; o++) {
        const struct qcal_tensor *t = &g->values[g->outputs[o]].t;
        if (t->dtype != QCAL_F32) st = QCAL_ERR(QCAL_UNSUPPORTED, "%s: output %d is not float32", job->model, o);
        s->out_numel[o] = qcal_tensor_numel(t);
        s->per_image += s->out_numel[o];
    }
    if (st == QCAL_OK && (double)s->per_image * n * 4 > 2e9)
        st = QCAL_ERR(QCAL_UNSUPPORTED, "%s: the parent's outputs on %d ranking images need %.1f GB; lower "
                      "accuracy_aware.ranking_subset", job->path, n, (double)s->per_image * n * 4 / 1e9);
    for (int i = 0; st == QCAL_OK && i < n; i++)
        if (!(s->parent[i] = malloc(sizeof(float) * (size_t)s->per_image))) st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    if (st == QCAL_OK) st = run_subset(s, g, NULL);
    qcal_graph_destroy(g);
    return st;
}

/* The ranking subset: the images of the largest output error in the report (sum over
 * outputs of 10^(-SNR/10)), ties by dataset order. */
static enum qcal_status ranking_images(const struct qcal_job *job, const char *report, char ***paths_out, int *n_out)
{
    struct qcal_h5 *f = NULL;
    double *img = NULL, *snr = NULL;
    char **names = NULL;
    int64_t rows = 0, n_img = 0;
    enum qcal_status st = qcal_h5_open(report, &f);
    if (st == QCAL_OK) st = qcal_h5_read_column_f64(f, "/comparison/tensors", "image", &img, &rows);
    if (st == QCAL_OK) st = qcal_h5_read_column_f64(f, "/comparison/tensors", "snr_db", &snr, &rows);
    if (st == QCAL_OK) st = qcal_h5_read_column_strings(f, "/comparison/images", "name", &names, &n_img);
    qcal_h5_close(f, false);
    double *err = st == QCAL_OK ? calloc((size_t)n_img + 1, sizeof *err) : NULL;
    int *order = st == QCAL_OK ? malloc(sizeof *order * (size_t)(n_img + 1)) : NULL;
    if (st == QCAL_OK && (!err || !order)) st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    for (int64_t r = 0; st == QCAL_OK && r < rows; r++)
        if (img[r] >= 0 && img[r] < n_img) err[(int64_t)img[r]] += isinf(snr[r]) ? 0 : pow(10.0, -snr[r] / 10.0);
    int n = 0;
    if (st == QCAL_OK) {
        for (int64_t i = 0; i < n_img; i++) { /* insertion by error (descending), stable */
            int k = n++;
            while (k > 0 && err[order[k - 1]] < err[i]) order[k] = order[k - 1], k--;
            order[k] = (int)i;
        }
        if (n > job->accuracy_aware.ranking_subset) n = (int)job->accuracy_aware.ranking_subset;
    }
    char **paths = st == QCAL_OK ? calloc((size_t)n + 1, sizeof *paths) : NULL;
    if (st == QCAL_OK && !paths) st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    for (int k = 0; st == QCAL_OK && k < n; k++) {
        const char *nm = names[order[k]], *src = job->validation_data.source;
        const size_t len = strlen(src) + strlen(nm) + 2;
        if (!(paths[k] = malloc(len))) {
            st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
            break;
        }
        if (nm[0] == '/') snprintf(paths[k], len, "%s", nm);
        else snprintf(paths[k], len, "%s/%s", src, nm);
    }
    for (int64_t i = 0; names && i < n_img; i++) free(names[i]);
    free(names), free(img), free(snr), free(err), free(order);
    if (st != QCAL_OK) {
        for (int k = 0; paths && k < n; k++) free(paths[k]);
        free(paths);
        return st;
    }
    *paths_out = paths, *n_out = n;
    return QCAL_OK;
}

static enum qcal_status write_iterations(const char *path, const struct qcal_job *job, const char *metric,
                                         double parent, const struct iteration *it, int n, bool within)
{
#define C(f, t) {#f, t, offsetof(struct iteration, f), 0}
    const struct qcal_h5_column cols[] = {
        C(iteration, QCAL_I32), {"layer", QCAL_H5_STRING, offsetof(struct iteration, layer), NAME_CAP},
        C(score, QCAL_F64),     C(metric, QCAL_F64), C(drop, QCAL_F64), C(accepted, QCAL_I32), C(reverted, QCAL_I32),
        C(seconds, QCAL_F64)};
#undef C
    struct qcal_h5 *f = NULL;
    enum qcal_status st = qcal_h5_create(path, &f);
    const char *g = "/accuracy_aware";
    if (st == QCAL_OK) st = qcal_h5_attr_string(f, g, "metric", metric);
    if (st == QCAL_OK) st = qcal_h5_attr_f64(f, g, "parent_metric", parent);
    if (st == QCAL_OK) st = qcal_h5_attr_f64(f, g, "max_drop", job->accuracy_aware.max_drop);
    if (st == QCAL_OK)
        st = qcal_h5_attr_string(f, g, "drop_type", job->accuracy_aware.drop_type ? "relative" : "absolute");
    if (st == QCAL_OK) st = qcal_h5_attr_i64(f, g, "within_budget", within);
    if (st == QCAL_OK) st = qcal_h5_write_table(f, "/accuracy_aware/iterations", 8, cols, n, sizeof *it, it);
    if (f) {
        enum qcal_status cst = qcal_h5_close(f, st == QCAL_OK);
        if (st == QCAL_OK) st = cst;
    }
    return st;
}

static enum qcal_status copy_file(const char *from, const char *to)
{
    void *data = NULL;
    size_t size = 0;
    enum qcal_status st = qcal_read_file(from, 0, &data, &size);
    if (st == QCAL_OK) st = qcal_write_file(to, data, size);
    free(data);
    return st;
}

#define STEP(expr)                                                                                                 \
    do {                                                                                                           \
        if ((rc = (expr)) != 0) goto cleanup;                                                                         \
    } while (0)

int cli_accuracy_aware(int argc, char **argv)
{
    enum { O_MAXIT = 1000, O_THREADS };
    static const struct option opts[] = {{"output-dir", required_argument, 0, 'o'},
                                         {"max-iterations", required_argument, 0, O_MAXIT},
                                         {"threads", required_argument, 0, O_THREADS},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *out = NULL, *threads = NULL;
    int max_it = -1, rc = 0;
    enum qcal_status st = QCAL_OK;
    struct qcal_job *job = NULL;
    struct qcal_h5 *f = NULL;
    char **layers = NULL, **paths = NULL, **reverted = NULL;
    int n_layers = 0, n_paths = 0, n_reverted = 0, n_it = 0;
    struct iteration *it = NULL;
    struct scorer sc = {0};
    double *score = NULL;
    bool *gone = NULL;
    optind = 1;
    opterr = 0;
    cli_hold_errors();
    int ch;
    while ((ch = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (ch) {
        case 'o': out = optarg; break;
        case O_MAXIT: max_it = atoi(optarg); break;
        case O_THREADS:
            threads = optarg;
            if (atoi(optarg) < 1) AGREE(QCAL_ERR(QCAL_INVALID_ARGUMENT, "--threads must be >= 1"));
            omp_set_num_threads(atoi(optarg));
            break;
        case 'h':
            if (qcal_par_rank() == 0) fputs(usage, stdout);
            goto cleanup;
        default:
            AGREE(QCAL_ERR(QCAL_INVALID_ARGUMENT, "accuracy-aware: unknown option or missing value in '%s' (see qcal "
                           "accuracy-aware --help)", argv[optind - 1]));
        }
    }
    if (optind != argc - 1 || !out)
        AGREE(QCAL_ERR(QCAL_INVALID_ARGUMENT, "accuracy-aware: expected JOB.yml and -o OUTDIR (see qcal accuracy-aware "
                       "--help)"));
    const char *job_path = argv[optind];
    AGREE(qcal_job_load(job_path, &job));
    if (!job->validation_data.present) AGREE(QCAL_ERR(QCAL_INVALID_JOB, "%s: no validation dataset", job->path));
    const bool root = qcal_par_rank() == 0;
    if (root && mkdir(out, 0777) != 0 && errno != EEXIST)
        st = QCAL_ERR(QCAL_IO_ERROR, "%s: cannot create: %s", out, strerror(errno));
    AGREE(st);
    char base[4352], base_model[4400], base_stats[4400], rep[4400], cand[4352], cand_model[4400];
    snprintf(base, sizeof base, "%s/base", out);
    snprintf(base_model, sizeof base_model, "%s/model.int8.onnx", base);
    snprintf(base_stats, sizeof base_stats, "%s/calibration.h5", base);
    snprintf(cand, sizeof cand, "%s/candidate", out);
    snprintf(cand_model, sizeof cand_model, "%s/model.int8.onnx", cand);
    const double t_start = qcal_now();

    /* 1. the full INT8 model and its accuracy */
    if (root) printf("accuracy-aware %s: calibrating\n", job->path), fflush(stdout);
    {
        char *a[] = {"calibrate", (char *)job_path, "-o", base, "--quiet", "--threads", (char *)threads};
        STEP(quietly(cli_calibrate, threads ? 7 : 5, a));
    }
    snprintf(rep, sizeof rep, "%s/report.h5", base);
    {
        char *a[] = {"evaluate", (char *)job_path, "--optimized", base_model, "-o", rep, "--quiet", "--threads",
                     (char *)threads};
        STEP(quietly(cli_evaluate, threads ? 9 : 7, a));
    }
    char metric_name[64];
    double parent = 0, metric = 0;
    AGREE(cli_report_metric(job, rep, &parent, &metric, metric_name, sizeof metric_name));
    double drop = cli_metric_drop(job, parent, metric);
    const double budget = job->accuracy_aware.max_drop;
    /* the quantized layers: the calibration's /layers */
    AGREE(qcal_h5_open(base_stats, &f));
    st = qcal_h5_read_strings(f, "/layers/name", &n_layers, &layers);
    qcal_h5_close(f, false);
    AGREE(st);
    f = NULL;
    it = calloc((size_t)n_layers + 2, sizeof *it);
    reverted = calloc((size_t)n_layers + 1, sizeof *reverted);
    score = calloc((size_t)n_layers + 1, sizeof *score);
    gone = calloc((size_t)n_layers + 1, sizeof *gone);
    AGREE(it && reverted && score && gone ? QCAL_OK : QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory"));
    it[n_it++] = (struct iteration){0, "", NAN, metric, drop, 1, 0, qcal_now() - t_start};
    if (root)
        printf("  full INT8: %s %.4f (FP32 %.4f), drop %.4f, budget %.4f; %d quantized layers\n", metric_name, metric,
               parent, drop, budget, n_layers);
    char best_model[4400], best_report[4400];
    snprintf(best_model, sizeof best_model, "%s", base_model);
    snprintf(best_report, sizeof best_report, "%s", rep);

    if (drop > budget) {
        AGREE(ranking_images(job, rep, &paths, &n_paths));
        AGREE(scorer_init(&sc, job, paths, n_paths));
        if (root && mkdir(cand, 0777) != 0 && errno != EEXIST)
            st = QCAL_ERR(QCAL_IO_ERROR, "%s: cannot create: %s", cand, strerror(errno));
        AGREE(st);
        if (root) printf("  ranking subset: %d images with the largest output error\n", n_paths), fflush(stdout);
    }
    int iteration = 0;
    while (drop > budget && (max_it < 0 || iteration < max_it)) {
        /* 3. score every candidate: its model written (all ranks, one after the other: rank 0
         * writes), then each rank scores its share */
        int left = 0;
        for (int l = 0; l < n_layers; l++) left += !gone[l];
        if (!left) break;
        const double t0 = qcal_now();
        for (int l = 0; l < n_layers; l++) score[l] = -1;
        char cdir[4400];
        for (int l = 0; l < n_layers; l++) {
            if (gone[l]) continue;
            snprintf(cdir, sizeof cdir, "%s/%03d", cand, l);
            char *a[2 * QCAL_JOB_MAX_IGNORED + 16] = {"calibrate", (char *)job_path, "-o", cdir, "--quiet",
                                                      "--from-stats", base_stats, "--reuse-errors", "--ignore",
                                                      layers[l]};
            int n = 10;
            for (int r = 0; r < n_reverted && n < 2 * QCAL_JOB_MAX_IGNORED + 12; r++)
                a[n++] = "--ignore", a[n++] = reverted[r];
            STEP(quietly(cli_calibrate, n, a));
        }
        int k = 0;
        for (int l = 0; l < n_layers; l++) {
            if (gone[l]) continue;
            if (k++ % qcal_par_size() != qcal_par_rank()) continue; /* this rank's share */
            snprintf(cdir, sizeof cdir, "%s/%03d/model.int8.onnx", cand, l);
            struct qcal_graph *g = NULL;
            st = cli_job_model_at(job, cdir, true, &g);
            if (st == QCAL_OK) st = run_subset(&sc, g, &score[l]);
            qcal_graph_destroy(g);
            if (st != QCAL_OK) break;
        }
        AGREE(st);
        AGREE(qcal_par_allreduce_f64_max(score, (size_t)n_layers)); /* each score comes from one rank */
        /* 4. revert the best; undo it if the metric gets worse, then try the next */
        bool accepted = false;
        while (!accepted && (max_it < 0 || iteration < max_it)) {
            int best = -1;
            for (int l = 0; l < n_layers; l++)
                if (!gone[l] && score[l] >= 0 && (best < 0 || score[l] < score[best])) best = l;
            if (best < 0) break;
            iteration++;
            snprintf(cdir, sizeof cdir, "%s/%03d/model.int8.onnx", cand, best);
            char trial[4400];
            snprintf(trial, sizeof trial, "%s/%03d/report.h5", cand, best);
            char *a[] = {"evaluate", (char *)job_path, "--optimized", cdir, "-o", trial, "--quiet", "--threads",
                         (char *)threads};
            STEP(quietly(cli_evaluate, threads ? 9 : 7, a));
            double p2 = 0, m2 = 0;
            AGREE(cli_report_metric(job, trial, &p2, &m2, metric_name, sizeof metric_name));
            const double d2 = cli_metric_drop(job, p2, m2);
            gone[best] = true;
            accepted = d2 <= drop;
            if (accepted) {
                reverted[n_reverted++] = layers[best];
                drop = d2, metric = m2;
                snprintf(best_model, sizeof best_model, "%s", cdir);
                snprintf(best_report, sizeof best_report, "%s", trial);
            }
            it[n_it++] = (struct iteration){iteration, "", score[best], m2, d2, accepted, n_reverted,
                                            qcal_now() - t0};
            snprintf(it[n_it - 1].layer, NAME_CAP, "%s", layers[best]);
            if (root)
                printf("  iteration %d: %s %s (ranking NMSE %.3g): %s %.4f, drop %.4f%s\n", iteration,
                       accepted ? "reverted" : "tried", layers[best], score[best], metric_name, m2, d2,
                       accepted ? "" : " (worse: undone)");
            fflush(stdout);
        }
        if (!accepted) break;
    }
    /* 5. the final model and its report */
    char final_model[4400], final_report[4400], aa[4400];
    snprintf(final_model, sizeof final_model, "%s/model.int8.onnx", out);
    snprintf(final_report, sizeof final_report, "%s/report.h5", out);
    snprintf(aa, sizeof aa, "%s/accuracy_aware.h5", out);
    if (root) { /* the final report: the chosen model's evaluation and the iterations */
        st = copy_file(best_model, final_model);
        if (st == QCAL_OK) st = write_iterations(aa, job, metric_name, parent, it, n_it, drop <= budget);
        struct qcal_h5 *r = NULL;
        if (st == QCAL_OK) st = qcal_h5_create(final_report, &r);
        if (st == QCAL_OK) st = qcal_h5_copy_all(r, best_report);
        if (st == QCAL_OK) st = qcal_h5_copy(r, "/accuracy_aware", aa, "/accuracy_aware");
        if (r) {
            enum qcal_status cst = qcal_h5_close(r, st == QCAL_OK);
            if (st == QCAL_OK) st = cst;
        }
    }
    AGREE(st);
    if (root) {
        printf("%s: %d layer%s in FP32, %s %.4f (FP32 %.4f), drop %.4f %s the budget %.4f (%.1f s)\n", final_model,
               n_reverted, n_reverted == 1 ? "" : "s", metric_name, metric, parent, drop,
               drop <= budget ? "within" : "NOT within", budget, qcal_now() - t_start);
        for (int r = 0; r < n_reverted; r++) printf("  FP32: %s\n", reverted[r]);
        printf("wrote %s\nwrote %s\nwrote %s\n", final_model, final_report, aa);
    }
cleanup:
    if (!rc && st != QCAL_OK) rc = qcal_status_exit_code(st);
    scorer_free(&sc);
    for (int k = 0; paths && k < n_paths; k++) free(paths[k]);
    free(paths);
    for (int l = 0; layers && l < n_layers; l++) free(layers[l]);
    free(layers);
    free(reverted), free(it), free(score), free(gone);
    qcal_h5_close(f, false);
    qcal_job_destroy(job);
    return rc;
}
