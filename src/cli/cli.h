/* Pieces shared by the qcal subcommands. */
#ifndef QCAL_CLI_H
#define QCAL_CLI_H

#include "qcal/tensor.h"

/* Prints an output: top-k classes for 2-D float outputs, shape/min/max/mean otherwise. */
void cli_summarize(const char *name, const struct qcal_tensor *t, int top);
/* Replaces characters unfit for file names with '_'. */
void cli_sanitize(char *s);
/* `qcal infer JOB.yml [IMAGE...]`. */
int cli_infer_job(int argc, char **argv);

#endif
