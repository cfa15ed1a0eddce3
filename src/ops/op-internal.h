/* Helpers shared by the op files; not part of any public interface. */
#ifndef QCAL_OP_INTERNAL_H
#define QCAL_OP_INTERNAL_H

#include <immintrin.h>
#include <string.h>

#include "qcal/kernels.h"
#include "qcal/ops.h"

/* Error naming the model, node and op: "m.onnx: node 'conv_1' (Conv): weight has 3 dims". */
#define OP_ERR(g, n, status, fmt, ...)                                                      \
    QCAL_ERR(status, "%s: node '%s' (%s): " fmt, (g)->path, (n)->name, (n)->op_type,        \
             ##__VA_ARGS__)

#define DECLARE_OP_DEF(fn) extern const struct qcal_op_def qcal_op_##fn##_def;

/* Checks the input/output count; max_in -1 means unbounded. */
enum qcal_status op_check_arity(struct qcal_graph *g, struct qcal_node *n, int min_in, int max_in,
                                int min_out, int max_out);
/* Requires inputs [0, count) present with known shapes. */
enum qcal_status op_require_inputs(struct qcal_graph *g, struct qcal_node *n, int count);
/* Reads a constant integer tensor input (int32/int64) into out; fails if not constant. */
enum qcal_status op_const_ints(struct qcal_graph *g, struct qcal_node *n, int input, int64_t *out,
                               int cap, int *count_out);
enum qcal_status op_const_floats(struct qcal_graph *g, struct qcal_node *n, int input, float *out,
                                 int cap, int *count_out);
/* Normalizes a possibly negative axis into [0, rank); fails with a message if out of range. */
enum qcal_status op_axis(struct qcal_graph *g, struct qcal_node *n, int64_t axis, int rank,
                         int *axis_out);
/* Sets output i's dtype and shape. */
void op_set_output(struct qcal_graph *g, struct qcal_node *n, int i, int32_t dtype, int ndim,
                   const int64_t *dims);
/* Allocates zeroed params of `size` bytes into n->params. */
enum qcal_status op_alloc_params(struct qcal_graph *g, struct qcal_node *n, size_t size);
/* numpy broadcasting of two shapes. */
enum qcal_status op_broadcast(struct qcal_graph *g, struct qcal_node *n, const struct qcal_tensor *a,
                              const struct qcal_tensor *b, struct qcal_tensor *out);

/* Element strides of a tensor in logical dim order, honouring an NHWC layout. */
static inline void op_strides(const struct qcal_tensor *t, int layout, int64_t *s)
{
    qcal_strides(t, layout == QCAL_LAYOUT_NHWC, s);
}

/* Element i of an integer tensor (zero points): uint8, int8 or int32. */
static inline int32_t op_int_at(const struct qcal_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case QCAL_U8: return ((const uint8_t *)t->data)[i];
    case QCAL_I8: return ((const int8_t *)t->data)[i];
    default: return ((const int32_t *)t->data)[i];
    }
}

/* QuantizeLinear of 16 floats with AVX-512, as qcal_quantize_one lane by lane but without
 * a division per vector: v = t * (1/scale) can differ from t / scale by a few ulp, which
 * changes the rounding only next to a half-integer; lanes within 2^-21·|v| of one (all such
 * cases: the product is within 2^-22·|v| of the quotient) are divided exactly. Returns the
 * codes as int32 lanes (saturated into [lo, hi]). */
__attribute__((target("avx512f"))) static inline __m512i op_quantize16(__m512 t, __m512 scale, __m512 inv, __m512 z,
                                                                       __m512 lo, __m512 hi)
{
    const __m512 lim = _mm512_set1_ps(4194304.0f), nlim = _mm512_set1_ps(-4194304.0f);
    __m512 v = _mm512_mul_ps(t, inv);
    const __m512 off = _mm512_abs_ps(_mm512_sub_ps(v, _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)));
    const __m512 dist = _mm512_abs_ps(_mm512_sub_ps(off, _mm512_set1_ps(0.5f)));
    const __mmask16 near = _mm512_cmp_ps_mask(dist, _mm512_mul_ps(_mm512_abs_ps(v), _mm512_set1_ps(0x1p-21f)), _CMP_LE_OQ);
    if (near) v = _mm512_mask_div_ps(v, near, t, scale);
    v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), v); /* NaN: the zero point */
    v = _mm512_min_ps(_mm512_max_ps(v, nlim), lim);
    v = _mm512_add_ps(_mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), z);
    return _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(v, lo), hi));
}

/* Four vectors of sixteen codes (int32 lanes already within [lo, hi]) as 64 bytes in order:
 * the packs keep each 128-bit lane apart, so one dword permutation restores the order. */
__attribute__((target("avx512f,avx512bw"))) static inline __m512i op_pack64(__m512i q0, __m512i q1, __m512i q2, __m512i q3, bool u8)
{
    const __m512i w01 = _mm512_packs_epi32(q0, q1), w23 = _mm512_packs_epi32(q2, q3);
    const __m512i b = u8 ? _mm512_packus_epi16(w01, w23) : _mm512_packs_epi16(w01, w23);
    /* dword 4k + j of b holds codes 4k..4k+3 of q_j */
    const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm512_permutexvar_epi32(idx, b);
}

/* The value of constant scalar input i: a float scale, or an integer zero point; 0 when the
 * input is absent (a zero point's default). */
static inline float op_scalar(struct qcal_graph *g, const struct qcal_node *n, int i)
{
    const struct qcal_value *v = qcal_in(g, n, i);
    if (!v) return 0.0f;
    return v->t.dtype == QCAL_F32 ? ((const float *)v->t.data)[0] : (float)op_int_at(&v->t, 0);
}

static inline int op_in_layout(const struct qcal_op_args *a, int i)
{
    return a->in_layout ? a->in_layout[i] : QCAL_LAYOUT_PLAIN;
}
static inline int op_out_layout(const struct qcal_op_args *a, int i)
{
    return a->out_layout ? a->out_layout[i] : QCAL_LAYOUT_PLAIN;
}

/* bind/unbind of ops whose fast path is one oneDNN primitive from input 0 to output 0
 * (prim NULL: another kernel was chosen, nothing to bind). */
enum qcal_status op_dnnl_bind(const struct qcal_dnnl_prim *prim, const struct qcal_op_args *a,
                              void **bound_out);
void op_dnnl_unbind(void *bound);

/* The state of an INT8 convolution (QLinearConv, and QGemm as a 1x1 one): descriptor,
 * quantization, weights, bias and the oneDNN primitive (NULL: the reference kernel). */
struct op_qconv {
    struct qcal_conv_desc d;
    struct qcal_qconv q;
    float *w_scale;
    const int8_t *w;
    const int32_t *bias;
    struct qcal_dnnl_prim *prim;
};
/* Picks the kernel for s (d, q, w, bias filled): oneDNN when `dnnl`, else the reference. */
enum qcal_status op_qconv_kernel(struct qcal_op_prep *pp, struct op_qconv *s, bool dnnl);
enum qcal_status op_qconv_bind(const void *state, const struct qcal_op_args *a, void **bound_out);
enum qcal_status op_qconv_run(const void *state, const struct qcal_op_args *a);
void op_qconv_destroy(void *state);

/* Number of threads an op may use: 1 inside a parallel region (batch mode). */
int op_threads(void);

#endif
