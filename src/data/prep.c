/* Image preprocessing on float H x W x C buffers; resizes follow OpenCV's conventions. */
#include <math.h>
#include <string.h>

#include "qcal/data.h"

struct plane {
    float *d;
    int w, h, c;
};

/* Size after one step, or false if the step cannot apply (image smaller than the crop). */
static void resize_target(const struct qcal_prep_step *s, int w, int h, int *rw, int *rh, int *ow, int *oh)
{
    switch (s->mode) {
    case QCAL_RESIZE_SHORTER_SIDE: {
        /* torchvision's Resize(int): the shorter side becomes `width`, the other is truncated */
        int sz = s->width;
        if (w <= h) *rw = sz, *rh = (int)((long long)sz * h / w);
        else *rh = sz, *rw = (int)((long long)sz * w / h);
        *ow = *rw, *oh = *rh;
        break;
    }
    case QCAL_RESIZE_FIT_PAD: {
        double f = fmin((double)s->width / w, (double)s->height / h);
        *rw = (int)lround(w * f), *rh = (int)lround(h * f);
        if (*rw < 1) *rw = 1;
        if (*rh < 1) *rh = 1;
        *ow = s->width, *oh = s->height;
        break;
    }
    default:
        *rw = *ow = s->width, *rh = *oh = s->height;
    }
}

/* Walks the steps' sizes; returns the largest intermediate in floats. */
static size_t walk_sizes(const struct qcal_prep *p, int *w, int *h, int c)
{
    /* the image, and the fast path's sampling tables and row when there is no resize */
    size_t best = (size_t)*w * (size_t)*h * (size_t)c + 3 * ((size_t)*w + (size_t)*h) + 64;
    for (int i = 0; i < p->n; i++) {
        const struct qcal_prep_step *s = &p->steps[i];
        int rw, rh, ow = *w, oh = *h;
        if (s->kind == QCAL_PREP_RESIZE) {
            resize_target(s, *w, *h, &rw, &rh, &ow, &oh);
            size_t tables = (size_t)rw + (size_t)rh + (size_t)(rw > ow ? rw : ow); /* sampling tables, a row */
            if (tables > best) best = tables;
        }
        else if (s->kind == QCAL_PREP_CENTER_CROP) ow = s->width < *w ? s->width : *w, oh = s->height < *h ? s->height : *h;
        *w = ow, *h = oh;
        size_t n = (size_t)ow * (size_t)oh * (size_t)c;
        if (n > best) best = n;
    }
    return best;
}

size_t qcal_prep_work_floats(const struct qcal_prep *p, int w, int h, int c) { return walk_sizes(p, &w, &h, c); }

void qcal_prep_output_size(const struct qcal_prep *p, int w, int h, int *w_out, int *h_out)
{
    walk_sizes(p, &w, &h, 1);
    *w_out = w;
    *h_out = h;
}

/* Source index and weight of the second source for each output coordinate (OpenCV
 * INTER_LINEAR: half-pixel centres, clamped at the borders). */
static void linear_coords(int in, int out, int *i0, float *f)
{
    double scale = (double)in / out;
    for (int x = 0; x < out; x++) {
        double fx = (x + 0.5) * scale - 0.5;
        int sx = (int)floor(fx);
        double a = fx - sx;
        if (sx < 0) sx = 0, a = 0;
        if (sx >= in - 1) sx = in - 1, a = 0;
        i0[x] = sx;
        f[x] = (float)a;
    }
}

static void resize_bilinear(const struct plane *src, struct plane *dst, int dst_stride, int *i0, float *f)
{
    int *j0 = i0 + dst->w;
    float *g = f + dst->w;
    linear_coords(src->w, dst->w, i0, f);
    linear_coords(src->h, dst->h, j0, g);
    const int c = src->c;
    for (int y = 0; y < dst->h; y++) {
        const float *r0 = src->d + (size_t)j0[y] * src->w * c;
        const float *r1 = src->d + (size_t)(j0[y] + (g[y] > 0 ? 1 : 0)) * src->w * c;
        float *o = dst->d + (size_t)y * dst_stride * c;
        for (int x = 0; x < dst->w; x++) {
            const float *a0 = r0 + (size_t)i0[x] * c, *b0 = r1 + (size_t)i0[x] * c;
            const int step = f[x] > 0 ? c : 0;
            for (int k = 0; k < c; k++) {
                float top = a0[k] + (a0[k + step] - a0[k]) * f[x];
                float bot = b0[k] + (b0[k + step] - b0[k]) * f[x];
                o[x * c + k] = top + (bot - top) * g[y];
            }
        }
    }
}

