/* qcal sweep JOB.yml -o DIR: every combination of the calibration settings the job lists
 * (subset, preset, method, percentile, bias_correction, ignored scopes), each calibrated, benchmarked and
 * evaluated into DIR/cNNN/. The statistics passes run once per distinct subset: the first
 * configuration of a subset calibrates in full, the others recompute their scales from its
 * saved statistics (qcal calibrate --from-stats) and run only the error pass. Configurations
 * already complete are skipped, so a killed sweep resumes where it stopped; `--summarize`
 * gathers the reports into DIR/sweep.h5 with the Pareto front and a recommendation. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "qcal/job.h"
#include "qcal/par.h"
#include "qcal/report.h"

static const char usage[] =
    "usage: qcal sweep JOB.yml -o DIR [options]     (under mpirun/srun: each configuration uses every rank)\n"
    "       qcal sweep --summarize DIR\n"
    "\n"
    "The job's calibration section may list values for subset, preset, method, percentile,\n"
    "bias_correction and ignored scopes; the sweep is every combination, numbered in a fixed order (the lists in\n"
    "that key order, the last one fastest) and described in DIR/manifest.json. Configuration K\n"
    "goes to DIR/cKKK/: model.int8.onnx and calibration.h5 (qcal calibrate), bench.h5 (qcal\n"
    "bench) and report.h5 (qcal evaluate, holding both). Statistics are collected once per\n"
    "distinct subset, by its first configuration; the others reuse them. A configuration whose\n"
    "report exists is skipped: run the same command again to resume.\n"
    "\n"
    "options:\n"
    "  -o DIR            the sweep's folder\n"
    "  --config K        only configuration K (a Slurm array task), after its subset's statistics\n"
    "  --stats-only      only the configurations that collect statistics (one per subset), calibrated\n"
    "  --calibrate-only  calibrate the configurations, no benchmark or evaluation\n"
    "  --list            write the manifest, print the configurations and stop\n"
    "  --fast            no error pass after the first configuration of each subset: the others'\n"
    "                    calibration is the scales from the shared statistics and, with bias\n"
    "                    correction, that run's measured shifts moved to their scales through its\n"
    "                    per-channel input histograms (calibrate --shared-bias: an estimate, exact\n"
    "                    for the first configuration's scales); no per-layer SQNR table for them.\n"
    "                    Recalibrate the chosen one without --fast for the exact model\n"
    "  --summarize       DIR/sweep.h5 and a table of every configuration: the metric and its drop,\n"
    "                    INT8 latency and throughput, speed-up, the Pareto front (metric vs latency)\n"
    "                    and the fastest configuration within the job's accuracy_aware.max_drop\n"
    "  --bench-time S    benchmark seconds per mode and precision (default: the job's)\n"
    "  --threads N       OpenMP threads per rank\n"
    "  -h, --help        this help\n";

enum { MAX_CONFIGS = 4096 };

struct config {
    int id;
    char dir[4096];
    int leader;             /* the configuration whose statistics this one reuses (itself: it collects them) */
    const char *value[6];   /* per sweep axis of the job (index into calibration.sweep) */
};

/* Configuration k's value on each axis: mixed radix, the last axis fastest. */
static void config_values(const struct qcal_job_calibration *c, int k, const char **value)
{
    for (int a = c->n_sweep - 1; a >= 0; a--) {
        value[a] = c->sweep[a].values[k % c->sweep[a].n];
        k /= c->sweep[a].n;
    }
}

