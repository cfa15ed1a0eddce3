/* Per-layer quantization error (calibration pass 3): per channel, the means over the
 * calibration set of y, y^2, e and e^2, where y is a quantized layer's FP32 output and e
 * its INT8-simulated twin's output minus y. Each image's per-channel means are computed in
 * double by the one thread that ran the image, then added in 64-bit fixed point scaled by
 * the layer's bound, so the sums are exact and the same for any number of ranks, threads
 * and any image order (invariant 1). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qcal/calib.h"
#include "qcal/ops.h"
#include "qcal/par.h"

enum { Q_Y, Q_Y2, Q_E, Q_E2, N_Q };

struct qcal_error_thread {
    struct qcal_calib_error *e;
    int64_t *acc;         /* [layer offset + channel][N_Q] fixed-point sums */
    double *sum, *sum2;   /* scratch: one tensor's per-channel sums */
    float *fsum, *fsum2;  /* scratch: per-channel sums of a block of pixels */
};

void qcal_error_destroy(struct qcal_calib_error *e)
{
    if (!e) return;
    for (int t = 0; e->threads && t < e->n_threads; t++) {
        free(e->threads[t].acc);
        free(e->threads[t].sum);
        free(e->threads[t].sum2);
        free(e->threads[t].fsum);
        free(e->threads[t].fsum2);
    }
    free(e->threads);
    for (int j = 0; e->layers && j < e->n; j++) free(e->layers[j].mean);
    free(e->layers);
    free(e->role);
    free(e);
}

enum qcal_status qcal_error_create(const struct qcal_graph *g, const struct qcal_error_layer *layers, int n,
                                   int n_threads, int64_t images, struct qcal_calib_error **out)
{
    struct qcal_calib_error *e = calloc(1, sizeof *e);
    *out = NULL;
    if (!e) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    e->n = n;
    e->images = images;
    e->n_values = g->n_values;
    e->layers = calloc((size_t)n + 1, sizeof *e->layers);
    e->role = malloc(sizeof(int) * ((size_t)g->n_values + 1));
    e->n_threads = n_threads;
    e->threads = calloc((size_t)n_threads + 1, sizeof *e->threads);
    if (!e->layers || !e->role || !e->threads) goto oom;
    for (int v = 0; v < g->n_values; v++) e->role[v] = -1;
    int64_t max_ch = 1;
    e->total_channels = 0;
    for (int j = 0; j < n; j++) {
        struct qcal_error_layer *l = &e->layers[j];
        *l = layers[j];
        l->mean = NULL;
        l->offset = e->total_channels;
        e->total_channels += l->channels;
        if (l->channels > max_ch) max_ch = l->channels;
        /* per-image means of y and e lie in [-b, b], of their squares in [0, b^2] */
        const double b = l->bound > 0 && isfinite(l->bound) ? l->bound : 1.0;
        l->fx[0] = images > 0 ? ldexp(1.0, 62) / (b * (double)images) : 0;
        l->fx[1] = images > 0 ? ldexp(1.0, 62) / (b * b * (double)images) : 0;
        if (!(l->fx[1] > 0) || !isfinite(l->fx[1])) l->fx[1] = 0; /* b^2 overflowed: squares not kept */
        e->role[l->y] = 2 * j;
        e->role[l->error] = 2 * j + 1;
    }
    for (int t = 0; t < n_threads; t++) {
        struct qcal_error_thread *th = &e->threads[t];
        th->e = e;
        th->acc = calloc((size_t)e->total_channels * N_Q + 1, sizeof *th->acc);
        th->sum = malloc(sizeof(double) * (size_t)max_ch);
        th->sum2 = malloc(sizeof(double) * (size_t)max_ch);
        th->fsum = malloc(sizeof(float) * (size_t)max_ch);
        th->fsum2 = malloc(sizeof(float) * (size_t)max_ch);
        if (!th->acc || !th->sum || !th->sum2 || !th->fsum || !th->fsum2) goto oom;
    }
    *out = e;
    return QCAL_OK;
oom:
    qcal_error_destroy(e);
    return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
}

struct qcal_error_thread *qcal_error_thread(struct qcal_calib_error *e, int tid) { return &e->threads[tid]; }

/* v * fx rounded, held inside [-2^62 / images, 2^62 / images] so no sum can overflow */
static int64_t fixed(double v, double fx, int64_t images)
{
    const double lim = ldexp(1.0, 62) / (double)(images > 0 ? images : 1);
    double f = v * fx;
    if (f != f) f = 0;
    return llround(f > lim ? lim : f < -lim ? -lim : f);
}

