/* qcal command line: subcommands with getopt_long. */
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcal/data.h"
#include "qcal/onnx.h"
#include "qcal/par.h"
#include "qcal/runtime.h"
#include "cli.h"

static const char usage_main[] =
    "usage: qcal <command> [options]\n"
    "\n"
    "commands:\n"
    "  infer     run a model on inputs and print or save its outputs\n"
    "  dataset   show what a job's dataset resolves to (images, labels, boxes, masks)\n"
    "  calibrate gather activation statistics (MPI ranks x threads) and write an INT8 model\n"
    "  run       the main job: calibrate, evaluate, bench (OUTDIR/model.int8.onnx, report.h5)\n"
    "  evaluate  compare an optimized model with its parent on the job's validation images\n"
    "  accuracy-aware  the job's INT8 model within accuracy_aware.max_drop, reverting layers to FP32\n"
    "  sweep     every combination of the calibration settings a job lists, resumable; --summarize\n"
    "  visualize both models' predictions on one image of a report, side by side (PNG)\n"
    "            (MPI ranks x threads) and write an HDF5 report\n"
    "  report    show an evaluation report (summary, tables; --csv, --json)\n"
    "  bench     latency and throughput of a model and its INT8 model (per node under MPI)\n"
    "  version   print the version\n"
    "\n"
    "Run 'qcal <command> --help' for a command's options.\n"
    "\n"
    "exit status:\n"
    "  0 success          2 invalid argument    3 input/output error\n"
    "  4 invalid model    5 unsupported model   6 out of memory\n"
    "  7 backend error    8 invalid input data  9 invalid job file\n";

static const char usage_infer[] =
    "usage: qcal infer MODEL.onnx [options] [--raw-input FILE.npy ...]\n"
    "       qcal infer JOB.yml [options] [IMAGE...]   (see qcal infer JOB.yml --help)\n"
    "\n"
    "Runs MODEL in FP32 on the given inputs and prints a summary of each output\n"
    "(top-k classes for 2-D outputs, shape/min/max/mean otherwise).\n"
    "\n"
    "options:\n"
    "  --input-shape [NAME:]DIMS  bind an input's shape, e.g. 1x3x224x224 (repeatable)\n"
    "  --raw-input FILE.npy       input data, one per model input in order (repeatable);\n"
    "                             without it a fixed pseudo-random input is used\n"
    "  --output FILE.npy          write the first output\n"
    "  --output-dir DIR           write every output as DIR/<name>.npy\n"
    "  --kernels dnnl|blas|ref    force a kernel family (default: dnnl where possible)\n"
    "  --threads N                OpenMP threads (default: OMP_NUM_THREADS or all cores)\n"
    "  --top K                    classes shown for 2-D outputs (default 5)\n"
    "  --repeat N                 run N times and print latency statistics\n"
    "  --warmup N                 untimed runs before --repeat (default 3)\n"
    "  --no-optimize              skip BatchNorm folding and activation fusion\n"
    "  --verbose                  print the execution plan\n"
    "  --per-layer                print each step's mean time over the runs\n"
    "  -h, --help                 this help\n";

enum qcal_status cli_parse_shape(const char *arg, struct qcal_input_shape *s, char **name_store)
{
    memset(s, 0, sizeof *s);
    const char *dims = arg;
    const char *colon = strrchr(arg, ':');
    if (colon) {
        *name_store = strndup(arg, (size_t)(colon - arg));
        s->name = *name_store;
        dims = colon + 1;
    }
    const char *p = dims;
    while (*p) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 1 || s->ndim >= QCAL_MAX_DIMS)
            return QCAL_ERR(QCAL_INVALID_ARGUMENT, "--input-shape '%s': expected dims like 1x3x224x224", arg);
        s->dims[s->ndim++] = v;
        p = end;
        if (*p == 'x' || *p == 'X' || *p == ',') p++;
        else if (*p) return QCAL_ERR(QCAL_INVALID_ARGUMENT, "--input-shape '%s': unexpected '%c'", arg, *p);
    }
    if (s->ndim == 0) return QCAL_ERR(QCAL_INVALID_ARGUMENT, "--input-shape '%s' is empty", arg);
    return QCAL_OK;
}

bool cli_is_job_file(const char *path)
{
    const size_t n = strlen(path);
    return (n > 4 && strcmp(path + n - 4, ".yml") == 0) || (n > 5 && strcmp(path + n - 5, ".yaml") == 0);
}

void cli_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        const unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

