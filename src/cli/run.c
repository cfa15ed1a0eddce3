/* qcal run JOB.yml -o OUTDIR: the main job. Calibrate (OUTDIR/model.int8.onnx and its
 * statistics), evaluate the INT8 model against its parent on the validation images
 * (OUTDIR/report.h5), then benchmark both (latency and throughput, FP32 vs INT8): the three
 * commands in one process, under the same MPI ranks. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qcal/par.h"

static const char usage[] =
    "usage: qcal run JOB.yml -o OUTDIR [options]      (under mpirun/srun: the ranks share the work)\n"
    "\n"
    "The main job: qcal calibrate (OUTDIR/model.int8.onnx, calibration.h5, timing.h5), qcal\n"
    "evaluate of the INT8 model against the job's model on the validation images\n"
    "(OUTDIR/report.h5: docs/report-format.md), then qcal bench of both (latency and\n"
    "throughput per node, the INT8/FP32 speed-up). Stops at the first step that fails, with\n"
    "its exit status.\n"
    "\n"
    "options:\n"
    "  --threads N     OpenMP threads per rank (every step)\n"
    "  --time SECONDS  measured time per benchmark mode and precision (default 3)\n"
    "  --quiet         only the evaluation summary and the benchmark table\n"
    "  -h, --help      this help\n";

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
    char model[4096], report[4096];
    snprintf(model, sizeof model, "%s/model.int8.onnx", out);
    snprintf(report, sizeof report, "%s/report.h5", out);
    const bool root = qcal_par_rank() == 0;
    /* each step's arguments; --threads last so that a step without it still parses */
    char *cal[] = {"calibrate", (char *)job, "-o", (char *)out, "--quiet", "--threads", (char *)threads};
    char *eval[] = {"evaluate", (char *)job, "--optimized", model, "-o", report, "--threads", (char *)threads};
    char *bench[] = {"bench", (char *)job, "--int8", model, "--time", (char *)seconds, "--threads", (char *)threads};
    const int extra = threads ? 2 : 0;
    if (root && !quiet) printf("== 1/3 calibrate %s\n", job);
    fflush(stdout);
    int rc = cli_calibrate(5 + extra, cal);
    if (rc != 0) return rc;
    if (root && !quiet) printf("wrote %s\n== 2/3 evaluate the INT8 model against its parent\n", model);
    fflush(stdout);
    if ((rc = cli_evaluate(6 + extra, eval)) != 0) return rc;
    if (root && !quiet) printf("== 3/3 benchmark FP32 and INT8\n");
    fflush(stdout);
    return cli_bench(6 + extra, bench);
}
