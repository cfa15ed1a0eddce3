/*
 * qcal kernels: the compute routines ops call, in three families.
 *   ref   scalar C, every op, the oracle for the others (--kernels ref)
 *   blas  OpenBLAS sgemm (+ im2col for convolutions): the portable fast path
 *   dnnl  oneDNN primitives: the fast path on x86 (AVX2/AVX-512, VNNI for INT8)
 *
 * Kernels know nothing of graphs, MPI or files; they take descriptors and pointers.
 * oneDNN objects are created once (plan time) and bound once per execution context:
 *
 *     struct qcal_dnnl_conv *c;
 *     qcal_dnnl_conv_create(&desc, weights, bias, &c);       // packs weights
 *     struct qcal_dnnl_bound *b;
 *     qcal_dnnl_conv_bind(c, src, dst, scratch, &b);       // fixed buffers of one context
 *     qcal_dnnl_run(b);                                     // many times
 */
#ifndef QCAL_KERNELS_H
#define QCAL_KERNELS_H

#include <math.h>

#include "qcal/graph.h"

/* 2-D convolution (1-D is H = 1). Weights [OC, IC/group, KH, KW] (ONNX order); for a
 * transposed convolution [IC, OC/group, KH, KW]. */
struct qcal_conv_desc {
    int64_t n, ic, ih, iw, oc, oh, ow, kh, kw;
    int64_t sh, sw, dh, dw, pt, pl, pb, pr, group;
    int64_t oph, opw; /* ConvTranspose output_padding */
    bool transposed;
    struct qcal_post_ops post; /* applied by oneDNN; the ref/blas callers apply it */
};

/* Reference kernels, plain NCHW. `threads` > 1 splits over independent outputs only, so
 * results never depend on the thread count. */
void qcal_ref_conv2d(const struct qcal_conv_desc *d, const float *x, const float *w,
                     const float *bias, float *y, int threads);
void qcal_ref_conv_transpose2d(const struct qcal_conv_desc *d, const float *x, const float *w,
                               const float *bias, float *y, int threads);
/* Quantization of an INT8 convolution: input and output per tensor (uint8 or int8 with a
 * zero point), weights int8 symmetric per output channel (or per tensor), bias int32 at
 * x_scale * w_scale[c]. */
struct qcal_qconv {
    float x_scale, y_scale;
    int32_t x_zp, y_zp;
    bool x_u8, y_u8;
    const float *w_scale; /* [oc] if per_channel, else [1] */
    bool per_channel;
    bool y_f32; /* float output (acc * x_scale * w_scale[c], activations): no requantization */
};
/* A bias in int32 at `scale` (= x_scale * w_scale[c]): rounded half to even, saturated to
 * [-INT32_MAX, INT32_MAX]. What the QDQ writer encodes and the INT8 fusion reads back. */
static inline int32_t qcal_bias_int32(double b, float scale)
{
    const double r = rint(b / (double)scale);
    return (int32_t)(r > INT32_MAX ? INT32_MAX : r < -INT32_MAX ? -INT32_MAX : r);
}

/* Round half to even of |v| < 2^22 without SSE4.1's roundps: adding and subtracting
 * 1.5 * 2^23 leaves the nearest integer in the default rounding mode (no -ffast-math). */
static inline float qcal_round_even(float v)
{
    const float magic = 12582912.0f;
    return (v + magic) - magic;
}

/* QuantizeLinear of one value: saturate(round_half_even(x / scale) + z) into [lo, hi] as a
 * float, NaN to the zero point: the arithmetic every vector path repeats lane by lane. */
static inline float qcal_quantize_one(float x, float scale, float z, float lo, float hi)
{
    const float lim = 4194304.0f; /* 2^22 steps: saturated either way */
    float v = x / scale;
    v = v == v ? v : 0.0f;
    v = v < -lim ? -lim : v > lim ? lim : v;
    v = qcal_round_even(v) + z;
    return v < lo ? lo : v > hi ? hi : v;
}

/* Reference INT8 convolution, plain NCHW, exact int32 accumulation, requantized as the QDQ
 * graph would (src/kernels/int8.c); d->post holds activations applied before the output
 * quantization (SUM post-ops are not supported here). */
void qcal_ref_conv2d_int8(const struct qcal_conv_desc *d, const struct qcal_qconv *q, const void *x,
                          const int8_t *w, const int32_t *bias, void *y, int threads);
/* C[M,N] = alpha * op(A) op(B) (+ bias[N] if not NULL), row-major, lda/ldb as stored. */
void qcal_ref_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                   float *c, int64_t ldc, int threads);

