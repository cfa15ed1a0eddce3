/* Job files: the YAML tree checked against the schema in docs/job-format.md. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qcal/job.h"
#include "yaml_tree.h"

struct reader {
    const char *path, *dir;
};

#define JERR(r, node, ...) job_error((r), (node), __VA_ARGS__)

__attribute__((format(printf, 3, 4))) static enum qcal_status job_error(const struct reader *r,
                                                                       const struct ynode *n, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return QCAL_ERR(QCAL_INVALID_JOB, "%s:%d:%d: %s", r->path, n ? n->line : 1, n ? n->col : 1, msg);
}

static enum qcal_status want(const struct reader *r, const struct ynode *n, int kind, const char *key)
{
    if (n->kind == kind) return QCAL_OK;
    return JERR(r, n, "'%s' must be %s, not %s", key, ynode_kind_name(kind), ynode_kind_name(n->kind));
}

/* Every key of `map` must be in `allowed` (NULL-terminated); duplicates are errors too. */
static enum qcal_status check_keys(const struct reader *r, const struct ynode *map, const char *const *allowed,
                                   const char *where)
{
    for (int i = 0; i < map->n; i++) {
        const struct ynode *k = map->items[2 * i];
        bool ok = false;
        for (int a = 0; allowed[a] && !ok; a++) ok = strcmp(k->value, allowed[a]) == 0;
        if (!ok) {
            char list[512];
            size_t len = 0;
            list[0] = '\0';
            for (int a = 0; allowed[a] && len < sizeof list; a++)
                len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", a ? ", " : "", allowed[a]);
            return JERR(r, k, "unknown key '%s' in %s (expected one of: %s)", k->value, where, list);
        }
        for (int j = 0; j < i; j++)
            if (strcmp(map->items[2 * j]->value, k->value) == 0)
                return JERR(r, k, "key '%s' appears twice in %s", k->value, where);
    }
    return QCAL_OK;
}

static const struct ynode *get(const struct ynode *map, const char *key)
{
    for (int i = 0; map && map->kind == YNODE_MAPPING && i < map->n; i++)
        if (strcmp(map->items[2 * i]->value, key) == 0) return map->items[2 * i + 1];
    return NULL;
}

static enum qcal_status get_string(const struct reader *r, const struct ynode *n, const char *key, char **out)
{
    enum qcal_status st = want(r, n, YNODE_SCALAR, key);
    if (st != QCAL_OK) return st;
    if (!n->value[0]) return JERR(r, n, "'%s' is empty", key);
    free(*out);
    *out = strdup(n->value);
    return *out ? QCAL_OK : QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
}

static enum qcal_status get_path(const struct reader *r, const struct ynode *n, const char *key, char **out)
{
    char *v = NULL;
    enum qcal_status st = get_string(r, n, key, &v);
    if (st != QCAL_OK) return st;
    if (v[0] == '/') {
        free(*out);
        *out = v;
        return QCAL_OK;
    }
    size_t len = strlen(r->dir) + strlen(v) + 2;
    char *full = malloc(len);
    if (!full) {
        free(v);
        return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    }
    snprintf(full, len, "%s/%s", r->dir, v);
    free(v);
    free(*out);
    *out = full;
    return QCAL_OK;
}

static enum qcal_status get_int(const struct reader *r, const struct ynode *n, const char *key, int64_t lo,
                                int64_t hi, int64_t *out)
{
    enum qcal_status st = want(r, n, YNODE_SCALAR, key);
    if (st != QCAL_OK) return st;
    char *end;
    errno = 0;
    long long v = strtoll(n->value, &end, 10);
    if (n->quoted || end == n->value || *end || errno)
        return JERR(r, n, "'%s' must be an integer, not '%s'", key, n->value);
    if (v < lo || v > hi) return JERR(r, n, "'%s' is %lld; expected %lld to %lld", key, v, (long long)lo, (long long)hi);
    *out = v;
    return QCAL_OK;
}

static enum qcal_status get_int32(const struct reader *r, const struct ynode *n, const char *key, int lo, int hi,
                                  int *out)
{
    int64_t v;
    enum qcal_status st = get_int(r, n, key, lo, hi, &v);
    if (st == QCAL_OK) *out = (int)v;
    return st;
}

static enum qcal_status get_float(const struct reader *r, const struct ynode *n, const char *key, float *out)
{
    enum qcal_status st = want(r, n, YNODE_SCALAR, key);
    if (st != QCAL_OK) return st;
    char *end;
    double v = strtod(n->value, &end);
    if (n->quoted || end == n->value || *end || !isfinite(v))
        return JERR(r, n, "'%s' must be a number, not '%s'", key, n->value);
    *out = (float)v;
    return QCAL_OK;
}

