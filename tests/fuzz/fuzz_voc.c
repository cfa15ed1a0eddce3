/* libFuzzer: Pascal VOC annotation XML (expat). */
#include "qcal/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char *const classes[] = {"cat", "dog", "person"};
    static int init;
    if (!init) qcal_log_set_level(QCAL_LOG_QUIET), init = 1;
    struct qcal_voc_image v;
    if (qcal_voc_parse((const char *)data, size, "fuzz.xml", classes, 3, &v) == QCAL_OK) qcal_voc_image_free(&v);
    return 0;
}