int cli_top_k(const float *row, int64_t n, int k, int64_t *out)
{
    if (k > n) k = (int)n;
    if (k > 64) k = 64;
    for (int j = 0; j < k; j++) {
        int64_t b = -1;
        for (int64_t c = 0; c < n; c++) {
            bool taken = false;
            for (int q = 0; q < j; q++) taken |= out[q] == c;
            if (!taken && (b < 0 || row[c] > row[b])) b = c;
        }
        out[j] = b;
    }
    return k;
}

int cli_parse_kernels(const char *s)
{
    if (strcmp(s, "dnnl") == 0) return QCAL_KERNELS_DNNL;
    if (strcmp(s, "blas") == 0) return QCAL_KERNELS_BLAS;
    if (strcmp(s, "ref") == 0) return QCAL_KERNELS_REF;
    if (strcmp(s, "auto") == 0) return QCAL_KERNELS_AUTO;
    return -1;
}

void cli_summarize(const char *name, const struct qcal_tensor *t, int top)
{
    char shape[96];
    qcal_shape_str(t, shape, sizeof shape);
    printf("output %s: %s %s\n", name, qcal_dtype_name(t->dtype), shape);
    int64_t count = qcal_tensor_numel(t);
    if (t->dtype != QCAL_F32 || count == 0) return;
    const float *d = t->data;
    if (t->ndim == 2 && t->dims[1] > 1) {
        int64_t rows = t->dims[0] < 8 ? t->dims[0] : 8, cols = t->dims[1];
        for (int64_t r = 0; r < rows; r++) {
            const float *row = d + r * cols;
            int64_t best[64];
            int k = cli_top_k(row, cols, top, best);
            printf("  row %lld top-%d:", (long long)r, k);
            for (int j = 0; j < k; j++) printf(" %lld (%.4f)", (long long)best[j], row[best[j]]);
            printf("\n");
        }
        return;
    }
    double mn = d[0], mx = d[0], sum = 0;
    for (int64_t i = 0; i < count; i++) {
        mn = d[i] < mn ? d[i] : mn;
        mx = d[i] > mx ? d[i] : mx;
        sum += d[i];
    }
    printf("  min %.6g  max %.6g  mean %.6g\n", mn, mx, sum / (double)count);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Deterministic input in [-1, 1) when no data is given (xorshift, fixed seed). */
void cli_fill_synthetic(struct qcal_tensor *t)
{
    uint64_t s = 0x9E3779B97F4A7C15ull;
    int64_t count = qcal_tensor_numel(t);
    for (int64_t i = 0; i < count; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        float v = (float)((s >> 40) & 0xffffff) / 8388608.0f - 1.0f;
        switch (t->dtype) {
        case QCAL_F32: ((float *)t->data)[i] = v; break;
        case QCAL_I64: ((int64_t *)t->data)[i] = 0; break;
        default: memset((char *)t->data + (size_t)i * qcal_dtype_size(t->dtype), 0, qcal_dtype_size(t->dtype));
        }
    }
}

void cli_sanitize(char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '.'))
            *s = '_';
}