static enum qcal_status get_bool(const struct reader *r, const struct ynode *n, const char *key, bool *out)
{
    enum qcal_status st = want(r, n, YNODE_SCALAR, key);
    if (st != QCAL_OK) return st;
    if (!n->quoted && (!strcmp(n->value, "true") || !strcmp(n->value, "True") || !strcmp(n->value, "yes"))) *out = true;
    else if (!n->quoted && (!strcmp(n->value, "false") || !strcmp(n->value, "False") || !strcmp(n->value, "no"))) *out = false;
    else return JERR(r, n, "'%s' must be true or false, not '%s'", key, n->value);
    return QCAL_OK;
}

/* One of `names` (NULL-terminated), case-insensitive; *out is its index. */
static enum qcal_status get_enum(const struct reader *r, const struct ynode *n, const char *key,
                                 const char *const *names, int *out)
{
    enum qcal_status st = want(r, n, YNODE_SCALAR, key);
    if (st != QCAL_OK) return st;
    char list[512];
    size_t len = 0;
    list[0] = '\0';
    for (int i = 0; names[i]; i++) {
        if (strcasecmp(n->value, names[i]) == 0) {
            *out = i;
            return QCAL_OK;
        }
        if (len < sizeof list) len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", names[i]);
    }
    return JERR(r, n, "'%s' is '%s'; expected one of: %s", key, n->value, list);
}

/* A number or a list of numbers; a single number fills every slot up to `fill`. */
static enum qcal_status get_floats(const struct reader *r, const struct ynode *n, const char *key, float *out,
                                   int cap, int fill, int *count)
{
    if (n->kind == YNODE_SCALAR) {
        enum qcal_status st = get_float(r, n, key, &out[0]);
        for (int i = 1; i < fill && i < cap; i++) out[i] = out[0];
        if (count) *count = fill;
        return st;
    }
    enum qcal_status st = want(r, n, YNODE_SEQUENCE, key);
    if (st != QCAL_OK) return st;
    if (n->n < 1 || n->n > cap) return JERR(r, n, "'%s' needs 1 to %d values, has %d", key, cap, n->n);
    for (int i = 0; i < n->n; i++)
        if ((st = get_float(r, n->items[i], key, &out[i])) != QCAL_OK) return st;
    if (count) *count = n->n;
    return QCAL_OK;
}

/* `size: 224` or `size: [width, height]`. */
static enum qcal_status get_size(const struct reader *r, const struct ynode *n, const char *key, int *w, int *h)
{
    enum qcal_status st;
    if (n->kind == YNODE_SCALAR) {
        if ((st = get_int32(r, n, key, 1, 1 << 16, w)) != QCAL_OK) return st;
        *h = *w;
        return QCAL_OK;
    }
    if ((st = want(r, n, YNODE_SEQUENCE, key)) != QCAL_OK) return st;
    if (n->n != 2) return JERR(r, n, "'%s' must be one number or [width, height]", key);
    if ((st = get_int32(r, n->items[0], key, 1, 1 << 16, w)) != QCAL_OK) return st;
    return get_int32(r, n->items[1], key, 1, 1 << 16, h);
}

static const char *const interp_names[] = {"bilinear", "nearest", "area", "linear", NULL};
static const char *const aspect_names[] = {"none", "shorter_side", "fit_pad", NULL};