static const char *axis_value(const struct qcal_job *job, const struct config *cf, const char *key, char *buf,
                              size_t cap)
{
    const struct qcal_job_calibration *c = &job->calibration;
    for (int a = 0; a < c->n_sweep; a++)
        if (strcmp(c->sweep[a].key, key) == 0) return cf->value[a];
    /* not swept: the job's own */
    if (strcmp(key, "subset") == 0) snprintf(buf, cap, "%lld", (long long)c->subset);
    else if (strcmp(key, "preset") == 0) snprintf(buf, cap, "%s", c->preset);
    else if (strcmp(key, "method") == 0) snprintf(buf, cap, "%s", c->method);
    else if (strcmp(key, "percentile") == 0) snprintf(buf, cap, "%g", (double)c->percentile);
    else if (strcmp(key, "bias_correction") == 0) snprintf(buf, cap, "%s", c->bias_correction ? "true" : "false");
    else snprintf(buf, cap, "%s", ""); /* ignored, not swept: the job's own scope applies */
    return buf;
}

static bool exists(const char *dir, const char *file)
{
    char p[4352];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    return access(p, F_OK) == 0;
}

static int n_configs(const struct qcal_job *job)
{
    int n = 1;
    for (int a = 0; a < job->calibration.n_sweep; a++) n *= job->calibration.sweep[a].n;
    return n;
}

static enum qcal_status configs_make(const struct qcal_job *job, const char *dir, struct config **out, int *n_out)
{
    const int n = n_configs(job);
    if (n > MAX_CONFIGS)
        return QCAL_ERR(QCAL_INVALID_JOB, "%s: %d configurations, more than a sweep takes (%d)", job->path, n,
                        MAX_CONFIGS);
    struct config *cf = calloc((size_t)n, sizeof *cf);
    if (!cf) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    for (int k = 0; k < n; k++) {
        cf[k].id = k;
        snprintf(cf[k].dir, sizeof cf[k].dir, "%s/c%03d", dir, k);
        config_values(&job->calibration, k, cf[k].value);
        char a[32], b[32];
        cf[k].leader = k;
        /* statistics are shared by the configurations of one subset and one ignored scope */
        for (int j = 0; j < k && cf[k].leader == k; j++)
            if (strcmp(axis_value(job, &cf[j], "subset", a, sizeof a), axis_value(job, &cf[k], "subset", b, sizeof b)) == 0 &&
                strcmp(axis_value(job, &cf[j], "ignored", a, sizeof a), axis_value(job, &cf[k], "ignored", b, sizeof b)) == 0)
                cf[k].leader = j;
    }
    *out = cf, *n_out = n;
    return QCAL_OK;
}

static const char *const keys[] = {"subset", "preset", "method", "percentile", "bias_correction", "ignored"};

static bool swept(const struct qcal_job *job, const char *key)
{
    for (int a = 0; a < job->calibration.n_sweep; a++)
        if (strcmp(job->calibration.sweep[a].key, key) == 0) return true;
    return false;
}

/* An ignored scope ("N:name" / "T:type" lines) as JSON {"names": [...], "types": [...]} or,
 * with json false, as "names a,b types c". */
static void scope_print(FILE *f, const char *scope, bool json)
{
    static const char *const what[2] = {"names", "types"};
    bool any = false;
    if (json) fputc('{', f);
    for (int pass = 0; pass < 2; pass++) {
        const char tag = pass ? 'T' : 'N';
        if (json) fprintf(f, "%s\"%s\": [", pass ? ", " : "", what[pass]);
        int n = 0;
        for (const char *l = scope; *l;) {
            const char *e = strchr(l, '\n');
            const size_t len = e ? (size_t)(e - l) : strlen(l);
            if (len > 2 && l[0] == tag) {
                if (json) fprintf(f, "%s\"%.*s\"", n ? ", " : "", (int)len - 2, l + 2);
                else if (n) fprintf(f, ",%.*s", (int)len - 2, l + 2);
                else fprintf(f, "%s%s %.*s", any ? " " : "", what[pass], (int)len - 2, l + 2);
                n++, any = true;
            }
            l += len + (e ? 1 : 0);
        }
        if (json) fputc(']', f);
    }
    if (json) fputc('}', f);
}

