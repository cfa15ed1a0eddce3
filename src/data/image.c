/* JPEG (TurboJPEG) and PNG (libpng) decoding into 8-bit RGB or gray, upright. */
#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include <unistd.h>

#include "qcal/data.h"

void qcal_image_free(struct qcal_image *im)
{
    if (!im) return;
    qcal_free(im->pixels);
    im->pixels = NULL;
}

/* EXIF orientation (1-8) from a JPEG's APP1 segment, 1 when absent or unreadable. Every
 * read is bounds-checked: the bytes come from the file. */
static int exif_orientation(const uint8_t *d, size_t n)
{
    size_t i = 2;
    if (n < 4 || d[0] != 0xFF || d[1] != 0xD8) return 1;
    while (i + 4 <= n && d[i] == 0xFF) {
        uint8_t marker = d[i + 1];
        size_t len = (size_t)d[i + 2] << 8 | d[i + 3];
        if (marker == 0xDA || len < 2 || i + 2 + len > n) return 1; /* start of scan: no EXIF */
        const uint8_t *s = d + i + 4;
        size_t sl = len - 2;
        if (marker == 0xE1 && sl >= 14 && memcmp(s, "Exif\0\0", 6) == 0) {
            const uint8_t *t = s + 6;
            size_t tl = sl - 6;
            bool le = t[0] == 'I' && t[1] == 'I';
            if (!le && !(t[0] == 'M' && t[1] == 'M')) return 1;
#define RD16(p) (le ? (unsigned)(p)[0] | (unsigned)(p)[1] << 8 : (unsigned)(p)[0] << 8 | (unsigned)(p)[1])
#define RD32(p) (le ? (uint32_t)(p)[0] | (uint32_t)(p)[1] << 8 | (uint32_t)(p)[2] << 16 | (uint32_t)(p)[3] << 24 \
                    : (uint32_t)(p)[0] << 24 | (uint32_t)(p)[1] << 16 | (uint32_t)(p)[2] << 8 | (uint32_t)(p)[3])
            uint32_t ifd = RD32(t + 4);
            if (ifd > tl || tl - ifd < 2) return 1;
            unsigned count = RD16(t + ifd);
            for (unsigned k = 0; k < count; k++) {
                size_t e = ifd + 2 + 12 * (size_t)k;
                if (e + 12 > tl) return 1;
                if (RD16(t + e) == 0x0112) {
                    unsigned v = RD16(t + e + 8);
                    return v >= 1 && v <= 8 ? (int)v : 1;
                }
            }
#undef RD16
#undef RD32
            return 1;
        }
        i += 2 + len;
    }
    return 1;
}

/* Rotates/flips in place (through a copy) so the image is upright: EXIF orientations 2-8. */
static enum qcal_status apply_orientation(struct qcal_image *im, int o, const char *name)
{
    if (o <= 1) return QCAL_OK;
    int w = im->width, h = im->height, c = im->channels;
    bool swap = o >= 5;
    int nw = swap ? h : w, nh = swap ? w : h;
    uint8_t *dst = qcal_malloc((size_t)w * (size_t)h * (size_t)c);
    if (!dst) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "%s: out of memory", name);
    for (int y = 0; y < nh; y++)
        for (int x = 0; x < nw; x++) {
            int sx, sy; /* source of output pixel (x, y) */
            switch (o) {
            case 2: sx = w - 1 - x, sy = y; break;
            case 3: sx = w - 1 - x, sy = h - 1 - y; break;
            case 4: sx = x, sy = h - 1 - y; break;
            case 5: sx = y, sy = x; break;
            case 6: sx = y, sy = h - 1 - x; break;
            case 7: sx = w - 1 - y, sy = h - 1 - x; break;
            default: sx = w - 1 - y, sy = x; break; /* 8 */
            }
            memcpy(dst + ((size_t)y * nw + x) * c, im->pixels + ((size_t)sy * w + sx) * c, (size_t)c);
        }
    qcal_free(im->pixels);
    im->pixels = dst;
    im->width = nw;
    im->height = nh;
    return QCAL_OK;
}

