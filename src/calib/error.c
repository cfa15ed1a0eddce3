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
    uint64_t *in_hist;    /* [input channel][QCAL_INPUT_SLOTS] counts */
    float *in_min, *in_max; /* [input channel][QCAL_INPUT_BINS] least and largest value per bin */
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
        free(e->threads[t].in_hist);
        free(e->threads[t].in_min);
        free(e->threads[t].in_max);
    }
    free(e->threads);
    for (int j = 0; e->layers && j < e->n; j++) free(e->layers[j].mean);
    for (int j = 0; e->inputs && j < e->n_inputs; j++) {
        free(e->inputs[j].hist);
        free(e->inputs[j].bin_min);
        free(e->inputs[j].bin_max);
    }
    free(e->inputs);
    free(e->input_role);
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

enum qcal_status qcal_error_add_inputs(struct qcal_calib_error *e, const struct qcal_error_input *in, int n)
{
    e->inputs = calloc((size_t)n + 1, sizeof *e->inputs);
    e->input_role = malloc(sizeof(int) * ((size_t)e->n_values + 1));
    if (!e->inputs || !e->input_role) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    e->n_inputs = n;
    for (int v = 0; v < e->n_values; v++) e->input_role[v] = -1;
    e->input_channels = 0;
    for (int j = 0; j < n; j++) {
        e->inputs[j] = in[j];
        e->inputs[j].hist = NULL;
        e->inputs[j].bin_min = e->inputs[j].bin_max = NULL;
        e->inputs[j].offset = e->input_channels;
        e->input_channels += in[j].channels;
        e->input_role[in[j].value] = j;
    }
    const size_t bins = (size_t)e->input_channels * QCAL_INPUT_BINS;
    for (int t = 0; t < e->n_threads; t++) {
        struct qcal_error_thread *th = &e->threads[t];
        th->in_hist = calloc((size_t)e->input_channels * QCAL_INPUT_SLOTS + 1, sizeof(uint64_t));
        th->in_min = malloc(sizeof(float) * (bins + 1));
        th->in_max = malloc(sizeof(float) * (bins + 1));
        if (!th->in_hist || !th->in_min || !th->in_max) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        for (size_t i = 0; i < bins; i++) th->in_min[i] = INFINITY, th->in_max[i] = -INFINITY;
    }
    return QCAL_OK;
}

/* The slot of v in a channel histogram of the tensor's range [lo, hi], m = max(|lo|, |hi|). */
static inline int input_slot(float v, float lo, float hi, float m)
{
    if (v == lo && v != 0.0f) return QCAL_INPUT_BINS + 1;
    if (v == hi && v != 0.0f) return QCAL_INPUT_BINS + 2;
    int e;
    const double f = frexp(fabs((double)v) / m, &e); /* |v| = m f 2^e, f in [0.5, 1) */
    const int octave = e > 0 ? 0 : -e, sub = e > 0 ? QCAL_INPUT_SUB - 1 : (int)((f - 0.5) * 2 * QCAL_INPUT_SUB);
    if (v == 0.0f || octave >= QCAL_INPUT_OCTAVES) return QCAL_INPUT_BINS;
    const int k = octave * QCAL_INPUT_SUB + (sub < QCAL_INPUT_SUB ? sub : QCAL_INPUT_SUB - 1);
    return v < 0 ? QCAL_INPUT_BINS / 2 - 1 - k : QCAL_INPUT_BINS / 2 + k;
}

static void observe_input(struct qcal_error_thread *th, int idx, const struct qcal_tensor *x, int layout)
{
    const struct qcal_error_input *in = &th->e->inputs[idx];
    const int64_t count = qcal_tensor_numel(x), ch = in->channels;
    if (x->dtype != QCAL_F32 || count == 0 || ch <= 0 || x->ndim <= in->axis || x->dims[in->axis] != ch) return;
    int64_t inner = 1;
    for (int d = in->axis + 1; d < x->ndim; d++) inner *= x->dims[d];
    const bool nhwc = layout == QCAL_LAYOUT_NHWC && x->ndim == 4 && in->axis == 1;
    const float lo = in->lo, hi = in->hi, m = fmaxf(fabsf(lo), fabsf(hi));
    const float *p = x->data;
    uint64_t *h = th->in_hist + in->offset * QCAL_INPUT_SLOTS;
    float *bmin = th->in_min + in->offset * QCAL_INPUT_BINS, *bmax = th->in_max + in->offset * QCAL_INPUT_BINS;
    /* plain: runs of `inner` values of one channel; NHWC: one value of each channel per pixel */
    const int64_t run = nhwc ? 1 : inner;
    for (int64_t o = 0, c = 0; o < count; o += run, c = c + 1 == ch ? 0 : c + 1)
        for (int64_t k = 0; k < run; k++) {
            const float v = p[o + k];
            if (!isfinite(v)) continue;
            const int b = input_slot(v, lo, hi, m);
            h[c * QCAL_INPUT_SLOTS + b]++;
            if (b < QCAL_INPUT_BINS) {
                float *mn = &bmin[c * QCAL_INPUT_BINS + b], *mx = &bmax[c * QCAL_INPUT_BINS + b];
                *mn = fminf(*mn, v), *mx = fmaxf(*mx, v);
            }
        }
}

void qcal_error_observe_input(struct qcal_error_thread *th, int value, const struct qcal_tensor *x)
{
    const struct qcal_calib_error *e = th->e;
    if (e->input_role && value >= 0 && value < e->n_values && e->input_role[value] >= 0)
        observe_input(th, e->input_role[value], x, QCAL_LAYOUT_PLAIN);
}