static void resize_nearest(const struct plane *src, struct plane *dst, int dst_stride)
{
    const int c = src->c;
    double sx = (double)src->w / dst->w, sy = (double)src->h / dst->h;
    for (int y = 0; y < dst->h; y++) {
        int yy = (int)floor(y * sy);
        if (yy > src->h - 1) yy = src->h - 1;
        for (int x = 0; x < dst->w; x++) {
            int xx = (int)floor(x * sx);
            if (xx > src->w - 1) xx = src->w - 1;
            memcpy(dst->d + ((size_t)y * dst_stride + x) * c, src->d + ((size_t)yy * src->w + xx) * c,
                   sizeof(float) * (size_t)c);
        }
    }
}

/* Box averaging with fractional overlaps (OpenCV INTER_AREA when shrinking): every output
 * pixel is the mean of the input area it covers. Separable: rows first, then columns. */
static void resize_area(const struct plane *src, struct plane *dst, int dst_stride, float *tmp)
{
    const int c = src->c;
    double sx = (double)src->w / dst->w, sy = (double)src->h / dst->h;
    /* horizontal: tmp[y][x] for every source row */
    for (int y = 0; y < src->h; y++)
        for (int x = 0; x < dst->w; x++) {
            double a = x * sx, b = (x + 1) * sx;
            for (int k = 0; k < c; k++) {
                double acc = 0;
                for (int i = (int)floor(a); i < (int)ceil(b) && i < src->w; i++) {
                    double wgt = fmin(b, i + 1.0) - fmax(a, (double)i);
                    acc += wgt * src->d[((size_t)y * src->w + i) * c + k];
                }
                tmp[((size_t)y * dst->w + x) * c + k] = (float)(acc / sx);
            }
        }
    for (int y = 0; y < dst->h; y++) {
        double a = y * sy, b = (y + 1) * sy;
        for (int x = 0; x < dst->w; x++)
            for (int k = 0; k < c; k++) {
                double acc = 0;
                for (int j = (int)floor(a); j < (int)ceil(b) && j < src->h; j++) {
                    double wgt = fmin(b, j + 1.0) - fmax(a, (double)j);
                    acc += wgt * tmp[((size_t)j * dst->w + x) * c + k];
                }
                dst->d[((size_t)y * dst_stride + x) * c + k] = (float)(acc / sy);
            }
    }
}

/* Per output channel: the image channel it reads and the arithmetic of the per-pixel steps,
 * in job order, as the generic path does it (same float operations, same results). */
struct pixel_ops {
    int src;         /* image channel */
    int n;
    char op[QCAL_PREP_MAX_STEPS];  /* '-' then '/' for normalize, '*' for scale */
    float arg[2 * QCAL_PREP_MAX_STEPS];
};

/* The fast path covers what classification and detection jobs use: an optional resize
 * (bilinear or nearest, to a size or the shorter side), an optional centre crop, then only
 * per-pixel steps. It samples the 8-bit image for the output pixels only and writes the
 * model's layout in one pass: no float copy of the image, no intermediate planes. */
