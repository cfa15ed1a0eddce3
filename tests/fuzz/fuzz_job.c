/* libFuzzer: job files (libyaml tree, schema checks, every section). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "qcal/job.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        qcal_log_set_level(QCAL_LOG_QUIET);
        mkdir("/tmp/qcal_fuzz", 0755); /* the seeds name model.onnx next to the job */
        FILE *f = fopen("/tmp/qcal_fuzz/model.onnx", "wb");
        if (f) fclose(f);
        init = 1;
    }
    struct qcal_job *job = NULL;
    if (qcal_job_load_string((const char *)data, size, "/tmp/qcal_fuzz/job.yml", &job) == QCAL_OK) qcal_job_destroy(job);
    return 0;
}