void qcal_error_observer(void *ctx, const struct qcal_node *node, int n_out, struct qcal_tensor *const *outs,
                         const uint8_t *layouts)
{
    struct qcal_error_thread *th = ctx;
    const struct qcal_calib_error *e = th->e;
    for (int k = 0; k < n_out; k++) {
        const int v = node->outputs[k];
        if (v < 0 || v >= e->n_values) continue;
        const int layout = layouts ? layouts[k] : QCAL_LAYOUT_PLAIN;
        if (e->role[v] >= 0) observe(th, e->role[v], outs[k], layout);
        if (e->input_role && e->input_role[v] >= 0) observe_input(th, e->input_role[v], outs[k], layout);
    }
}

/* F(u) = the integral from qmin to u of clamp(round(t), qmin, qmax) dt. */
static double staircase_integral(double u, double qmin, double qmax)
{
    if (u <= qmin + 0.5) return qmin * (u - qmin);
    const double top = fmin(floor(u + 0.5), qmax); /* the step u is on (qmax above qmax - 0.5) */
    /* [qmin, qmin + 0.5] at qmin, whole steps qmin+1 .. top-1, then top from top - 0.5 to u */
    const double first = qmin + 1, last = top - 1;
    const double whole = last >= first ? (first + last) * (last - first + 1) / 2 : 0;
    return qmin * 0.5 + whole + top * (u - (top - 0.5));
}

/* QuantizeLinear then DequantizeLinear of one value, as the ops compute it. */
static double fake_quant(float v, const struct qcal_qparams *q, double qmin, double qmax)
{
    const double r = (double)rintf(v / q->scale) + q->zero_point;
    return ((r < qmin ? qmin : r > qmax ? qmax : r) - q->zero_point) * q->scale;
}

double qcal_input_mean_quantized(const uint64_t *hist, const float *bin_min, const float *bin_max, float lo, float hi,
                                 const struct qcal_qparams *q)
{
    const double qmin = q->dtype == QCAL_U8 ? 0 : -128, qmax = q->dtype == QCAL_U8 ? 255 : 127;
    const double s = q->scale, z = q->zero_point;
    double sum = 0, n = 0;
    for (int b = 0; b < QCAL_INPUT_BINS; b++) {
        if (!hist[b]) continue;
        const double ua = bin_min[b] / s + z, ub = bin_max[b] / s + z;
        if (ub > ua)
            sum += (double)hist[b] * ((staircase_integral(ub, qmin, qmax) - staircase_integral(ua, qmin, qmax)) /
                                      (ub - ua) - z) * s;
        else /* one value */
            sum += (double)hist[b] * fake_quant(bin_min[b], q, qmin, qmax);
        n += (double)hist[b];
    }
    const float at[3] = {0.0f, lo, hi};
    for (int k = 0; k < 3; k++) {
        const double c = (double)hist[QCAL_INPUT_BINS + k];
        if (c > 0) sum += c * fake_quant(at[k], q, qmin, qmax), n += c;
    }
    return n > 0 ? sum / n : 0;
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
    /* the input histograms: integer counts, added in any order */
    const size_t m = (size_t)e->input_channels * QCAL_INPUT_SLOTS;
    uint64_t *hist = st == QCAL_OK && e->n_inputs ? calloc(m + 1, sizeof *hist) : NULL;
    if (st == QCAL_OK && e->n_inputs && !hist) st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    for (int t = 0; hist && t < e->n_threads; t++)
        for (size_t i = 0; i < m; i++) hist[i] += e->threads[t].in_hist[i];
    if (hist) st = qcal_par_allreduce_i64_sum((int64_t *)hist, m);
    /* each bin's least and largest value: min and max, in any order */
    const size_t nb = (size_t)e->input_channels * QCAL_INPUT_BINS;
    double *bmin = hist ? malloc(sizeof(double) * (nb + 1)) : NULL, *bmax = hist ? malloc(sizeof(double) * (nb + 1)) : NULL;
    if (hist && (!bmin || !bmax)) st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    for (size_t i = 0; st == QCAL_OK && hist && i < nb; i++) {
        bmin[i] = INFINITY, bmax[i] = -INFINITY;
        for (int t = 0; t < e->n_threads; t++)
            bmin[i] = fmin(bmin[i], e->threads[t].in_min[i]), bmax[i] = fmax(bmax[i], e->threads[t].in_max[i]);
    }
    if (st == QCAL_OK && hist) st = qcal_par_allreduce_f64_min(bmin, nb);
    if (st == QCAL_OK && hist) st = qcal_par_allreduce_f64_max(bmax, nb);
    for (int j = 0; st == QCAL_OK && j < e->n_inputs; j++) {
        struct qcal_error_input *in = &e->inputs[j];
        const size_t k = (size_t)in->channels * QCAL_INPUT_SLOTS, kb = (size_t)in->channels * QCAL_INPUT_BINS;
        in->hist = malloc(sizeof *in->hist * (k + 1));
        in->bin_min = malloc(sizeof(float) * (kb + 1));
        in->bin_max = malloc(sizeof(float) * (kb + 1));
        if (!in->hist || !in->bin_min || !in->bin_max) {
            st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
            break;
        }
        memcpy(in->hist, hist + (size_t)in->offset * QCAL_INPUT_SLOTS, sizeof *in->hist * k);
        for (size_t i = 0; i < kb; i++)
            in->bin_min[i] = (float)bmin[in->offset * QCAL_INPUT_BINS + i],
            in->bin_max[i] = (float)bmax[in->offset * QCAL_INPUT_BINS + i];
    }
    free(hist), free(bmin), free(bmax);
    return st;
}
