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
    float scale;     /* decoded size / file's size (below 1 after DCT-scaled decoding) */
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
/* Writes an RGB or gray image as PNG (a temporary file renamed when complete). */
enum qcal_status qcal_png_write(const char *path, const struct qcal_image *im);
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
/* Maps a point of the model input (after the steps) back to the image of width x height the
 * steps started from: undoes crops, pads and resizes. */
void qcal_prep_map_back(const struct qcal_prep *p, int width, int height, float *x, float *y);
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

#ifndef QCAL_DATA_SET
#define QCAL_DATA_SET
/*
 * Datasets: the images of a source joined with their annotations, in a deterministic order
 * that every rank computes alike.
 *
 *     struct qcal_dataset_spec spec = {.source = "val/", .format = QCAL_DATA_VOC, ...};
 *     struct qcal_dataset ds;
 *     if (qcal_dataset_load(&spec, &ds) != QCAL_OK) return 1;
 *     qcal_dataset_subset(&ds, 300, true, 42);        // the same 300 on every rank
 *     int64_t begin, end;
 *     qcal_shard(ds.count, rank, nranks, &begin, &end); // this rank's images
 *     ...
 *     qcal_dataset_free(&ds);
 *
 * Boxes are in pixels of the upright image, x1/y1 exclusive ends as the annotations give
 * them (VOC xmax/ymax, COCO x + w / y + h).
 */
enum qcal_data_format {
    QCAL_DATA_NONE,       /* images only (labels from a `path label` list file, if given) */
    QCAL_DATA_IMAGENET,   /* `file label` lines (annotations), or a list file with labels */
    QCAL_DATA_SUBFOLDERS, /* source/<class>/...: the class is the subfolder */
    QCAL_DATA_VOC,        /* Pascal VOC: Annotations/ XML files (+ an ImageSets/Main list) */
    QCAL_DATA_COCO,       /* COCO instances JSON */
    QCAL_DATA_MASKS,      /* semantic segmentation masks as PNG (palette indices; 255 = ignore) */
};

struct qcal_dataset_spec {
    const char *source;      /* image folder, image or list file */
    const char *annotations; /* file or folder, per format (NULL: none) */
    const char *imageset;    /* VOC/masks: file of image ids, one per line (NULL: all) */
    const char *masks;       /* MASKS: folder of <image stem>.png */
    const char *classes;     /* file of class names, one per line (NULL: the format's own) */
    int format;              /* enum qcal_data_format */
};

struct qcal_object {
    float x0, y0, x1, y1;
    int32_t cls;             /* index into classes */
    uint8_t difficult;       /* VOC difficult (ignored by metrics) */
    uint8_t crowd;           /* COCO iscrowd */
    int32_t segm;            /* index into segms, -1: no mask */
};

enum qcal_segm_kind { QCAL_SEGM_POLYGONS, QCAL_SEGM_RLE };
struct qcal_segm {
    int kind;                /* enum qcal_segm_kind */
    int width, height;       /* the image's size the mask is drawn at */
    /* POLYGONS: values[begin, end) = n, x0, y0, ... x(n-1), y(n-1), n, ... per polygon;
     * RLE: run lengths, column-major, starting with a run of zeros (COCO's convention). */
    int64_t begin, end;
};

struct qcal_dataset {
    int64_t count;
    char **paths;            /* owned */
    int64_t *labels;         /* class index per image, -1: none */
    int64_t *index;          /* position in the full dataset (before a subset) */
    char **mask_paths;       /* MASKS: per image; NULL otherwise */
    int64_t *obj_begin;      /* count + 1 offsets into objects (NULL without boxes) */
    struct qcal_object *objects;
    int64_t n_objects;
    struct qcal_segm *segms;
    int64_t n_segms;
    double *values;          /* polygon coordinates and RLE counts */
    int64_t n_values;
    int n_classes;
    char **classes;          /* names; NULL when the dataset names none */
    int32_t *class_ids;      /* COCO category ids (NULL otherwise) */
    int format;
    int64_t cap;             /* room in the per-image arrays */
};

enum qcal_status qcal_dataset_load(const struct qcal_dataset_spec *spec, struct qcal_dataset *out);
void qcal_dataset_free(struct qcal_dataset *ds);
/* Appends an image (path copied; label -1 for none; mask_path NULL unless every image has one). */
enum qcal_status qcal_dataset_push(struct qcal_dataset *ds, const char *path, int64_t label, const char *mask_path);
/* Keeps n images (n >= count keeps all): the first n, or n drawn with a seeded generator and
 * kept in dataset order. The same choice on every machine, rank and run. */
enum qcal_status qcal_dataset_subset(struct qcal_dataset *ds, int64_t n, bool random, uint64_t seed);

/* Rank `rank` of `nranks` gets images [begin, end): contiguous slices in rank order whose
 * sizes differ by at most one, so gathering per-image results in rank order restores the
 * dataset order. */
void qcal_shard(int64_t count, int rank, int nranks, int64_t *begin, int64_t *end);

/* Draws segms[s] as a width x height mask (1 inside, row-major). Polygons are filled by the
 * even-odd rule at pixel centres; RLE is decoded exactly. */
enum qcal_status qcal_segm_draw(const struct qcal_dataset *ds, int64_t s, uint8_t *mask);

/* A segmentation mask: one byte per pixel, the class index (palette index of a palette PNG,
 * value of an 8-bit gray PNG); 255 conventionally means "ignore". */
struct qcal_mask {
    int width, height;
    uint8_t *pixels;         /* owned (qcal_mask_free) */
};
enum qcal_status qcal_mask_decode(const void *data, size_t size, const char *name, struct qcal_mask *out);
enum qcal_status qcal_mask_load(const char *path, struct qcal_mask *out);
void qcal_mask_free(struct qcal_mask *m);

/* Parsers of one annotation file held in memory (what the loaders and the fuzzers call). */
struct qcal_voc_image {
    char *filename;          /* <filename>, NULL when absent (owned) */
    int width, height;       /* <size>, 0 when absent */
    struct qcal_object *objects; /* owned */
    int64_t n_objects;
};
enum qcal_status qcal_voc_parse(const char *xml, size_t size, const char *name, char *const *classes, int n_classes,
                                struct qcal_voc_image *out);
void qcal_voc_image_free(struct qcal_voc_image *v);
enum qcal_status qcal_coco_parse(const char *json, size_t size, const char *name, const char *image_dir,
                                 bool check_files, struct qcal_dataset *out);
#endif
