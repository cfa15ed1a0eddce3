/* COCO instances JSON (cJSON): images in file order, categories by id, each image's
 * annotations in file order with their box, crowd flag and mask (polygons or RLE). */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qcal/data.h"

struct id_index {
    int64_t id;
    int64_t index;
};

static int cmp_id(const void *a, const void *b)
{
    int64_t x = ((const struct id_index *)a)->id, y = ((const struct id_index *)b)->id;
    return (x > y) - (x < y);
}

static int64_t find_id(const struct id_index *v, int64_t n, int64_t id)
{
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (v[mid].id < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && v[lo].id == id ? v[lo].index : -1;
}

/* An integer-valued JSON number within [lo, hi]. */
static bool get_int(const cJSON *obj, const char *key, int64_t lo, int64_t hi, int64_t *v)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(it)) return false;
    double d = it->valuedouble;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d)) return false;
    *v = (int64_t)d;
    return true;
}

static bool finite_number(const cJSON *it, double *v)
{
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || fabs(it->valuedouble) > 1e9) return false;
    *v = it->valuedouble;
    return true;
}

static enum qcal_status push_value(struct qcal_dataset *ds, int64_t *cap, double v)
{
    if (ds->n_values == *cap) {
        int64_t c = *cap ? 2 * *cap : 1024;
        double *n = qcal_realloc_array(ds->values, (size_t)c, sizeof *n);
        if (!n) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory reading COCO masks");
        ds->values = n, *cap = c;
    }
    ds->values[ds->n_values++] = v;
    return QCAL_OK;
}

/* COCO's compressed RLE string: each count in 5-bit groups (chars '0'..'o', bit 5 = more,
 * bit 4 of the last group = sign), counts after the second stored as differences to the
 * count two before. */
static enum qcal_status rle_string(struct qcal_dataset *ds, int64_t *cap, const char *s, const char *where)
{
    int64_t begin = ds->n_values;
    while (*s) {
        int64_t x = 0;
        int k = 0;
        bool more = true;
        while (more) {
            int c = (unsigned char)*s - 48;
            if (c < 0 || c > 63 || k > 11) return QCAL_ERR(QCAL_INVALID_DATA, "%s: corrupt RLE string", where);
            x |= (int64_t)(c & 0x1f) << (5 * k);
            more = c & 0x20;
            s++, k++;
            if (!more && (c & 0x10)) x |= (int64_t)-1 * ((int64_t)1 << (5 * k)); /* sign extension */
            if (more && !*s) return QCAL_ERR(QCAL_INVALID_DATA, "%s: RLE string ends inside a count", where);
        }
        int64_t m = ds->n_values - begin;
        if (m > 2) x += (int64_t)ds->values[ds->n_values - 2];
        if (x < 0 || x > ((int64_t)1 << 40)) return QCAL_ERR(QCAL_INVALID_DATA, "%s: corrupt RLE string", where);
        enum qcal_status st = push_value(ds, cap, (double)x);
        if (st != QCAL_OK) return st;
    }
    return QCAL_OK;
}

