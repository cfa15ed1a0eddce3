/* libFuzzer: COCO instances JSON (cJSON), then every mask drawn (polygons, RLE). */
#include <stdlib.h>

#include "qcal/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) qcal_log_set_level(QCAL_LOG_QUIET), init = 1;
    struct qcal_dataset ds;
    if (qcal_coco_parse((const char *)data, size, "fuzz.json", "/nonexistent", false, &ds) != QCAL_OK) return 0;
    for (int64_t s = 0; s < ds.n_segms && s < 64; s++) {
        size_t n = (size_t)ds.segms[s].width * (size_t)ds.segms[s].height;
        if (n > ((size_t)1 << 20)) continue;
        uint8_t *m = malloc(n);
        if (m) (void)qcal_segm_draw(&ds, s, m);
        free(m);
    }
    qcal_dataset_free(&ds);
    return 0;
}
