#include "qcal/tensor.h"

#include <stdio.h>
#include <string.h>

size_t qcal_dtype_size(int32_t dtype)
{
    switch (dtype) {
    case QCAL_F32: case QCAL_I32: case QCAL_U32: return 4;
    case QCAL_U8: case QCAL_I8: case QCAL_BOOL: return 1;
    case QCAL_U16: case QCAL_I16: case QCAL_F16: case QCAL_BF16: return 2;
    case QCAL_I64: case QCAL_F64: case QCAL_U64: return 8;
    default: return 0;
    }
}

const char *qcal_dtype_name(int32_t dtype)
{
    switch (dtype) {
    case QCAL_F32: return "float32";
    case QCAL_U8: return "uint8";
    case QCAL_I8: return "int8";
    case QCAL_U16: return "uint16";
    case QCAL_I16: return "int16";
    case QCAL_I32: return "int32";
    case QCAL_I64: return "int64";
    case QCAL_STRING: return "string";
    case QCAL_BOOL: return "bool";
    case QCAL_F16: return "float16";
    case QCAL_F64: return "float64";
    case QCAL_U32: return "uint32";
    case QCAL_U64: return "uint64";
    case QCAL_BF16: return "bfloat16";
    default: return "undefined";
    }
}

struct qcal_tensor qcal_tensor_make(int32_t dtype, int ndim, const int64_t *dims)
{
    struct qcal_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dtype;
    t.ndim = ndim;
    for (int i = 0; dims && i < ndim && i < QCAL_MAX_DIMS; i++) t.dims[i] = dims[i];
    return t;
}

char *qcal_shape_str(const struct qcal_tensor *t, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    if (t->ndim == 0) {
        snprintf(buf, size, "scalar");
        return buf;
    }
    for (int i = 0; i < t->ndim && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, i ? "x%lld" : "%lld", (long long)t->dims[i]);
    return buf;
}

bool qcal_shape_equal(const struct qcal_tensor *a, const struct qcal_tensor *b)
{
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->dims[i] != b->dims[i]) return false;
    return true;
}