/* DIR/manifest.json: the job and every configuration (the same bytes on every run). */
static enum qcal_status write_manifest(const struct qcal_job *job, const char *dir, const struct config *cf, int n,
                                       bool fast)
{
    char path[4352];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    /* one mode per folder: a resumed sweep must not mix exact and --fast models */
    void *old = NULL;
    size_t old_size = 0;
    if (access(path, F_OK) == 0 && qcal_read_file(path, 0, &old, &old_size) == QCAL_OK) {
        const bool was_fast = strstr(old, "\"mode\": \"fast\"") != NULL;
        free(old);
        if (was_fast != fast)
            return QCAL_ERR(QCAL_INVALID_ARGUMENT, "%s: this sweep ran %s --fast; run it the same way or use another "
                            "folder", path, was_fast ? "with" : "without");
    }
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size); /* written whole (qcal_write_file: temp + rename) */
    if (!f) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    char *abs = realpath(job->path, NULL); /* --summarize may run from elsewhere */
    fprintf(f, "{\"job\": ");
    cli_json_string(f, abs ? abs : job->path);
    free(abs);
    fprintf(f, ", \"mode\": \"%s\", \"axes\": [", fast ? "fast" : "exact");
    for (int a = 0; a < job->calibration.n_sweep; a++) {
        fprintf(f, "%s", a ? ", " : "");
        cli_json_string(f, job->calibration.sweep[a].key);
    }
    fprintf(f, "], \"configurations\": [");
    for (int k = 0; k < n; k++) {
        fprintf(f, "%s\n  {\"id\": %d, \"dir\": \"c%03d\", \"statistics_from\": %d", k ? "," : "", k, k, cf[k].leader);
        for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
            char buf[64];
            fprintf(f, ", \"%s\": ", keys[i]);
            const char *v = axis_value(job, &cf[k], keys[i], buf, sizeof buf);
            if (strcmp(keys[i], "preset") == 0 || strcmp(keys[i], "method") == 0) cli_json_string(f, v);
            else if (strcmp(keys[i], "ignored") == 0) scope_print(f, swept(job, "ignored") ? v : "", true);
            else fputs(v, f);
        }
        fputc('}', f);
    }
    fprintf(f, "\n]}\n");
    const bool ok = !ferror(f);
    enum qcal_status st = fclose(f) == 0 && ok ? qcal_write_file(path, text, size)
                                               : QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    free(text);
    return st;
}

struct run_opts {
    const char *job_path, *threads, *bench_time;
    bool calibrate_only;    /* no bench, no evaluation (measuring the calibration part) */
    bool fast;              /* no error pass but the leaders' (calibrate --shared-bias, --no-error-pass) */
    int n;                  /* configurations */
};

static bool bias_on(const struct qcal_job *job, const struct config *c)
{
    char v[64];
    return strcmp(axis_value(job, c, "bias_correction", v, sizeof v), "true") == 0;
}

/* --fast: the leader k records its inputs when a configuration of its subset corrects biases. */
static bool leader_records(const struct qcal_job *job, const struct config *cf, int k, const struct run_opts *o)
{
    for (int j = k; o->fast && cf[k].leader == k && j < o->n; j++)
        if (cf[j].leader == k && bias_on(job, &cf[j])) return true;
    return false;
}

