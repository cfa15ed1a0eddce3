/* libFuzzer: image decoding (JPEG through TurboJPEG with EXIF, PNG), DCT-scaled decoding,
 * and preprocessing of whatever decodes. */
#include <stdlib.h>

#include "qcal/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) qcal_log_set_level(QCAL_LOG_QUIET), init = 1;
    struct qcal_image im;
    if (qcal_image_decode(data, size, "fuzz", 3, &im) == QCAL_OK) {
        if ((size_t)im.width * im.height <= ((size_t)1 << 20)) {
            struct qcal_prep p = {.n = 2};
            p.steps[0] = (struct qcal_prep_step){.kind = QCAL_PREP_RESIZE, .width = 40, .mode = QCAL_RESIZE_SHORTER_SIDE,
                                                 .interp = (int)(size % 3)};
            p.steps[1] = (struct qcal_prep_step){.kind = QCAL_PREP_CENTER_CROP, .width = 32, .height = 32};
            int ow, oh;
            qcal_prep_output_size(&p, im.width, im.height, &ow, &oh);
            float *work = malloc(2 * sizeof(float) * qcal_prep_work_floats(&p, im.width, im.height, 3));
            float out[3 * 32 * 32];
            struct qcal_tensor t = {.dtype = QCAL_F32, .ndim = 4, .dims = {1, 3, 32, 32}, .data = out};
            if (work) (void)qcal_prep_run(&p, &im, "fuzz", work, &t);
            free(work);
        }
        qcal_image_free(&im);
    }
    if (qcal_image_decode_scaled(data, size, "fuzz", 1, 50, 50, &im) == QCAL_OK) qcal_image_free(&im);
    return 0;
}
