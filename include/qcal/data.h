/*
 * qcal data: inputs and outputs as files. This module grows into images, datasets and
 * annotations; for now it reads and writes NumPy .npy arrays (format versions 1-3,
 * little-endian, C order).
 *
 *     struct qcal_tensor t;
 *     if (qcal_npy_read("x.npy", &t) == QCAL_OK) { ...; qcal_free(t.data); }
 */
#ifndef QCAL_DATA_H
#define QCAL_DATA_H

#include "qcal/tensor.h"

/* Reads a .npy file; t_out->data is allocated with qcal_malloc and owned by the caller. */
enum qcal_status qcal_npy_read(const char *path, struct qcal_tensor *t_out);

/* Writes t (plain layout) to `path` through a temporary file renamed when complete. */
enum qcal_status qcal_npy_write(const char *path, const struct qcal_tensor *t);

#endif

#ifndef QCAL_DATA_IMAGE
#define QCAL_DATA_IMAGE
/*
 * Images: 8-bit, rows top to bottom, channels interleaved (RGB or gray), upright (JPEG EXIF
 * orientation applied). Decoding refuses what it cannot read exactly (CMYK JPEGs, 16-bit
 * PNGs, truncated or corrupt data) with one error naming the file.
 *
 *     struct qcal_image im = {0};
 *     if (qcal_image_load("cat.jpg", 3, &im) == QCAL_OK) { ...; qcal_image_free(&im); }
 */
struct qcal_image {
    int width, height, channels;
    uint8_t *pixels; /* width * height * channels bytes, owned (qcal_image_free) */
};

void qcal_image_free(struct qcal_image *im);
/* channels: 3 (RGB) or 1 (gray). `name` is used in messages. */
enum qcal_status qcal_image_decode(const void *data, size_t size, const char *name, int channels,
                                   struct qcal_image *out);
enum qcal_status qcal_image_load(const char *path, int channels, struct qcal_image *out);
/* The same, letting JPEGs decode at a reduced scale (1/2, 1/4, 1/8 through the DCT) as long
 * as the upright result stays at least min_width x min_height: much faster for large
 * photos, and what the first resize needs. 0 x 0 decodes at full size. */
enum qcal_status qcal_image_load_scaled(const char *path, int channels, int min_width, int min_height,
                                        struct qcal_image *out);
enum qcal_status qcal_image_decode_scaled(const void *data, size_t size, const char *name, int channels,
                                          int min_width, int min_height, struct qcal_image *out);

/*
 * Preprocessing, as in OpenVINO's Accuracy Checker, applied in order to a float copy of the
 * image (H, W, C); resizes follow OpenCV's conventions (half-pixel centres, no antialiasing
 * for bilinear; box averaging for area).
 */
enum qcal_prep_kind {
    QCAL_PREP_RESIZE,      /* width x height, or shorter side, or fit + pad */
    QCAL_PREP_CENTER_CROP, /* width x height; the image must be at least that large */
    QCAL_PREP_SWAP_RB,     /* RGB <-> BGR */
    QCAL_PREP_NORMALIZE,   /* (x - mean[c]) / std[c] */
    QCAL_PREP_SCALE,       /* x * scale */
};
enum qcal_resize_mode { QCAL_RESIZE_EXACT, QCAL_RESIZE_SHORTER_SIDE, QCAL_RESIZE_FIT_PAD };
enum qcal_interp { QCAL_INTERP_BILINEAR, QCAL_INTERP_NEAREST, QCAL_INTERP_AREA };

struct qcal_prep_step {
    int kind;
    int width, height;  /* RESIZE (EXACT, FIT_PAD), CENTER_CROP; SHORTER_SIDE uses width */
    int mode, interp;   /* RESIZE */
    float pad_value;    /* RESIZE FIT_PAD */
    float mean[4], std[4];
    float scale;
};

#define QCAL_PREP_MAX_STEPS 16
struct qcal_prep {
    int n;
    struct qcal_prep_step steps[QCAL_PREP_MAX_STEPS];
    bool nhwc; /* output layout; NCHW otherwise */
};

/* Runs the steps on `im` and writes [1, C, H, W] (or [1, H, W, C]) floats into out, whose
 * dims say the size the model wants; a different final size is an error naming `name`.
 * `work` holds 2 * qcal_prep_work_floats(...) floats. */
size_t qcal_prep_work_floats(const struct qcal_prep *p, int width, int height, int channels);
/* The size the steps give an image of width x height (crops larger than it are clamped). */
void qcal_prep_output_size(const struct qcal_prep *p, int width, int height, int *width_out, int *height_out);
enum qcal_status qcal_prep_run(const struct qcal_prep *p, const struct qcal_image *im, const char *name,
                               float *work, struct qcal_tensor *out);
#endif

#ifndef QCAL_DATA_LIST
#define QCAL_DATA_LIST
/* The images of a dataset source, in a deterministic order: a folder walked recursively in
 * sorted order (.jpg, .jpeg, .png), one image file, or a list file of `path [label]` lines
 * (paths relative to the list's folder). labels[i] is -1 where none is given. */
struct qcal_image_list {
    int count, cap;
    char **paths;    /* owned */
    int64_t *labels; /* owned */
};
enum qcal_status qcal_image_list_load(const char *source, struct qcal_image_list *out);
void qcal_image_list_free(struct qcal_image_list *l);
#endif