static bool fast_path(const struct qcal_prep *p, int c, int *n_geom, struct pixel_ops ops[4])
{
    int i = 0;
    if (i < p->n && p->steps[i].kind == QCAL_PREP_RESIZE) {
        const struct qcal_prep_step *s = &p->steps[i];
        if (s->mode == QCAL_RESIZE_FIT_PAD || s->interp == QCAL_INTERP_AREA) return false;
        i++;
    }
    if (i < p->n && p->steps[i].kind == QCAL_PREP_CENTER_CROP) i++;
    *n_geom = i;
    int perm[4] = {0, 1, 2, 3};
    for (int k = 0; k < c; k++) ops[k].n = 0;
    for (; i < p->n; i++) {
        const struct qcal_prep_step *s = &p->steps[i];
        if (s->kind == QCAL_PREP_SWAP_RB) {
            if (c != 3) continue;
            struct pixel_ops t = ops[0];
            ops[0] = ops[2], ops[2] = t;
            int u = perm[0];
            perm[0] = perm[2], perm[2] = u;
        } else if (s->kind == QCAL_PREP_NORMALIZE) {
            for (int k = 0; k < c; k++) {
                struct pixel_ops *o = &ops[k];
                o->op[o->n] = '-', o->arg[2 * o->n] = s->mean[k], o->arg[2 * o->n + 1] = s->std[k];
                o->n++;
            }
        } else if (s->kind == QCAL_PREP_SCALE) {
            for (int k = 0; k < c; k++) {
                struct pixel_ops *o = &ops[k];
                o->op[o->n] = '*', o->arg[2 * o->n] = s->scale;
                o->n++;
            }
        } else {
            return false;
        }
    }
    for (int k = 0; k < c; k++) ops[k].src = perm[k];
    return true;
}

static enum qcal_status prep_fast(const struct qcal_prep *p, int n_geom, const struct pixel_ops *ops,
                                  const struct qcal_image *im, const char *name, float *work, struct qcal_tensor *out)
{
    const int c = im->channels;
    int rw = im->width, rh = im->height, w = rw, h = rh, x0 = 0, y0 = 0;
    const struct qcal_prep_step *rs = n_geom > 0 && p->steps[0].kind == QCAL_PREP_RESIZE ? &p->steps[0] : NULL;
    if (rs) {
        int ow, oh;
        resize_target(rs, im->width, im->height, &rw, &rh, &ow, &oh);
        if (rw < 1 || rh < 1)
            return QCAL_ERR(QCAL_INVALID_DATA, "%s: %dx%d image cannot be resized to %dx%d", name, im->width,
                            im->height, rw, rh);
        w = rw, h = rh;
    }
    if (n_geom > (rs ? 1 : 0)) {
        const struct qcal_prep_step *s = &p->steps[n_geom - 1];
        if (s->width > w || s->height > h)
            return QCAL_ERR(QCAL_INVALID_DATA, "%s: %dx%d image is smaller than the %dx%d crop", name, w, h, s->width,
                            s->height);
        x0 = (w - s->width) / 2, y0 = (h - s->height) / 2;
        w = s->width, h = s->height;
    }
    int oc = (int)(p->nhwc ? out->dims[3] : out->dims[1]), ohh = (int)(p->nhwc ? out->dims[1] : out->dims[2]);
    int oww = (int)(p->nhwc ? out->dims[2] : out->dims[3]);
    if (out->ndim != 4 || out->dims[0] != 1 || oc != c || ohh != h || oww != w)
        return QCAL_ERR(QCAL_INVALID_DATA, "%s: preprocessing gives a %dx%d image with %d channels; the model "
                        "input needs %dx%d with %d", name, w, h, c, oww, ohh, oc);
    /* sampling tables over the resized image, used for the cropped window only */
    int *ix = (int *)work, *iy = ix + rw;
    float *fx = (float *)(iy + rh), *fy = fx + rw;
    bool bilinear = rs && rs->interp != QCAL_INTERP_NEAREST;
    if (bilinear) {
        linear_coords(im->width, rw, ix, fx);
        linear_coords(im->height, rh, iy, fy);
    } else {
        double sx = (double)im->width / rw, sy = (double)im->height / rh;
        for (int x = 0; x < rw; x++) {
            int v = (int)floor(x * sx);
            ix[x] = v > im->width - 1 ? im->width - 1 : v, fx[x] = 0;
        }
        for (int y = 0; y < rh; y++) {
            int v = (int)floor(y * sy);
            iy[y] = v > im->height - 1 ? im->height - 1 : v, fy[y] = 0;
        }
    }
    float *o = out->data;
    float *row = fy + rh; /* one output row of one channel */
    const size_t plane = (size_t)w * h;
    for (int k = 0; k < c; k++) {
        const struct pixel_ops *po = &ops[k];
        const int sc = po->src;
        for (int y = 0; y < h; y++) {
            const int yy = y + y0;
            const uint8_t *r0 = im->pixels + (size_t)iy[yy] * im->width * c;
            const uint8_t *r1 = im->pixels + (size_t)(iy[yy] + (fy[yy] > 0 ? 1 : 0)) * im->width * c;
            const float g = fy[yy];
            if (bilinear) {
                for (int x = 0; x < w; x++) {
                    const int xx = x + x0;
                    const size_t a = (size_t)ix[xx] * c + sc;
                    const size_t b = a + (fx[xx] > 0 ? (size_t)c : 0);
                    const float f = fx[xx];
                    float a0 = r0[a], a1 = r0[b], b0 = r1[a], b1 = r1[b];
                    float top = a0 + (a1 - a0) * f;
                    float bot = b0 + (b1 - b0) * f;
                    row[x] = top + (bot - top) * g;
                }
            } else {
                for (int x = 0; x < w; x++) row[x] = r0[(size_t)ix[x + x0] * c + sc];
            }
            for (int i = 0; i < po->n; i++) { /* per-pixel steps, a row at a time */
                const float m = po->arg[2 * i], d = po->arg[2 * i + 1];
                if (po->op[i] == '-')
                    for (int x = 0; x < w; x++) row[x] = (row[x] - m) / d;
                else
                    for (int x = 0; x < w; x++) row[x] *= m;
            }
            if (p->nhwc) {
                float *dst = o + (size_t)y * w * c + k;
                for (int x = 0; x < w; x++) dst[(size_t)x * c] = row[x];
            } else {
                memcpy(o + k * plane + (size_t)y * w, row, sizeof(float) * (size_t)w);
            }
        }
    }
    return QCAL_OK;
}

