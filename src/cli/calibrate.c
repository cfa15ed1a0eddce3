/* qcal calibrate JOB.yml -o OUTDIR: MPI ranks shard the calibration images, OpenMP threads
 * run whole images with a statistics observer, statistics are reduced over ranks, scales
 * are searched, and rank 0 writes OUTDIR/model.int8.onnx (QDQ) and OUTDIR/calibration.h5. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "qcal/calib.h"
#include "qcal/data.h"
#include "qcal/job.h"
#include "qcal/onnx.h"
#include "qcal/par.h"
#include "qcal/quant.h"
#include "qcal/report.h"
#include "qcal/runtime.h"

static const char usage[] =
    "usage: qcal calibrate JOB.yml -o OUTDIR [options]\n"
    "       mpirun -np N qcal calibrate JOB.yml -o OUTDIR     (or srun --mpi=pmix)\n"
    "\n"
    "Gathers activation statistics of the job's model on its calibration dataset (the\n"
    "validation dataset if there is none), MPI ranks sharding the images and OpenMP threads\n"
    "running whole images, and writes:\n"
    "  OUTDIR/model.int8.onnx   the INT8 model (ONNX QDQ, opset >= 13)\n"
    "  OUTDIR/calibration.h5    statistics (min/max, histograms) and the chosen scales;\n"
    "                           identical bytes for any number of ranks and threads\n"
    "  OUTDIR/timing.h5         time per stage and rank (min/mean/max over ranks)\n"
    "\n"
    "options (override the job's calibration section):\n"
    "  -o, --output-dir DIR     where the outputs go (created if missing)\n"
    "  --method M               minmax | mean_minmax | percentile | entropy | mse\n"
    "  --preset P               performance (int8 symmetric) | mixed (uint8 asymmetric)\n"
    "  --percentile P           for --method percentile (default 99.999)\n"
    "  --subset N               calibration images (default: the job's, 300)\n"
    "  --from-stats FILE.h5     reuse the statistics of an earlier run (one inference pass\n"
    "                           instead of three: the error pass below)\n"
    "  --no-bias-correction     keep the biases (the job's calibration.bias_correction: false)\n"
    "  --ignore NODE            keep this node in FP32 too (repeatable; after the job's ignored names)\n"
    "  --ignore-type OP         keep every node of this op type in FP32 too (repeatable)\n"
    "  --no-job-ignored         drop the job's ignored scope (before --ignore / --ignore-type)\n"
    "  --no-error-pass          no error pass: no per-layer SQNR table (needs --no-bias-correction)\n"
    "  --reuse-errors           with --from-stats: take the error pass's results from that run too and\n"
    "                           make no pass over the images (a model with fewer quantized layers)\n"
    "  --record-inputs          the error pass also histograms each bias-corrected layer's input\n"
    "                           per channel (/inputs in calibration.h5, for --shared-bias)\n"
    "  --record-images N        record on N images at most, spread over the set (default 64)\n"
    "  --shared-bias            with --from-stats of a --record-inputs run: bias correction without\n"
    "                           a pass over the images, that run's measured shifts moved by what\n"
    "                           these scales change in each layer's mean input (estimated from its\n"
    "                           histograms; exact when the scales are that run's); no SQNR table\n"
    "  --threads N              OpenMP threads per rank\n"
    "  --kernels dnnl|blas|ref  force a kernel family\n"
    "  --quiet                  no progress line\n"
    "  -h, --help               this help\n";

/* The observers' time is its own stage, the inference stages exclude it; each "observers"
 * stage follows its inference stage in the enum. */
enum {
    STAGE_DECODE, STAGE_INFER, STAGE_OBSERVE, STAGE_ERROR, STAGE_ERROR_OBSERVE, STAGE_REDUCE, STAGE_SEARCH,
    STAGE_WRITE, N_STAGES
};
static const char *const stage_names[N_STAGES] = {"decode",          "inference",    "observers",
                                                  "error_pass",      "error_observers", "reduction",
                                                  "scale_search",    "write"};

struct progress {
    bool on, tty;
    const char *what;
    int64_t total;
    double start, last;
};

/* Rank 0, main thread: one line for the whole job (all ranks' images). */
static void progress_show(struct progress *p, bool final)
{
    if (!p->on || qcal_par_rank() != 0) return;
    double now = qcal_now();
    if (!final && now - p->last < (p->tty ? 0.25 : 5.0)) return;
    p->last = now;
    int64_t done = final ? p->total : qcal_par_progress_total();
    double rate = done / fmax(now - p->start, 1e-9);
    double eta = rate > 0 ? (p->total - done) / rate : 0;
    fprintf(stderr, "%s%s: %lld/%lld images, %.1f images/s, ETA %.0f s%s", p->tty ? "\r" : "", p->what,
            (long long)done, (long long)p->total, rate, eta, p->tty && !final ? "\033[K" : "\n");
    fflush(stderr);
}

/* What a pass observes: the statistics passes (calib) or the error pass (twins). */
struct pass_hooks {
    qcal_observer_fn observer;
    void *(*thread)(void *arg, int tid);                               /* observer context */
    void (*input)(void *tctx, int value, const struct qcal_tensor *x); /* NULL: not observed */
    void (*done)(void *tctx);                                          /* NULL: nothing per image */
    void (*image)(void *tctx, int64_t index);                          /* NULL: the index not needed */
    void *arg;
};

/* An observer with its time measured (per thread). */
struct timed_observer {
    qcal_observer_fn fn;
    void *ctx;
    double seconds;
};

static void timed_observe(void *p, const struct qcal_node *node, int n_out, struct qcal_tensor *const *outs,
                          const uint8_t *layouts)
{
    struct timed_observer *t = p;
    const double t0 = qcal_now();
    t->fn(t->ctx, node, n_out, outs, layouts);
    t->seconds += qcal_now() - t0;
}

static void *calib_thread(void *c, int tid) { return qcal_calib_thread(c, tid); }
static void calib_input(void *t, int v, const struct qcal_tensor *x) { qcal_calib_observe_value(t, v, x); }
static void calib_done(void *t) { qcal_calib_image_done(t); }
static void *error_thread(void *e, int tid) { return qcal_error_thread(e, tid); }
static void error_input(void *t, int v, const struct qcal_tensor *x) { qcal_error_observe_input(t, v, x); }
static void error_image(void *t, int64_t index) { qcal_error_image(t, index); }

/* One pass over this rank's images [begin, end) with an observer. */
static enum qcal_status run_pass(const struct qcal_job *job, const struct qcal_dataset *ds, int64_t begin,
                                 int64_t end, const struct qcal_plan *plan, const struct cli_image_input *in,
                                 int input_value, const struct pass_hooks *h, bool skip_bad, int64_t *observed,
                                 double *seconds, int infer_stage, struct progress *pg)
{
    const int64_t n = end - begin;
    enum qcal_status *status;
    char **errors;
    if (cli_image_outcome_new(n, &status, &errors) != QCAL_OK) return QCAL_OUT_OF_MEMORY;
    int failed = 0;
    int64_t done = 0;
    double decode = 0, infer = 0, observe = 0;
#pragma omp parallel reduction(+ : decode, infer, observe)
    {
        void *ct = h->thread(h->arg, omp_get_thread_num());
        struct timed_observer to = {h->observer, ct, 0};
        struct qcal_exec *ex = NULL;
        struct qcal_tensor x = in->t;
        x.data = qcal_malloc(qcal_tensor_bytes(&in->t));
        enum qcal_status tst = x.data ? qcal_exec_create(plan, &ex) : QCAL_OUT_OF_MEMORY;
        if (ex) qcal_exec_set_observer(ex, timed_observe, &to);
#pragma omp for schedule(dynamic)
        for (int64_t k = 0; k < n; k++) {
            int stop;
#pragma omp atomic read
            stop = failed;
            if (stop || tst != QCAL_OK) {
                status[k] = tst != QCAL_OK ? tst : CLI_NOT_RUN;
                continue;
            }
            const char *path = ds->paths[begin + k];
            if (h->image) h->image(ct, begin + k);
            char err[1024] = "";
            qcal_log_capture(err, sizeof err);
            double t0 = qcal_now();
            enum qcal_status s = cli_image_tensor(job, in, path, &x, NULL, NULL);
            double t1 = qcal_now();
            bool bad = cli_image_unreadable(s);
            if (s == QCAL_OK) {
                const double ti = qcal_now();
                if (h->input) h->input(ct, input_value, &x);
                to.seconds += qcal_now() - ti;
                s = qcal_exec_set_input(ex, 0, &x);
            }
            if (s == QCAL_OK) s = qcal_exec_run(ex);
            if (s == QCAL_OK && h->done) h->done(ct);
            decode += t1 - t0;
            infer += qcal_now() - t1;
            qcal_log_capture(NULL, 0);
            status[k] = s;
            if (s != QCAL_OK) {
                errors[k] = strdup(err[0] ? err : qcal_status_str(s));
                if (!(bad && skip_bad)) {
#pragma omp atomic write
                    failed = 1;
                }
                if (bad && skip_bad) status[k] = CLI_SKIPPED;
            }
            int64_t d;
#pragma omp atomic capture
            d = ++done;
            if (omp_get_thread_num() == 0) { /* the main thread: the only one that talks to MPI */
                qcal_par_progress_post(d);
                progress_show(pg, false);
            }
        }
        observe += to.seconds;
        qcal_exec_destroy(ex);
        qcal_free(x.data);
    }
    const enum qcal_status st = cli_image_outcome(n, status, errors, observed);
    seconds[STAGE_DECODE] += decode;
    seconds[infer_stage] += infer - observe;
    seconds[infer_stage + 1] += observe; /* its observers stage */
    return st;
}

