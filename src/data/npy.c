#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qcal/data.h"

static const struct {
    const char *descr;
    int32_t dtype;
} npy_types[] = {
    {"<f4", QCAL_F32}, {"<f8", QCAL_F64}, {"<i8", QCAL_I64}, {"<i4", QCAL_I32},
    {"|i1", QCAL_I8},  {"|u1", QCAL_U8},  {"|b1", QCAL_BOOL}, {"<u8", QCAL_U64},
    {"<i2", QCAL_I16}, {"<u2", QCAL_U16}, {"<f2", QCAL_F16},
};

static enum qcal_status parse_header(const char *path, const char *h, struct qcal_tensor *t)
{
    const char *d = strstr(h, "'descr'"), *f = strstr(h, "'fortran_order'"), *s = strstr(h, "'shape'");
    if (!d || !f || !s) return QCAL_ERR(QCAL_INVALID_DATA, "%s: .npy header lacks descr/fortran_order/shape", path);
    d = strchr(d + 7, '\'');
    if (!d) return QCAL_ERR(QCAL_INVALID_DATA, "%s: bad descr in .npy header", path);
    t->dtype = 0;
    for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
        if (strncmp(d + 1, npy_types[i].descr, 3) == 0 && d[4] == '\'') t->dtype = npy_types[i].dtype;
    if (!t->dtype) return QCAL_ERR(QCAL_UNSUPPORTED, "%s: unsupported .npy dtype %.6s", path, d + 1);
    const char *fv = strchr(f + 15, ':');
    while (fv && (*fv == ':' || *fv == ' ')) fv++;
    if (fv && *fv == 'T')
        return QCAL_ERR(QCAL_UNSUPPORTED, "%s: Fortran-ordered .npy arrays are not supported", path);
    const char *p = strchr(s, '(');
    if (!p) return QCAL_ERR(QCAL_INVALID_DATA, "%s: bad shape in .npy header", path);
    p++;
    t->ndim = 0;
    while (*p && *p != ')') {
        while (*p == ' ' || *p == ',') p++;
        if (*p == ')') break;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || t->ndim >= QCAL_MAX_DIMS)
            return QCAL_ERR(QCAL_INVALID_DATA, "%s: bad shape in .npy header", path);
        t->dims[t->ndim++] = v;
        p = end;
    }
    if (*p != ')') return QCAL_ERR(QCAL_INVALID_DATA, "%s: bad shape in .npy header", path);
    return QCAL_OK;
}

enum qcal_status qcal_npy_read(const char *path, struct qcal_tensor *t_out)
{
    enum qcal_status st = QCAL_OK;
    memset(t_out, 0, sizeof *t_out);
    char *header = NULL;
    void *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return QCAL_ERR(QCAL_IO_ERROR, "%s: cannot open: %s", path, strerror(errno));
    unsigned char magic[12];
    if (fread(magic, 1, 10, f) != 10 || memcmp(magic, "\x93NUMPY", 6) != 0) {
        st = QCAL_ERR(QCAL_INVALID_DATA, "%s: not a .npy file", path);
        goto cleanup;
    }
    size_t hlen;
    if (magic[6] == 1) {
        hlen = magic[8] | (size_t)magic[9] << 8;
    } else if (magic[6] == 2 || magic[6] == 3) {
        if (fread(magic + 10, 1, 2, f) != 2) {
            st = QCAL_ERR(QCAL_INVALID_DATA, "%s: truncated .npy header", path);
            goto cleanup;
        }
        hlen = magic[8] | (size_t)magic[9] << 8 | (size_t)magic[10] << 16 | (size_t)magic[11] << 24;
    } else {
        st = QCAL_ERR(QCAL_UNSUPPORTED, "%s: .npy version %d is not supported", path, magic[6]);
        goto cleanup;
    }
    if (hlen > (1u << 20)) {
        st = QCAL_ERR(QCAL_INVALID_DATA, "%s: .npy header of %zu bytes", path, hlen);
        goto cleanup;
    }
    header = malloc(hlen + 1);
    if (!header || fread(header, 1, hlen, f) != hlen) {
        st = QCAL_ERR(QCAL_INVALID_DATA, "%s: truncated .npy header", path);
        goto cleanup;
    }
    header[hlen] = '\0';
    QCAL_CHECK(parse_header(path, header, t_out));
    size_t bytes = qcal_tensor_bytes(t_out);
    data = qcal_malloc(bytes);
    if (!data) {
        st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes", path, bytes);
        goto cleanup;
    }
    if (fread(data, 1, bytes, f) != bytes) {
        st = QCAL_ERR(QCAL_INVALID_DATA, "%s: truncated .npy data (shape needs %zu bytes)", path, bytes);
        goto cleanup;
    }
    t_out->data = data;
    data = NULL;
cleanup:
    fclose(f);
    free(header);
    qcal_free(data);
    return st;
}

enum qcal_status qcal_npy_write(const char *path, const struct qcal_tensor *t)
{
    const char *descr = NULL;
    for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
        if (npy_types[i].dtype == t->dtype) descr = npy_types[i].descr;
    if (!descr) return QCAL_ERR(QCAL_UNSUPPORTED, "%s: cannot write %s as .npy", path, qcal_dtype_name(t->dtype));
    char shape[256] = "";
    size_t n = 0;
    for (int i = 0; i < t->ndim; i++)
        n += (size_t)snprintf(shape + n, sizeof shape - n, "%lld,%s", (long long)t->dims[i],
                              i + 1 < t->ndim ? " " : "");
    if (t->ndim > 1) shape[n - 1] = '\0'; /* "(2, 3)" not "(2, 3,)" */
    char header[512];
    int hl = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
                      descr, shape);
    int total = 10 + hl + 1;
    int pad = (64 - total % 64) % 64;
    memset(header + hl, ' ', (size_t)pad);
    header[hl + pad] = '\n';
    int hlen = hl + pad + 1;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                             (unsigned char)(hlen >> 8)};
    const void *parts[3] = {pre, header, t->data};
    const size_t sizes[3] = {10, (size_t)hlen, qcal_tensor_bytes(t)};
    return qcal_write_parts(path, 3, parts, sizes);
}