enum qcal_status qcal_prep_run(const struct qcal_prep *p, const struct qcal_image *im, const char *name,
                               float *work, struct qcal_tensor *out)
{
    int n_geom;
    struct pixel_ops ops[4];
    if (im->channels <= 4 && fast_path(p, im->channels, &n_geom, ops))
        return prep_fast(p, n_geom, ops, im, name, work, out);
    const int c = im->channels;
    const size_t cap = qcal_prep_work_floats(p, im->width, im->height, c);
    struct plane cur = {work, im->width, im->height, c};
    float *other = work + cap;
    for (size_t i = 0; i < (size_t)im->width * im->height * c; i++) cur.d[i] = im->pixels[i];
    for (int i = 0; i < p->n; i++) {
        const struct qcal_prep_step *s = &p->steps[i];
        size_t count = (size_t)cur.w * cur.h * c;
        switch (s->kind) {
        case QCAL_PREP_RESIZE: {
            int rw, rh, ow, oh;
            resize_target(s, cur.w, cur.h, &rw, &rh, &ow, &oh);
            if (rw < 1 || rh < 1)
                return QCAL_ERR(QCAL_INVALID_DATA, "%s: %dx%d image cannot be resized to %dx%d", name, cur.w,
                                cur.h, rw, rh);
            struct plane dst = {other, rw, rh, c};
            int ox = (ow - rw) / 2, oy = (oh - rh) / 2; /* FIT_PAD centres the image */
            if (ow != rw || oh != rh) {
                for (size_t k = 0; k < (size_t)ow * oh * c; k++) other[k] = s->pad_value;
                dst.d = other + ((size_t)oy * ow + ox) * c;
            }
            bool shrink = rw <= cur.w && rh <= cur.h;
            if (s->interp == QCAL_INTERP_NEAREST) {
                resize_nearest(&cur, &dst, ow);
            } else if (s->interp == QCAL_INTERP_AREA && shrink) {
                float *tmp = qcal_malloc(sizeof(float) * (size_t)cur.h * rw * c);
                if (!tmp) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "%s: out of memory", name);
                resize_area(&cur, &dst, ow, tmp);
                qcal_free(tmp);
            } else {
                int *idx = qcal_malloc(sizeof(int) * (size_t)(rw + rh));
                float *fr = qcal_malloc(sizeof(float) * (size_t)(rw + rh));
                if (!idx || !fr) {
                    qcal_free(idx);
                    qcal_free(fr);
                    return QCAL_ERR(QCAL_OUT_OF_MEMORY, "%s: out of memory", name);
                }
                resize_bilinear(&cur, &dst, ow, idx, fr);
                qcal_free(idx);
                qcal_free(fr);
            }
            other = cur.d;
            cur = (struct plane){dst.d - ((size_t)oy * ow + ox) * c, ow, oh, c};
            break;
        }
        case QCAL_PREP_CENTER_CROP: {
            if (s->width > cur.w || s->height > cur.h)
                return QCAL_ERR(QCAL_INVALID_DATA, "%s: %dx%d image is smaller than the %dx%d crop", name, cur.w,
                                cur.h, s->width, s->height);
            int x0 = (cur.w - s->width) / 2, y0 = (cur.h - s->height) / 2;
            for (int y = 0; y < s->height; y++)
                memcpy(other + (size_t)y * s->width * c, cur.d + ((size_t)(y + y0) * cur.w + x0) * c,
                       sizeof(float) * (size_t)s->width * c);
            float *t = cur.d;
            cur = (struct plane){other, s->width, s->height, c};
            other = t;
            break;
        }
        case QCAL_PREP_SWAP_RB:
            if (c == 3)
                for (size_t k = 0; k < count; k += 3) {
                    float t = cur.d[k];
                    cur.d[k] = cur.d[k + 2];
                    cur.d[k + 2] = t;
                }
            break;
        case QCAL_PREP_NORMALIZE:
            for (size_t k = 0; k < count; k++) cur.d[k] = (cur.d[k] - s->mean[k % c]) / s->std[k % c];
            break;
        case QCAL_PREP_SCALE:
            for (size_t k = 0; k < count; k++) cur.d[k] *= s->scale;
            break;
        default:
            return QCAL_ERR(QCAL_INVALID_ARGUMENT, "%s: unknown preprocessing step %d", name, s->kind);
        }
    }
    /* out: [1, C, H, W] or [1, H, W, C] */
    int oc = (int)(p->nhwc ? out->dims[3] : out->dims[1]), ohh = (int)(p->nhwc ? out->dims[1] : out->dims[2]);
    int oww = (int)(p->nhwc ? out->dims[2] : out->dims[3]);
    if (out->ndim != 4 || out->dims[0] != 1 || oc != c || ohh != cur.h || oww != cur.w)
        return QCAL_ERR(QCAL_INVALID_DATA, "%s: preprocessing gives a %dx%d image with %d channels; the model "
                        "input needs %dx%d with %d", name, cur.w, cur.h, c, oww, ohh, oc);
    float *o = out->data;
    if (p->nhwc) {
        memcpy(o, cur.d, sizeof(float) * (size_t)cur.w * cur.h * c);
    } else {
        size_t plane = (size_t)cur.w * cur.h;
        for (size_t i = 0; i < plane; i++)
            for (int k = 0; k < c; k++) o[k * plane + i] = cur.d[i * c + k];
    }
    return QCAL_OK;
}

