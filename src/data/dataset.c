/* Image sources: a folder (recursive, sorted), or a list file (`path [label]` per line). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "qcal/data.h"

static bool is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static enum qcal_status push(struct qcal_image_list *l, const char *path, int64_t label)
{
    if (l->count == l->cap) {
        int cap = l->cap ? 2 * l->cap : 256;
        char **p = realloc(l->paths, sizeof *p * (size_t)cap);
        int64_t *lb = realloc(l->labels, sizeof *lb * (size_t)cap);
        if (p) l->paths = p;
        if (lb) l->labels = lb;
        if (!p || !lb) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory listing images");
        l->cap = cap;
    }
    l->paths[l->count] = strdup(path);
    if (!l->paths[l->count]) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory listing images");
    l->labels[l->count++] = label;
    return QCAL_OK;
}

static enum qcal_status walk(struct qcal_image_list *l, const char *dir, int depth)
{
    if (depth > 32) return QCAL_ERR(QCAL_INVALID_DATA, "%s: folders nested too deep", dir);
    DIR *d = opendir(dir);
    if (!d) return QCAL_ERR(QCAL_IO_ERROR, "%s: cannot open folder: %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0;
    enum qcal_status st = QCAL_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, sizeof *nn * (size_t)cap);
            if (!nn) {
                st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
                break;
            }
            names = nn;
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    if (n > 1) qsort(names, (size_t)n, sizeof *names, cmp_str); /* the same order on every machine */
    for (int i = 0; i < n && st == QCAL_OK; i++) {
        char path[8192];
        if (snprintf(path, sizeof path, "%s/%s", dir, names[i]) >= (int)sizeof path) {
            st = QCAL_ERR(QCAL_INVALID_DATA, "%s: a path inside is too long", dir);
            break;
        }
        struct stat sb;
        if (stat(path, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode)) st = walk(l, path, depth + 1);
        else if (S_ISREG(sb.st_mode) && is_image_name(names[i])) st = push(l, path, -1);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return st;
}

enum qcal_status qcal_image_list_load(const char *source, struct qcal_image_list *out)
{
    memset(out, 0, sizeof *out);
    struct stat sb;
    if (stat(source, &sb) != 0) return QCAL_ERR(QCAL_IO_ERROR, "%s: cannot open: %s", source, strerror(errno));
    enum qcal_status st = QCAL_OK;
    if (S_ISDIR(sb.st_mode)) {
        st = walk(out, source, 0);
    } else if (is_image_name(source)) {
        st = push(out, source, -1);
    } else {
        FILE *f = fopen(source, "r");
        if (!f) return QCAL_ERR(QCAL_IO_ERROR, "%s: cannot open: %s", source, strerror(errno));
        char dir[4096], line[4608];
        snprintf(dir, sizeof dir, "%s", source);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = '\0';
        else snprintf(dir, sizeof dir, ".");
        for (int ln = 1; st == QCAL_OK && fgets(line, sizeof line, f); ln++) {
            char *p = line, *end;
            while (*p == ' ' || *p == '\t') p++;
            size_t len = strcspn(p, "\r\n");
            p[len] = '\0';
            if (!*p || *p == '#') continue;
            char *sp = strpbrk(p, " \t");
            int64_t label = -1;
            if (sp) {
                *sp = '\0';
                label = strtoll(sp + 1, &end, 10);
                while (*end == ' ' || *end == '\t') end++;
                if (end == sp + 1 || *end || label < 0) {
                    st = QCAL_ERR(QCAL_INVALID_DATA, "%s:%d: expected 'path [label]', label a non-negative integer",
                                  source, ln);
                    break;
                }
            }
            char path[4096 + 4608 + 2];
            if (p[0] == '/') snprintf(path, sizeof path, "%s", p);
            else snprintf(path, sizeof path, "%s/%s", dir, p);
            st = push(out, path, label);
        }
        fclose(f);
    }
    if (st == QCAL_OK && out->count == 0) st = QCAL_ERR(QCAL_INVALID_DATA, "%s: no images found", source);
    if (st != QCAL_OK) qcal_image_list_free(out);
    return st;
}

