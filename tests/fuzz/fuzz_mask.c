/* libFuzzer: PNG segmentation masks (libpng low-level reading, palette indices). */
#include "qcal/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) qcal_log_set_level(QCAL_LOG_QUIET), init = 1;
    struct qcal_mask m;
    if (qcal_mask_decode(data, size, "fuzz.png", &m) == QCAL_OK) qcal_mask_free(&m);
    return 0;
}