/* OpenBLAS family. */
/* Scratch for qcal_blas_conv2d run with up to `threads` threads. */
size_t qcal_blas_conv2d_scratch(const struct qcal_conv_desc *d, int threads);
void qcal_blas_conv2d(const struct qcal_conv_desc *d, const float *x, const float *w,
                      const float *bias, float *y, float *scratch, int threads);
/* ConvTranspose with kernel == stride (no padding, dilation, output padding or groups) on
 * NHWC as one sgemm per output row, weights packed once by qcal_blas_deconv_pack. */
bool qcal_blas_deconv_fits(const struct qcal_conv_desc *d);
size_t qcal_blas_deconv_packed_floats(const struct qcal_conv_desc *d);
void qcal_blas_deconv_pack(const struct qcal_conv_desc *d, const float *w, float *packed);
void qcal_blas_deconv2d_nhwc(const struct qcal_conv_desc *d, const float *x, const float *packed, const float *bias,
                             float *y, int threads);
void qcal_blas_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                    float *c, int64_t ldc, int threads);

/* oneDNN family. Every object is owned by its creator and freed with the matching destroy
 * (NULL-safe). A "bound" object is one primitive tied to one context's buffers. */
struct qcal_dnnl_prim;
struct qcal_dnnl_bound;

bool qcal_dnnl_available(void);
/* NHWC src/dst convolution or deconvolution with packed weights and fused post-ops. A SUM
 * post-op adds what dst holds before the run. */
enum qcal_status qcal_dnnl_conv_create(const struct qcal_conv_desc *d, const float *w,
                                       const float *bias, struct qcal_dnnl_prim **out);
/* INT8 convolution: NHWC uint8/int8 src and dst, int8 weights [OC, IC/group, KH, KW],
 * int32 bias, quantization q, activations in d->post; agrees with qcal_ref_conv2d_int8
 * within one step (oneDNN multiplies by 1 / y_scale where the reference divides). */
enum qcal_status qcal_dnnl_conv_int8_create(const struct qcal_conv_desc *d, const struct qcal_qconv *q,
                                            const int8_t *w, const int32_t *bias, struct qcal_dnnl_prim **out);
/* dst[M,N] = src[M,K] * W + bias; W given as [K,N] (trans_w false) or [N,K]. */
enum qcal_status qcal_dnnl_matmul_create(int64_t m, int64_t n, int64_t k, const float *w,
                                         bool trans_w, const float *bias, float alpha,
                                         const struct qcal_post_ops *post,
                                         struct qcal_dnnl_prim **out);
/* NHWC 2-D pooling. kind: 0 max, 1 average excluding padding, 2 average including it;
 * dtype float32, or uint8/int8 for max pooling. */
enum qcal_status qcal_dnnl_pool_create(const struct qcal_conv_desc *d, int kind, int32_t dtype,
                                       struct qcal_dnnl_prim **out);
size_t qcal_dnnl_scratch_size(const struct qcal_dnnl_prim *p);
const char *qcal_dnnl_impl(const struct qcal_dnnl_prim *p);
void qcal_dnnl_destroy(struct qcal_dnnl_prim *p);

enum qcal_status qcal_dnnl_bind(const struct qcal_dnnl_prim *p, const void *src, void *dst,
                                void *scratch, struct qcal_dnnl_bound **out);
enum qcal_status qcal_dnnl_run(struct qcal_dnnl_bound *b);
void qcal_dnnl_unbind(struct qcal_dnnl_bound *b);

#endif

#ifndef QCAL_KERNELS_COPY
#define QCAL_KERNELS_COPY
/* Copies an N-D box of `dims` elements of `esize` bytes between two strided layouts
 * (strides in elements). Dims contiguous in both are merged first. */
void qcal_copy_strided(int ndim, const int64_t *dims, size_t esize, const void *src,
                       const int64_t *src_strides, void *dst, const int64_t *dst_strides);

/* Element strides of `t` in logical dim order; a 4-D tensor with `nhwc` set is stored
 * N, H, W, C (channels innermost). */
static inline void qcal_strides(const struct qcal_tensor *t, bool nhwc, int64_t *s)
{
    if (nhwc && t->ndim == 4) {
        s[1] = 1;
        s[3] = t->dims[1];
        s[2] = t->dims[1] * t->dims[3];
        s[0] = s[2] * t->dims[2];
        return;
    }
    int64_t acc = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        s[i] = acc;
        acc *= t->dims[i];
    }
}
#endif