/* Pass `pass` of `passes` with its progress line; *total: the images all ranks observed.
 * Collective; the caller agrees on the status. */
static enum qcal_status observe_pass(const struct qcal_job *job, const struct qcal_dataset *ds, int64_t begin,
                                     int64_t end, const struct qcal_plan *plan, const struct cli_image_input *in,
                                     int input_value, const struct pass_hooks *h, bool skip_bad, int pass, int passes,
                                     bool quiet, double *seconds, int infer_stage, int64_t *total)
{
    char what[64];
    snprintf(what, sizeof what, "calibrate pass %d/%d", pass, passes);
    struct progress pg = {.on = !quiet, .tty = isatty(2), .what = what, .total = ds->count, .start = qcal_now()};
    int64_t observed = 0;
    enum qcal_status st = run_pass(job, ds, begin, end, plan, in, input_value, h, skip_bad, &observed, seconds,
                                   infer_stage, &pg);
    qcal_par_progress_end();
    *total = observed;
    enum qcal_status rst = qcal_par_allreduce_i64_sum(total, 1); /* every rank, failed or not */
    if (st != QCAL_OK) return st;
    if (rst != QCAL_OK) return rst;
    progress_show(&pg, true);
    if (*total == 0) /* every rank knows the same total */
        return QCAL_ERR(QCAL_INVALID_DATA, "%s: none of the %lld calibration images could be read", job->path,
                        (long long)ds->count);
    return QCAL_OK;
}

/* One quantized layer's quantization error and its bias correction. */
struct layer_result {
    double sqnr_db, sqnr_db_uncorrected; /* 10 log10(E[y^2] / E[e^2]) over all channels */
    double max_shift;                    /* largest |bias shift| */
    bool corrected;
    double *shift;                       /* per channel: -E[e] (corrected layers), owned */
};

static double sqnr_db(double signal, double noise)
{
    return noise > 0 ? 10.0 * log10(signal / noise) : INFINITY;
}

/* Fast bias correction (POT/NNCF): the per-channel mean of e over the calibration set is
 * subtracted from the bias; what is left of e is its variance E[e^2] - E[e]^2. */
static void layer_result(const struct qcal_quant_layer *q, const struct qcal_error_layer *e, bool correct,
                         struct layer_result *r)
{
    double signal = 0, noise = 0, centred = 0;
    memset(r, 0, sizeof *r);
    r->corrected = correct && q->bias_correctable;
    if (r->corrected && !(r->shift = calloc((size_t)q->channels + 1, sizeof *r->shift))) r->corrected = false;
    for (int64_t c = 0; c < q->channels; c++) {
        const double *m = e->mean + 4 * c; /* y, y^2, e, e^2 */
        signal += m[1];
        noise += m[3];
        centred += fmax(m[3] - m[2] * m[2], 0);
        if (!r->corrected) continue;
        r->shift[c] = -m[2];
        r->max_shift = fmax(r->max_shift, fabs(m[2]));
    }
    r->sqnr_db_uncorrected = sqnr_db(signal, noise);
    r->sqnr_db = r->corrected ? sqnr_db(signal, centred) : r->sqnr_db_uncorrected;
}

/* The layers that lose the most: what to look at first when accuracy drops. */
static void print_worst_layers(const struct qcal_quant_twins *tw, const struct layer_result *lr, bool bias_correction)
{
    enum { SHOW = 5 };
    int worst[SHOW], n = 0;
    for (int j = 0; j < tw->n; j++) { /* insertion into the SHOW lowest, ties by layer order */
        int k = n < SHOW ? n++ : SHOW;
        if (k == SHOW && !(lr[j].sqnr_db < lr[worst[SHOW - 1]].sqnr_db)) continue;
        if (k == SHOW) k = SHOW - 1;
        while (k > 0 && lr[j].sqnr_db < lr[worst[k - 1]].sqnr_db) worst[k] = worst[k - 1], k--;
        worst[k] = j;
    }
    if (n == 0) return;
    int corrected = 0;
    for (int j = 0; j < tw->n; j++) corrected += lr[j].corrected;
    printf("bias correction: %s (%d layers)\nlowest SQNR (INT8-simulated vs FP32 output, dB):\n",
           bias_correction ? "on" : "off", corrected);
    for (int i = 0; i < n; i++) {
        const struct qcal_quant_layer *l = &tw->layers[worst[i]];
        printf("  %7.2f  %-18s %s\n", lr[worst[i]].sqnr_db, l->op, l->name[0] ? l->name : l->output);
    }
}

/* What the error pass needs from the command. */
struct error_pass {
    const struct qcal_job *job;
    const struct qcal_dataset *ds;
    int64_t begin, end;
    const struct cli_image_input *in;
    const struct qcal_quant_options *qo;
    int n_selected;
    const struct qcal_plan_options *plo;
    bool skip_bad;
    int passes;
    bool quiet;
    bool record_inputs; /* histogram the bias-corrected layers' inputs per channel */
    int64_t record_images; /* on at most this many images */
};

/* The index of name in names[n], -1 if absent. */
static int find_name(char *const *names, int n, const char *name)
{
    for (int k = 0; k < n; k++)
        if (strcmp(names[k], name) == 0) return k;
    return -1;
}

/* The statistics of the tensor called name, NULL if it has none. */
static const struct qcal_calib_stat *stat_named(const struct qcal_calib *c, const char *name)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->stats[i].name, name) == 0) return &c->stats[i];
    return NULL;
}

/* The distinct inputs of the bias-correctable twins, ranged by their statistics. */
static enum qcal_status record_inputs(const struct qcal_graph *tg, const struct qcal_quant_twins *tw,
                                      const struct qcal_calib *c, int64_t images, struct qcal_calib_error *err)
{
    struct qcal_error_input *in = calloc((size_t)tw->n + 1, sizeof *in);
    if (!in) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    int n = 0;
    enum qcal_status st = QCAL_OK;
    for (int j = 0; j < tw->n; j++) {
        const struct qcal_quant_layer *l = &tw->layers[j];
        if (!l->bias_correctable || l->input < 0) continue;
        int k = 0;
        while (k < n && in[k].value != l->input) k++;
        if (k < n) {
            if (in[k].axis != l->input_axis || in[k].channels != l->input_channels)
                st = QCAL_ERR(QCAL_UNSUPPORTED, "%s: tensor '%s' feeds layers with different channel axes",
                              tg->path, tg->values[l->input].name);
            continue;
        }
        const struct qcal_calib_stat *s = stat_named(c, tg->values[l->input].name);
        if (!s) continue; /* every quantized input has statistics */
        in[n++] = (struct qcal_error_input){.value = l->input, .axis = l->input_axis, .channels = l->input_channels,
                                            .lo = s->min, .hi = s->max};
    }
    /* a few dozen images are enough for channel means, and a fraction of the pass's time */
    if (st == QCAL_OK) st = qcal_error_add_inputs(err, in, n, (err->images + images - 1) / images);
    free(in);
    return st;
}

