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
    qsort(names, (size_t)n, sizeof *names, cmp_str); /* the same order on every machine */
    for (int i = 0; i < n && st == QCAL_OK; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
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