void qcal_image_list_free(struct qcal_image_list *l)
{
    for (int i = 0; l && i < l->count; i++) free(l->paths[i]);
    if (l) {
        free(l->paths);
        free(l->labels);
        memset(l, 0, sizeof *l);
    }
}

/* ---- datasets with annotations ---- */

void qcal_dataset_free(struct qcal_dataset *ds)
{
    if (!ds) return;
    for (int64_t i = 0; i < ds->count; i++) {
        if (ds->paths) free(ds->paths[i]);
        if (ds->mask_paths) free(ds->mask_paths[i]);
    }
    for (int c = 0; ds->classes && c < ds->n_classes; c++) free(ds->classes[c]);
    free(ds->paths);
    free(ds->labels);
    free(ds->index);
    free(ds->mask_paths);
    free(ds->obj_begin);
    free(ds->objects);
    free(ds->segms);
    free(ds->values);
    free(ds->classes);
    free(ds->class_ids);
    memset(ds, 0, sizeof *ds);
}

/* Lines of a text file, trimmed, blank lines and '#' comments skipped; line numbers kept. */
struct lines {
    int n;
    char **text;
    int *line;
};

static void lines_free(struct lines *l)
{
    for (int i = 0; i < l->n; i++) free(l->text[i]);
    free(l->text);
    free(l->line);
    memset(l, 0, sizeof *l);
}

static enum qcal_status lines_load(const char *path, struct lines *out)
{
    memset(out, 0, sizeof *out);
    char *data = NULL;
    size_t size = 0;
    enum qcal_status st = qcal_read_file(path, (size_t)1 << 30, (void **)&data, &size);
    if (st != QCAL_OK) return st;
    if (memchr(data, '\0', size)) {
        free(data);
        return QCAL_ERR(QCAL_INVALID_DATA, "%s: not a text file", path);
    }
    int cap = 0, ln = 0;
    for (char *p = data, *next; p && *p && st == QCAL_OK; p = next) {
        ln++;
        next = strchr(p, '\n');
        if (next) *next++ = '\0';
        size_t len = strlen(p);
        while (len && (p[len - 1] == '\r' || p[len - 1] == ' ' || p[len - 1] == '\t')) p[--len] = '\0';
        while (*p == ' ' || *p == '\t') p++;
        if (!*p || *p == '#') continue;
        if (out->n == cap) {
            cap = cap ? 2 * cap : 256;
            char **t = qcal_realloc_array(out->text, (size_t)cap, sizeof *t);
            int *l = qcal_realloc_array(out->line, (size_t)cap, sizeof *l);
            if (t) out->text = t;
            if (l) out->line = l;
            if (!t || !l) st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory reading %s", path);
        }
        if (st == QCAL_OK && !(out->text[out->n] = qcal_strdup(p))) st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        if (st == QCAL_OK) out->line[out->n++] = ln;
    }
    free(data);
    if (st != QCAL_OK) lines_free(out);
    return st;
}

static bool is_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static bool is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static const char *const voc_classes[] = {
    "aeroplane", "bicycle", "bird",  "boat",        "bottle", "bus",   "car",  "cat",   "chair", "cow",
    "diningtable", "dog",   "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"};

