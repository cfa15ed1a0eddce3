/* Pascal VOC annotation XML (expat): filename, size and the objects' class, difficult flag
 * and bndbox. Errors name the file and line. */
#include <expat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcal/data.h"

#define VOC_MAX_DEPTH 32
#define VOC_TEXT_MAX 1024

enum field { F_NONE, F_FILENAME, F_WIDTH, F_HEIGHT, F_NAME, F_DIFFICULT, F_XMIN, F_YMIN, F_XMAX, F_YMAX };

struct voc_parser {
    XML_Parser xp;
    const char *name;
    char *const *classes;
    int n_classes;
    struct qcal_voc_image *out;
    int64_t cap;
    int depth;
    char path[VOC_MAX_DEPTH][16]; /* element names (truncated: only short ones matter) */
    int field;                    /* the field whose text is being collected */
    char text[VOC_TEXT_MAX];
    size_t text_len;
    /* the object being read */
    bool have[F_YMAX + 1];
    char cls_name[VOC_TEXT_MAX];
    double box[4];
    int difficult;
    enum qcal_status st;
};

static void fail(struct voc_parser *p, enum qcal_status st, const char *what)
{
    if (p->st != QCAL_OK) return;
    p->st = QCAL_ERR(st, "%s:%lu: %s", p->name, (unsigned long)XML_GetCurrentLineNumber(p->xp), what);
    XML_StopParser(p->xp, XML_FALSE);
}

static bool at(const struct voc_parser *p, const char *a, const char *b, const char *c)
{
    const char *want[3] = {a, b, c};
    int n = c ? 3 : b ? 2 : 1;
    if (p->depth != n) return false;
    for (int i = 0; i < n; i++)
        if (strcmp(p->path[i], want[i])) return false;
    return true;
}

static int field_of(const struct voc_parser *p)
{
    if (at(p, "annotation", "filename", NULL)) return F_FILENAME;
    if (at(p, "annotation", "size", "width")) return F_WIDTH;
    if (at(p, "annotation", "size", "height")) return F_HEIGHT;
    if (at(p, "annotation", "object", "name")) return F_NAME;
    if (at(p, "annotation", "object", "difficult")) return F_DIFFICULT;
    if (p->depth == 4 && !strcmp(p->path[0], "annotation") && !strcmp(p->path[1], "object") &&
        !strcmp(p->path[2], "bndbox")) {
        static const char *const names[4] = {"xmin", "ymin", "xmax", "ymax"};
        for (int k = 0; k < 4; k++)
            if (!strcmp(p->path[3], names[k])) return F_XMIN + k;
    }
    return F_NONE;
}

static void XMLCALL on_start(void *ud, const XML_Char *el, const XML_Char **attr)
{
    struct voc_parser *p = ud;
    if (p->depth == VOC_MAX_DEPTH) return fail(p, QCAL_INVALID_DATA, "XML nested too deep");
    if (p->depth == 0 && strcmp(el, "annotation"))
        return fail(p, QCAL_INVALID_DATA, "the root element is not <annotation> (not a VOC annotation)");
    snprintf(p->path[p->depth++], sizeof p->path[0], "%s", el);
    if (at(p, "annotation", "object", NULL)) {
        memset(p->have, 0, sizeof p->have);
        p->difficult = 0;
    }
    p->field = field_of(p);
    p->text_len = 0;
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    struct voc_parser *p = ud;
    if (p->field == F_NONE) return;
    if (p->text_len + (size_t)len >= VOC_TEXT_MAX) return fail(p, QCAL_INVALID_DATA, "element text too long");
    memcpy(p->text + p->text_len, s, (size_t)len);
    p->text_len += (size_t)len;
}

/* The collected text, trimmed. */
static char *text_of(struct voc_parser *p)
{
    p->text[p->text_len] = '\0';
    char *t = p->text;
    while (*t == ' ' || *t == '\t' || *t == '\n' || *t == '\r') t++;
    size_t n = strlen(t);
    while (n && (t[n - 1] == ' ' || t[n - 1] == '\t' || t[n - 1] == '\n' || t[n - 1] == '\r')) t[--n] = '\0';
    return t;
}

static bool parse_number(const char *t, double *v)
{
    char *end;
    *v = strtod(t, &end);
    return end != t && !*end && *v > -1e9 && *v < 1e9; /* also rejects NaN */
}