/* The smallest TurboJPEG scale (num/denom <= 1) keeping w x h at least min_w x min_h. */
static void pick_scale(int w, int h, int min_w, int min_h, tjscalingfactor *best)
{
    best->num = best->denom = 1;
    if (min_w <= 0 && min_h <= 0) return;
    int count = 0;
    tjscalingfactor *f = tjGetScalingFactors(&count);
    for (int i = 0; f && i < count; i++) {
        if (f[i].num > f[i].denom) continue;
        int sw = TJSCALED(w, f[i]), sh = TJSCALED(h, f[i]);
        if (sw >= min_w && sh >= min_h && (long)f[i].num * best->denom < (long)best->num * f[i].denom) *best = f[i];
    }
}

static enum qcal_status decode_jpeg(const uint8_t *d, size_t n, const char *name, int channels, int min_w,
                                    int min_h, struct qcal_image *out)
{
    enum qcal_status st = QCAL_OK;
    tjhandle tj = tjInitDecompress();
    if (!tj) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "%s: cannot start the JPEG decoder", name);
    int w, h, sub, cs;
    if (tjDecompressHeader3(tj, d, (unsigned long)n, &w, &h, &sub, &cs) != 0) {
        st = QCAL_ERR(QCAL_INVALID_DATA, "%s: not a readable JPEG (%s)", name, tjGetErrorStr2(tj));
        goto cleanup;
    }
    if (cs == TJCS_CMYK || cs == TJCS_YCCK) {
        st = QCAL_ERR(QCAL_UNSUPPORTED, "%s: CMYK JPEGs are not supported; convert to RGB", name);
        goto cleanup;
    }
    if (w < 1 || h < 1 || (size_t)w * (size_t)h > ((size_t)1 << 28)) {
        st = QCAL_ERR(QCAL_INVALID_DATA, "%s: JPEG of %dx%d pixels is not supported", name, w, h);
        goto cleanup;
    }
    int orient = exif_orientation(d, n);
    tjscalingfactor sf;
    if (orient >= 5) pick_scale(w, h, min_h, min_w, &sf); /* rotated a quarter turn afterwards */
    else pick_scale(w, h, min_w, min_h, &sf);
    w = TJSCALED(w, sf), h = TJSCALED(h, sf);
    out->width = w, out->height = h, out->channels = channels, out->scale = (float)sf.num / (float)sf.denom;
    out->pixels = qcal_malloc((size_t)w * (size_t)h * (size_t)channels);
    if (!out->pixels) {
        st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "%s: out of memory", name);
        goto cleanup;
    }
    /* TurboJPEG reports truncated or corrupt data only as a warning: stop on it, and fail. */
    if (tjDecompress2(tj, d, (unsigned long)n, out->pixels, w, 0, h, channels == 3 ? TJPF_RGB : TJPF_GRAY,
                      TJFLAG_STOPONWARNING) != 0) {
        st = QCAL_ERR(QCAL_INVALID_DATA, "%s: corrupt or truncated JPEG (%s)", name, tjGetErrorStr2(tj));
        goto cleanup;
    }
    st = apply_orientation(out, orient, name);
cleanup:
    tjDestroy(tj);
    if (st != QCAL_OK) qcal_image_free(out);
    return st;
}