static enum qcal_status load_classes(const struct qcal_dataset_spec *spec, struct qcal_dataset *ds)
{
    if (!spec->classes) {
        if (spec->format != QCAL_DATA_VOC) return QCAL_OK;
        ds->n_classes = (int)(sizeof voc_classes / sizeof *voc_classes);
        ds->classes = calloc((size_t)ds->n_classes, sizeof *ds->classes);
        for (int c = 0; ds->classes && c < ds->n_classes; c++) ds->classes[c] = qcal_strdup(voc_classes[c]);
        for (int c = 0; c < ds->n_classes; c++)
            if (!ds->classes || !ds->classes[c]) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        return QCAL_OK;
    }
    struct lines l;
    enum qcal_status st = lines_load(spec->classes, &l);
    if (st != QCAL_OK) return st;
    if (l.n == 0) {
        lines_free(&l);
        return QCAL_ERR(QCAL_INVALID_DATA, "%s: no class names", spec->classes);
    }
    for (int i = 0; i < l.n; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(l.text[i], l.text[j])) {
                st = QCAL_ERR(QCAL_INVALID_DATA, "%s:%d: class '%s' is listed twice", spec->classes, l.line[i],
                              l.text[i]);
                lines_free(&l);
                return st;
            }
    ds->classes = l.text, ds->n_classes = l.n;
    free(l.line);
    return QCAL_OK;
}

enum qcal_status qcal_dataset_push(struct qcal_dataset *ds, const char *path, int64_t label, const char *mask_path)
{
    if (ds->count == ds->cap) {
        int64_t c = ds->cap ? 2 * ds->cap : 256;
        char **p = qcal_realloc_array(ds->paths, (size_t)c, sizeof *p);
        if (p) ds->paths = p;
        int64_t *lb = qcal_realloc_array(ds->labels, (size_t)c, sizeof *lb);
        if (lb) ds->labels = lb;
        int64_t *ix = qcal_realloc_array(ds->index, (size_t)c, sizeof *ix);
        if (ix) ds->index = ix;
        char **m = mask_path ? qcal_realloc_array(ds->mask_paths, (size_t)c, sizeof *m) : ds->mask_paths;
        if (m) ds->mask_paths = m;
        if (!p || !lb || !ix || (mask_path && !m)) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory listing images");
        ds->cap = c;
    }
    ds->paths[ds->count] = qcal_strdup(path);
    if (mask_path) ds->mask_paths[ds->count] = qcal_strdup(mask_path);
    ds->labels[ds->count] = label;
    ds->index[ds->count] = ds->count;
    ds->count++;
    if (!ds->paths[ds->count - 1] || (mask_path && !ds->mask_paths[ds->count - 1]))
        return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory listing images");
    return QCAL_OK;
}

static enum qcal_status load_list(const struct qcal_dataset_spec *spec, struct qcal_dataset *ds)
{
    struct qcal_image_list l;
    enum qcal_status st = qcal_image_list_load(spec->source, &l);
    for (int i = 0; st == QCAL_OK && i < l.count; i++) {
        if (spec->format == QCAL_DATA_IMAGENET && l.labels[i] < 0)
            st = QCAL_ERR(QCAL_INVALID_DATA, "%s: image '%s' has no label (imagenet datasets need `path label` "
                          "lines, or an annotations file)", spec->source, l.paths[i]);
        else st = qcal_dataset_push(ds, l.paths[i], l.labels[i], NULL);
    }
    qcal_image_list_free(&l);
    return st;
}

/* ImageNet-style annotations: `file label` per line, files relative to the source folder. */
static enum qcal_status load_imagenet(const struct qcal_dataset_spec *spec, struct qcal_dataset *ds)
{
    if (!is_dir(spec->source))
        return QCAL_ERR(QCAL_INVALID_DATA, "%s: with an imagenet annotations file, source must be the image folder",
                        spec->source);
    struct lines l;
    enum qcal_status st = lines_load(spec->annotations, &l);
    for (int i = 0; st == QCAL_OK && i < l.n; i++) {
        char *sp = strpbrk(l.text[i], " \t"), *end;
        long long label = -1;
        if (sp) {
            *sp = '\0';
            label = strtoll(sp + 1, &end, 10);
            while (*end == ' ' || *end == '\t') end++;
        }
        if (!sp || end == sp + 1 || *end || label < 0) {
            st = QCAL_ERR(QCAL_INVALID_DATA, "%s:%d: expected 'file label' with a non-negative integer label",
                          spec->annotations, l.line[i]);
            break;
        }
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", spec->source, l.text[i]);
        if (!is_file(path)) {
            st = QCAL_ERR(QCAL_INVALID_DATA, "%s:%d: image '%s' does not exist", spec->annotations, l.line[i], path);
            break;
        }
        st = qcal_dataset_push(ds, path, label, NULL);
    }
    lines_free(&l);
    return st;
}