static enum qcal_status read_step(const struct reader *r, const struct ynode *n, struct qcal_prep *p)
{
    static const char *const types[] = {"resize", "center_crop", "crop", "rgb_to_bgr", "bgr_to_rgb",
                                        "normalization", "scale", NULL};
    enum qcal_status st = want(r, n, YNODE_MAPPING, "preprocessing step");
    if (st != QCAL_OK) return st;
    const struct ynode *t = get(n, "type");
    if (!t) return JERR(r, n, "preprocessing step without 'type' (one of: resize, center_crop, rgb_to_bgr, "
                        "bgr_to_rgb, normalization, scale)");
    int type;
    if ((st = get_enum(r, t, "type", types, &type)) != QCAL_OK) return st;
    if (p->n == QCAL_PREP_MAX_STEPS) return JERR(r, n, "more than %d preprocessing steps", QCAL_PREP_MAX_STEPS);
    struct qcal_prep_step *s = &p->steps[p->n];
    memset(s, 0, sizeof *s);
    const struct ynode *v;
    switch (type) {
    case 0: {
        static const char *const keys[] = {"type", "size", "dst_width", "dst_height", "aspect_ratio",
                                           "interpolation", "pad_value", NULL};
        if ((st = check_keys(r, n, keys, "a resize step")) != QCAL_OK) return st;
        s->kind = QCAL_PREP_RESIZE;
        if ((v = get(n, "size")) && (st = get_size(r, v, "size", &s->width, &s->height)) != QCAL_OK) return st;
        if ((v = get(n, "dst_width")) && (st = get_int32(r, v, "dst_width", 1, 1 << 16, &s->width)) != QCAL_OK) return st;
        if ((v = get(n, "dst_height")) && (st = get_int32(r, v, "dst_height", 1, 1 << 16, &s->height)) != QCAL_OK) return st;
        if (!s->width || !s->height) return JERR(r, n, "resize needs 'size' (or 'dst_width' and 'dst_height')");
        if ((v = get(n, "aspect_ratio")) && (st = get_enum(r, v, "aspect_ratio", aspect_names, &s->mode)) != QCAL_OK)
            return st;
        if ((v = get(n, "interpolation"))) {
            if ((st = get_enum(r, v, "interpolation", interp_names, &s->interp)) != QCAL_OK) return st;
            if (s->interp == 3) s->interp = QCAL_INTERP_BILINEAR;
        }
        if ((v = get(n, "pad_value")) && (st = get_float(r, v, "pad_value", &s->pad_value)) != QCAL_OK) return st;
        if (s->mode == QCAL_RESIZE_SHORTER_SIDE && s->width != s->height)
            return JERR(r, n, "aspect_ratio: shorter_side takes one size (the shorter side's)");
        break;
    }
    case 1:
    case 2: {
        static const char *const keys[] = {"type", "size", NULL};
        if ((st = check_keys(r, n, keys, "a crop step")) != QCAL_OK) return st;
        if (!(v = get(n, "size"))) return JERR(r, n, "center_crop needs 'size'");
        s->kind = QCAL_PREP_CENTER_CROP;
        if ((st = get_size(r, v, "size", &s->width, &s->height)) != QCAL_OK) return st;
        break;
    }
    case 3:
    case 4: {
        static const char *const keys[] = {"type", NULL};
        if ((st = check_keys(r, n, keys, "a color step")) != QCAL_OK) return st;
        s->kind = QCAL_PREP_SWAP_RB;
        break;
    }
    case 5: {
        static const char *const keys[] = {"type", "mean", "std", NULL};
        if ((st = check_keys(r, n, keys, "a normalization step")) != QCAL_OK) return st;
        s->kind = QCAL_PREP_NORMALIZE;
        for (int i = 0; i < 4; i++) s->mean[i] = 0.0f, s->std[i] = 1.0f;
        if ((v = get(n, "mean")) && (st = get_floats(r, v, "mean", s->mean, 4, 4, NULL)) != QCAL_OK) return st;
        if ((v = get(n, "std")) && (st = get_floats(r, v, "std", s->std, 4, 4, NULL)) != QCAL_OK) return st;
        for (int i = 0; i < 4; i++)
            if (s->std[i] == 0.0f) return JERR(r, v, "'std' must not be 0");
        break;
    }
    default: {
        static const char *const keys[] = {"type", "value", NULL};
        if ((st = check_keys(r, n, keys, "a scale step")) != QCAL_OK) return st;
        if (!(v = get(n, "value"))) return JERR(r, n, "scale needs 'value'");
        s->kind = QCAL_PREP_SCALE;
        if ((st = get_float(r, v, "value", &s->scale)) != QCAL_OK) return st;
    }
    }
    p->n++;
    return QCAL_OK;
}

static enum qcal_status read_input(const struct reader *r, const struct ynode *n, struct qcal_job_input *in)
{
    static const char *const keys[] = {"name", "shape", "layout", "color", "decode_scaling", NULL};
    static const char *const layouts[] = {"NCHW", "NHWC", NULL};
    static const char *const colors[] = {"RGB", "BGR", "GRAY", NULL};
    enum qcal_status st = want(r, n, YNODE_MAPPING, "input");
    if (st == QCAL_OK) st = check_keys(r, n, keys, "an input");
    if (st != QCAL_OK) return st;
    const struct ynode *v;
    if ((v = get(n, "name")) && (st = get_string(r, v, "name", &in->name)) != QCAL_OK) return st;
    if ((v = get(n, "shape"))) {
        if ((st = want(r, v, YNODE_SEQUENCE, "shape")) != QCAL_OK) return st;
        if (v->n < 1 || v->n > QCAL_MAX_DIMS) return JERR(r, v, "'shape' needs 1 to %d dims", QCAL_MAX_DIMS);
        in->ndim = v->n;
        for (int i = 0; i < v->n; i++)
            if ((st = get_int(r, v->items[i], "shape", 1, INT32_MAX, &in->shape[i])) != QCAL_OK) return st;
    }
    int layout = 0;
    if ((v = get(n, "layout")) && (st = get_enum(r, v, "layout", layouts, &layout)) != QCAL_OK) return st;
    in->nhwc = layout == 1;
    if ((v = get(n, "color")) && (st = get_enum(r, v, "color", colors, &in->color)) != QCAL_OK) return st;
    if ((v = get(n, "decode_scaling")) && (st = get_bool(r, v, "decode_scaling", &in->decode_scaling)) != QCAL_OK)
        return st;
    return QCAL_OK;
}