static enum qcal_status decode_png(const uint8_t *d, size_t n, const char *name, int channels,
                                   struct qcal_image *out)
{
    png_image png;
    memset(&png, 0, sizeof png);
    png.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&png, d, n))
        return QCAL_ERR(QCAL_INVALID_DATA, "%s: not a readable PNG (%s)", name, png.message);
    if (png.format & PNG_FORMAT_FLAG_LINEAR) {
        png_image_free(&png);
        return QCAL_ERR(QCAL_UNSUPPORTED, "%s: 16-bit PNGs are not supported", name);
    }
    if (png.width < 1 || png.height < 1 || (size_t)png.width * png.height > ((size_t)1 << 28)) {
        png_image_free(&png);
        return QCAL_ERR(QCAL_INVALID_DATA, "%s: PNG of %ux%u pixels is not supported", name, png.width,
                        png.height);
    }
    png.format = channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY; /* alpha composed on black */
    out->width = (int)png.width, out->height = (int)png.height, out->channels = channels, out->scale = 1;
    out->pixels = qcal_malloc(PNG_IMAGE_SIZE(png));
    if (!out->pixels) {
        png_image_free(&png);
        return QCAL_ERR(QCAL_OUT_OF_MEMORY, "%s: out of memory", name);
    }
    if (!png_image_finish_read(&png, NULL, out->pixels, 0, NULL) || PNG_IMAGE_FAILED(png)) {
        qcal_image_free(out);
        enum qcal_status st = QCAL_ERR(QCAL_INVALID_DATA, "%s: corrupt or truncated PNG (%s)", name, png.message);
        png_image_free(&png);
        return st;
    }
    png_image_free(&png);
    return QCAL_OK;
}

enum qcal_status qcal_image_decode(const void *data, size_t size, const char *name, int channels,
                                   struct qcal_image *out)
{
    return qcal_image_decode_scaled(data, size, name, channels, 0, 0, out);
}

enum qcal_status qcal_image_decode_scaled(const void *data, size_t size, const char *name, int channels,
                                          int min_w, int min_h, struct qcal_image *out)
{
    const uint8_t *d = data;
    memset(out, 0, sizeof *out);
    if (channels != 1 && channels != 3)
        return QCAL_ERR(QCAL_INVALID_ARGUMENT, "%s: images decode to 1 or 3 channels, not %d", name, channels);
    if (size == 0) return QCAL_ERR(QCAL_INVALID_DATA, "%s: empty file", name);
    if (size >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return decode_jpeg(d, size, name, channels, min_w, min_h, out);
    if (size >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0) return decode_png(d, size, name, channels, out);
    return QCAL_ERR(QCAL_INVALID_DATA, "%s: not a JPEG or PNG image", name);
}

enum qcal_status qcal_image_load(const char *path, int channels, struct qcal_image *out)
{
    return qcal_image_load_scaled(path, channels, 0, 0, out);
}

enum qcal_status qcal_image_load_scaled(const char *path, int channels, int min_w, int min_h,
                                        struct qcal_image *out)
{
    memset(out, 0, sizeof *out);
    void *buf = NULL;
    size_t size = 0;
    enum qcal_status st = qcal_read_file(path, 0, &buf, &size);
    if (st == QCAL_OK) st = qcal_image_decode_scaled(buf, size, path, channels, min_w, min_h, out);
    free(buf);
    return st;
}

enum qcal_status qcal_png_write(const char *path, const struct qcal_image *im)
{
    if (im->channels != 3 && im->channels != 1)
        return QCAL_ERR(QCAL_INVALID_ARGUMENT, "%s: PNGs are written from RGB or gray images", path);
    char tmp[4096];
    qcal_temp_name(path, tmp, sizeof tmp);
    png_image png;
    memset(&png, 0, sizeof png);
    png.version = PNG_IMAGE_VERSION;
    png.width = (png_uint_32)im->width, png.height = (png_uint_32)im->height;
    png.format = im->channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    if (!png_image_write_to_file(&png, tmp, 0, im->pixels, 0, NULL)) {
        enum qcal_status st = QCAL_ERR(QCAL_IO_ERROR, "%s: cannot write the PNG (%s)", path, png.message);
        unlink(tmp);
        return st;
    }
    if (rename(tmp, path) != 0) {
        enum qcal_status st = QCAL_ERR(QCAL_IO_ERROR, "%s: cannot write: %s", path, strerror(errno));
        unlink(tmp);
        return st;
    }
    return QCAL_OK;
}