/* Loads a second copy of the model (*tg), adds each quantized layer's INT8-simulated twin
 * with the scales in c, and runs the images through it with the error observer: *err holds
 * every layer's per-channel means of y, y^2, e, e^2. Collective; the caller agrees. */
static enum qcal_status error_pass(const struct error_pass *p, const struct qcal_calib *c, double *seconds,
                                   struct qcal_graph **tg, struct qcal_quant_twins *tw, struct qcal_calib_error **err)
{
    struct qcal_quant_sel sel = {0};
    struct qcal_plan *plan = NULL;
    struct qcal_error_layer *el = NULL;
    const struct qcal_prepare_options po = {0}; /* inputs already bound, nothing to fold again */
    enum qcal_status st = cli_job_model(p->job, false, tg);
    if (st == QCAL_OK) st = qcal_quant_select(*tg, p->qo, &sel);
    if (st == QCAL_OK && sel.n_nodes != p->n_selected)
        st = QCAL_ERR(QCAL_INVALID_MODEL, "%s: the model selected differently on a second load", p->job->model);
    if (st == QCAL_OK) st = qcal_quant_add_twins(*tg, &sel, c, tw);
    if (st == QCAL_OK) st = qcal_model_prepare(*tg, &po);
    if (st == QCAL_OK) st = qcal_plan_create(*tg, p->plo, &plan);
    if (st == QCAL_OK && !(el = calloc((size_t)tw->n + 1, sizeof *el))) st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    for (int j = 0; st == QCAL_OK && j < tw->n; j++)
        el[j] = (struct qcal_error_layer){.y = tw->layers[j].y, .error = tw->layers[j].error,
                                         .axis = tw->layers[j].axis, .channels = tw->layers[j].channels,
                                         .bound = tw->layers[j].bound};
    if (st == QCAL_OK) st = qcal_error_create(*tg, el, tw->n, omp_get_max_threads(), p->ds->count, err);
    if (st == QCAL_OK && p->record_inputs) st = record_inputs(*tg, tw, c, p->record_images, *err);
    /* agreement points (one error line, see agree) before each collective step */
    if ((st = cli_agree(st)) != QCAL_OK) goto done;
    const struct pass_hooks hooks = {qcal_error_observer, error_thread, p->record_inputs ? error_input : NULL, NULL,
                                     p->record_inputs ? error_image : NULL, *err};
    int64_t total = 0;
    st = observe_pass(p->job, p->ds, p->begin, p->end, plan, p->in, (*tg)->inputs[0], &hooks, p->skip_bad, p->passes,
                      p->passes, p->quiet, seconds, STAGE_ERROR, &total);
    if ((st = cli_agree(st)) != QCAL_OK) goto done;
    const double t0 = qcal_now();
    (*err)->images = total;
    st = qcal_error_end(*err);
    seconds[STAGE_REDUCE] += qcal_now() - t0;
done:
    free(el);
    qcal_plan_destroy(plan);
    qcal_quant_sel_free(&sel);
    return st;
}

/* --reuse-errors: the error pass's per-channel means of each quantized layer, read back from
 * the calibration.h5 of the run whose statistics (and so scales) these are. */
static enum qcal_status reuse_errors(const char *path, const struct qcal_job *job, const struct qcal_quant_options *qo,
                                     int n_selected, const struct qcal_calib *c, struct qcal_graph **tg,
                                     struct qcal_quant_twins *tw, struct qcal_calib_error **out)
{
    struct qcal_quant_sel sel = {0};
    struct qcal_h5 *f = NULL;
    char **outputs = NULL;
    int n_saved = 0;
    struct qcal_tensor off = {0}, chans = {0}, means = {0};
    double images = 0;
    enum qcal_status st = cli_job_model(job, false, tg);
    if (st == QCAL_OK) st = qcal_quant_select(*tg, qo, &sel);
    if (st == QCAL_OK && sel.n_nodes != n_selected)
        st = QCAL_ERR(QCAL_INVALID_MODEL, "%s: the model selected differently on a second load", job->model);
    if (st == QCAL_OK) st = qcal_quant_add_twins(*tg, &sel, c, tw);
    if (st == QCAL_OK) st = qcal_h5_open(path, &f);
    if (st == QCAL_OK) st = qcal_h5_read_strings(f, "/layers/output", &n_saved, &outputs);
    if (st == QCAL_OK) st = qcal_h5_read(f, "/layers/channel_offset", QCAL_I64, &off);
    if (st == QCAL_OK) st = qcal_h5_read(f, "/layers/channels", QCAL_I64, &chans);
    if (st == QCAL_OK) st = qcal_h5_read(f, "/layers/channel_means", QCAL_F64, &means);
    if (st == QCAL_OK) st = qcal_h5_read_attr_f64(f, "/layers", "images", &images);
    struct qcal_calib_error *e = st == QCAL_OK ? calloc(1, sizeof *e) : NULL;
    if (st == QCAL_OK && (!e || !(e->layers = calloc((size_t)tw->n + 1, sizeof *e->layers))))
        st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    if (st == QCAL_OK) e->n = tw->n, e->images = (int64_t)images;
    const int64_t total = st == QCAL_OK ? qcal_tensor_numel(&means) / 4 : 0;
    for (int j = 0; st == QCAL_OK && j < tw->n; j++) {
        const struct qcal_quant_layer *l = &tw->layers[j];
        const int k = find_name(outputs, n_saved, l->output);
        const int64_t o = k >= 0 ? ((int64_t *)off.data)[k] : 0;
        if (k < 0 || ((int64_t *)chans.data)[k] != l->channels || o < 0 || o + l->channels > total) {
            st = QCAL_ERR(QCAL_INVALID_DATA, "%s: no error pass results for layer '%s' (%s) with %lld channels "
                          "(another model's or another selection's statistics?)", path, l->name, l->output,
                          (long long)l->channels);
            break;
        }
        struct qcal_error_layer *el = &e->layers[j];
        *el = (struct qcal_error_layer){.y = l->y, .error = l->error, .axis = l->axis, .channels = l->channels,
                                        .bound = l->bound, .offset = e->total_channels};
        if (!(el->mean = malloc(sizeof *el->mean * 4 * (size_t)l->channels))) {
            st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
            break;
        }
        memcpy(el->mean, (double *)means.data + 4 * o, sizeof *el->mean * 4 * (size_t)l->channels);
        e->total_channels += l->channels;
    }
    if (st == QCAL_OK) *out = e;
    else qcal_error_destroy(e);
    for (int k = 0; outputs && k < n_saved; k++) free(outputs[k]);
    free(outputs);
    free(off.data), free(chans.data), free(means.data);
    qcal_h5_close(f, false);
    qcal_quant_sel_free(&sel);
    return st;
}

/* What --shared-bias reads from the recording run's calibration.h5: its input histograms
 * and its activation quantizers. */
struct recorded {
    char path[4096];
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    char **in_names, **t_names;
    int n_in, n_t;
    struct qcal_tensor chans, off, range, points, start, count, bmin, bmax, scale, zp, dtype;
};

static void recorded_free(struct recorded *r)
{
    for (int k = 0; r->in_names && k < r->n_in; k++) free(r->in_names[k]);
    for (int k = 0; r->t_names && k < r->n_t; k++) free(r->t_names[k]);
    free(r->in_names), free(r->t_names);
    struct qcal_tensor *t[] = {&r->chans, &r->off, &r->range, &r->points, &r->start, &r->count, &r->bmin, &r->bmax,
                               &r->scale, &r->zp, &r->dtype};
    for (size_t k = 0; k < sizeof t / sizeof *t; k++) free(t[k]->data);
    memset(r, 0, sizeof *r);
}

/* The last recording read, kept between the configurations of one sweep process (qcal
 * sweep calls cli_calibrate once per configuration, most of them from the same file). */
static struct recorded cache;
static bool keep_cache;

void cli_calibrate_keep_recorded(bool keep)
{
    keep_cache = keep;
    if (!keep) recorded_free(&cache);
}