static enum qcal_status read_segm(struct qcal_dataset *ds, int64_t *segm_cap, int64_t *value_cap, const cJSON *seg,
                                  int width, int height, const char *where, int32_t *segm_out)
{
    enum qcal_status st = QCAL_OK;
    struct qcal_segm sg = {.width = width, .height = height, .begin = ds->n_values};
    if (cJSON_IsArray(seg)) {
        sg.kind = QCAL_SEGM_POLYGONS;
        if (cJSON_GetArraySize(seg) == 0) return QCAL_OK; /* no mask */
        const cJSON *poly;
        cJSON_ArrayForEach(poly, seg) {
            int n = cJSON_GetArraySize(poly);
            if (!cJSON_IsArray(poly) || n < 6 || n % 2)
                return QCAL_ERR(QCAL_INVALID_DATA, "%s: a polygon must be a list of at least 3 x, y pairs", where);
            if ((st = push_value(ds, value_cap, n / 2)) != QCAL_OK) return st;
            const cJSON *c;
            cJSON_ArrayForEach(c, poly) {
                double v;
                if (!finite_number(c, &v)) return QCAL_ERR(QCAL_INVALID_DATA, "%s: polygon coordinate not a number", where);
                if ((st = push_value(ds, value_cap, v)) != QCAL_OK) return st;
            }
        }
    } else if (cJSON_IsObject(seg)) {
        sg.kind = QCAL_SEGM_RLE;
        const cJSON *size = cJSON_GetObjectItemCaseSensitive(seg, "size");
        const cJSON *counts = cJSON_GetObjectItemCaseSensitive(seg, "counts");
        double h, w;
        if (cJSON_GetArraySize(size) != 2 || !finite_number(cJSON_GetArrayItem(size, 0), &h) ||
            !finite_number(cJSON_GetArrayItem(size, 1), &w) || h != height || w != width)
            return QCAL_ERR(QCAL_INVALID_DATA, "%s: RLE 'size' must be [height, width] of the image (%d, %d)", where,
                            height, width);
        if (cJSON_IsString(counts)) {
            if ((st = rle_string(ds, value_cap, counts->valuestring, where)) != QCAL_OK) return st;
        } else if (cJSON_IsArray(counts)) {
            const cJSON *c;
            cJSON_ArrayForEach(c, counts) {
                double v;
                if (!finite_number(c, &v) || v < 0 || v != floor(v))
                    return QCAL_ERR(QCAL_INVALID_DATA, "%s: RLE counts must be non-negative integers", where);
                if ((st = push_value(ds, value_cap, v)) != QCAL_OK) return st;
            }
        } else {
            return QCAL_ERR(QCAL_INVALID_DATA, "%s: RLE 'counts' must be a string or a list", where);
        }
        double total = 0;
        for (int64_t k = sg.begin; k < ds->n_values; k++) total += ds->values[k];
        if (total != (double)width * height)
            return QCAL_ERR(QCAL_INVALID_DATA, "%s: RLE counts cover %.0f pixels, the image has %d x %d", where,
                            total, width, height);
    } else {
        return QCAL_ERR(QCAL_INVALID_DATA, "%s: 'segmentation' must be a list of polygons or an RLE object", where);
    }
    sg.end = ds->n_values;
    if (ds->n_segms == *segm_cap) {
        int64_t c = *segm_cap ? 2 * *segm_cap : 256;
        struct qcal_segm *n = qcal_realloc_array(ds->segms, (size_t)c, sizeof *n);
        if (!n) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory reading COCO masks");
        ds->segms = n, *segm_cap = c;
    }
    if (ds->n_segms >= INT32_MAX) return QCAL_ERR(QCAL_INVALID_DATA, "%s: too many masks", where);
    *segm_out = (int32_t)ds->n_segms;
    ds->segms[ds->n_segms++] = sg;
    return QCAL_OK;
}

static enum qcal_status read_categories(const cJSON *cats, const char *name, struct qcal_dataset *ds,
                                        struct id_index **map_out)
{
    int n = cJSON_GetArraySize(cats);
    if (!cJSON_IsArray(cats) || n < 1 || n > 100000)
        return QCAL_ERR(QCAL_INVALID_DATA, "%s: 'categories' must be a non-empty list", name);
    struct id_index *map = calloc((size_t)n, sizeof *map);
    ds->classes = calloc((size_t)n, sizeof *ds->classes);
    ds->class_ids = calloc((size_t)n, sizeof *ds->class_ids);
    *map_out = map;
    if (!map || !ds->classes || !ds->class_ids) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    const cJSON *c;
    int i = 0;
    cJSON_ArrayForEach(c, cats) {
        int64_t id;
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(c, "name");
        if (!get_int(c, "id", 0, INT32_MAX, &id) || !cJSON_IsString(nm))
            return QCAL_ERR(QCAL_INVALID_DATA, "%s: category %d needs an integer 'id' and a string 'name'", name, i);
        map[i] = (struct id_index){id, i};
        i++;
    }
    qsort(map, (size_t)n, sizeof *map, cmp_id); /* class index = rank of the category id */
    for (int k = 0; k < n; k++) {
        if (k && map[k].id == map[k - 1].id)
            return QCAL_ERR(QCAL_INVALID_DATA, "%s: category id %lld appears twice", name, (long long)map[k].id);
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cats, (int)map[k].index), "name");
        ds->class_ids[k] = (int32_t)map[k].id;
        if (!(ds->classes[k] = qcal_strdup(nm->valuestring))) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        ds->n_classes = k + 1;
        map[k].index = k;
    }
    return QCAL_OK;
}