static enum qcal_status read_dataset(const struct reader *r, const struct ynode *n, struct qcal_job_dataset *d)
{
    static const char *const keys[] = {"source", "annotations", "annotation_format", "masks", "imageset",
                                       "classes", "subset", "subset_random", "seed", "skip_bad_images", NULL};
    /* the order of enum qcal_data_format */
    static const char *const formats[] = {"none", "imagenet", "subfolders", "voc", "coco", "masks", NULL};
    enum qcal_status st = want(r, n, YNODE_MAPPING, "dataset");
    if (st == QCAL_OK) st = check_keys(r, n, keys, "a dataset");
    if (st != QCAL_OK) return st;
    const struct ynode *v;
    d->present = true;
    if (!(v = get(n, "source"))) return JERR(r, n, "dataset needs 'source' (an image folder or a list file)");
    if ((st = get_path(r, v, "source", &d->source)) != QCAL_OK) return st;
    if ((v = get(n, "annotations")) && (st = get_path(r, v, "annotations", &d->annotations)) != QCAL_OK) return st;
    if ((v = get(n, "annotation_format")) &&
        (st = get_enum(r, v, "annotation_format", formats, &d->annotation_format)) != QCAL_OK)
        return st;
    const int f = d->annotation_format;
    if (d->annotations && (f == QCAL_DATA_NONE || f == QCAL_DATA_SUBFOLDERS || f == QCAL_DATA_MASKS))
        return JERR(r, get(n, "annotations"), "'annotations' is used with annotation_format imagenet, voc or coco");
    if (!d->annotations && (f == QCAL_DATA_VOC || f == QCAL_DATA_COCO))
        return JERR(r, n, "annotation_format %s needs 'annotations' (%s)", f == QCAL_DATA_VOC ? "voc" : "coco",
                    f == QCAL_DATA_VOC ? "the Annotations/ folder of XML files" : "the instances JSON file");
    if ((v = get(n, "masks")) && (st = get_path(r, v, "masks", &d->masks)) != QCAL_OK) return st;
    if (d->masks && f != QCAL_DATA_MASKS) return JERR(r, v, "'masks' is used with annotation_format masks");
    if (!d->masks && f == QCAL_DATA_MASKS) return JERR(r, n, "annotation_format masks needs 'masks' (a folder of PNG masks)");
    if ((v = get(n, "imageset")) && (st = get_path(r, v, "imageset", &d->imageset)) != QCAL_OK) return st;
    if (v && f != QCAL_DATA_VOC && f != QCAL_DATA_MASKS)
        return JERR(r, v, "'imageset' is used with annotation_format voc or masks");
    if ((v = get(n, "classes")) && (st = get_path(r, v, "classes", &d->classes)) != QCAL_OK) return st;
    if (v && f == QCAL_DATA_COCO) return JERR(r, v, "'classes' is not used with coco (the JSON names the categories)");
    if ((v = get(n, "subset")) && (st = get_int(r, v, "subset", 0, INT64_MAX, &d->subset)) != QCAL_OK) return st;
    if ((v = get(n, "subset_random")) && (st = get_bool(r, v, "subset_random", &d->subset_random)) != QCAL_OK) return st;
    if ((v = get(n, "seed")) && (st = get_int(r, v, "seed", 0, INT64_MAX, &d->seed)) != QCAL_OK) return st;
    if ((v = get(n, "skip_bad_images")) && (st = get_bool(r, v, "skip_bad_images", &d->skip_bad_images)) != QCAL_OK)
        return st;
    return QCAL_OK;
}

static enum qcal_status read_adapter(const struct reader *r, const struct ynode *n, struct qcal_job_adapter *a)
{
    static const char *const keys[] = {"type", "labels", "top_k", "confidence_threshold", "nms_threshold",
                                       "background_class", "anchors", "output", NULL};
    static const char *const kinds[] = {"tensor", "classification", "ssd", "yolo", "segmentation",
                                        "instance_segmentation", NULL};
    enum qcal_status st = want(r, n, YNODE_MAPPING, "adapter");
    if (st == QCAL_OK) st = check_keys(r, n, keys, "the adapter");
    if (st != QCAL_OK) return st;
    const struct ynode *v;
    if (!(v = get(n, "type"))) return JERR(r, n, "adapter needs 'type'");
    if ((st = get_enum(r, v, "type", kinds, &a->kind)) != QCAL_OK) return st;
    if ((v = get(n, "labels")) && (st = get_path(r, v, "labels", &a->labels)) != QCAL_OK) return st;
    if ((v = get(n, "top_k")) && (st = get_int32(r, v, "top_k", 1, 1000, &a->top_k)) != QCAL_OK) return st;
    if (!v && (a->kind == QCAL_ADAPTER_SSD || a->kind == QCAL_ADAPTER_YOLO ||
               a->kind == QCAL_ADAPTER_INSTANCE_SEGMENTATION))
        a->top_k = 100; /* detections kept per image: COCO's maxDets */
    if ((v = get(n, "confidence_threshold")) &&
        (st = get_float(r, v, "confidence_threshold", &a->confidence_threshold)) != QCAL_OK)
        return st;
    if ((v = get(n, "nms_threshold")) && (st = get_float(r, v, "nms_threshold", &a->nms_threshold)) != QCAL_OK)
        return st;
    if ((v = get(n, "background_class")) &&
        (st = get_int32(r, v, "background_class", -1, 1 << 20, &a->background_class)) != QCAL_OK)
        return st;
    if ((v = get(n, "anchors"))) {
        if ((st = want(r, v, YNODE_SEQUENCE, "anchors")) != QCAL_OK) return st;
        a->anchors = calloc((size_t)v->n + 1, sizeof(float));
        if (!a->anchors) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        a->n_anchors = v->n;
        for (int i = 0; i < v->n; i++)
            if ((st = get_float(r, v->items[i], "anchors", &a->anchors[i])) != QCAL_OK) return st;
    }
    if ((v = get(n, "output")) && (st = get_string(r, v, "output", &a->output)) != QCAL_OK) return st;
    return QCAL_OK;
}