static void observe(struct qcal_error_thread *th, int role, const struct qcal_tensor *x, int layout)
{
    const struct qcal_error_layer *l = &th->e->layers[role / 2];
    const int64_t count = qcal_tensor_numel(x), ch = l->channels;
    if (x->dtype != QCAL_F32 || count == 0 || ch <= 0) return;
    int64_t inner = 1; /* plain layout: elements after the channel axis */
    for (int d = l->axis + 1; d < x->ndim; d++) inner *= x->dims[d];
    const bool nhwc = layout == QCAL_LAYOUT_NHWC && x->ndim == 4 && l->axis == 1;
    memset(th->sum, 0, sizeof(double) * (size_t)ch);
    memset(th->sum2, 0, sizeof(double) * (size_t)ch);
    const float *p = x->data;
    /* float partial sums over short blocks (in a fixed order: the same bits for any
     * thread), added into double per block; the loops vectorize */
    enum { PIXELS = 32, RUN = 256, LANES = 8 };
    if (nhwc) {
        const int64_t pixels = count / ch;
        for (int64_t p0 = 0; p0 < pixels; p0 += PIXELS) {
            const int64_t pn = pixels - p0 < PIXELS ? pixels - p0 : PIXELS;
            memset(th->fsum, 0, sizeof(float) * (size_t)ch);
            memset(th->fsum2, 0, sizeof(float) * (size_t)ch);
            for (int64_t q = 0; q < pn; q++) {
                const float *row = p + (p0 + q) * ch;
                for (int64_t c = 0; c < ch; c++) {
                    const float v = row[c];
                    th->fsum[c] += v;
                    th->fsum2[c] += v * v;
                }
            }
            for (int64_t c = 0; c < ch; c++) th->sum[c] += th->fsum[c], th->sum2[c] += th->fsum2[c];
        }
    } else {
        for (int64_t i = 0; i < count; i += inner) {
            const int64_t c = (i / inner) % ch;
            for (int64_t r0 = 0; r0 < inner; r0 += RUN) {
                const int64_t rn = inner - r0 < RUN ? inner - r0 : RUN;
                const float *run = p + i + r0;
                float a[LANES] = {0}, b[LANES] = {0};
                int64_t k = 0;
                for (; k + LANES <= rn; k += LANES)
                    for (int j = 0; j < LANES; j++) a[j] += run[k + j], b[j] += run[k + j] * run[k + j];
                for (; k < rn; k++) a[0] += run[k], b[0] += run[k] * run[k];
                for (int j = 0; j < LANES; j++) th->sum[c] += a[j], th->sum2[c] += b[j];
            }
        }
    }
    const double per = (double)(count / ch);
    const int64_t images = th->e->images;
    int64_t *acc = th->acc + l->offset * N_Q;
    const int q = role % 2 ? Q_E : Q_Y;
    for (int64_t c = 0; c < ch; c++) {
        acc[c * N_Q + q] += fixed(th->sum[c] / per, l->fx[0], images);
        acc[c * N_Q + q + 1] += fixed(th->sum2[c] / per, l->fx[1], images);
    }
}

void qcal_error_observer(void *ctx, const struct qcal_node *node, int n_out, struct qcal_tensor *const *outs,
                         const uint8_t *layouts)
{
    struct qcal_error_thread *th = ctx;
    for (int k = 0; k < n_out; k++) {
        const int v = node->outputs[k];
        if (v < 0 || v >= th->e->n_values || th->e->role[v] < 0) continue;
        observe(th, th->e->role[v], outs[k], layouts ? layouts[k] : QCAL_LAYOUT_PLAIN);
    }
}

enum qcal_status qcal_error_end(struct qcal_calib_error *e)
{
    const size_t n = (size_t)e->total_channels * N_Q;
    int64_t *sum = calloc(n + 1, sizeof *sum);
    if (!sum) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    for (int t = 0; t < e->n_threads; t++)
        for (size_t i = 0; i < n; i++) sum[i] = (int64_t)((uint64_t)sum[i] + (uint64_t)e->threads[t].acc[i]);
    enum qcal_status st = qcal_par_allreduce_i64_sum(sum, n);
    for (int j = 0; st == QCAL_OK && j < e->n; j++) {
        struct qcal_error_layer *l = &e->layers[j];
        l->mean = calloc((size_t)l->channels * N_Q + 1, sizeof *l->mean);
        if (!l->mean) {
            st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
            break;
        }
        for (int64_t c = 0; c < l->channels; c++)
            for (int q = 0; q < N_Q; q++) {
                const double f = l->fx[q % 2] * (double)e->images;
                l->mean[c * N_Q + q] = f > 0 ? (double)sum[(l->offset + c) * N_Q + q] / f : 0;
            }
    }
    free(sum);
    return st;
}