static enum qcal_status recorded_load(const char *path, const struct recorded **out)
{
    struct stat sb;
    if (stat(path, &sb) != 0) return QCAL_ERR(QCAL_IO_ERROR, "%s: %s", path, strerror(errno));
    if (cache.in_names && strcmp(cache.path, path) == 0 && cache.dev == sb.st_dev && cache.ino == sb.st_ino &&
        cache.size == sb.st_size && cache.mtime.tv_sec == sb.st_mtim.tv_sec && cache.mtime.tv_nsec == sb.st_mtim.tv_nsec) {
        *out = &cache;
        return QCAL_OK;
    }
    recorded_free(&cache);
    struct recorded *r = &cache;
    struct qcal_h5 *f = NULL;
    enum qcal_status st = qcal_h5_open(path, &f);
    if (st == QCAL_OK && !qcal_h5_file_has(path, "/inputs/bin_start"))
        st = QCAL_ERR(QCAL_INVALID_DATA, "%s: no input histograms for --shared-bias (calibrate that run with "
                      "--record-inputs)", path);
    if (st == QCAL_OK) st = qcal_h5_read_strings(f, "/inputs/name", &r->n_in, &r->in_names);
    if (st == QCAL_OK) st = qcal_h5_read(f, "/inputs/channels", QCAL_I64, &r->chans);
    if (st == QCAL_OK) st = qcal_h5_read(f, "/inputs/channel_offset", QCAL_I64, &r->off);
    if (st == QCAL_OK) st = qcal_h5_read(f, "/inputs/range", QCAL_F32, &r->range);
    if (st == QCAL_OK) st = qcal_h5_read(f, "/inputs/point_masses", QCAL_U64, &r->points);
    if (st == QCAL_OK) st = qcal_h5_read(f, "/inputs/bin_start", QCAL_I64, &r->start);
    if (st == QCAL_OK) st = qcal_h5_read(f, "/inputs/bin_count", QCAL_U64, &r->count);
    if (st == QCAL_OK) st = qcal_h5_read(f, "/inputs/bin_min", QCAL_F32, &r->bmin);
    if (st == QCAL_OK) st = qcal_h5_read(f, "/inputs/bin_max", QCAL_F32, &r->bmax);
    if (st == QCAL_OK) st = qcal_h5_read_strings(f, "/tensors/name", &r->n_t, &r->t_names);
    if (st == QCAL_OK) st = qcal_h5_read(f, "/scales/scale", QCAL_F32, &r->scale);
    if (st == QCAL_OK) st = qcal_h5_read(f, "/scales/zero_point", QCAL_I32, &r->zp);
    if (st == QCAL_OK) st = qcal_h5_read(f, "/scales/dtype", QCAL_I32, &r->dtype);
    const int64_t channels = qcal_tensor_numel(&r->points) / 3, nnz = qcal_tensor_numel(&r->count);
    const int64_t n_in = r->n_in, n_t = r->n_t;
    if (st == QCAL_OK && (qcal_tensor_numel(&r->chans) != n_in || qcal_tensor_numel(&r->off) != n_in ||
                          qcal_tensor_numel(&r->range) != 2 * n_in || qcal_tensor_numel(&r->scale) != n_t ||
                          qcal_tensor_numel(&r->zp) != n_t || qcal_tensor_numel(&r->dtype) != n_t ||
                          qcal_tensor_numel(&r->start) != channels + 1 || qcal_tensor_numel(&r->bmin) != nnz ||
                          qcal_tensor_numel(&r->bmax) != nnz))
        st = QCAL_ERR(QCAL_INVALID_DATA, "%s: /inputs or /scales tables of inconsistent sizes", path);
    for (int k = 0; st == QCAL_OK && k < r->n_in; k++) {
        const int64_t o = ((int64_t *)r->off.data)[k], c = ((int64_t *)r->chans.data)[k];
        if (o < 0 || c < 0 || o + c > channels)
            st = QCAL_ERR(QCAL_INVALID_DATA, "%s: /inputs/channel_offset of '%s' out of range", path, r->in_names[k]);
    }
    const int64_t *start = r->start.data;
    for (int64_t c = 0; st == QCAL_OK && c < channels; c++)
        if (start[c] < 0 || start[c] > start[c + 1] || start[c + 1] > nnz)
            st = QCAL_ERR(QCAL_INVALID_DATA, "%s: /inputs/bin_start is not a partition of the bins", path);
    qcal_h5_close(f, false);
    if (st != QCAL_OK) {
        recorded_free(r);
        return st;
    }
    snprintf(r->path, sizeof r->path, "%s", path);
    r->dev = sb.st_dev, r->ino = sb.st_ino, r->size = sb.st_size, r->mtime = sb.st_mtim;
    *out = r;
    return QCAL_OK;
}

/* --shared-bias: err holds the means of e measured in the run at `path` (reuse_errors), with
 * that run's activation scales; each bias-corrected layer's mean of e is moved by what these
 * scales (c) change in its mean output: d[i] = E[Q1(x_i)] - E[Q0(x_i)] over the run's
 * histogram of input channel i, through the INT8 weight (qcal_quant_mean_effect). */
static enum qcal_status shared_bias(const char *path, const struct qcal_graph *g, const struct qcal_graph *tg,
                                    const struct qcal_quant_twins *tw, const struct qcal_calib *c,
                                    struct qcal_calib_error *err)
{
    const struct recorded *r = NULL;
    double *d = NULL, *delta = NULL;
    enum qcal_status st = recorded_load(path, &r);
    for (int j = 0; st == QCAL_OK && j < tw->n; j++) {
        const struct qcal_quant_layer *l = &tw->layers[j];
        if (!l->bias_correctable || l->input < 0) continue;
        const char *name = tg->values[l->input].name;
        const int k = find_name(r->in_names, r->n_in, name), t = find_name(r->t_names, r->n_t, name);
        const struct qcal_calib_stat *s = stat_named(c, name);
        const int64_t o = k >= 0 ? ((int64_t *)r->off.data)[k] : -1, ch = k >= 0 ? ((int64_t *)r->chans.data)[k] : -1;
        if (k < 0 || t < 0 || !s || ch != l->input_channels) {
            st = QCAL_ERR(QCAL_INVALID_DATA, "%s: no input histogram for layer '%s' (%s) with %lld input channels "
                          "(another model's or another selection's run?)", path, l->name, name,
                          (long long)l->input_channels);
            break;
        }
        const struct qcal_qparams q0 = {.scale = ((float *)r->scale.data)[t], .zero_point = ((int32_t *)r->zp.data)[t],
                                        .dtype = ((int32_t *)r->dtype.data)[t]};
        const struct qcal_qparams *q1 = &s->q;
        const float lo = ((float *)r->range.data)[2 * k], hi = ((float *)r->range.data)[2 * k + 1];
        free(d), free(delta);
        d = malloc(sizeof *d * ((size_t)ch + 1));
        delta = malloc(sizeof *delta * ((size_t)l->channels + 1));
        if (!d || !delta) {
            st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
            break;
        }
        for (int64_t i = 0; i < ch; i++) {
            const int64_t b = ((int64_t *)r->start.data)[o + i], e = ((int64_t *)r->start.data)[o + i + 1];
            const uint64_t *pm = (uint64_t *)r->points.data + 3 * (o + i);
            const struct qcal_input_channel in = {e - b, (uint64_t *)r->count.data + b, (float *)r->bmin.data + b,
                                                  (float *)r->bmax.data + b, pm[0], pm[1], pm[2], lo, hi};
            d[i] = qcal_input_mean_quantized(&in, q1) - qcal_input_mean_quantized(&in, &q0);
        }
        st = qcal_quant_mean_effect(g, l->output, d, ch, q0.scale, q1->scale, delta, l->channels);
        for (int64_t i = 0; st == QCAL_OK && i < l->channels; i++) err->layers[j].mean[4 * i + 2] += delta[i];
    }
    free(d), free(delta);
    if (!keep_cache) recorded_free(&cache);
    return st;
}

/* Appends the option's values to one of the job's ignored lists. */
static enum qcal_status add_ignored(char **list, int *n, const char *const *add, int n_add, const char *option,
                                    const char *what)
{
    for (int i = 0; i < n_add; i++) {
        if (*n == QCAL_JOB_MAX_IGNORED)
            return QCAL_ERR(QCAL_INVALID_ARGUMENT, "%s: the job and the options list more than %d %s", option,
                            QCAL_JOB_MAX_IGNORED, what);
        if (!(list[*n] = strdup(add[i]))) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        ++*n;
    }
    return QCAL_OK;
}