static enum qcal_status read_metric(const struct reader *r, const struct ynode *n, struct qcal_job_metric *m)
{
    static const char *const keys[] = {"type", "top_k", "iou_threshold", NULL};
    static const char *const types[] = {"accuracy", "voc_map", "coco_map", "mean_iou", "pixel_accuracy",
                                        "coco_segm_map", "agreement", NULL};
    enum qcal_status st = want(r, n, YNODE_MAPPING, "metric");
    if (st == QCAL_OK) st = check_keys(r, n, keys, "a metric");
    if (st != QCAL_OK) return st;
    const struct ynode *v;
    int t;
    if (!(v = get(n, "type"))) return JERR(r, n, "metric needs 'type'");
    if ((st = get_enum(r, v, "type", types, &t)) != QCAL_OK) return st;
    m->type = strdup(types[t]);
    m->top_k = 1;
    m->iou_threshold = 0.5f;
    if ((v = get(n, "top_k")) && (st = get_int32(r, v, "top_k", 1, 1000, &m->top_k)) != QCAL_OK) return st;
    if ((v = get(n, "iou_threshold")) && (st = get_float(r, v, "iou_threshold", &m->iou_threshold)) != QCAL_OK)
        return st;
    return m->type ? QCAL_OK : QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
}

static enum qcal_status read_names(const struct reader *r, const struct ynode *n, const char *key, char **out,
                                   int *count)
{
    enum qcal_status st = want(r, n, YNODE_SEQUENCE, key);
    if (st != QCAL_OK) return st;
    if (n->n > QCAL_JOB_MAX_IGNORED) return JERR(r, n, "'%s' lists more than %d entries", key, QCAL_JOB_MAX_IGNORED);
    for (int i = 0; i < n->n; i++) {
        if ((st = get_string(r, n->items[i], key, &out[i])) != QCAL_OK) return st;
        *count = i + 1;
    }
    return QCAL_OK;
}

/* One value of a calibration setting, checked and stored in c. */
static enum qcal_status read_setting(const struct reader *r, const struct ynode *v, const char *key,
                                     struct qcal_job_calibration *c)
{
    static const char *const presets[] = {"performance", "mixed", NULL};
    static const char *const methods[] = {"minmax", "mean_minmax", "percentile", "entropy", "mse", NULL};
    enum qcal_status st;
    int k;
    if (strcmp(key, "preset") == 0 || strcmp(key, "method") == 0) {
        const bool preset = key[0] == 'p';
        if ((st = get_enum(r, v, key, preset ? presets : methods, &k)) != QCAL_OK) return st;
        char **field = preset ? &c->preset : &c->method;
        free(*field);
        *field = strdup((preset ? presets : methods)[k]);
        return *field ? QCAL_OK : QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    }
    if (strcmp(key, "subset") == 0) return get_int(r, v, "subset", 1, INT64_MAX, &c->subset);
    if (strcmp(key, "percentile") == 0) {
        if ((st = get_float(r, v, "percentile", &c->percentile)) != QCAL_OK) return st;
        if (c->percentile <= 0.0f || c->percentile > 100.0f)
            return JERR(r, v, "'percentile' must be in (0, 100], not %g", c->percentile);
        return QCAL_OK;
    }
    return get_bool(r, v, "bias_correction", &c->bias_correction);
}