/* source/<class>/...: classes are the subfolders (sorted), or the classes file's order. */
static enum qcal_status load_subfolders(const struct qcal_dataset_spec *spec, struct qcal_dataset *ds)
{
    struct qcal_image_list sub = {0};
    enum qcal_status st = QCAL_OK;
    DIR *d = opendir(spec->source);
    if (!d) return QCAL_ERR(QCAL_IO_ERROR, "%s: cannot open folder: %s", spec->source, strerror(errno));
    struct dirent *e;
    while (st == QCAL_OK && (e = readdir(d))) {
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", spec->source, e->d_name);
        if (e->d_name[0] == '.') continue;
        if (is_dir(path)) st = push(&sub, e->d_name, -1);
        else if (is_image_name(e->d_name))
            st = QCAL_ERR(QCAL_INVALID_DATA, "%s: image '%s' is not inside a class subfolder", spec->source, e->d_name);
    }
    closedir(d);
    if (st == QCAL_OK && sub.count > 1) qsort(sub.paths, (size_t)sub.count, sizeof *sub.paths, cmp_str);
    if (st == QCAL_OK && !ds->classes) {
        ds->classes = calloc((size_t)sub.count + 1, sizeof *ds->classes);
        if (!ds->classes) st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        for (int i = 0; st == QCAL_OK && i < sub.count; i++) {
            if (!(ds->classes[i] = qcal_strdup(sub.paths[i]))) st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
            ds->n_classes = i + 1;
        }
    }
    for (int i = 0; st == QCAL_OK && i < sub.count; i++) {
        int cls = -1;
        for (int c = 0; c < ds->n_classes; c++)
            if (!strcmp(ds->classes[c], sub.paths[i])) cls = c;
        if (cls < 0) {
            st = QCAL_ERR(QCAL_INVALID_DATA, "%s: subfolder '%s' is not in the class list %s", spec->source,
                          sub.paths[i], spec->classes ? spec->classes : "");
            break;
        }
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", spec->source, sub.paths[i]);
        struct qcal_image_list imgs = {0};
        st = walk(&imgs, path, 1);
        for (int k = 0; st == QCAL_OK && k < imgs.count; k++) st = qcal_dataset_push(ds, imgs.paths[k], cls, NULL);
        qcal_image_list_free(&imgs);
    }
    qcal_image_list_free(&sub);
    return st;
}

/* Image ids of an ImageSets file (first word of each line: also reads VOC's per-class
 * `id  1` files), or NULL lines. */
static enum qcal_status load_ids(const char *imageset, struct lines *ids)
{
    enum qcal_status st = lines_load(imageset, ids);
    for (int i = 0; st == QCAL_OK && i < ids->n; i++) {
        ids->text[i][strcspn(ids->text[i], " \t")] = '\0';
        if (strchr(ids->text[i], '/') || !strcmp(ids->text[i], ".."))
            st = QCAL_ERR(QCAL_INVALID_DATA, "%s:%d: image id '%s' must be a plain name", imageset, ids->line[i],
                          ids->text[i]);
    }
    if (st == QCAL_OK && ids->n == 0) st = QCAL_ERR(QCAL_INVALID_DATA, "%s: no image ids", imageset);
    return st;
}

