/* Pieces shared by the qcal subcommands. */
#ifndef QCAL_CLI_H
#define QCAL_CLI_H

#include "qcal/tensor.h"

/* Prints an output: top-k classes for 2-D float outputs, shape/min/max/mean otherwise. */
void cli_summarize(const char *name, const struct qcal_tensor *t, int top);
/* Indices of the k largest of row[0..n) in descending order (ties: the lower index),
 * k <= n and k <= 64; returns k. */
int cli_top_k(const float *row, int64_t n, int k, int64_t *out);
/* dnnl | blas | ref | auto -> enum qcal_kernels, -1 for anything else. */
int cli_parse_kernels(const char *s);
/* Replaces characters unfit for file names with '_'. */
void cli_sanitize(char *s);
struct qcal_job;
struct qcal_job_dataset;
struct qcal_dataset;
/* Loads one of the job's datasets with its annotations and subset. */
enum qcal_status cli_load_dataset(const struct qcal_job *job, const struct qcal_job_dataset *d, struct qcal_dataset *ds);
/* `qcal dataset JOB.yml`. */
int cli_dataset(int argc, char **argv);
/* `qcal infer JOB.yml [IMAGE...]`. */
int cli_infer_job(int argc, char **argv);

#endif