static enum qcal_status read_calibration(const struct reader *r, const struct ynode *n, struct qcal_job_calibration *c)
{
    static const char *const keys[] = {"preset", "method", "subset", "percentile", "bias_correction", "ignored", NULL};
    /* the settings a sweep may list, outermost first: configurations sharing a subset are
     * neighbours (they share one statistics pass) */
    static const char *const sweepable[] = {"subset", "preset", "method", "percentile", "bias_correction"};
    enum qcal_status st = want(r, n, YNODE_MAPPING, "calibration");
    if (st == QCAL_OK) st = check_keys(r, n, keys, "calibration");
    if (st != QCAL_OK) return st;
    const struct ynode *v;
    c->n_sweep = 0;
    for (int i = 0; i < (int)(sizeof sweepable / sizeof *sweepable); i++) {
        if (!(v = get(n, sweepable[i]))) continue;
        if (v->kind != YNODE_SEQUENCE) {
            if ((st = read_setting(r, v, sweepable[i], c)) != QCAL_OK) return st;
            continue;
        }
        /* a list: a sweep dimension; each value checked, the first one the job's own */
        if (v->n < 1 || v->n > QCAL_JOB_MAX_SWEEP)
            return JERR(r, v, "'%s' lists %d values: a sweep takes 1 to %d", sweepable[i], v->n, QCAL_JOB_MAX_SWEEP);
        struct qcal_job_sweep_dim *d = &c->sweep[c->n_sweep++];
        d->key = sweepable[i];
        for (int j = v->n - 1; j >= 0; j--) {
            if ((st = read_setting(r, v->items[j], sweepable[i], c)) != QCAL_OK) return st;
            for (int q = j + 1; q < v->n; q++)
                if (strcmp(v->items[q]->value, v->items[j]->value) == 0)
                    return JERR(r, v->items[q], "'%s' lists '%s' twice", sweepable[i], v->items[j]->value);
            if (!(d->values[j] = strdup(v->items[j]->value))) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        }
        d->n = v->n;
    }
    if ((v = get(n, "ignored"))) {
        /* one scope (a mapping), or a list of scopes: a sweep axis, the first one the job's own */
        const bool axis = v->kind == YNODE_SEQUENCE;
        if (axis && (v->n < 1 || v->n > QCAL_JOB_MAX_SWEEP))
            return JERR(r, v, "'ignored' lists %d scopes: a sweep takes 1 to %d", v->n, QCAL_JOB_MAX_SWEEP);
        struct qcal_job_sweep_dim *d = axis ? &c->sweep[c->n_sweep++] : NULL;
        if (d) d->key = "ignored", d->n = v->n;
        for (int j = 0; j < (axis ? v->n : 1); j++) {
            const struct ynode *sc = axis ? v->items[j] : v;
            static const char *const ikeys[] = {"names", "types", NULL};
            if ((st = want(r, sc, YNODE_MAPPING, "ignored")) != QCAL_OK) return st;
            if ((st = check_keys(r, sc, ikeys, "ignored")) != QCAL_OK) return st;
            char *names[QCAL_JOB_MAX_IGNORED] = {0}, *types[QCAL_JOB_MAX_IGNORED] = {0};
            int nn = 0, nt = 0;
            const struct ynode *w;
            if ((w = get(sc, "names"))) st = read_names(r, w, "names", names, &nn);
            if (st == QCAL_OK && (w = get(sc, "types"))) st = read_names(r, w, "types", types, &nt);
            /* as a sweep value: "N:name" and "T:type" lines */
            size_t len = 1;
            for (int i = 0; i < nn; i++) len += strlen(names[i]) + 3;
            for (int i = 0; i < nt; i++) len += strlen(types[i]) + 3;
            char *text = st == QCAL_OK && d ? calloc(1, len) : NULL;
            if (st == QCAL_OK && d && !text) st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
            for (int i = 0; text && i < nn; i++) strcat(strcat(strcat(text, "N:"), names[i]), "\n");
            for (int i = 0; text && i < nt; i++) strcat(strcat(strcat(text, "T:"), types[i]), "\n");
            if (d) d->values[j] = text;
            if (st == QCAL_OK && j == 0) { /* the job's own scope */
                memcpy(c->ignored_names, names, sizeof names), c->n_ignored_names = nn;
                memcpy(c->ignored_types, types, sizeof types), c->n_ignored_types = nt;
            } else {
                for (int i = 0; i < QCAL_JOB_MAX_IGNORED; i++) free(names[i]), free(types[i]);
            }
            if (st != QCAL_OK) return st;
        }
    }
    return (c->preset && c->method) ? QCAL_OK : QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
}

