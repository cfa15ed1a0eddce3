#include <stdint.h>
#include <string.h>

#include "qcal/kernels.h"

/* memcpy of a run: runs of 4 to 64 bytes (a DepthToSpace block, an NHWC pixel's channels)
 * as two overlapping fixed-size copies the compiler inlines, not a call per run. */
static inline void copy_run(char *t, const char *s, size_t n)
{
    if (n == 4) memcpy(t, s, 4);
    else if (n >= 8 && n <= 16) memcpy(t, s, 8), memcpy(t + n - 8, s + n - 8, 8);
    else if (n > 16 && n <= 32) memcpy(t, s, 16), memcpy(t + n - 16, s + n - 16, 16);
    else if (n > 32 && n <= 64) memcpy(t, s, 32), memcpy(t + n - 32, s + n - 32, 32);
    else memcpy(t, s, n);
}

void qcal_copy_strided(int ndim, const int64_t *dims, size_t esize, const void *src,
                       const int64_t *src_strides, void *dst, const int64_t *dst_strides)
{
    int64_t d[QCAL_MAX_DIMS], ss[QCAL_MAX_DIMS], ds[QCAL_MAX_DIMS];
    int nd = 0;
    /* walk in the destination's memory order (largest stride outermost) so writes stream */
    int order[QCAL_MAX_DIMS];
    for (int i = 0; i < ndim; i++) order[i] = i;
    for (int i = 1; i < ndim; i++)
        for (int j = i; j > 0 && dst_strides[order[j]] > dst_strides[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    /* drop unit dims, then merge a dim into the previous one when both strides allow */
    for (int k = 0; k < ndim; k++) {
        int i = order[k];
        if (dims[i] == 0) return;
        if (dims[i] == 1) continue;
        if (nd > 0 && ss[nd - 1] == src_strides[i] * dims[i] &&
            ds[nd - 1] == dst_strides[i] * dims[i]) {
            d[nd - 1] *= dims[i];
            ss[nd - 1] = src_strides[i];
            ds[nd - 1] = dst_strides[i];
            continue;
        }
        d[nd] = dims[i];
        ss[nd] = src_strides[i];
        ds[nd] = dst_strides[i];
        nd++;
    }
    if (nd == 0) {
        memcpy(dst, src, esize);
        return;
    }
    const int64_t inner = d[nd - 1];
    const bool contiguous = ss[nd - 1] == 1 && ds[nd - 1] == 1;
    int64_t outer = 1;
    for (int i = 0; i < nd - 1; i++) outer *= d[i];
    const char *s = src;
    char *t = dst;
    if (nd == 2 && !contiguous && (esize == 1 || esize == 4)) { /* a 2-D transpose (NCHW <-> NHWC) */
        const int64_t s0 = ss[0], s1 = ss[1], t0 = ds[0], t1 = ds[1];
        for (int64_t o = 0; o < outer; o++) {
            if (esize == 1) {
                const uint8_t *sp = (const uint8_t *)s + o * s0;
                uint8_t *tp = (uint8_t *)t + o * t0;
                for (int64_t i = 0; i < inner; i++) tp[i * t1] = sp[i * s1];
            } else {
                const float *sp = (const float *)s + o * s0;
                float *tp = (float *)t + o * t0;
                for (int64_t i = 0; i < inner; i++) tp[i * t1] = sp[i * s1];
            }
        }
        return;
    }
    /* the two innermost dims loop directly; the offsets of the outer ones come from divisions */
    const int no = nd >= 2 ? nd - 2 : 0;
    const int64_t mid = nd >= 2 ? d[nd - 2] : 1, sm = nd >= 2 ? ss[nd - 2] : 0, tm = nd >= 2 ? ds[nd - 2] : 0;
    const size_t run = (size_t)inner * esize;
    outer = 1;
    for (int i = 0; i < no; i++) outer *= d[i];
    for (int64_t o = 0; o < outer; o++) {
        int64_t rem = o, so = 0, to = 0;
        for (int i = no - 1; i >= 0; i--) {
            int64_t idx = rem % d[i];
            rem /= d[i];
            so += idx * ss[i];
            to += idx * ds[i];
        }
        for (int64_t m = 0; m < mid; m++, so += sm, to += tm) {
            if (contiguous) {
                copy_run(t + (size_t)to * esize, s + (size_t)so * esize, run);
            } else if (esize == 4) {
                const float *sp = (const float *)s + so;
                float *tp = (float *)t + to;
                for (int64_t i = 0; i < inner; i++) tp[i * ds[nd - 1]] = sp[i * ss[nd - 1]];
            } else if (esize == 1) {
                const uint8_t *sp = (const uint8_t *)s + so;
                uint8_t *tp = (uint8_t *)t + to;
                for (int64_t i = 0; i < inner; i++) tp[i * ds[nd - 1]] = sp[i * ss[nd - 1]];
            } else {
                for (int64_t i = 0; i < inner; i++)
                    memcpy(t + (size_t)(to + i * ds[nd - 1]) * esize,
                           s + (size_t)(so + i * ss[nd - 1]) * esize, esize);
            }
        }
    }
}