/* Calibrates configuration k (from its leader's statistics unless it is the leader). */
static int calibrate_config(const struct qcal_job *job, const struct config *cf, int k, const struct run_opts *o)
{
    char v[5][64], from[4352];
    const char *subset = axis_value(job, &cf[k], "subset", v[0], sizeof v[0]);
    const char *preset = axis_value(job, &cf[k], "preset", v[1], sizeof v[1]);
    const char *method = axis_value(job, &cf[k], "method", v[2], sizeof v[2]);
    const char *pct = axis_value(job, &cf[k], "percentile", v[3], sizeof v[3]);
    const bool bc = bias_on(job, &cf[k]), record = leader_records(job, cf, k, o);
    snprintf(from, sizeof from, "%s/calibration.h5", cf[cf[k].leader].dir);
    char *argv[24 + 4 * QCAL_JOB_MAX_IGNORED] = {"calibrate", (char *)o->job_path, "-o", (char *)cf[k].dir, "--quiet",
                                                "--subset", (char *)subset, "--preset", (char *)preset, "--method",
                                                (char *)method, "--percentile", (char *)pct};
    int argc = 13;
    char *scope = NULL; /* the ignored scope, as options */
    if (swept(job, "ignored")) {
        char buf[8];
        if (!(scope = strdup(axis_value(job, &cf[k], "ignored", buf, sizeof buf)))) return qcal_status_exit_code(QCAL_OUT_OF_MEMORY);
        argv[argc++] = "--no-job-ignored";
        for (char *l = scope; *l && argc < 20 + 4 * QCAL_JOB_MAX_IGNORED;) {
            char *e = strchr(l, '\n');
            if (e) *e = '\0';
            argv[argc++] = l[0] == 'T' ? "--ignore-type" : "--ignore", argv[argc++] = l + 2;
            l = e ? e + 1 : l + strlen(l);
        }
    }
    if (!bc) argv[argc++] = "--no-bias-correction";
    if (record) argv[argc++] = "--record-inputs";
    else if (!bc && o->fast) argv[argc++] = "--no-error-pass";
    else if (o->fast && cf[k].leader != k) argv[argc++] = "--shared-bias";
    if (cf[k].leader != k) argv[argc++] = "--from-stats", argv[argc++] = from;
    if (o->threads) argv[argc++] = "--threads", argv[argc++] = (char *)o->threads;
    /* a new model makes the config's bench and report stale */
    if (qcal_par_rank() == 0) {
        char p[4352];
        snprintf(p, sizeof p, "%s/bench.h5", cf[k].dir);
        unlink(p);
        snprintf(p, sizeof p, "%s/report.h5", cf[k].dir);
        unlink(p);
    }
    const int rc = cli_calibrate(argc, argv);
    free(scope);
    return rc;
}

/* Configuration k end to end, each step skipped when its output is there. */
static int run_config(const struct qcal_job *job, const struct config *cf, int k, const struct run_opts *o,
                      bool stats_only)
{
    const struct config *c = &cf[k];
    const bool root = qcal_par_rank() == 0;
    if (exists(c->dir, "report.h5") && !stats_only && !o->calibrate_only) {
        if (root) printf("== c%03d: complete, skipped\n", k);
        return 0;
    }
    int rc = 0;
    /* the statistics first: the leader's calibration */
    if (cf[k].leader != k && !(exists(cf[c->leader].dir, "calibration.h5") && exists(cf[c->leader].dir, "model.int8.onnx"))) {
        if (root) printf("== c%03d: statistics for its subset (c%03d)\n", k, c->leader);
        fflush(stdout);
        if ((rc = calibrate_config(job, cf, c->leader, o)) != 0) return rc;
    }
    if (!(exists(c->dir, "calibration.h5") && exists(c->dir, "model.int8.onnx"))) {
        if (root) printf("== c%03d: calibrate%s\n", k, c->leader == k ? " (collects the statistics)" : "");
        fflush(stdout);
        if ((rc = calibrate_config(job, cf, k, o)) != 0) return rc;
    }
    if (stats_only || o->calibrate_only) return 0;
    char model[4352], bench[4352], calib[4352], report[4352];
    snprintf(model, sizeof model, "%s/model.int8.onnx", c->dir);
    snprintf(bench, sizeof bench, "%s/bench.h5", c->dir);
    snprintf(calib, sizeof calib, "%s/calibration.h5", c->dir);
    snprintf(report, sizeof report, "%s/report.h5", c->dir);
    if (!exists(c->dir, "bench.h5")) {
        if (root) printf("== c%03d: bench\n", k);
        fflush(stdout);
        char *argv[12] = {"bench", (char *)o->job_path, "--int8", model, "-o", bench};
        int argc = 6;
        if (o->bench_time) argv[argc++] = "--time", argv[argc++] = (char *)o->bench_time;
        if (o->threads) argv[argc++] = "--threads", argv[argc++] = (char *)o->threads;
        if ((rc = cli_bench(argc, argv)) != 0) return rc;
    }
    if (root) printf("== c%03d: evaluate\n", k);
    fflush(stdout);
    char *argv[14] = {"evaluate", (char *)o->job_path, "--optimized", model, "-o", report, "--calibration", calib,
                      "--bench", bench, "--quiet"};
    int argc = 11;
    if (o->threads) argv[argc++] = "--threads", argv[argc++] = (char *)o->threads;
    return cli_evaluate(argc, argv);
}

