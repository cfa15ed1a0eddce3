#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qcal/core.h"

enum qcal_status qcal_read_file(const char *path, size_t max_bytes, void **data_out, size_t *size_out)
{
    *data_out = NULL;
    *size_out = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return QCAL_ERR(QCAL_IO_ERROR, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return QCAL_ERR(QCAL_IO_ERROR, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (max_bytes && size > max_bytes) {
        fclose(f);
        return QCAL_ERR(QCAL_INVALID_DATA, "%s: %zu bytes, more than the %zu such a file may hold", path, size,
                        max_bytes);
    }
    char *data = malloc(size + 1); /* +1: a NUL after the bytes, for text */
    if (!data) {
        fclose(f);
        return QCAL_ERR(QCAL_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes", path, size);
    }
    size_t got = fread(data, 1, size, f);
    fclose(f);
    if (got != size) {
        free(data);
        return QCAL_ERR(QCAL_IO_ERROR, "%s: short read (%zu of %zu bytes)", path, got, size);
    }
    data[size] = '\0';
    *data_out = data;
    *size_out = size;
    return QCAL_OK;
}

void qcal_temp_name(const char *path, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s.tmp%d", path, (int)getpid());
}

enum qcal_status qcal_write_file(const char *path, const void *data, size_t size)
{
    return qcal_write_parts(path, 1, &data, &size);
}

enum qcal_status qcal_write_parts(const char *path, int n, const void *const *data, const size_t *size)
{
    char tmp[4096];
    qcal_temp_name(path, tmp, sizeof tmp);
    FILE *f = fopen(tmp, "wb");
    if (!f) return QCAL_ERR(QCAL_IO_ERROR, "%s: cannot create: %s", path, strerror(errno));
    bool ok = true;
    for (int i = 0; i < n && ok; i++) ok = fwrite(data[i], 1, size[i], f) == size[i];
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return QCAL_ERR(QCAL_IO_ERROR, "%s: write failed: %s", path, strerror(e));
    }
    return QCAL_OK;
}