static int cmd_infer(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) { /* `qcal infer JOB.yml [IMAGE...]` */
        if (argv[i][0] == '-') {
            if (i == 1) continue;
            break;
        }
        if (cli_is_job_file(argv[i])) return cli_infer_job(argc, argv);
        break;
    }
    enum { O_SHAPE = 1000, O_RAW, O_OUT, O_OUTDIR, O_KERNELS, O_THREADS, O_TOP, O_REPEAT, O_WARMUP,
           O_NOOPT, O_VERBOSE, O_PER_LAYER };
    static const struct option opts[] = {
        {"input-shape", required_argument, 0, O_SHAPE}, {"raw-input", required_argument, 0, O_RAW},
        {"output", required_argument, 0, O_OUT},        {"output-dir", required_argument, 0, O_OUTDIR},
        {"kernels", required_argument, 0, O_KERNELS},   {"threads", required_argument, 0, O_THREADS},
        {"top", required_argument, 0, O_TOP},           {"repeat", required_argument, 0, O_REPEAT},
        {"warmup", required_argument, 0, O_WARMUP},     {"no-optimize", no_argument, 0, O_NOOPT},
        {"verbose", no_argument, 0, O_VERBOSE},         {"help", no_argument, 0, 'h'},
        {"per-layer", no_argument, 0, O_PER_LAYER},
        {0, 0, 0, 0}};
    enum qcal_status st = QCAL_OK;
    struct qcal_input_shape shapes[16];
    char *shape_names[16] = {0};
    const char *raw[16] = {0};
    int n_shapes = 0, n_raw = 0, kernels = QCAL_KERNELS_AUTO, top = 5, repeat = 0, warmup = 3;
    const char *out_path = NULL, *out_dir = NULL;
    bool optimize = true, verbose = false;
    struct qcal_graph *g = NULL;
    struct qcal_plan *plan = NULL;
    struct qcal_exec *ex = NULL;
    struct qcal_tensor inputs[16];
    double *times = NULL, *step_times = NULL;
    bool per_layer = false;
    memset(inputs, 0, sizeof inputs);
    optind = 1;
    opterr = 0; /* one error line of our own instead of getopt's */
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_SHAPE:
            if (n_shapes == 16) { st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "too many --input-shape"); goto cleanup; }
            QCAL_CHECK(cli_parse_shape(optarg, &shapes[n_shapes], &shape_names[n_shapes]));
            n_shapes++;
            break;
        case O_RAW:
            if (n_raw == 16) { st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "too many --raw-input"); goto cleanup; }
            raw[n_raw++] = optarg;
            break;
        case O_OUT: out_path = optarg; break;
        case O_OUTDIR: out_dir = optarg; break;
        case O_KERNELS:
            if ((kernels = cli_parse_kernels(optarg)) < 0) {
                st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "--kernels '%s': expected dnnl, blas or ref", optarg);
                goto cleanup;
            }
            break;
        case O_THREADS: {
            int t = atoi(optarg);
            if (t < 1) { st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "--threads must be >= 1"); goto cleanup; }
            omp_set_num_threads(t);
            break;
        }
        case O_TOP: top = atoi(optarg) > 0 ? atoi(optarg) : 5; break;
        case O_REPEAT: repeat = atoi(optarg) > 0 ? atoi(optarg) : 0; break;
        case O_WARMUP: warmup = atoi(optarg) >= 0 ? atoi(optarg) : 0; break;
        case O_NOOPT: optimize = false; break;
        case O_VERBOSE: verbose = true; break;
        case O_PER_LAYER: per_layer = true; break;
        case 'h': fputs(usage_infer, stdout); goto cleanup;
        default:
            st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "infer: unknown option or missing value in '%s' "
                          "(see qcal infer --help)", argv[optind - 1]);
            goto cleanup;
        }
    }
    if (optind != argc - 1) {
        st = QCAL_ERR(QCAL_INVALID_ARGUMENT, optind >= argc ? "infer: MODEL.onnx is missing"
                      : "infer: image inputs arrive with the data module; use --raw-input FILE.npy");
        goto cleanup;
    }
    const char *model = argv[optind];
    size_t ml = strlen(model);
    if (ml > 4 && (strcmp(model + ml - 4, ".yml") == 0 || (ml > 5 && strcmp(model + ml - 5, ".yaml") == 0))) {
        st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "infer: a job file takes images, not --raw-input");
        goto cleanup;
    }
    QCAL_CHECK(qcal_onnx_load(model, &g));
    /* Shapes of --raw-input files bind dynamic dims when no --input-shape is given. */
    for (int i = 0; i < n_raw; i++) {
        QCAL_CHECK(qcal_npy_read(raw[i], &inputs[i]));
        if (n_shapes == 0 && i < g->n_inputs) {
            struct qcal_input_shape *s = &shapes[i];
            memset(s, 0, sizeof *s);
            s->name = g->values[g->inputs[i]].name;
            s->ndim = inputs[i].ndim;
            memcpy(s->dims, inputs[i].dims, sizeof s->dims);
        }
    }
    if (n_shapes == 0) n_shapes = n_raw < g->n_inputs ? n_raw : g->n_inputs;
    struct qcal_prepare_options po = {.n_shapes = n_shapes, .shapes = shapes, .optimize = optimize};
    QCAL_CHECK(qcal_model_prepare(g, &po));
    if (n_raw && n_raw != g->n_inputs) {
        st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "%s has %d inputs, %d --raw-input given", model, g->n_inputs, n_raw);
        goto cleanup;
    }
    struct qcal_plan_options plo = {.kernels = kernels};
    QCAL_CHECK(qcal_plan_create(g, &plo, &plan));
    if (verbose) qcal_plan_describe(plan, stdout);
    QCAL_CHECK(qcal_exec_create(plan, &ex));
    for (int i = 0; i < g->n_inputs; i++) {
        if (i >= n_raw) {
            inputs[i] = g->values[g->inputs[i]].t;
            inputs[i].data = qcal_malloc(qcal_tensor_bytes(&inputs[i]));
            if (!inputs[i].data) { st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory"); goto cleanup; }
            cli_fill_synthetic(&inputs[i]);
        } else if (inputs[i].dtype != g->values[g->inputs[i]].t.dtype) {
            st = QCAL_ERR(QCAL_INVALID_DATA, "%s: holds %s, input '%s' is %s", raw[i],
                          qcal_dtype_name(inputs[i].dtype), g->values[g->inputs[i]].name,
                          qcal_dtype_name(g->values[g->inputs[i]].t.dtype));
            goto cleanup;
        }
        QCAL_CHECK(qcal_exec_set_input(ex, i, &inputs[i]));
    }
    for (int i = 0; i < (repeat ? warmup : 0); i++) QCAL_CHECK(qcal_exec_run(ex));
    int runs = repeat ? repeat : 1;
    times = malloc(sizeof(double) * (size_t)runs);
    if (!times) { st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory"); goto cleanup; }
    if (per_layer) {
        step_times = calloc((size_t)qcal_plan_num_steps(plan) + 1, sizeof(double));
        if (!step_times) { st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory"); goto cleanup; }
    }
    for (int i = 0; i < runs; i++) {
        double t0 = qcal_now();
        QCAL_CHECK(qcal_exec_run_timed(ex, step_times));
        times[i] = qcal_now() - t0;
    }
    if (per_layer) qcal_plan_describe_timed(plan, stdout, step_times, runs);
    for (int i = 0; i < qcal_exec_num_outputs(ex); i++)
        cli_summarize(qcal_exec_output_name(ex, i), qcal_exec_output(ex, i), top);
    if (repeat) {
        qsort(times, (size_t)runs, sizeof *times, cmp_double);
        double sum = 0;
        for (int i = 0; i < runs; i++) sum += times[i];
        printf("latency_ms median %.3f mean %.3f min %.3f max %.3f runs %d threads %d\n",
               1e3 * times[runs / 2], 1e3 * sum / runs, 1e3 * times[0], 1e3 * times[runs - 1], runs,
               omp_get_max_threads());
    }
    if (out_path) QCAL_CHECK(qcal_npy_write(out_path, qcal_exec_output(ex, 0)));
    if (out_dir) {
        for (int i = 0; i < qcal_exec_num_outputs(ex); i++) {
            char name[512], path[4096];
            snprintf(name, sizeof name, "%s", qcal_exec_output_name(ex, i));
            cli_sanitize(name);
            snprintf(path, sizeof path, "%s/%s.npy", out_dir, name);
            QCAL_CHECK(qcal_npy_write(path, qcal_exec_output(ex, i)));
        }
    }
cleanup:
    for (int i = 0; i < 16; i++) {
        qcal_free(inputs[i].data);
        free(shape_names[i]);
    }
    free(times);
    free(step_times);
    qcal_exec_destroy(ex);
    qcal_plan_destroy(plan);
    qcal_graph_destroy(g);
    return qcal_status_exit_code(st);
}

int main(int argc, char **argv)
{
    omp_set_max_active_levels(1); /* batch work is parallel over images, never nested */
    if (getenv("QCAL_DEBUG")) qcal_log_set_level(QCAL_LOG_DEBUG);
    if (argc < 2) {
        fputs(usage_main, stderr);
        return qcal_status_exit_code(QCAL_INVALID_ARGUMENT);
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "infer") == 0) return cmd_infer(argc - 1, argv + 1);
    if (strcmp(cmd, "dataset") == 0) return cli_dataset(argc - 1, argv + 1);
    if (strcmp(cmd, "report") == 0) return cli_report(argc - 1, argv + 1);
    if (strcmp(cmd, "visualize") == 0) return cli_visualize(argc - 1, argv + 1);
    if (strcmp(cmd, "calibrate") == 0 || strcmp(cmd, "bench") == 0 || strcmp(cmd, "evaluate") == 0 ||
        strcmp(cmd, "run") == 0 || strcmp(cmd, "sweep") == 0 || strcmp(cmd, "accuracy-aware") == 0) {
        if (qcal_par_init(&argc, &argv) != QCAL_OK) return qcal_status_exit_code(QCAL_BACKEND_ERROR);
        int rc = cmd[0] == 'a'   ? cli_accuracy_aware(argc - 1, argv + 1)
                 : cmd[0] == 'c' ? cli_calibrate(argc - 1, argv + 1)
                 : cmd[0] == 'e' ? cli_evaluate(argc - 1, argv + 1)
                 : cmd[0] == 'r' ? cli_run(argc - 1, argv + 1)
                 : cmd[0] == 's' ? cli_sweep(argc - 1, argv + 1)
                                 : cli_bench(argc - 1, argv + 1);
        /* a failure not every rank agreed on: the others may wait in a collective */
        if (rc != 0 && qcal_par_size() > 1 && !qcal_par_failure_agreed()) qcal_par_abort(rc);
        qcal_par_finalize();
        return rc;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("qcal %s\n", QCAL_VERSION);
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_main, stdout);
        return 0;
    }
    QCAL_LOGE("unknown command '%s' (see qcal --help)", cmd);
    return qcal_status_exit_code(QCAL_INVALID_ARGUMENT);
}