enum qcal_status qcal_coco_parse(const char *json, size_t size, const char *name, const char *image_dir,
                                 bool check_files, struct qcal_dataset *ds)
{
    memset(ds, 0, sizeof *ds);
    ds->format = QCAL_DATA_COCO;
    enum qcal_status st = QCAL_OK;
    struct id_index *cat_map = NULL, *img_map = NULL;
    int *img_w = NULL, *img_h = NULL;
    int64_t *n_per_image = NULL;
    int32_t *ann_image = NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, size, &end, 0);
    if (!root) {
        size_t off = end && end >= json && end <= json + size ? (size_t)(end - json) : 0;
        int line = 1, col = 1;
        for (size_t i = 0; i < off; i++) {
            if (json[i] == '\n') line++, col = 1;
            else col++;
        }
        return QCAL_ERR(QCAL_INVALID_DATA, "%s:%d:%d: malformed JSON", name, line, col);
    }
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(root, "images");
    const cJSON *anns = cJSON_GetObjectItemCaseSensitive(root, "annotations");
    if (!cJSON_IsObject(root) || !cJSON_IsArray(images) || !cJSON_IsArray(anns)) {
        st = QCAL_ERR(QCAL_INVALID_DATA, "%s: not COCO instances (expected an object with 'images', 'annotations' "
                      "and 'categories' lists)", name);
        goto cleanup;
    }
    QCAL_CHECK(read_categories(cJSON_GetObjectItemCaseSensitive(root, "categories"), name, ds, &cat_map));

    int64_t n_img = cJSON_GetArraySize(images), n_ann = cJSON_GetArraySize(anns);
    ds->paths = calloc((size_t)n_img + 1, sizeof *ds->paths);
    ds->labels = malloc(sizeof *ds->labels * ((size_t)n_img + 1));
    ds->index = malloc(sizeof *ds->index * ((size_t)n_img + 1));
    ds->obj_begin = calloc((size_t)n_img + 1, sizeof *ds->obj_begin);
    ds->cap = n_img + 1;
    ds->objects = malloc(sizeof *ds->objects * ((size_t)n_ann + 1));
    img_map = malloc(sizeof *img_map * ((size_t)n_img + 1));
    img_w = malloc(sizeof *img_w * ((size_t)n_img + 1));
    img_h = malloc(sizeof *img_h * ((size_t)n_img + 1));
    n_per_image = calloc((size_t)n_img + 1, sizeof *n_per_image);
    ann_image = malloc(sizeof *ann_image * ((size_t)n_ann + 1));
    if (!ds->paths || !ds->labels || !ds->index || !ds->obj_begin || !ds->objects || !img_map || !img_w || !img_h ||
        !n_per_image || !ann_image) {
        st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory reading %s", name);
        goto cleanup;
    }
    const cJSON *it;
    int64_t i = 0;
    cJSON_ArrayForEach(it, images) {
        int64_t id, w, h;
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(it, "file_name");
        if (!get_int(it, "id", INT64_MIN / 2, INT64_MAX / 2, &id) || !cJSON_IsString(fn) || !*fn->valuestring ||
            !get_int(it, "width", 1, 1 << 16, &w) || !get_int(it, "height", 1, 1 << 16, &h)) {
            st = QCAL_ERR(QCAL_INVALID_DATA, "%s: image %lld needs an integer 'id', a 'file_name' and a positive "
                          "'width' and 'height'", name, (long long)i);
            goto cleanup;
        }
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s", image_dir ? image_dir : ".", fn->valuestring) >= (int)sizeof path ||
            strstr(fn->valuestring, "..")) {
            st = QCAL_ERR(QCAL_INVALID_DATA, "%s: image file name '%.64s' is too long or leaves the image folder",
                          name, fn->valuestring);
            goto cleanup;
        }
        struct stat sb;
        if (check_files && (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))) {
            st = QCAL_ERR(QCAL_INVALID_DATA, "%s: image id %lld names '%s', which does not exist", name,
                          (long long)id, path);
            goto cleanup;
        }
        if (!(ds->paths[i] = qcal_strdup(path))) {
            st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
            goto cleanup;
        }
        ds->count = i + 1;
        ds->labels[i] = -1, ds->index[i] = i;
        img_map[i] = (struct id_index){id, i};
        img_w[i] = (int)w, img_h[i] = (int)h;
        i++;
    }
    qsort(img_map, (size_t)n_img, sizeof *img_map, cmp_id);
    for (int64_t k = 1; k < n_img; k++)
        if (img_map[k].id == img_map[k - 1].id) {
            st = QCAL_ERR(QCAL_INVALID_DATA, "%s: image id %lld appears twice", name, (long long)img_map[k].id);
            goto cleanup;
        }
    /* first pass: validate and count per image, so objects can be laid out image by image */
    i = 0;
    cJSON_ArrayForEach(it, anns) {
        int64_t image_id = 0, cat, id = i;
        get_int(it, "id", INT64_MIN / 2, INT64_MAX / 2, &id);
        int64_t img = get_int(it, "image_id", INT64_MIN / 2, INT64_MAX / 2, &image_id) ? find_id(img_map, n_img, image_id)
                                                                                       : -2;
        if (img < 0) {
            st = QCAL_ERR(QCAL_INVALID_DATA, img == -2 ? "%s: annotation id %lld has no integer 'image_id'"
                                                       : "%s: annotation id %lld names image_id %lld, which is not in 'images'",
                          name, (long long)id, (long long)image_id);
            goto cleanup;
        }
        if (!get_int(it, "category_id", INT64_MIN / 2, INT64_MAX / 2, &cat) || find_id(cat_map, ds->n_classes, cat) < 0) {
            st = QCAL_ERR(QCAL_INVALID_DATA, "%s: annotation id %lld: category_id missing or not in 'categories'",
                          name, (long long)id);
            goto cleanup;
        }
        ann_image[i] = (int32_t)img;
        n_per_image[img]++;
        i++;
    }
    for (int64_t k = 0; k < n_img; k++) ds->obj_begin[k + 1] = ds->obj_begin[k] + n_per_image[k];
    memset(n_per_image, 0, sizeof *n_per_image * (size_t)n_img);
    int64_t segm_cap = 0, value_cap = 0;
    i = 0;
    cJSON_ArrayForEach(it, anns) {
        int64_t id = i, cat = 0, crowd = 0;
        get_int(it, "id", INT64_MIN / 2, INT64_MAX / 2, &id);
        get_int(it, "category_id", INT64_MIN / 2, INT64_MAX / 2, &cat);
        char where[512];
        snprintf(where, sizeof where, "%s: annotation id %lld", name, (long long)id);
        const cJSON *bbox = cJSON_GetObjectItemCaseSensitive(it, "bbox");
        double b[4];
        if (cJSON_GetArraySize(bbox) != 4 || !finite_number(cJSON_GetArrayItem(bbox, 0), &b[0]) ||
            !finite_number(cJSON_GetArrayItem(bbox, 1), &b[1]) || !finite_number(cJSON_GetArrayItem(bbox, 2), &b[2]) ||
            !finite_number(cJSON_GetArrayItem(bbox, 3), &b[3]) || b[2] < 0 || b[3] < 0) {
            st = QCAL_ERR(QCAL_INVALID_DATA, "%s: 'bbox' must be [x, y, width, height] with width, height >= 0", where);
            goto cleanup;
        }
        if (cJSON_GetObjectItemCaseSensitive(it, "iscrowd") && !get_int(it, "iscrowd", 0, 1, &crowd)) {
            st = QCAL_ERR(QCAL_INVALID_DATA, "%s: 'iscrowd' must be 0 or 1", where);
            goto cleanup;
        }
        int32_t img = ann_image[i];
        struct qcal_object *o = &ds->objects[ds->obj_begin[img] + n_per_image[img]++];
        *o = (struct qcal_object){.x0 = (float)b[0], .y0 = (float)b[1], .x1 = (float)(b[0] + b[2]),
                                  .y1 = (float)(b[1] + b[3]), .cls = (int32_t)find_id(cat_map, ds->n_classes, cat),
                                  .crowd = (uint8_t)crowd, .segm = -1};
        const cJSON *seg = cJSON_GetObjectItemCaseSensitive(it, "segmentation");
        if (seg) QCAL_CHECK(read_segm(ds, &segm_cap, &value_cap, seg, img_w[img], img_h[img], where, &o->segm));
        i++;
    }
    ds->n_objects = n_ann;
cleanup:
    cJSON_Delete(root);
    free(cat_map);
    free(img_map);
    free(img_w);
    free(img_h);
    free(n_per_image);
    free(ann_image);
    if (st != QCAL_OK) qcal_dataset_free(ds);
    return st;
}
