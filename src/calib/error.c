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
    bool record;          /* this image's inputs are recorded */
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

enum qcal_status qcal_error_add_inputs(struct qcal_calib_error *e, const struct qcal_error_input *in, int n,
                                       int64_t every)
{
    e->record_every = every > 0 ? every : 1;
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

/* The slot of v in a channel histogram of the tensor's range [lo, hi]; inv_m = 1 / max(|lo|,
 * |hi|). The octave and the bin in it come from the exponent and the leading mantissa bits
 * of |v| inv_m (a float in (0, 1]): no logarithm, no division. */
static inline int input_slot(float v, float lo, float hi, float inv_m)
{
    if (v == 0.0f) return QCAL_INPUT_BINS;
    if (v == lo) return QCAL_INPUT_BINS + 1;
    if (v == hi) return QCAL_INPUT_BINS + 2;
    const float f = fabsf(v) * inv_m;
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    const int octave = 126 - (int)(bits >> 23); /* f in [0.5, 1): biased exponent 126 */
    if (octave >= QCAL_INPUT_OCTAVES) return QCAL_INPUT_BINS; /* below the last octave (or subnormal) */
    const int k = octave < 0 ? QCAL_INPUT_SUB - 1 /* f >= 1: the top bin */
                             : octave * QCAL_INPUT_SUB + (int)((bits >> (23 - QCAL_INPUT_SUB_BITS)) & (QCAL_INPUT_SUB - 1));
    return v < 0 ? QCAL_INPUT_BINS / 2 - 1 - k : QCAL_INPUT_BINS / 2 + k;
}

void qcal_error_image(struct qcal_error_thread *th, int64_t index)
{
    th->record = th->e->n_inputs > 0 && index % th->e->record_every == 0;
}

static void observe_input(struct qcal_error_thread *th, int idx, const struct qcal_tensor *x, int layout)
{
    if (!th->record) return;
    const struct qcal_error_input *in = &th->e->inputs[idx];
    const int64_t count = qcal_tensor_numel(x), ch = in->channels;
    if (x->dtype != QCAL_F32 || count == 0 || ch <= 0 || x->ndim <= in->axis || x->dims[in->axis] != ch) return;
    int64_t inner = 1;
    for (int d = in->axis + 1; d < x->ndim; d++) inner *= x->dims[d];
    const bool nhwc = layout == QCAL_LAYOUT_NHWC && x->ndim == 4 && in->axis == 1;
    const float lo = in->lo, hi = in->hi, m = fmaxf(fabsf(lo), fabsf(hi)), inv_m = m > 0 ? 1.0f / m : 0.0f;
    const float *p = x->data;
    uint64_t *h = th->in_hist + in->offset * QCAL_INPUT_SLOTS;
    float *bmin = th->in_min + in->offset * QCAL_INPUT_BINS, *bmax = th->in_max + in->offset * QCAL_INPUT_BINS;
#define RECORD(c, v)                                                                              \
    do {                                                                                          \
        const float v_ = (v);                                                                     \
        if (isfinite(v_)) {                                                                       \
            const int b_ = input_slot(v_, lo, hi, inv_m);                                         \
            h[(c) * QCAL_INPUT_SLOTS + b_]++;                                                     \
            if (b_ < QCAL_INPUT_BINS) {                                                           \
                float *mn_ = &bmin[(c) * QCAL_INPUT_BINS + b_], *mx_ = &bmax[(c) * QCAL_INPUT_BINS + b_]; \
                *mn_ = fminf(*mn_, v_), *mx_ = fmaxf(*mx_, v_);                                   \
            }                                                                                     \
        }                                                                                         \
    } while (0)
    if (nhwc) { /* a block of channels at a time: their histograms stay in cache */
        enum { BLOCK = 16 };
        const int64_t pixels = count / ch;
        for (int64_t c0 = 0; c0 < ch; c0 += BLOCK) {
            const int64_t cn = ch - c0 < BLOCK ? ch - c0 : BLOCK;
            for (int64_t q = 0; q < pixels; q++)
                for (int64_t j = 0; j < cn; j++) RECORD(c0 + j, p[q * ch + c0 + j]);
        }
    } else { /* runs of `inner` values of one channel */
        for (int64_t o = 0, c = 0; o < count; o += inner, c = c + 1 == ch ? 0 : c + 1)
            for (int64_t k = 0; k < inner; k++) RECORD(c, p[o + k]);
    }
#undef RECORD
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

double qcal_input_mean_quantized(const struct qcal_input_channel *c, const struct qcal_qparams *q)
{
    double qmin, qmax;
    qcal_qparams_levels(q, &qmin, &qmax);
    const double s = q->scale, z = q->zero_point;
    double sum = 0, n = 0;
    for (int64_t b = 0; b < c->n; b++) {
        const double k = (double)c->count[b], ua = c->min[b] / s + z, ub = c->max[b] / s + z;
        if (ub > ua)
            sum += k * ((staircase_integral(ub, qmin, qmax) - staircase_integral(ua, qmin, qmax)) / (ub - ua) - z) * s;
        else /* one value */
            sum += k * fake_quant(c->min[b], q, qmin, qmax);
        n += k;
    }
    const float at[3] = {0.0f, c->lo, c->hi};
    const uint64_t count[3] = {c->zero, c->at_lo, c->at_hi};
    for (int k = 0; k < 3; k++)
        if (count[k]) sum += (double)count[k] * fake_quant(at[k], q, qmin, qmax), n += (double)count[k];
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
    /* the input histograms, merged into thread 0's arrays: integer counts, least and largest
     * values (the same in any order) */
    if (st == QCAL_OK && e->n_inputs) {
        struct qcal_error_thread *t0 = &e->threads[0];
        const size_t m = (size_t)e->input_channels * QCAL_INPUT_SLOTS, nb = (size_t)e->input_channels * QCAL_INPUT_BINS;
        for (int t = 1; t < e->n_threads; t++) {
            const struct qcal_error_thread *th = &e->threads[t];
            for (size_t i = 0; i < m; i++) t0->in_hist[i] += th->in_hist[i];
            for (size_t i = 0; i < nb; i++)
                t0->in_min[i] = fminf(t0->in_min[i], th->in_min[i]), t0->in_max[i] = fmaxf(t0->in_max[i], th->in_max[i]);
        }
        st = qcal_par_allreduce_u64_sum(t0->in_hist, m);
        if (st == QCAL_OK) st = qcal_par_allreduce_f32_min(t0->in_min, nb);
        if (st == QCAL_OK) st = qcal_par_allreduce_f32_max(t0->in_max, nb);
        for (int j = 0; st == QCAL_OK && j < e->n_inputs; j++) {
            struct qcal_error_input *in = &e->inputs[j];
            in->hist = t0->in_hist + (size_t)in->offset * QCAL_INPUT_SLOTS;
            in->bin_min = t0->in_min + (size_t)in->offset * QCAL_INPUT_BINS;
            in->bin_max = t0->in_max + (size_t)in->offset * QCAL_INPUT_BINS;
        }
    }
    return st;
}