/* ---- --summarize ---- */

struct row {
    int32_t id;
    char dir[16];
    int64_t subset;
    char preset[16], method[16];
    double percentile;
    int32_t bias_correction;
    char ignored[128];       /* the ignored scope when swept ("names a,b types c") */
    char metric[32];
    double parent, optimized, drop;
    double int8_latency_ms, int8_fps, latency_speedup, throughput_speedup;
    int32_t complete, pareto, recommended;
};

static int summarize(const char *dir)
{
    char manifest[4352];
    snprintf(manifest, sizeof manifest, "%s/manifest.json", dir);
    FILE *mf = fopen(manifest, "r");
    if (!mf) {
        QCAL_LOGE("%s: cannot open: %s (run qcal sweep JOB.yml -o %s first)", manifest, strerror(errno), dir);
        return qcal_status_exit_code(QCAL_IO_ERROR);
    }
    char job_path[4096] = "";
    if (fscanf(mf, "{\"job\": \"%4095[^\"]\"", job_path) != 1) job_path[0] = '\0';
    fclose(mf);
    struct qcal_job *job = NULL;
    enum qcal_status st = job_path[0] ? qcal_job_load(job_path, &job)
                                      : QCAL_ERR(QCAL_INVALID_DATA, "%s: not a sweep manifest", manifest);
    struct config *cf = NULL;
    int n = 0;
    if (st == QCAL_OK) st = configs_make(job, dir, &cf, &n);
    struct row *rows = st == QCAL_OK ? calloc((size_t)n, sizeof *rows) : NULL;
    if (st == QCAL_OK && !rows) st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    const struct qcal_job_accuracy_aware *aa = job ? &job->accuracy_aware : NULL;
    int complete = 0, best = -1;
    for (int k = 0; st == QCAL_OK && k < n; k++) {
        struct row *r = &rows[k];
        char v[5][64];
        r->id = k;
        snprintf(r->dir, sizeof r->dir, "c%03d", k);
        r->subset = atoll(axis_value(job, &cf[k], "subset", v[0], sizeof v[0]));
        snprintf(r->preset, sizeof r->preset, "%s", axis_value(job, &cf[k], "preset", v[1], sizeof v[1]));
        snprintf(r->method, sizeof r->method, "%s", axis_value(job, &cf[k], "method", v[2], sizeof v[2]));
        r->percentile = atof(axis_value(job, &cf[k], "percentile", v[3], sizeof v[3]));
        r->bias_correction = strcmp(axis_value(job, &cf[k], "bias_correction", v[4], sizeof v[4]), "true") == 0;
        if (swept(job, "ignored")) {
            FILE *m = fmemopen(r->ignored, sizeof r->ignored - 1, "w");
            if (m) scope_print(m, axis_value(job, &cf[k], "ignored", v[0], sizeof v[0]), false), fclose(m);
        }
        r->parent = r->optimized = r->drop = r->int8_latency_ms = r->int8_fps = NAN;
        r->latency_speedup = r->throughput_speedup = NAN;
        snprintf(r->metric, sizeof r->metric, "-");
        char rp[4352];
        snprintf(rp, sizeof rp, "%s/report.h5", cf[k].dir);
        struct qcal_h5 *f = NULL;
        if (access(rp, F_OK) != 0 || qcal_h5_open(rp, &f) != QCAL_OK) continue;
        qcal_log_capture((char[1]){0}, 1);
        if (cli_report_metric(job, rp, &r->parent, &r->optimized, r->metric, sizeof r->metric) != QCAL_OK)
            snprintf(r->metric, sizeof r->metric, "none");
        qcal_log_capture(NULL, 0);
        r->drop = cli_metric_drop(job, r->parent, r->optimized);
        double *lat = NULL, *fps = NULL, *ls = NULL, *ts = NULL;
        int64_t m = 0;
        qcal_log_capture((char[1]){0}, 1);
        if (qcal_h5_read_column_f64(f, "/performance/nodes", "latency_median_ms", &lat, &m) == QCAL_OK && m >= 2 &&
            qcal_h5_read_column_f64(f, "/performance/nodes", "throughput_fps", &fps, &m) == QCAL_OK &&
            qcal_h5_read_column_f64(f, "/performance/nodes", "latency_speedup", &ls, &m) == QCAL_OK &&
            qcal_h5_read_column_f64(f, "/performance/nodes", "throughput_speedup", &ts, &m) == QCAL_OK) {
            /* the first node's int8 row */
            r->int8_latency_ms = lat[1], r->int8_fps = fps[1], r->latency_speedup = ls[1];
            r->throughput_speedup = ts[1];
        }
        qcal_log_capture(NULL, 0);
        free(lat), free(fps), free(ls), free(ts);
        qcal_h5_close(f, false);
        r->complete = 1;
        complete++;
    }
    /* Pareto front: no other configuration at least as good on both (metric up, latency down)
     * and better on one; recommended: the fastest within max_drop (ties: the lower id) */
    for (int k = 0; st == QCAL_OK && k < n; k++) {
        struct row *r = &rows[k];
        if (!r->complete || isnan(r->optimized) || isnan(r->int8_latency_ms)) continue;
        bool dominated = false;
        for (int j = 0; j < n && !dominated; j++) {
            const struct row *q = &rows[j];
            if (j == k || !q->complete || isnan(q->optimized) || isnan(q->int8_latency_ms)) continue;
            dominated = q->optimized >= r->optimized && q->int8_latency_ms <= r->int8_latency_ms &&
                        (q->optimized > r->optimized || q->int8_latency_ms < r->int8_latency_ms);
        }
        r->pareto = !dominated;
        if (r->drop <= aa->max_drop && (best < 0 || r->int8_latency_ms < rows[best].int8_latency_ms)) best = k;
    }
    if (best >= 0) rows[best].recommended = 1;
#define C(f, t) {#f, t, offsetof(struct row, f), 0}
#define S(f) {#f, QCAL_H5_STRING, offsetof(struct row, f), sizeof(((struct row *)0)->f)}
    const struct qcal_h5_column cols[] = {
        C(id, QCAL_I32),         S(dir),  C(subset, QCAL_I64), S(preset), S(method), C(percentile, QCAL_F64),
        C(bias_correction, QCAL_I32), S(ignored), S(metric), C(parent, QCAL_F64), C(optimized, QCAL_F64), C(drop, QCAL_F64),
        C(int8_latency_ms, QCAL_F64), C(int8_fps, QCAL_F64), C(latency_speedup, QCAL_F64),
        C(throughput_speedup, QCAL_F64), C(complete, QCAL_I32), C(pareto, QCAL_I32), C(recommended, QCAL_I32)};
#undef C
#undef S
    char out[4352];
    snprintf(out, sizeof out, "%s/sweep.h5", dir);
    struct qcal_h5 *f = NULL;
    if (st == QCAL_OK) st = qcal_h5_create(out, &f);
    if (st == QCAL_OK) st = qcal_h5_attr_string(f, "/", "job_file", job->path);
    if (st == QCAL_OK) st = qcal_h5_attr_f64(f, "/", "max_drop", aa->max_drop);
    if (st == QCAL_OK) st = qcal_h5_attr_string(f, "/", "drop_type", aa->drop_type ? "relative" : "absolute");
    if (st == QCAL_OK) st = qcal_h5_attr_i64(f, "/", "recommended", best);
    if (st == QCAL_OK)
        st = qcal_h5_write_table(f, "/configurations", (int)(sizeof cols / sizeof *cols), cols, n, sizeof *rows, rows);
    if (f) {
        enum qcal_status cst = qcal_h5_close(f, st == QCAL_OK);
        if (st == QCAL_OK) st = cst;
    }
    if (st == QCAL_OK) {
        printf("sweep %s: %d of %d configurations complete (%s)\n", dir, complete, n, job->path);
        printf("%-5s %7s %-11s %-11s %8s %3s %-16s %9s %9s %9s %10s %9s %8s %s\n", "conf", "subset", "preset", "method",
               "pctl", "bc", "metric", "FP32", "INT8", "drop", "lat(ms)", "FPS", "speedup", "");
        for (int k = 0; k < n; k++) {
            const struct row *r = &rows[k];
            printf("c%03d  %7lld %-11s %-11s %8.6g %3s %-16s", k, (long long)r->subset, r->preset, r->method,
                   r->percentile, r->bias_correction ? "yes" : "no", r->metric);
            if (!r->complete) {
                printf(" (not complete)\n");
                continue;
            }
            printf(" %9.4f %9.4f %9.4f %10.3f %9.1f %7.2fx %s%s%s%s%s\n", r->parent, r->optimized, r->drop,
                   r->int8_latency_ms, r->int8_fps, r->latency_speedup, r->pareto ? "pareto" : "",
                   r->recommended ? " RECOMMENDED" : "", r->ignored[0] ? " (FP32: " : "", r->ignored,
                   r->ignored[0] ? ")" : "");
        }
        if (best >= 0)
            printf("recommended: c%03d, the fastest INT8 model within a %s drop of %g\n", best,
                   aa->drop_type ? "relative" : "absolute", (double)aa->max_drop);
        else
            printf("no complete configuration is within a drop of %g\n", (double)aa->max_drop);
        printf("wrote %s\n", out);
    }
    free(rows);
    free(cf);
    qcal_job_destroy(job);
    return qcal_status_exit_code(st);
}