static enum qcal_status make_dir(const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) return QCAL_ERR(QCAL_IO_ERROR, "%s: exists and is not a folder", dir);
    } else if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        return QCAL_ERR(QCAL_IO_ERROR, "%s: cannot create: %s", dir, strerror(errno));
    }
    if (access(dir, W_OK) != 0) return QCAL_ERR(QCAL_IO_ERROR, "%s: not writable", dir);
    return QCAL_OK;
}

/* /layers: one row per quantized layer; per-channel means in one [channels, 4] table. */
static enum qcal_status write_layers(struct qcal_h5 *f, const struct qcal_quant_twins *tw,
                                     const struct qcal_calib_error *err, const struct layer_result *lr)
{
    const int n = tw->n;
    const int64_t dn = n, total = err->total_channels, dc[2] = {total, 4};
    const char **strs = malloc(sizeof(char *) * ((size_t)n + 1));
    double *f64 = malloc(sizeof(double) * ((size_t)n + 1));
    int64_t *i64 = malloc(sizeof(int64_t) * ((size_t)n + 1));
    double *means = malloc(sizeof(double) * ((size_t)total * 4 + 1));
    enum qcal_status st = strs && f64 && i64 && means ? QCAL_OK : QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
#define STRINGS(path, expr)                                               \
    do {                                                                  \
        for (int j = 0; j < n; j++) strs[j] = (expr);                     \
        if (st == QCAL_OK) st = qcal_h5_write_strings(f, path, n, strs);  \
    } while (0)
#define COLUMN(path, type, arr, expr)                                     \
    do {                                                                  \
        for (int j = 0; j < n; j++) arr[j] = (expr);                      \
        if (st == QCAL_OK) st = qcal_h5_write(f, path, type, 1, &dn, arr); \
    } while (0)
    if (st == QCAL_OK) {
        STRINGS("/layers/name", tw->layers[j].name);
        STRINGS("/layers/op", tw->layers[j].op);
        STRINGS("/layers/output", tw->layers[j].output);
        COLUMN("/layers/sqnr_db", QCAL_F64, f64, lr[j].sqnr_db);
        COLUMN("/layers/sqnr_db_uncorrected", QCAL_F64, f64, lr[j].sqnr_db_uncorrected);
        COLUMN("/layers/bias_corrected", QCAL_I64, i64, lr[j].corrected);
        COLUMN("/layers/max_bias_shift", QCAL_F64, f64, lr[j].max_shift);
        COLUMN("/layers/channels", QCAL_I64, i64, tw->layers[j].channels);
        COLUMN("/layers/channel_offset", QCAL_I64, i64, err->layers[j].offset);
        for (int j = 0; j < n; j++)
            memcpy(means + err->layers[j].offset * 4, err->layers[j].mean,
                   sizeof(double) * 4 * (size_t)tw->layers[j].channels);
        if (st == QCAL_OK) st = qcal_h5_write(f, "/layers/channel_means", QCAL_F64, 2, dc, means);
    }
#undef STRINGS
#undef COLUMN
    free(strs), free(f64), free(i64), free(means);
    return st;
}

/* /inputs: the per-channel histograms of the bias-corrected layers' inputs (--record-inputs),
 * sparse: per channel its point masses and the range of its non-empty bins in bin_count,
 * bin_min, bin_max (bin_start[c] .. bin_start[c + 1]). */
static enum qcal_status write_inputs(struct qcal_h5 *f, const struct qcal_graph *tg, const struct qcal_calib_error *err)
{
    const int n = err->n_inputs;
    const int64_t channels = err->input_channels;
    int64_t nnz = 0;
    for (int k = 0; k < n; k++)
        for (int64_t i = 0; i < err->inputs[k].channels * QCAL_INPUT_SLOTS; i++)
            nnz += i % QCAL_INPUT_SLOTS < QCAL_INPUT_BINS && err->inputs[k].hist[i] != 0;
    const int64_t dn = n, dr[2] = {n, 2}, dp[2] = {channels, 3}, ds = channels + 1;
    const char **names = malloc(sizeof(char *) * ((size_t)n + 1));
    int64_t *i64 = malloc(sizeof(int64_t) * (2 * (size_t)n + 1)), *start = malloc(sizeof(int64_t) * ((size_t)channels + 1));
    float *f32 = malloc(sizeof(float) * (2 * (size_t)n + 1));
    uint64_t *points = malloc(sizeof(uint64_t) * (3 * (size_t)channels + 1)), *count = malloc(sizeof(uint64_t) * ((size_t)nnz + 1));
    float *bmin = malloc(sizeof(float) * ((size_t)nnz + 1)), *bmax = malloc(sizeof(float) * ((size_t)nnz + 1));
    enum qcal_status st = names && i64 && start && f32 && points && count && bmin && bmax
                              ? QCAL_OK : QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    int64_t at = 0;
    for (int k = 0; st == QCAL_OK && k < n; k++) {
        const struct qcal_error_input *in = &err->inputs[k];
        names[k] = tg->values[in->value].name;
        f32[2 * k] = in->lo, f32[2 * k + 1] = in->hi;
        for (int64_t c = 0; c < in->channels; c++) {
            const uint64_t *h = in->hist + c * QCAL_INPUT_SLOTS;
            start[in->offset + c] = at;
            for (int b = 0; b < QCAL_INPUT_BINS; b++)
                if (h[b]) count[at] = h[b], bmin[at] = in->bin_min[c * QCAL_INPUT_BINS + b],
                          bmax[at] = in->bin_max[c * QCAL_INPUT_BINS + b], at++;
            for (int j = 0; j < 3; j++) points[3 * (in->offset + c) + j] = h[QCAL_INPUT_BINS + j];
        }
    }
    start[channels] = at;
    if (st == QCAL_OK) st = qcal_h5_write_strings(f, "/inputs/name", n, names);
    if (st == QCAL_OK) st = qcal_h5_attr_i64(f, "/inputs", "bins", QCAL_INPUT_BINS);
    for (int k = 0; k < n; k++) i64[k] = err->inputs[k].axis;
    if (st == QCAL_OK) st = qcal_h5_write(f, "/inputs/axis", QCAL_I64, 1, &dn, i64);
    for (int k = 0; k < n; k++) i64[k] = err->inputs[k].channels;
    if (st == QCAL_OK) st = qcal_h5_write(f, "/inputs/channels", QCAL_I64, 1, &dn, i64);
    for (int k = 0; k < n; k++) i64[k] = err->inputs[k].offset;
    if (st == QCAL_OK) st = qcal_h5_write(f, "/inputs/channel_offset", QCAL_I64, 1, &dn, i64);
    if (st == QCAL_OK) st = qcal_h5_write(f, "/inputs/range", QCAL_F32, 2, dr, f32);
    if (st == QCAL_OK) st = qcal_h5_write(f, "/inputs/point_masses", QCAL_U64, 2, dp, points);
    if (st == QCAL_OK) st = qcal_h5_write(f, "/inputs/bin_start", QCAL_I64, 1, &ds, start);
    if (st == QCAL_OK) st = qcal_h5_write(f, "/inputs/bin_count", QCAL_U64, 1, &nnz, count);
    if (st == QCAL_OK) st = qcal_h5_write(f, "/inputs/bin_min", QCAL_F32, 1, &nnz, bmin);
    if (st == QCAL_OK) st = qcal_h5_write(f, "/inputs/bin_max", QCAL_F32, 1, &nnz, bmax);
    free(names), free(i64), free(start), free(f32), free(points), free(count), free(bmin), free(bmax);
    return st;
}

/* What bias correction the model got: written at the root of calibration.h5. */
static const char *const bias_modes[] = {"off", "error pass", "shared statistics"};
enum { BIAS_OFF, BIAS_ERROR_PASS, BIAS_SHARED };

