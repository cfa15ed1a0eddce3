#include "qcal/core.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void *qcal_malloc(size_t size)
{
    void *p = NULL;
    if (size == 0) size = 1;
    if (posix_memalign(&p, QCAL_ALIGN, qcal_align_up(size, QCAL_ALIGN)) != 0) return NULL;
    return p;
}

void *qcal_calloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size) return NULL;
    void *p = qcal_malloc(count * size);
    if (p) memset(p, 0, count * size);
    return p;
}

void *qcal_realloc_array(void *ptr, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size) return NULL;
    return realloc(ptr, count * size > 0 ? count * size : 1);
}

void qcal_free(void *ptr) { free(ptr); }

char *qcal_strdup(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}