/* The stems of the files in `dir` ending with `ext`, sorted. */
static enum qcal_status list_stems(const char *dir, const char *ext, struct lines *ids)
{
    memset(ids, 0, sizeof *ids);
    struct qcal_image_list names = {0};
    DIR *d = opendir(dir);
    if (!d) return QCAL_ERR(QCAL_IO_ERROR, "%s: cannot open folder: %s", dir, strerror(errno));
    enum qcal_status st = QCAL_OK;
    struct dirent *e;
    size_t el = strlen(ext);
    while (st == QCAL_OK && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] != '.' && n > el && !strcasecmp(e->d_name + n - el, ext)) {
            e->d_name[n - el] = '\0';
            st = push(&names, e->d_name, -1);
        }
    }
    closedir(d);
    if (st == QCAL_OK && names.count > 1) qsort(names.paths, (size_t)names.count, sizeof *names.paths, cmp_str);
    if (st == QCAL_OK && names.count == 0) st = QCAL_ERR(QCAL_INVALID_DATA, "%s: no %s files", dir, ext);
    if (st == QCAL_OK) {
        ids->n = names.count, ids->text = names.paths, ids->line = calloc((size_t)names.count, sizeof(int));
        names.paths = NULL, names.count = 0;
        if (!ids->line) st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    }
    qcal_image_list_free(&names);
    return st;
}

/* The image `dir/id.{jpg,jpeg,png}` that exists, or an error naming where it was looked for. */
static enum qcal_status find_image(const char *dir, const char *id, const char *from, int line, char *path, size_t cap)
{
    static const char *const exts[] = {".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG"};
    for (size_t k = 0; k < sizeof exts / sizeof *exts; k++) {
        snprintf(path, cap, "%s/%s%s", dir, id, exts[k]);
        if (is_file(path)) return QCAL_OK;
    }
    if (line > 0) return QCAL_ERR(QCAL_INVALID_DATA, "%s:%d: no image '%s/%s.jpg' (or .jpeg, .png)", from, line, dir, id);
    return QCAL_ERR(QCAL_INVALID_DATA, "%s: no image '%s/%s.jpg' (or .jpeg, .png)", from, dir, id);
}

static enum qcal_status load_voc(const struct qcal_dataset_spec *spec, struct qcal_dataset *ds)
{
    struct lines ids;
    enum qcal_status st = spec->imageset ? load_ids(spec->imageset, &ids) : list_stems(spec->annotations, ".xml", &ids);
    if (st != QCAL_OK) return st;
    int64_t obj_cap = 0;
    ds->obj_begin = calloc((size_t)ids.n + 1, sizeof *ds->obj_begin);
    if (!ds->obj_begin) st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    for (int i = 0; st == QCAL_OK && i < ids.n; i++) {
        char xml_path[8192], img[8192];
        snprintf(xml_path, sizeof xml_path, "%s/%s.xml", spec->annotations, ids.text[i]);
        char *xml = NULL;
        size_t size = 0;
        struct qcal_voc_image v = {0};
        if (spec->imageset && !is_file(xml_path))
            st = QCAL_ERR(QCAL_INVALID_DATA, "%s:%d: no annotation file '%s'", spec->imageset, ids.line[i], xml_path);
        if (st == QCAL_OK) st = qcal_read_file(xml_path, (size_t)1 << 26, (void **)&xml, &size);
        if (st == QCAL_OK) st = qcal_voc_parse(xml, size, xml_path, ds->classes, ds->n_classes, &v);
        free(xml);
        if (st == QCAL_OK && v.filename) {
            snprintf(img, sizeof img, "%s/%s", spec->source, v.filename);
            if (!is_file(img)) st = QCAL_ERR(QCAL_INVALID_DATA, "%s: names image '%s', which does not exist", xml_path, img);
        } else if (st == QCAL_OK) {
            st = find_image(spec->source, ids.text[i], xml_path, 0, img, sizeof img);
        }
        if (st == QCAL_OK) st = qcal_dataset_push(ds, img, -1, NULL);
        if (st == QCAL_OK && ds->n_objects + v.n_objects > obj_cap) {
            int64_t c = obj_cap ? 2 * obj_cap : 1024;
            while (c < ds->n_objects + v.n_objects) c *= 2;
            struct qcal_object *o = qcal_realloc_array(ds->objects, (size_t)c, sizeof *o);
            if (!o) st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
            else ds->objects = o, obj_cap = c;
        }
        if (st == QCAL_OK) {
            if (v.n_objects) memcpy(ds->objects + ds->n_objects, v.objects, sizeof *v.objects * (size_t)v.n_objects);
            ds->n_objects += v.n_objects;
            ds->obj_begin[i + 1] = ds->n_objects;
        }
        qcal_voc_image_free(&v);
    }
    lines_free(&ids);
    return st;
}

