/* Segmentation masks: PNG class indices read through libpng's low-level API so a palette
 * image gives its raw indices (not colours), and segms (COCO polygons/RLE) drawn as masks. */
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "qcal/data.h"

struct mem_reader {
    const uint8_t *data;
    size_t size, pos;
};

static void read_mem(png_structp png, png_bytep out, png_size_t n)
{
    struct mem_reader *r = png_get_io_ptr(png);
    if (n > r->size - r->pos) png_error(png, "truncated");
    memcpy(out, r->data + r->pos, n);
    r->pos += n;
}

static void on_png_error(png_structp png, png_const_charp msg)
{
    char *buf = png_get_error_ptr(png);
    snprintf(buf, 200, "%s", msg);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

void qcal_mask_free(struct qcal_mask *m)
{
    if (!m) return;
    qcal_free(m->pixels);
    m->pixels = NULL;
}

enum qcal_status qcal_mask_decode(const void *data, size_t size, const char *name, struct qcal_mask *out)
{
    memset(out, 0, sizeof *out);
    if (size < 8 || png_sig_cmp(data, 0, 8))
        return QCAL_ERR(QCAL_INVALID_DATA, "%s: not a PNG (segmentation masks must be PNG)", name);
    char msg[200] = "";
    struct mem_reader r = {data, size, 0};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, msg, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    /* volatile: modified between setjmp and a longjmp */
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    if (!png || !info) {
        png_destroy_read_struct(&png, &info, NULL);
        return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        qcal_free(pixels);
        free(rows);
        return QCAL_ERR(QCAL_INVALID_DATA, "%s: corrupt or truncated PNG (%s)", name, msg);
    }
    png_set_read_fn(png, &r, read_mem);
    png_set_user_limits(png, 1 << 15, 1 << 15);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info), type = png_get_color_type(png, info);
    if (type != PNG_COLOR_TYPE_PALETTE && type != PNG_COLOR_TYPE_GRAY) {
        png_destroy_read_struct(&png, &info, NULL);
        return QCAL_ERR(QCAL_INVALID_DATA, "%s: a mask must be a palette or gray PNG of class indices, not %s", name,
                        type & PNG_COLOR_MASK_COLOR ? "an RGB image" : "gray with alpha");
    }
    if (depth > 8) {
        png_destroy_read_struct(&png, &info, NULL);
        return QCAL_ERR(QCAL_INVALID_DATA, "%s: 16-bit masks are not supported (class indices are 8-bit)", name);
    }
    if ((size_t)w * h > ((size_t)1 << 28)) png_error(png, "image too large");
    if (depth < 8) png_set_packing(png); /* one index per byte, values unchanged */
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != w) png_error(png, "unexpected row size");
    pixels = qcal_malloc((size_t)w * h);
    rows = malloc(sizeof *rows * h);
    if (!pixels || !rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + (size_t)y * w;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    out->width = (int)w, out->height = (int)h, out->pixels = pixels;
    return QCAL_OK;
}

enum qcal_status qcal_mask_load(const char *path, struct qcal_mask *out)
{
    void *data = NULL;
    size_t size = 0;
    enum qcal_status st = qcal_read_file(path, (size_t)1 << 30, &data, &size);
    if (st == QCAL_OK) st = qcal_mask_decode(data, size, path, out);
    free(data);
    return st;
}

/* Even-odd fill at pixel centres (x + 0.5, y + 0.5): for each row and polygon, the crossings
 * of its edges, sorted, fill between pairs. The spans of one polygon are disjoint, so setting
 * them draws the union of the polygons (parts of one object may overlap). */
static enum qcal_status draw_polygons(const double *v, int64_t n, int w, int h, uint8_t *mask)
{
    double *xs = NULL;
    int64_t cap = 0;
    for (int y = 0; y < h; y++) {
        double cy = y + 0.5;
        for (int64_t p = 0; p < n;) {
            int64_t pts = (int64_t)v[p];
            const double *c = v + p + 1;
            int64_t nx = 0;
            if (pts > cap) {
                double *t = qcal_realloc_array(xs, (size_t)pts, sizeof *t);
                if (!t) {
                    free(xs);
                    return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory drawing a mask");
                }
                xs = t, cap = pts;
            }
            for (int64_t i = 0; i < pts; i++) {
                double x0 = c[2 * i], y0 = c[2 * i + 1];
                double x1 = c[2 * ((i + 1) % pts)], y1 = c[2 * ((i + 1) % pts) + 1];
                if ((y0 <= cy) != (y1 <= cy)) xs[nx++] = x0 + (cy - y0) / (y1 - y0) * (x1 - x0);
            }
            for (int64_t i = 1; i < nx; i++) /* insertion sort: few crossings per row */
                for (int64_t j = i; j > 0 && xs[j - 1] > xs[j]; j--) {
                    double t = xs[j];
                    xs[j] = xs[j - 1], xs[j - 1] = t;
                }
            for (int64_t i = 0; i + 1 < nx; i += 2) {
                /* pixels whose centre lies in [xs[i], xs[i+1]) */
                double a = ceil(xs[i] - 0.5), b = ceil(xs[i + 1] - 0.5);
                int x0 = a < 0 ? 0 : a > w ? w : (int)a, x1 = b < 0 ? 0 : b > w ? w : (int)b;
                memset(mask + (size_t)y * w + x0, 1, (size_t)(x1 > x0 ? x1 - x0 : 0));
            }
            p += 1 + 2 * pts;
        }
    }
    free(xs);
    return QCAL_OK;
}

enum qcal_status qcal_segm_draw(const struct qcal_dataset *ds, int64_t s, uint8_t *mask)
{
    const struct qcal_segm *sg = &ds->segms[s];
    int w = sg->width, h = sg->height;
    memset(mask, 0, (size_t)w * h);
    const double *v = ds->values + sg->begin;
    int64_t n = sg->end - sg->begin;
    if (sg->kind == QCAL_SEGM_POLYGONS) return draw_polygons(v, n, w, h, mask);
    /* RLE, column-major: pixel k is (x = k / h, y = k % h) */
    int64_t k = 0;
    for (int64_t r = 0; r < n; r++) {
        int64_t run = (int64_t)v[r];
        if (r % 2)
            for (int64_t i = k; i < k + run && i < (int64_t)w * h; i++) mask[(size_t)(i % h) * w + (size_t)(i / h)] = 1;
        k += run;
    }
    return QCAL_OK;
}
