/*
 * qcal tensors: the one public data structure. A tensor is a typed, shaped view of memory;
 * whether it owns `data` is said by whoever hands it out (views never own).
 *
 *     struct qcal_tensor t = qcal_tensor_make(QCAL_F32, 4, (int64_t[]){1, 3, 224, 224});
 *     t.data = buffer;   // a view: the caller keeps owning `buffer`
 *
 * dtype codes equal ONNX's TensorProto.DataType, so models round-trip without tables.
 */
#ifndef QCAL_TENSOR_H
#define QCAL_TENSOR_H

#include "qcal/core.h"

#define QCAL_MAX_DIMS 8

enum qcal_dtype {
    QCAL_DTYPE_UNDEFINED = 0,
    QCAL_F32 = 1,
    QCAL_U8 = 2,
    QCAL_I8 = 3,
    QCAL_U16 = 4,
    QCAL_I16 = 5,
    QCAL_I32 = 6,
    QCAL_I64 = 7,
    QCAL_STRING = 8,
    QCAL_BOOL = 9,
    QCAL_F16 = 10,
    QCAL_F64 = 11,
    QCAL_U32 = 12,
    QCAL_U64 = 13,
    QCAL_BF16 = 16,
};

/* Per-tensor (count 1) or per-channel (count = dims[axis]) quantization parameters. */
struct qcal_quant {
    int32_t count; /* 0: not quantized */
    int32_t axis;
    float *scale;       /* count entries, owned by the tensor's owner */
    int32_t *zero_point; /* count entries */
};

struct qcal_tensor {
    int32_t dtype; /* enum qcal_dtype */
    int32_t ndim;
    int64_t dims[QCAL_MAX_DIMS];
    void *data;
    struct qcal_quant quant;
};

/* Size in bytes of one element; 0 for dtypes qcal cannot compute with. */
size_t qcal_dtype_size(int32_t dtype);
const char *qcal_dtype_name(int32_t dtype);

/* int8 or uint8: the types of quantized codes. */
static inline bool qcal_dtype_is_int8(int32_t dtype) { return dtype == QCAL_I8 || dtype == QCAL_U8; }

static inline int64_t qcal_tensor_numel(const struct qcal_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->dims[i];
    return n;
}

static inline size_t qcal_tensor_bytes(const struct qcal_tensor *t)
{
    return (size_t)qcal_tensor_numel(t) * qcal_dtype_size(t->dtype);
}

struct qcal_tensor qcal_tensor_make(int32_t dtype, int ndim, const int64_t *dims);

/* "1x3x224x224" into buf; returns buf. */
char *qcal_shape_str(const struct qcal_tensor *t, char *buf, size_t size);
bool qcal_shape_equal(const struct qcal_tensor *a, const struct qcal_tensor *b);

#endif