static enum qcal_status read_accuracy_aware(const struct reader *r, const struct ynode *n,
                                           struct qcal_job_accuracy_aware *a)
{
    static const char *const keys[] = {"max_drop", "drop_type", "ranking_subset", "metric", NULL};
    static const char *const drops[] = {"absolute", "relative", NULL};
    static const char *const metrics[] = {"accuracy", "top5", "voc_map", "coco_map", "coco_segm_map", "mean_iou",
                                          "pixel_accuracy", "agreement", NULL};
    enum qcal_status st = want(r, n, YNODE_MAPPING, "accuracy_aware");
    if (st == QCAL_OK) st = check_keys(r, n, keys, "accuracy_aware");
    if (st != QCAL_OK) return st;
    a->present = true;
    const struct ynode *v;
    if ((v = get(n, "max_drop"))) {
        float d;
        if ((st = get_float(r, v, "max_drop", &d)) != QCAL_OK) return st;
        if (!(d >= 0.0f && d < 1.0f)) return JERR(r, v, "'max_drop' must be in [0, 1), not %g", d);
        a->max_drop = d;
    }
    if ((v = get(n, "drop_type")) && (st = get_enum(r, v, "drop_type", drops, &a->drop_type)) != QCAL_OK) return st;
    if ((v = get(n, "ranking_subset")) &&
        (st = get_int(r, v, "ranking_subset", 1, INT64_MAX, &a->ranking_subset)) != QCAL_OK)
        return st;
    a->metric = -1;
    if ((v = get(n, "metric")) && (st = get_enum(r, v, "metric", metrics, &a->metric)) != QCAL_OK) return st;
    return QCAL_OK;
}

static enum qcal_status read_benchmark(const struct reader *r, const struct ynode *n, struct qcal_job_benchmark *b)
{
    static const char *const keys[] = {"batch", "streams", "threads", "time", "iterations", NULL};
    enum qcal_status st = want(r, n, YNODE_MAPPING, "benchmark");
    if (st == QCAL_OK) st = check_keys(r, n, keys, "benchmark");
    if (st != QCAL_OK) return st;
    const struct ynode *v;
    float t;
    if ((v = get(n, "batch")) && (st = get_int32(r, v, "batch", 1, 1 << 16, &b->batch)) != QCAL_OK) return st;
    if ((v = get(n, "streams")) && (st = get_int32(r, v, "streams", 0, 1 << 10, &b->streams)) != QCAL_OK) return st;
    if ((v = get(n, "threads")) && (st = get_int32(r, v, "threads", 0, 1 << 12, &b->threads)) != QCAL_OK) return st;
    if ((v = get(n, "time"))) {
        if ((st = get_float(r, v, "time", &t)) != QCAL_OK) return st;
        if (t < 0) return JERR(r, v, "'time' must not be negative");
        b->time = t;
    }
    if ((v = get(n, "iterations")) && (st = get_int(r, v, "iterations", 0, INT64_MAX, &b->iterations)) != QCAL_OK)
        return st;
    return QCAL_OK;
}

static enum qcal_status read_job(const struct reader *r, const struct ynode *root, struct qcal_job *j)
{
    static const char *const keys[] = {"model", "inputs", "input", "preprocessing", "datasets", "adapter",
                                       "metrics", "calibration", "benchmark", "accuracy_aware", NULL};
    enum qcal_status st = want(r, root, YNODE_MAPPING, "the job");
    if (st == QCAL_OK) st = check_keys(r, root, keys, "the job");
    if (st != QCAL_OK) return st;
    const struct ynode *v;
    if (!(v = get(root, "model"))) return JERR(r, root, "the job needs 'model' (path to an ONNX file)");
    if ((st = get_path(r, v, "model", &j->model)) != QCAL_OK) return st;
    struct stat sb;
    if (stat(j->model, &sb) != 0 || !S_ISREG(sb.st_mode))
        return JERR(r, v, "model '%s' is not a readable file", j->model);
    if (get(root, "input") && get(root, "inputs")) return JERR(r, get(root, "input"), "give 'input' or 'inputs', not both");
    if ((v = get(root, "input"))) {
        j->n_inputs = 1;
        if ((st = read_input(r, v, &j->inputs[0])) != QCAL_OK) return st;
    } else if ((v = get(root, "inputs"))) {
        if ((st = want(r, v, YNODE_SEQUENCE, "inputs")) != QCAL_OK) return st;
        if (v->n > QCAL_JOB_MAX_INPUTS) return JERR(r, v, "more than %d inputs", QCAL_JOB_MAX_INPUTS);
        for (int i = 0; i < v->n; i++) {
            j->n_inputs = i + 1;
            if ((st = read_input(r, v->items[i], &j->inputs[i])) != QCAL_OK) return st;
        }
    }
    /* the model's colour order comes first, so means and stds are in its channel order */
    if (j->n_inputs && j->inputs[0].color == QCAL_COLOR_BGR) j->prep.steps[j->prep.n++].kind = QCAL_PREP_SWAP_RB;
    j->prep.nhwc = j->n_inputs && j->inputs[0].nhwc;
    if ((v = get(root, "preprocessing"))) {
        if ((st = want(r, v, YNODE_SEQUENCE, "preprocessing")) != QCAL_OK) return st;
        for (int i = 0; i < v->n; i++)
            if ((st = read_step(r, v->items[i], &j->prep)) != QCAL_OK) return st;
    }
    if ((v = get(root, "datasets"))) {
        static const char *const dkeys[] = {"calibration", "validation", NULL};
        if ((st = want(r, v, YNODE_MAPPING, "datasets")) != QCAL_OK) return st;
        if ((st = check_keys(r, v, dkeys, "datasets")) != QCAL_OK) return st;
        const struct ynode *d;
        if ((d = get(v, "calibration")) && (st = read_dataset(r, d, &j->calibration_data)) != QCAL_OK) return st;
        if ((d = get(v, "validation")) && (st = read_dataset(r, d, &j->validation_data)) != QCAL_OK) return st;
    }
    if ((v = get(root, "adapter")) && (st = read_adapter(r, v, &j->adapter)) != QCAL_OK) return st;
    if ((v = get(root, "metrics"))) {
        if ((st = want(r, v, YNODE_SEQUENCE, "metrics")) != QCAL_OK) return st;
        if (v->n > QCAL_JOB_MAX_METRICS) return JERR(r, v, "more than %d metrics", QCAL_JOB_MAX_METRICS);
        for (int i = 0; i < v->n; i++) {
            j->n_metrics = i + 1;
            if ((st = read_metric(r, v->items[i], &j->metrics[i])) != QCAL_OK) return st;
        }
    }
    if ((v = get(root, "calibration")) && (st = read_calibration(r, v, &j->calibration)) != QCAL_OK) return st;
    if ((v = get(root, "benchmark")) && (st = read_benchmark(r, v, &j->benchmark)) != QCAL_OK) return st;
    if ((v = get(root, "accuracy_aware")) && (st = read_accuracy_aware(r, v, &j->accuracy_aware)) != QCAL_OK)
        return st;
    return QCAL_OK;
}