int cli_sweep(int argc, char **argv)
{
    enum { O_CONFIG = 1000, O_STATS, O_SUMMARIZE, O_BENCH_TIME, O_THREADS, O_CAL_ONLY, O_LIST, O_FAST };
    static const struct option opts[] = {
        {"output-dir", required_argument, 0, 'o'},     {"config", required_argument, 0, O_CONFIG},
        {"stats-only", no_argument, 0, O_STATS},       {"summarize", no_argument, 0, O_SUMMARIZE},
        {"bench-time", required_argument, 0, O_BENCH_TIME}, {"threads", required_argument, 0, O_THREADS},
        {"calibrate-only", no_argument, 0, O_CAL_ONLY}, {"list", no_argument, 0, O_LIST},
        {"fast", no_argument, 0, O_FAST},
        {"help", no_argument, 0, 'h'},                 {0, 0, 0, 0}};
    const char *out = NULL;
    struct run_opts o = {0};
    int only = -1;
    bool stats_only = false, summary = false, list = false;
    enum qcal_status st = QCAL_OK;
    optind = 1;
    opterr = 0;
    cli_hold_errors();
    int ch;
    while ((ch = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (ch) {
        case 'o': out = optarg; break;
        case O_CONFIG: only = atoi(optarg) >= 0 ? atoi(optarg) : -2; break;
        case O_STATS: stats_only = true; break;
        case O_CAL_ONLY: o.calibrate_only = true; break;
        case O_LIST: list = true; break;
        case O_FAST: o.fast = true; break;
        case O_SUMMARIZE: summary = true; break;
        case O_BENCH_TIME: o.bench_time = optarg; break;
        case O_THREADS: o.threads = optarg; break;
        case 'h':
            if (qcal_par_rank() == 0) fputs(usage, stdout);
            return 0;
        default:
            st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "sweep: unknown option or missing value in '%s' (see qcal sweep "
                          "--help)", argv[optind - 1]);
        }
    }
    if (st == QCAL_OK && summary) {
        if (optind != argc - 1)
            st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "sweep --summarize: expected the sweep's DIR (see qcal sweep --help)");
        if ((st = cli_agree(st)) != QCAL_OK) return qcal_status_exit_code(st);
        return qcal_par_rank() == 0 ? summarize(argv[optind]) : 0;
    }
    if (st == QCAL_OK && (optind != argc - 1 || !out))
        st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "sweep: expected JOB.yml and -o DIR (see qcal sweep --help)");
    if (st == QCAL_OK && only == -2) st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "--config must be >= 0");
    struct qcal_job *job = NULL;
    struct config *cf = NULL;
    int n = 0;
    if (st == QCAL_OK) st = qcal_job_load(argv[optind], &job);
    if (st == QCAL_OK) st = configs_make(job, out, &cf, &n);
    if (st == QCAL_OK && only >= n)
        st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "--config %d: the sweep has configurations 0 to %d", only, n - 1);
    if (st == QCAL_OK && qcal_par_rank() == 0) {
        if (mkdir(out, 0777) != 0 && errno != EEXIST)
            st = QCAL_ERR(QCAL_IO_ERROR, "%s: cannot create: %s", out, strerror(errno));
        if (st == QCAL_OK) st = write_manifest(job, out, cf, n, o.fast);
    }
    st = cli_agree(st);
    if (st == QCAL_OK && list) { /* the manifest, and the configurations in a few words */
        if (qcal_par_rank() == 0) {
            printf("%d configurations (%s/manifest.json)\n", n, out);
            for (int k = 0; k < n; k++) {
                printf("c%03d", k);
                for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
                    char buf[64];
                    const char *v = axis_value(job, &cf[k], keys[i], buf, sizeof buf);
                    if (strcmp(keys[i], "ignored") != 0) printf(" %s=%s", keys[i], v);
                    else if (swept(job, "ignored")) printf(" ignored=["), scope_print(stdout, v, false), printf("]");
                }
                printf("%s\n", exists(cf[k].dir, "report.h5") ? " (complete)" : "");
            }
        }
        free(cf);
        qcal_job_destroy(job);
        return 0;
    }
    int rc = qcal_status_exit_code(st), failed = 0;
    cli_calibrate_keep_recorded(true);
    o.job_path = argv[optind];
    o.n = n;
    for (int k = 0; st == QCAL_OK && k < n; k++) {
        if (only >= 0 && k != only) continue;
        if (stats_only && cf[k].leader != k) continue;
        if (qcal_par_rank() == 0 && only < 0)
            printf("== configuration %d of %d (c%03d)\n", k + 1, n, k);
        const int r = run_config(job, cf, k, &o, stats_only);
        if (r != 0) { /* the others still run; the sweep ends non-zero */
            failed++;
            if (!rc) rc = r;
            if (qcal_par_rank() == 0) printf("== c%03d failed (exit %d)\n", k, r);
        }
    }
    if (st == QCAL_OK && qcal_par_rank() == 0 && only < 0 && !stats_only)
        printf("sweep: %d of %d configurations done%s; qcal sweep --summarize %s\n", n - failed, n,
               failed ? " (the failed ones rerun on the next call)" : "", out);
    cli_calibrate_keep_recorded(false);
    free(cf);
    qcal_job_destroy(job);
    return rc;
}