/* Images (from an imageset, or the source folder) each with masks/<stem>.png. */
static enum qcal_status load_masks(const struct qcal_dataset_spec *spec, struct qcal_dataset *ds)
{
    enum qcal_status st = QCAL_OK;
    char img[8192], mask[8192];
    if (spec->imageset) {
        struct lines ids;
        if ((st = load_ids(spec->imageset, &ids)) != QCAL_OK) return st;
        for (int i = 0; st == QCAL_OK && i < ids.n; i++) {
            st = find_image(spec->source, ids.text[i], spec->imageset, ids.line[i], img, sizeof img);
            snprintf(mask, sizeof mask, "%s/%s.png", spec->masks, ids.text[i]);
            if (st == QCAL_OK && !is_file(mask))
                st = QCAL_ERR(QCAL_INVALID_DATA, "%s:%d: no mask '%s'", spec->imageset, ids.line[i], mask);
            if (st == QCAL_OK) st = qcal_dataset_push(ds, img, -1, mask);
        }
        lines_free(&ids);
        return st;
    }
    struct qcal_image_list l;
    if ((st = qcal_image_list_load(spec->source, &l)) != QCAL_OK) return st;
    size_t root = strlen(spec->source);
    for (int i = 0; st == QCAL_OK && i < l.count; i++) {
        const char *rel = l.paths[i] + (strncmp(l.paths[i], spec->source, root) == 0 ? root : 0);
        while (*rel == '/') rel++;
        snprintf(mask, sizeof mask, "%s/%s", spec->masks, rel);
        char *dot = strrchr(mask, '.'), *slash = strrchr(mask, '/');
        if (dot && dot > slash) snprintf(dot, sizeof mask - (size_t)(dot - mask), ".png");
        if (!is_file(mask))
            st = QCAL_ERR(QCAL_INVALID_DATA, "%s: no mask for image '%s' (looked for '%s')", spec->masks, l.paths[i],
                          mask);
        else st = qcal_dataset_push(ds, l.paths[i], -1, mask);
    }
    qcal_image_list_free(&l);
    return st;
}

enum qcal_status qcal_dataset_load(const struct qcal_dataset_spec *spec, struct qcal_dataset *ds)
{
    memset(ds, 0, sizeof *ds);
    enum qcal_status st = QCAL_OK;
    if (!spec->source) return QCAL_ERR(QCAL_INVALID_ARGUMENT, "dataset without a source");
    bool need_ann = spec->format == QCAL_DATA_VOC || spec->format == QCAL_DATA_COCO;
    if (need_ann && !spec->annotations)
        return QCAL_ERR(QCAL_INVALID_DATA, "%s: %s datasets need annotations", spec->source,
                        spec->format == QCAL_DATA_VOC ? "voc" : "coco");
    if (spec->format == QCAL_DATA_MASKS && !spec->masks)
        return QCAL_ERR(QCAL_INVALID_DATA, "%s: masks datasets need a masks folder", spec->source);
    if (spec->format == QCAL_DATA_COCO) {
        char *json = NULL;
        size_t size = 0;
        if ((st = qcal_read_file(spec->annotations, (size_t)1 << 31, (void **)&json, &size)) != QCAL_OK) return st;
        st = qcal_coco_parse(json, size, spec->annotations, spec->source, true, ds);
        free(json);
    } else {
        QCAL_CHECK(load_classes(spec, ds));
        ds->format = spec->format;
        switch (spec->format) {
        case QCAL_DATA_IMAGENET:
            st = spec->annotations ? load_imagenet(spec, ds) : load_list(spec, ds);
            break;
        case QCAL_DATA_SUBFOLDERS: st = load_subfolders(spec, ds); break;
        case QCAL_DATA_VOC: st = load_voc(spec, ds); break;
        case QCAL_DATA_MASKS: st = load_masks(spec, ds); break;
        default: st = load_list(spec, ds); break;
        }
        for (int64_t i = 0; st == QCAL_OK && ds->classes && i < ds->count; i++)
            if (ds->labels[i] >= ds->n_classes)
                st = QCAL_ERR(QCAL_INVALID_DATA, "%s: image '%s' has label %lld, outside the %d classes of %s",
                              spec->annotations ? spec->annotations : spec->source, ds->paths[i],
                              (long long)ds->labels[i], ds->n_classes, spec->classes ? spec->classes : "the class list");
    }
    if (st == QCAL_OK && ds->count == 0) st = QCAL_ERR(QCAL_INVALID_DATA, "%s: no images", spec->source);
cleanup:
    if (st != QCAL_OK) qcal_dataset_free(ds);
    return st;
}

