/* Test tool: decodes an image, runs preprocessing steps given on the command line and
 * writes the result as .npy ([1, C, H, W] float32, or [1, H, W, C] with --nhwc).
 *
 *   prep_tool IMAGE OUT.npy [--gray] [--nhwc] [--min WxH] STEP...   (--min: JPEG DCT scaling)
 *   STEP: resize=WxH:INTERP  shorter=S:INTERP  fit=WxH:INTERP:PAD  crop=WxH  swaprb
 *         norm=M1,M2,M3/S1,S2,S3  scale=F        INTERP: bilinear | nearest | area
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcal/data.h"

static int interp(const char *s)
{
    if (!s) return QCAL_INTERP_BILINEAR;
    if (strncmp(s, "nearest", 7) == 0) return QCAL_INTERP_NEAREST;
    if (strncmp(s, "area", 4) == 0) return QCAL_INTERP_AREA;
    return QCAL_INTERP_BILINEAR;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: prep_tool IMAGE OUT.npy [--gray] [--nhwc] STEP...\n");
        return 2;
    }
    struct qcal_prep p = {0};
    int channels = 3, min_w = 0, min_h = 0;
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        struct qcal_prep_step *s = &p.steps[p.n];
        memset(s, 0, sizeof *s);
        if (strcmp(a, "--gray") == 0) { channels = 1; continue; }
        if (strcmp(a, "--nhwc") == 0) { p.nhwc = true; continue; }
        if (strcmp(a, "--min") == 0 && i + 1 < argc) { sscanf(argv[++i], "%dx%d", &min_w, &min_h); continue; }
        if (strncmp(a, "resize=", 7) == 0) {
            s->kind = QCAL_PREP_RESIZE, s->mode = QCAL_RESIZE_EXACT;
            sscanf(a + 7, "%dx%d", &s->width, &s->height);
            s->interp = interp(strchr(a, ':') ? strchr(a, ':') + 1 : NULL);
        } else if (strncmp(a, "shorter=", 8) == 0) {
            s->kind = QCAL_PREP_RESIZE, s->mode = QCAL_RESIZE_SHORTER_SIDE;
            s->width = atoi(a + 8);
            s->interp = interp(strchr(a, ':') ? strchr(a, ':') + 1 : NULL);
        } else if (strncmp(a, "fit=", 4) == 0) {
            s->kind = QCAL_PREP_RESIZE, s->mode = QCAL_RESIZE_FIT_PAD;
            sscanf(a + 4, "%dx%d", &s->width, &s->height);
            const char *c1 = strchr(a, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
            s->interp = interp(c1 ? c1 + 1 : NULL);
            s->pad_value = c2 ? (float)atof(c2 + 1) : 0.0f;
        } else if (strncmp(a, "crop=", 5) == 0) {
            s->kind = QCAL_PREP_CENTER_CROP;
            sscanf(a + 5, "%dx%d", &s->width, &s->height);
        } else if (strcmp(a, "swaprb") == 0) {
            s->kind = QCAL_PREP_SWAP_RB;
        } else if (strncmp(a, "norm=", 5) == 0) {
            s->kind = QCAL_PREP_NORMALIZE;
            sscanf(a + 5, "%f,%f,%f/%f,%f,%f", &s->mean[0], &s->mean[1], &s->mean[2], &s->std[0], &s->std[1], &s->std[2]);
        } else if (strncmp(a, "scale=", 6) == 0) {
            s->kind = QCAL_PREP_SCALE;
            s->scale = (float)atof(a + 6);
        } else {
            fprintf(stderr, "prep_tool: unknown step %s\n", a);
            return 2;
        }
        p.n++;
    }
    struct qcal_image im;
    enum qcal_status st = qcal_image_load_scaled(argv[1], channels, min_w, min_h, &im);
    if (st != QCAL_OK) return qcal_status_exit_code(st);
    int w, h;
    qcal_prep_output_size(&p, im.width, im.height, &w, &h);
    int64_t dims[4] = {1, channels, h, w};
    if (p.nhwc) dims[1] = h, dims[2] = w, dims[3] = channels;
    struct qcal_tensor out = qcal_tensor_make(QCAL_F32, 4, dims);
    out.data = qcal_malloc(qcal_tensor_bytes(&out));
    float *work = qcal_malloc(2 * sizeof(float) * qcal_prep_work_floats(&p, im.width, im.height, channels));
    st = qcal_prep_run(&p, &im, argv[1], work, &out);
    if (st == QCAL_OK) st = qcal_npy_write(argv[2], &out);
    qcal_free(work);
    qcal_free(out.data);
    qcal_image_free(&im);
    return qcal_status_exit_code(st);
}