static enum qcal_status write_stats(const char *path, const struct qcal_job *job, const struct qcal_calib *c,
                                    const struct qcal_calib_options *o, const struct qcal_graph *tg,
                                    const struct qcal_quant_twins *tw, const struct qcal_calib_error *err,
                                    const struct layer_result *lr, int bias_mode)
{
    struct qcal_h5 *f = NULL;
    enum qcal_status st = qcal_h5_create(path, &f);
    if (st != QCAL_OK) return st;
    const int n = c->n;
    const int64_t dn = n, dh[2] = {n, QCAL_CALIB_BINS}, dr[2] = {n, 2};
    const char **names = malloc(sizeof(char *) * ((size_t)n + 1));
    float *f32 = malloc(sizeof(float) * (2 * (size_t)n + 1));
    double *f64 = malloc(sizeof(double) * (2 * (size_t)n + 1));
    uint64_t *u64 = malloc(sizeof(uint64_t) * ((size_t)n * QCAL_CALIB_BINS + 1));
    int32_t *i32 = malloc(sizeof(int32_t) * (2 * (size_t)n + 1));
    if (!names || !f32 || !f64 || !u64 || !i32) {
        st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
#define COLUMN(path, type, dims, nd, arr, expr)                                     \
    do {                                                                            \
        for (int i = 0; i < n; i++) arr[i] = (expr);                                \
        if (st == QCAL_OK) st = qcal_h5_write(f, path, type, nd, dims, arr);        \
    } while (0)
    for (int i = 0; i < n; i++) names[i] = c->stats[i].name;
    st = qcal_h5_attr_string(f, "/", "qcal_version", QCAL_VERSION);
    if (st == QCAL_OK) st = qcal_h5_attr_string(f, "/", "model", job->model);
    if (st == QCAL_OK) st = qcal_h5_attr_string(f, "/", "job", job->path);
    if (st == QCAL_OK) st = qcal_h5_attr_i64(f, "/", "images", c->images);
    if (st == QCAL_OK) st = qcal_h5_attr_i64(f, "/", "bins", QCAL_CALIB_BINS);
    if (st == QCAL_OK) st = qcal_h5_attr_string(f, "/", "bias_correction", bias_modes[bias_mode]);
    if (st == QCAL_OK) st = qcal_h5_write_strings(f, "/tensors/name", n, names);
    COLUMN("/tensors/min", QCAL_F32, &dn, 1, f32, c->stats[i].min);
    COLUMN("/tensors/max", QCAL_F32, &dn, 1, f32, c->stats[i].max);
    COLUMN("/tensors/mean_min", QCAL_F64, &dn, 1, f64, c->stats[i].mean_min);
    COLUMN("/tensors/mean_max", QCAL_F64, &dn, 1, f64, c->stats[i].mean_max);
    COLUMN("/tensors/count", QCAL_U64, &dn, 1, u64, c->stats[i].count);
    for (int i = 0; i < n; i++) f32[2 * i] = c->stats[i].hist_lo, f32[2 * i + 1] = c->stats[i].hist_hi;
    if (st == QCAL_OK) st = qcal_h5_write(f, "/tensors/histogram_range", QCAL_F32, 2, dr, f32);
    for (int i = 0; i < n; i++) memcpy(u64 + (size_t)i * QCAL_CALIB_BINS, c->stats[i].hist, sizeof(uint64_t) * QCAL_CALIB_BINS);
    if (st == QCAL_OK) st = qcal_h5_write(f, "/tensors/histogram", QCAL_U64, 2, dh, u64);
    if (st == QCAL_OK) st = qcal_h5_attr_string(f, "/scales", "method", qcal_calib_method_name(o->method));
    if (st == QCAL_OK) st = qcal_h5_attr_string(f, "/scales", "preset", qcal_calib_preset_name(o->preset));
    if (st == QCAL_OK) st = qcal_h5_attr_f64(f, "/scales", "percentile", o->percentile);
    COLUMN("/scales/lo", QCAL_F32, &dn, 1, f32, c->stats[i].q.lo);
    COLUMN("/scales/hi", QCAL_F32, &dn, 1, f32, c->stats[i].q.hi);
    COLUMN("/scales/scale", QCAL_F32, &dn, 1, f32, c->stats[i].q.scale);
    COLUMN("/scales/zero_point", QCAL_I32, &dn, 1, i32, c->stats[i].q.zero_point);
    COLUMN("/scales/dtype", QCAL_I32, &dn, 1, i32, c->stats[i].q.dtype);
#undef COLUMN
    if (st == QCAL_OK && err) { /* the error pass's results (none with --no-error-pass or --shared-bias) */
        st = qcal_h5_attr_i64(f, "/layers", "bias_correction", bias_mode != BIAS_OFF);
        if (st == QCAL_OK) st = qcal_h5_attr_i64(f, "/layers", "images", err->images);
        if (st == QCAL_OK) st = write_layers(f, tw, err, lr);
        if (st == QCAL_OK && err->inputs) st = write_inputs(f, tg, err); /* recorded, even none */
    }
done:
    free(names), free(f32), free(f64), free(u64), free(i32);
    enum qcal_status cst = qcal_h5_close(f, st == QCAL_OK);
    return st != QCAL_OK ? st : cst;
}

/* Fills c's statistics from an earlier run's calibration.h5 (same tensors by name). */
static enum qcal_status read_stats(const char *path, struct qcal_calib *c)
{
    struct qcal_h5 *f = NULL;
    enum qcal_status st = qcal_h5_open(path, &f);
    if (st != QCAL_OK) return st;
    char **names = NULL;
    int n = 0;
    struct qcal_tensor t[7] = {0};
    static const char *const cols[7] = {"/tensors/min", "/tensors/max", "/tensors/mean_min", "/tensors/mean_max",
                                        "/tensors/count", "/tensors/histogram_range", "/tensors/histogram"};
    static const int types[7] = {QCAL_F32, QCAL_F32, QCAL_F64, QCAL_F64, QCAL_U64, QCAL_F32, QCAL_U64};
    double images = 0;
    st = qcal_h5_read_strings(f, "/tensors/name", &n, &names);
    if (st == QCAL_OK) st = qcal_h5_read_attr_f64(f, "/", "images", &images);
    for (int k = 0; st == QCAL_OK && k < 7; k++) {
        st = qcal_h5_read(f, cols[k], types[k], &t[k]);
        int64_t want = k == 5 ? 2 * (int64_t)n : k == 6 ? (int64_t)n * QCAL_CALIB_BINS : n;
        if (st == QCAL_OK && qcal_tensor_numel(&t[k]) != want)
            st = QCAL_ERR(QCAL_INVALID_DATA, "%s: %s has %lld values, expected %lld", path, cols[k],
                          (long long)qcal_tensor_numel(&t[k]), (long long)want);
    }
    for (int i = 0; st == QCAL_OK && i < c->n; i++) {
        struct qcal_calib_stat *s = &c->stats[i];
        const int j = find_name(names, n, s->name);
        if (j < 0) {
            st = QCAL_ERR(QCAL_INVALID_DATA, "%s: no statistics for tensor '%s' of this model (another model's "
                          "statistics?)", path, s->name);
            break;
        }
        s->min = ((float *)t[0].data)[j];
        s->max = ((float *)t[1].data)[j];
        s->mean_min = ((double *)t[2].data)[j];
        s->mean_max = ((double *)t[3].data)[j];
        s->count = ((uint64_t *)t[4].data)[j];
        s->hist_lo = ((float *)t[5].data)[2 * j];
        s->hist_hi = ((float *)t[5].data)[2 * j + 1];
        memcpy(s->hist, (uint64_t *)t[6].data + (size_t)j * QCAL_CALIB_BINS, sizeof(uint64_t) * QCAL_CALIB_BINS);
    }
    c->images = (int64_t)images;
    for (int k = 0; k < 7; k++) free(t[k].data);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    qcal_h5_close(f, false);
    return st;
}

static enum qcal_status write_timing(const char *path, const double *seconds)
{
    double mn[N_STAGES], mx[N_STAGES], sum[N_STAGES];
    for (int k = 0; k < N_STAGES; k++) mn[k] = mx[k] = seconds[k];
    enum qcal_status st = qcal_par_allreduce_f64_min(mn, N_STAGES);
    if (st == QCAL_OK) st = qcal_par_allreduce_f64_max(mx, N_STAGES);
    /* a sum for the mean: ranks' doubles gathered and added in rank order */
    const int size = qcal_par_size();
    int *counts = malloc(sizeof(int) * (size_t)size);
    double *all = malloc(sizeof(double) * (size_t)size * N_STAGES);
    if (!counts || !all) st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    for (int r = 0; st == QCAL_OK && r < size; r++) counts[r] = N_STAGES;
    if (st == QCAL_OK) st = qcal_par_allgather_f64(seconds, counts, all);
    for (int k = 0; st == QCAL_OK && k < N_STAGES; k++) {
        sum[k] = 0;
        for (int r = 0; r < size; r++) sum[k] += all[r * N_STAGES + k];
    }
    if (st == QCAL_OK && qcal_par_rank() == 0) {
        struct qcal_h5 *f = NULL;
        st = qcal_h5_create(path, &f);
        if (st == QCAL_OK) {
            double table[N_STAGES * 3];
            for (int k = 0; k < N_STAGES; k++)
                table[3 * k] = mn[k], table[3 * k + 1] = sum[k] / size, table[3 * k + 2] = mx[k];
            st = qcal_h5_write(f, "/stages/seconds_min_mean_max", QCAL_F64, 2, (int64_t[]){N_STAGES, 3}, table);
            if (st == QCAL_OK) st = qcal_h5_write_strings(f, "/stages/name", N_STAGES, stage_names);
            if (st == QCAL_OK) st = qcal_h5_write(f, "/stages/per_rank", QCAL_F64, 2, (int64_t[]){size, N_STAGES}, all);
            if (st == QCAL_OK) st = qcal_h5_attr_i64(f, "/", "ranks", size);
            if (st == QCAL_OK) st = qcal_h5_attr_i64(f, "/", "threads", omp_get_max_threads());
            enum qcal_status cst = qcal_h5_close(f, st == QCAL_OK);
            if (st == QCAL_OK) st = cst;
        }
        for (int k = 0; st == QCAL_OK && k < N_STAGES; k++)
            printf("  %-15s min %8.3f s  mean %8.3f s  max %8.3f s\n", stage_names[k], mn[k], sum[k] / size, mx[k]);
    }
    free(counts), free(all);
    return st;
}

int cli_calibrate(int argc, char **argv)
{
    enum { O_METHOD = 1000, O_PRESET, O_PERCENTILE, O_SUBSET, O_FROM, O_THREADS, O_KERNELS, O_QUIET, O_NO_BC,
           O_IGNORE, O_REUSE, O_NO_ERROR, O_IGNORE_TYPE, O_NO_JOB_IGNORED, O_RECORD, O_SHARED, O_RECORD_IMAGES };
    static const struct option opts[] = {
        {"output-dir", required_argument, 0, 'o'}, {"method", required_argument, 0, O_METHOD},
        {"preset", required_argument, 0, O_PRESET}, {"percentile", required_argument, 0, O_PERCENTILE},
        {"subset", required_argument, 0, O_SUBSET}, {"from-stats", required_argument, 0, O_FROM},
        {"threads", required_argument, 0, O_THREADS}, {"kernels", required_argument, 0, O_KERNELS},
        {"quiet", no_argument, 0, O_QUIET}, {"no-bias-correction", no_argument, 0, O_NO_BC},
        {"ignore", required_argument, 0, O_IGNORE}, {"reuse-errors", no_argument, 0, O_REUSE},
        {"no-error-pass", no_argument, 0, O_NO_ERROR}, {"ignore-type", required_argument, 0, O_IGNORE_TYPE},
        {"no-job-ignored", no_argument, 0, O_NO_JOB_IGNORED}, {"record-inputs", no_argument, 0, O_RECORD},
        {"shared-bias", no_argument, 0, O_SHARED}, {"record-images", required_argument, 0, O_RECORD_IMAGES},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    enum qcal_status st = QCAL_OK;
    const char *out_dir = NULL, *from = NULL, *method_s = NULL, *preset_s = NULL;
    double percentile = -1;
    int64_t subset = -1, record_images = 64;
    int kernels = QCAL_KERNELS_AUTO;
    bool quiet = false, no_bc = false, reuse = false, no_error = false, no_job_ignored = false, record = false,
         shared = false;
    /* --ignore / --ignore-type values, at most one per argument (add_ignored checks the limit) */
    const char **ignore = calloc((size_t)argc + 1, sizeof *ignore), **ignore_type = calloc((size_t)argc + 1, sizeof *ignore);
    int n_ignore = 0, n_ignore_type = 0;
    double seconds[N_STAGES] = {0};
    struct qcal_graph *tg = NULL, *sg = NULL;
    struct qcal_quant_twins tw = {0};
    struct qcal_calib_error *err = NULL;
    struct layer_result *lr = NULL;
    struct qcal_job *job = NULL;
    struct qcal_graph *g = NULL;
    struct qcal_plan *plan = NULL;
    struct qcal_dataset ds = {0};
    struct qcal_quant_sel sel = {0};
    struct qcal_calib *c = NULL;
    char model_path[4096], stats_path[4096], timing_path[4096];
    optind = 1;
    opterr = 0;
    cli_hold_errors();
    if (!ignore || !ignore_type) AGREE(QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory"));
    int ch;
    while ((ch = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (ch) {
        case 'o': out_dir = optarg; break;
        case O_METHOD: method_s = optarg; break;
        case O_PRESET: preset_s = optarg; break;
        case O_PERCENTILE: percentile = atof(optarg); break;
        case O_SUBSET: subset = atoll(optarg); break;
        case O_FROM: from = optarg; break;
        case O_THREADS:
            if (atoi(optarg) < 1) {
                st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "--threads must be >= 1");
                AGREE(st);
            }
            omp_set_num_threads(atoi(optarg));
            break;
        case O_KERNELS:
            if ((kernels = cli_parse_kernels(optarg)) < 0) {
                st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "--kernels '%s': expected dnnl, blas or ref", optarg);
                AGREE(st);
            }
            break;
        case O_QUIET: quiet = true; break;
        case O_NO_BC: no_bc = true; break;
        case O_REUSE: reuse = true; break;
        case O_NO_ERROR: no_error = true; break;
        case O_NO_JOB_IGNORED: no_job_ignored = true; break;
        case O_RECORD: record = true; break;
        case O_SHARED: shared = true; break;
        case O_RECORD_IMAGES:
            if ((record_images = atoll(optarg)) < 1) {
                st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "--record-images must be >= 1");
                AGREE(st);
            }
            break;
        case O_IGNORE_TYPE: ignore_type[n_ignore_type++] = optarg; break;
        case O_IGNORE: ignore[n_ignore++] = optarg; break;
        case 'h': fputs(usage, stdout); goto cleanup;
        default:
            st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "calibrate: unknown option or missing value in '%s' (see qcal "
                          "calibrate --help)", argv[optind - 1]);
            AGREE(st);
        }
    }
    if (optind != argc - 1 || !out_dir) {
        st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "calibrate: expected JOB.yml and -o OUTDIR (see qcal calibrate --help)");
        AGREE(st);
    }
    if ((reuse || shared) && !from) {
        st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "%s needs --from-stats (the run whose errors to reuse)",
                      reuse ? "--reuse-errors" : "--shared-bias");
        AGREE(st);
    }
    if ((record && (no_error || reuse || shared)) || (shared && (reuse || no_error))) {
        st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "%s: no pass over the images to record inputs in",
                      record ? "--record-inputs" : "--shared-bias with --reuse-errors or --no-error-pass");
        AGREE(st);
    }
    AGREE(qcal_job_load(argv[optind], &job));
    /* --no-job-ignored, --ignore, --ignore-type: the ignored scope replaced or extended */
    if (no_job_ignored) {
        for (int i = 0; i < QCAL_JOB_MAX_IGNORED; i++) {
            free(job->calibration.ignored_names[i]), free(job->calibration.ignored_types[i]);
            job->calibration.ignored_names[i] = job->calibration.ignored_types[i] = NULL;
        }
        job->calibration.n_ignored_names = job->calibration.n_ignored_types = 0;
    }
    AGREE(add_ignored(job->calibration.ignored_types, &job->calibration.n_ignored_types, ignore_type, n_ignore_type,
                      "--ignore-type", "op types"));
    AGREE(add_ignored(job->calibration.ignored_names, &job->calibration.n_ignored_names, ignore, n_ignore, "--ignore",
                      "nodes"));
    const bool bias_correction = job->calibration.bias_correction && !no_bc;
    if (shared && !bias_correction) {
        st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "--shared-bias: bias correction is off (no-bias-correction or "
                      "bias_correction: false)");
        AGREE(st);
    }
    if (no_error && (bias_correction || reuse)) {
        st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "--no-error-pass: bias correction comes from the error pass; give "
                      "--no-bias-correction (or bias_correction: false) and no --reuse-errors");
        AGREE(st);
    }
    struct qcal_calib_options co = {
        .method = qcal_calib_method_parse(method_s ? method_s : job->calibration.method),
        .preset = qcal_calib_preset_parse(preset_s ? preset_s : job->calibration.preset),
        .percentile = (float)(percentile >= 0 ? percentile : job->calibration.percentile)};
    if (co.method < 0) {
        st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "--method '%s': expected minmax, mean_minmax, percentile, entropy or mse",
                      method_s ? method_s : job->calibration.method);
        AGREE(st);
    }
    if (co.preset < 0) {
        st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "--preset '%s': expected performance or mixed",
                      preset_s ? preset_s : job->calibration.preset);
        AGREE(st);
    }
    if (!(co.percentile > 50 && co.percentile <= 100)) {
        st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "--percentile %g: expected a value in (50, 100]", co.percentile);
        AGREE(st);
    }
    snprintf(model_path, sizeof model_path, "%s/model.int8.onnx", out_dir);
    snprintf(stats_path, sizeof stats_path, "%s/calibration.h5", out_dir);
    snprintf(timing_path, sizeof timing_path, "%s/timing.h5", out_dir);
    if (qcal_par_rank() == 0) st = make_dir(out_dir);
    AGREE(st);

    AGREE(cli_job_model(job, false, &g));
    struct qcal_quant_options qo = {job->calibration.n_ignored_names, job->calibration.n_ignored_types,
                                    job->calibration.ignored_names, job->calibration.ignored_types};
    AGREE(qcal_quant_select(g, &qo, &sel));
    AGREE(qcal_calib_create(g, sel.values, sel.n_values, &c));
    const struct qcal_job_dataset *d = job->calibration_data.present ? &job->calibration_data : &job->validation_data;
    if (!d->present) {
        st = QCAL_ERR(QCAL_INVALID_JOB, "%s: no calibration (or validation) dataset", job->path);
        AGREE(st);
    }
    AGREE(cli_load_dataset(job, d, &ds));
    AGREE(qcal_dataset_subset(&ds, subset > 0 ? subset : job->calibration.subset, d->subset_random,
                              (uint64_t)d->seed));
    if (ds.count == 0) {
        st = QCAL_ERR(QCAL_INVALID_DATA, "%s: the calibration dataset has no images", job->path);
        AGREE(st);
    }
    struct cli_image_input in;
    AGREE(cli_image_input(job, g, &in));
    const struct qcal_plan_options plo = {.kernels = kernels};
    int64_t begin, end;
    qcal_shard(ds.count, qcal_par_rank(), qcal_par_size(), &begin, &end);
    const int passes = from ? 1 : 3;
    if (from) {
        AGREE(read_stats(from, c));
    } else {
        /* the statistics plan: a second copy with activations fused wherever the tensor
         * they would hide is not observed (g itself stays ONNX for the QDQ rewrite) */
        AGREE(cli_job_model(job, false, &sg));
        for (int i = 0; i < sel.n_values; i++) sg->values[sel.values[i]].keep = true;
        AGREE(qcal_pass_fuse_activations(sg));
        qcal_pass_eliminate_dead(sg);
        AGREE(qcal_plan_create(sg, &plo, &plan));
        const struct pass_hooks hooks = {qcal_calib_observer, calib_thread, calib_input, calib_done, NULL, c};
        int64_t images = ds.count;
        for (int pass = 1; pass <= 2; pass++) {
            AGREE(qcal_calib_begin_pass(c, pass, omp_get_max_threads(), images));
            int64_t total = 0;
            AGREE(observe_pass(job, &ds, begin, end, plan, &in, sg->inputs[0], &hooks, d->skip_bad_images, pass, passes,
                               quiet, seconds, STAGE_INFER, &total));
            double t0 = qcal_now();
            AGREE(qcal_calib_end_pass(c));
            seconds[STAGE_REDUCE] += qcal_now() - t0;
            if (pass == 1 && total < ds.count && qcal_par_rank() == 0)
                printf("skipped %lld of %lld images that could not be read\n", (long long)(ds.count - total),
                       (long long)ds.count);
            images = total;
        }
        qcal_plan_destroy(plan);
        plan = NULL;
        qcal_graph_destroy(sg);
        sg = NULL;
    }
    double t0 = qcal_now();
    AGREE(qcal_calib_compute(c, &co));
    seconds[STAGE_SEARCH] += qcal_now() - t0;

    /* the error pass: every quantized layer's INT8-simulated twin against its FP32 output
     * (or, with --reuse-errors, its results from the run the statistics come from: each twin
     * reads FP32 inputs, so a layer's error does not depend on which others are quantized) */
    if (no_error) {
        /* no SQNR table, no bias correction: the model from the scales alone */
    } else if (reuse || shared) {
        AGREE(reuse_errors(from, job, &qo, sel.n_nodes, c, &tg, &tw, &err));
        if (shared) AGREE(shared_bias(from, g, tg, &tw, c, err));
    } else {
        const struct error_pass ep = {job, &ds, begin, end, &in, &qo, sel.n_nodes, &plo, d->skip_bad_images,
                                      passes, quiet, record, record_images};
        AGREE(error_pass(&ep, c, seconds, &tg, &tw, &err));
    }
    if (!(lr = calloc((size_t)tw.n + 1, sizeof *lr))) {
        st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        AGREE(st);
    }
    for (int j = 0; j < tw.n; j++) layer_result(&tw.layers[j], &err->layers[j], bias_correction, &lr[j]);

    t0 = qcal_now();
    if (qcal_par_rank() == 0) {
        for (int j = 0; st == QCAL_OK && j < tw.n; j++)
            if (lr[j].corrected) st = qcal_quant_correct_bias(g, tw.layers[j].output, lr[j].shift, tw.layers[j].channels);
        if (st == QCAL_OK) st = qcal_quant_to_qdq(g, &sel, c);
        if (st == QCAL_OK) st = qcal_quant_upgrade_opset(g, 13);
        if (st == QCAL_OK) st = qcal_onnx_save(g, model_path);
        const int mode = !bias_correction ? BIAS_OFF : shared ? BIAS_SHARED : BIAS_ERROR_PASS;
        /* shared: the /layers table would be another run's errors */
        if (st == QCAL_OK) st = write_stats(stats_path, job, c, &co, tg, &tw, shared ? NULL : err, lr, mode);
        if (st != QCAL_OK) unlink(model_path); /* never one output without the other */
    }
    AGREE(st);
    seconds[STAGE_WRITE] += qcal_now() - t0;
    if (qcal_par_rank() == 0)
        printf("calibrated %s: %d quantized nodes, %d activation tensors, %lld images, %d ranks x %d threads, "
               "method %s, preset %s\nwrote %s\nwrote %s\n",
               job->model, sel.n_nodes, sel.n_values, (long long)c->images, qcal_par_size(), omp_get_max_threads(),
               qcal_calib_method_name(co.method), qcal_calib_preset_name(co.preset), model_path, stats_path);
    if (qcal_par_rank() == 0 && !shared) print_worst_layers(&tw, lr, bias_correction);
    st = cli_agree(write_timing(timing_path, seconds));
cleanup:
    free(ignore), free(ignore_type);
    qcal_log_capture(NULL, 0);
    qcal_plan_destroy(plan); /* before the graph it was made from */
    plan = NULL;
    for (int j = 0; lr && j < tw.n; j++) free(lr[j].shift);
    free(lr);
    qcal_error_destroy(err);
    qcal_quant_twins_free(&tw);
    qcal_graph_destroy(tg);
    qcal_graph_destroy(sg);
    qcal_calib_destroy(c);
    qcal_quant_sel_free(&sel);
    qcal_dataset_free(&ds);
    qcal_plan_destroy(plan);
    qcal_graph_destroy(g);
    qcal_job_destroy(job);
    return qcal_status_exit_code(st);
}