static void set_defaults(struct qcal_job *j)
{
    j->adapter.kind = QCAL_ADAPTER_TENSOR;
    j->adapter.top_k = 5;
    j->adapter.confidence_threshold = 0.5f;
    j->adapter.nms_threshold = 0.45f;
    j->adapter.background_class = -1;
    j->calibration.preset = strdup("performance");
    j->calibration.method = strdup("mean_minmax");
    j->calibration.subset = 300;
    j->calibration.percentile = 99.999f;
    j->calibration.bias_correction = true;
    j->benchmark.batch = 1;
    j->benchmark.time = 10.0;
    j->accuracy_aware.max_drop = 0.01; /* POT's defaults */
    j->accuracy_aware.ranking_subset = 300;
    j->accuracy_aware.metric = -1;
}

enum qcal_status qcal_job_load_string(const char *text, size_t size, const char *path, struct qcal_job **job_out)
{
    *job_out = NULL;
    struct qcal_job *j = calloc(1, sizeof *j);
    if (!j) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    j->path = strdup(path);
    j->dir = strdup(path);
    j->text = strndup(text, size);
    if (!j->path || !j->dir || !j->text) {
        qcal_job_destroy(j);
        return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    }
    char *slash = strrchr(j->dir, '/');
    if (slash) *slash = '\0';
    else strcpy(j->dir, ".");
    set_defaults(j);
    struct ynode *root = NULL;
    struct reader r = {path, j->dir};
    enum qcal_status st = ynode_parse(text, size, path, &root);
    if (st == QCAL_OK) st = read_job(&r, root, j);
    ynode_free(root);
    if (st != QCAL_OK) {
        qcal_job_destroy(j);
        return st;
    }
    *job_out = j;
    return QCAL_OK;
}

enum qcal_status qcal_job_load(const char *path, struct qcal_job **job_out)
{
    *job_out = NULL;
    void *text = NULL;
    size_t size = 0;
    enum qcal_status st = qcal_read_file(path, (size_t)16 << 20, &text, &size);
    if (st == QCAL_OK) st = qcal_job_load_string(text, size, path, job_out);
    free(text);
    return st;
}

void qcal_job_destroy(struct qcal_job *j)
{
    if (!j) return;
    free(j->path);
    free(j->dir);
    free(j->text);
    free(j->model);
    for (int i = 0; i < QCAL_JOB_MAX_INPUTS; i++) free(j->inputs[i].name);
    struct qcal_job_dataset *ds[2] = {&j->calibration_data, &j->validation_data};
    for (int i = 0; i < 2; i++) {
        free(ds[i]->source);
        free(ds[i]->annotations);
        free(ds[i]->masks);
        free(ds[i]->imageset);
        free(ds[i]->classes);
    }
    free(j->adapter.labels);
    free(j->adapter.anchors);
    free(j->adapter.output);
    for (int i = 0; i < QCAL_JOB_MAX_METRICS; i++) free(j->metrics[i].type);
    free(j->calibration.preset);
    free(j->calibration.method);
    for (int i = 0; i < QCAL_JOB_MAX_IGNORED; i++) {
        free(j->calibration.ignored_names[i]);
        free(j->calibration.ignored_types[i]);
    }
    for (int i = 0; i < j->calibration.n_sweep; i++)
        for (int k = 0; k < j->calibration.sweep[i].n; k++) free(j->calibration.sweep[i].values[k]);
    free(j);
}