void qcal_prep_map_back(const struct qcal_prep *p, int width, int height, float *x, float *y)
{
    int ws[QCAL_PREP_MAX_STEPS + 1], hs[QCAL_PREP_MAX_STEPS + 1];
    ws[0] = width, hs[0] = height;
    for (int i = 0; i < p->n; i++) { /* sizes before each step */
        const struct qcal_prep_step *s = &p->steps[i];
        int rw, rh, ow = ws[i], oh = hs[i];
        if (s->kind == QCAL_PREP_RESIZE) resize_target(s, ws[i], hs[i], &rw, &rh, &ow, &oh);
        else if (s->kind == QCAL_PREP_CENTER_CROP) ow = s->width < ws[i] ? s->width : ws[i], oh = s->height < hs[i] ? s->height : hs[i];
        ws[i + 1] = ow, hs[i + 1] = oh;
    }
    for (int i = p->n - 1; i >= 0; i--) {
        const struct qcal_prep_step *s = &p->steps[i];
        if (s->kind == QCAL_PREP_CENTER_CROP) {
            *x += (float)((ws[i] - ws[i + 1]) / 2), *y += (float)((hs[i] - hs[i + 1]) / 2);
        } else if (s->kind == QCAL_PREP_RESIZE) {
            int rw, rh, ow, oh;
            resize_target(s, ws[i], hs[i], &rw, &rh, &ow, &oh);
            float ox = (float)((ow - rw) / 2), oy = (float)((oh - rh) / 2); /* fit_pad's offset */
            *x = (*x - ox) * (float)ws[i] / (float)rw, *y = (*y - oy) * (float)hs[i] / (float)rh;
        }
    }
}
