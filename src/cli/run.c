/* qcal run JOB.yml -o OUTDIR: the main job. Calibrate (OUTDIR/model.int8.onnx and its
 * statistics), benchmark both models (latency and throughput, FP32 vs INT8), then evaluate
 * the INT8 model against its parent on the validation images (OUTDIR/report.h5, which takes
 * in the calibration summary and the benchmark figures): the three commands in one process,
 * under the same MPI ranks. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qcal/par.h"
#include "qcal/report.h"

static const char usage[] =
    "usage: qcal run JOB.yml -o OUTDIR [options]      (under mpirun/srun: the ranks share the work)\n"
    "\n"
    "The main job: qcal calibrate (OUTDIR/model.int8.onnx, calibration.h5, timing.h5), qcal\n"
    "bench of both models (latency and throughput per node, the INT8/FP32 speed-up:\n"
    "OUTDIR/bench.h5), then qcal evaluate of the INT8 model against the job's model on the\n"
    "validation images (OUTDIR/report.h5, holding the calibration summary and the benchmark\n"
    "too: docs/report-format.md), and a short FP32-vs-INT8 table. Stops at the first step\n"
    "that fails, with its exit status.\n"
    "\n"
    "options:\n"
    "  --threads N     OpenMP threads per rank (every step)\n"
    "  --time SECONDS  measured time per benchmark mode and precision (default 3)\n"
    "  --quiet         only the evaluation summary and the benchmark table\n"
    "  -h, --help      this help\n";

/* The end of the main job: FP32 against INT8 in a few lines, from the report. */
static void print_summary(const char *report)
{
    struct qcal_h5 *f = NULL;
    if (qcal_h5_open(report, &f) != QCAL_OK) return;
    qcal_log_capture((char[1]){0}, 1); /* absent attributes are not errors here */
    printf("\n%-34s %12s %12s\n", "", "FP32", "INT8");
    static const struct {
        const char *what, *parent, *optimized;
    } metrics[] = {{"top-1 accuracy", "parent_top1", "optimized_top1"},
                   {"top-5 accuracy", "parent_top5", "optimized_top5"},
                   {"COCO mAP@[.5:.95]", "parent_coco_map", "optimized_coco_map"},
                   {"VOC mAP", "parent_voc_map", "optimized_voc_map"},
                   {"mask mAP@[.5:.95]", "parent_coco_segm_map", "optimized_coco_segm_map"},
                   {"mean IoU (masks)", "parent_mean_iou", "optimized_mean_iou"}};
    double a, b;
    for (size_t i = 0; i < sizeof metrics / sizeof *metrics; i++)
        if (qcal_h5_read_attr_f64(f, "/accuracy", metrics[i].parent, &a) == QCAL_OK &&
            qcal_h5_read_attr_f64(f, "/accuracy", metrics[i].optimized, &b) == QCAL_OK)
            printf("%-34s %12.4f %12.4f\n", metrics[i].what, a, b);
    static const struct {
        const char *what, *name;
    } agree[] = {{"INT8 top-1 agreement with FP32", "top1_agreement"},
                 {"INT8 mean IoU with FP32's maps", "mean_iou_agreement"},
                 {"INT8 mAP against FP32's boxes", "map_vs_parent"}};
    for (size_t i = 0; i < sizeof agree / sizeof *agree; i++)
        if (qcal_h5_read_attr_f64(f, "/summary", agree[i].name, &a) == QCAL_OK)
            printf("%-34s %12s %12.4f\n", agree[i].what, "", a);
    double *lat = NULL, *fps = NULL;
    int64_t n = 0, m = 0;
    if (qcal_h5_read_column_f64(f, "/performance/nodes", "latency_median_ms", &lat, &n) == QCAL_OK &&
        qcal_h5_read_column_f64(f, "/performance/nodes", "throughput_fps", &fps, &m) == QCAL_OK && n >= 2 && m == n) {
        /* the first node's rows: fp32, int8 */
        printf("%-34s %12.3f %12.3f   %.2fx\n", "latency median (ms, first node)", lat[0], lat[1],
               lat[1] > 0 ? lat[0] / lat[1] : NAN);
        printf("%-34s %12.1f %12.1f   %.2fx\n", "throughput (images/s)", fps[0], fps[1], fps[0] > 0 ? fps[1] / fps[0] : NAN);
    }
    free(lat), free(fps);
    qcal_log_capture(NULL, 0);
    qcal_h5_close(f, false);
}

int cli_run(int argc, char **argv)
{
    enum { O_THREADS = 1000, O_TIME, O_QUIET };
    static const struct option opts[] = {{"output-dir", required_argument, 0, 'o'},
                                         {"threads", required_argument, 0, O_THREADS},
                                         {"time", required_argument, 0, O_TIME},
                                         {"quiet", no_argument, 0, O_QUIET},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *out = NULL, *threads = NULL, *seconds = "3";
    bool quiet = false;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (ch) {
        case 'o': out = optarg; break;
        case O_THREADS: threads = optarg; break;
        case O_TIME: seconds = optarg; break;
        case O_QUIET: quiet = true; break;
        case 'h': fputs(usage, stdout); return 0;
        default:
            if (qcal_par_rank() == 0)
                QCAL_LOGE("run: unknown option or missing value in '%s' (see qcal run --help)", argv[optind - 1]);
            return qcal_status_exit_code(QCAL_INVALID_ARGUMENT);
        }
    }
    if (optind != argc - 1 || !out) {
        if (qcal_par_rank() == 0) QCAL_LOGE("run: expected JOB.yml and -o OUTDIR (see qcal run --help)");
        return qcal_status_exit_code(QCAL_INVALID_ARGUMENT);
    }
    const char *job = argv[optind];
    char model[4096], report[4096], bench_h5[4096], calib_h5[4096];
    snprintf(model, sizeof model, "%s/model.int8.onnx", out);
    snprintf(report, sizeof report, "%s/report.h5", out);
    snprintf(bench_h5, sizeof bench_h5, "%s/bench.h5", out);
    snprintf(calib_h5, sizeof calib_h5, "%s/calibration.h5", out);
    const bool root = qcal_par_rank() == 0;
    /* each step's arguments; --threads last so that a step without it still parses */
    char *cal[] = {"calibrate", (char *)job, "-o", (char *)out, "--quiet", "--threads", (char *)threads};
    char *bench[] = {"bench", (char *)job, "--int8", model, "--time", (char *)seconds, "-o", bench_h5,
                     "--threads", (char *)threads};
    char *eval[] = {"evaluate", (char *)job, "--optimized", model, "-o", report, "--calibration", calib_h5,
                    "--bench", bench_h5, "--threads", (char *)threads};
    const int extra = threads ? 2 : 0;
    if (root && !quiet) printf("== 1/3 calibrate %s\n", job);
    fflush(stdout);
    int rc = cli_calibrate(5 + extra, cal);
    if (rc != 0) return rc;
    if (root && !quiet) printf("wrote %s\n== 2/3 benchmark FP32 and INT8\n", model);
    fflush(stdout);
    if ((rc = cli_bench(8 + extra, bench)) != 0) return rc;
    if (root && !quiet) printf("== 3/3 evaluate the INT8 model against its parent\n");
    fflush(stdout);
    if ((rc = cli_evaluate(10 + extra, eval)) != 0) return rc;
    if (root) print_summary(report);
    return 0;
}