static void end_object(struct voc_parser *p)
{
    char msg[VOC_TEXT_MAX + 256];
    if (!p->have[F_NAME]) return fail(p, QCAL_INVALID_DATA, "<object> without <name>");
    for (int k = 0; k < 4; k++)
        if (!p->have[F_XMIN + k]) return fail(p, QCAL_INVALID_DATA, "<object> without a complete <bndbox>");
    int cls = -1;
    for (int c = 0; c < p->n_classes; c++)
        if (!strcmp(p->classes[c], p->cls_name)) cls = c;
    if (cls < 0) {
        snprintf(msg, sizeof msg, "class '%s' is not in the class list", p->cls_name);
        return fail(p, QCAL_INVALID_DATA, msg);
    }
    if (p->box[2] < p->box[0] || p->box[3] < p->box[1])
        return fail(p, QCAL_INVALID_DATA, "<bndbox> with xmax < xmin or ymax < ymin");
    struct qcal_voc_image *o = p->out;
    if (o->n_objects == p->cap) {
        int64_t cap = p->cap ? 2 * p->cap : 8;
        struct qcal_object *n = qcal_realloc_array(o->objects, (size_t)cap, sizeof *n);
        if (!n) return fail(p, QCAL_OUT_OF_MEMORY, "out of memory");
        o->objects = n, p->cap = cap;
    }
    o->objects[o->n_objects++] = (struct qcal_object){
        .x0 = (float)p->box[0], .y0 = (float)p->box[1], .x1 = (float)p->box[2], .y1 = (float)p->box[3],
        .cls = cls, .difficult = (uint8_t)(p->difficult != 0), .segm = -1};
}

static void XMLCALL on_end(void *ud, const XML_Char *el)
{
    struct voc_parser *p = ud;
    (void)el;
    char msg[VOC_TEXT_MAX + 64];
    int f = p->field;
    if (f != F_NONE) {
        char *t = text_of(p);
        double v = 0;
        if (f == F_FILENAME) {
            free(p->out->filename);
            p->out->filename = NULL; /* a second <filename> replaces the first */
            if (!*t || strchr(t, '/')) return fail(p, QCAL_INVALID_DATA, "<filename> empty or with a '/'");
            if (!(p->out->filename = qcal_strdup(t))) return fail(p, QCAL_OUT_OF_MEMORY, "out of memory");
        } else if (f == F_NAME) {
            snprintf(p->cls_name, sizeof p->cls_name, "%s", t);
        } else if (!parse_number(t, &v)) {
            snprintf(msg, sizeof msg, "<%s> '%s' is not a number", p->path[p->depth - 1], t);
            return fail(p, QCAL_INVALID_DATA, msg);
        } else if (f == F_WIDTH || f == F_HEIGHT) {
            if (v < 0 || v != (int)v) return fail(p, QCAL_INVALID_DATA, "image size not a non-negative integer");
            *(f == F_WIDTH ? &p->out->width : &p->out->height) = (int)v;
        } else if (f == F_DIFFICULT) {
            p->difficult = v != 0;
        } else {
            p->box[f - F_XMIN] = v;
        }
        p->have[f] = true;
    }
    if (at(p, "annotation", "object", NULL)) end_object(p);
    p->depth--;
    p->field = F_NONE;
}

void qcal_voc_image_free(struct qcal_voc_image *v)
{
    if (!v) return;
    free(v->filename);
    free(v->objects);
    memset(v, 0, sizeof *v);
}

enum qcal_status qcal_voc_parse(const char *xml, size_t size, const char *name, char *const *classes, int n_classes,
                                struct qcal_voc_image *out)
{
    memset(out, 0, sizeof *out);
    if (size > (size_t)1 << 30) return QCAL_ERR(QCAL_INVALID_DATA, "%s: annotation file too large", name);
    struct voc_parser p = {.name = name, .classes = classes, .n_classes = n_classes, .out = out};
    p.xp = XML_ParserCreate(NULL);
    if (!p.xp) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    XML_SetUserData(p.xp, &p);
    XML_SetElementHandler(p.xp, on_start, on_end);
    XML_SetCharacterDataHandler(p.xp, on_text);
    if (XML_Parse(p.xp, xml, (int)size, XML_TRUE) == XML_STATUS_ERROR && p.st == QCAL_OK)
        p.st = QCAL_ERR(QCAL_INVALID_DATA, "%s:%lu:%lu: malformed XML: %s", name,
                        (unsigned long)XML_GetCurrentLineNumber(p.xp),
                        (unsigned long)XML_GetCurrentColumnNumber(p.xp) + 1, XML_ErrorString(XML_GetErrorCode(p.xp)));
    if (p.st == QCAL_OK && p.depth != 0) p.st = QCAL_ERR(QCAL_INVALID_DATA, "%s: XML ends early", name);
    XML_ParserFree(p.xp);
    if (p.st != QCAL_OK) qcal_voc_image_free(out);
    return p.st;
}