/* splitmix64: a tiny generator with the same sequence everywhere */
static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

enum qcal_status qcal_dataset_subset(struct qcal_dataset *ds, int64_t n, bool random, uint64_t seed)
{
    if (n <= 0 || n >= ds->count) return QCAL_OK;
    int64_t *pick = malloc(sizeof *pick * (size_t)ds->count);
    if (!pick) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    for (int64_t i = 0; i < ds->count; i++) pick[i] = i;
    if (random) {
        /* the first n of a Fisher-Yates shuffle, then back in dataset order */
        uint64_t s = seed;
        for (int64_t i = 0; i < n; i++) {
            uint64_t range = (uint64_t)(ds->count - i), lim = UINT64_MAX - UINT64_MAX % range, r;
            do r = splitmix64(&s);
            while (r >= lim); /* no modulo bias */
            int64_t j = i + (int64_t)(r % range), t = pick[i];
            pick[i] = pick[j], pick[j] = t;
        }
        qsort(pick, (size_t)n, sizeof *pick, cmp_i64);
    }
    /* free what is dropped, then compact every per-image array in place (pick increases) */
    uint8_t *keep = calloc((size_t)ds->count, 1);
    if (!keep) {
        free(pick);
        return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    }
    for (int64_t k = 0; k < n; k++) keep[pick[k]] = 1;
    for (int64_t i = 0; i < ds->count; i++) {
        if (keep[i]) continue;
        free(ds->paths[i]);
        ds->paths[i] = NULL;
        if (ds->mask_paths) free(ds->mask_paths[i]), ds->mask_paths[i] = NULL;
    }
    free(keep);
    int64_t n_obj = 0;
    for (int64_t k = 0; k < n; k++) {
        int64_t i = pick[k];
        ds->paths[k] = ds->paths[i];
        ds->labels[k] = ds->labels[i];
        ds->index[k] = ds->index[i];
        if (ds->mask_paths) ds->mask_paths[k] = ds->mask_paths[i];
        if (ds->obj_begin) {
            int64_t b = ds->obj_begin[i], e = ds->obj_begin[i + 1];
            memmove(ds->objects + n_obj, ds->objects + b, sizeof *ds->objects * (size_t)(e - b));
            ds->obj_begin[k] = n_obj;
            n_obj += e - b;
        }
    }
    if (ds->obj_begin) ds->obj_begin[n] = n_obj, ds->n_objects = n_obj;
    ds->count = n;
    free(pick);
    return QCAL_OK;
}

void qcal_shard(int64_t count, int rank, int nranks, int64_t *begin, int64_t *end)
{
    int64_t base = count / nranks, extra = count % nranks;
    *begin = rank * base + (rank < extra ? rank : extra);
    *end = *begin + base + (rank < extra ? 1 : 0);
}
