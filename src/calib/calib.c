/* Activation statistics in passes (min/max, then fixed-range histograms and fixed-point
 * per-image sums), merged over threads and ranks with order-free reductions, and the range
 * searches that turn them into quantization parameters. */
#include <math.h>
#include <omp.h>
#include <xmmintrin.h>
#include <stdlib.h>
#include <string.h>

#include "qcal/calib.h"
#include "qcal/par.h"

struct qcal_calib_thread {
    struct qcal_calib *c;
    float *min, *max;          /* pass 1 */
    uint64_t *hist, *count;    /* pass 2 */
    float *img_min, *img_max;  /* this image, pass 2 */
    int *seen;                 /* stat indices seen in this image */
    int n_seen;
    int64_t *sum_min, *sum_max; /* fixed-point sums of per-image min and max */
    uint32_t *sub;             /* histogram scratch: 4 x (bins + 1) counters */
};

static const char *const method_names[] = {"minmax", "mean_minmax", "percentile", "entropy", "mse"};
static const char *const preset_names[] = {"performance", "mixed"};

static int parse_name(const char *s, const char *const *names, int n)
{
    for (int i = 0; s && i < n; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}
int qcal_calib_method_parse(const char *s) { return parse_name(s, method_names, 5); }
const char *qcal_calib_method_name(int m) { return m >= 0 && m < 5 ? method_names[m] : "?"; }
int qcal_calib_preset_parse(const char *s) { return parse_name(s, preset_names, 2); }
const char *qcal_calib_preset_name(int p) { return p >= 0 && p < 2 ? preset_names[p] : "?"; }

enum qcal_status qcal_calib_create(const struct qcal_graph *g, const int *values, int n, struct qcal_calib **out)
{
    struct qcal_calib *c = calloc(1, sizeof *c);
    if (!c) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    c->n = n;
    c->n_values = g->n_values;
    c->stats = calloc((size_t)n + 1, sizeof *c->stats);
    c->stat_of_value = malloc(sizeof(int) * ((size_t)g->n_values + 1));
    c->fx_scale = calloc((size_t)n + 1, sizeof *c->fx_scale);
    if (!c->stats || !c->stat_of_value || !c->fx_scale) goto oom;
    for (int v = 0; v < g->n_values; v++) c->stat_of_value[v] = -1;
    for (int i = 0; i < n; i++) {
        struct qcal_calib_stat *s = &c->stats[i];
        s->value = values[i];
        s->name = qcal_strdup(g->values[values[i]].name);
        s->hist = calloc(QCAL_CALIB_BINS, sizeof *s->hist);
        if (!s->name || !s->hist) goto oom;
        s->min = INFINITY, s->max = -INFINITY;
        c->stat_of_value[values[i]] = i;
    }
    *out = c;
    return QCAL_OK;
oom:
    qcal_calib_destroy(c);
    return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
}

static void threads_free(struct qcal_calib *c)
{
    for (int t = 0; c->threads && t < c->n_threads; t++) {
        struct qcal_calib_thread *th = &c->threads[t];
        free(th->min), free(th->max), free(th->hist), free(th->count);
        free(th->img_min), free(th->img_max), free(th->seen), free(th->sum_min), free(th->sum_max);
        free(th->sub);
    }
    free(c->threads);
    c->threads = NULL;
    c->n_threads = 0;
}

void qcal_calib_destroy(struct qcal_calib *c)
{
    if (!c) return;
    threads_free(c);
    for (int i = 0; c->stats && i < c->n; i++) {
        qcal_free(c->stats[i].name);
        free(c->stats[i].hist);
    }
    free(c->stats);
    free(c->stat_of_value);
    free(c->fx_scale);
    free(c);
}

enum qcal_status qcal_calib_begin_pass(struct qcal_calib *c, int pass, int n_threads, int64_t images)
{
    threads_free(c);
    c->pass = pass;
    c->images = images;
    c->threads = calloc((size_t)n_threads, sizeof *c->threads);
    if (!c->threads) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    c->n_threads = n_threads;
    const size_t n = (size_t)c->n + 1;
    for (int t = 0; t < n_threads; t++) {
        struct qcal_calib_thread *th = &c->threads[t];
        th->c = c;
        if (pass == 1) {
            th->min = malloc(sizeof(float) * n);
            th->max = malloc(sizeof(float) * n);
            if (!th->min || !th->max) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
            for (int i = 0; i < c->n; i++) th->min[i] = INFINITY, th->max[i] = -INFINITY;
        } else {
            th->hist = calloc(n * QCAL_CALIB_BINS, sizeof *th->hist);
            th->count = calloc(n, sizeof *th->count);
            th->img_min = malloc(sizeof(float) * n);
            th->img_max = malloc(sizeof(float) * n);
            th->seen = malloc(sizeof(int) * n);
            th->sum_min = calloc(n, sizeof *th->sum_min);
            th->sum_max = calloc(n, sizeof *th->sum_max);
            th->sub = malloc(sizeof(uint32_t) * 4 * (QCAL_CALIB_BINS + 1));
            if (!th->sub || !th->hist || !th->count || !th->img_min || !th->img_max || !th->seen || !th->sum_min || !th->sum_max)
                return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
            for (int i = 0; i < c->n; i++) th->img_min[i] = INFINITY, th->img_max[i] = -INFINITY;
        }
    }
    if (pass == 2) {
        for (int i = 0; i < c->n; i++) {
            struct qcal_calib_stat *s = &c->stats[i];
            float r = fmaxf(fabsf(s->min), fabsf(s->max));
            if (!(r < INFINITY)) r = 0; /* never seen */
            s->hist_lo = s->min >= 0 ? 0 : -r;
            s->hist_hi = s->min >= 0 ? s->max : r;
            memset(s->hist, 0, sizeof(uint64_t) * QCAL_CALIB_BINS);
            s->count = 0;
            /* per-image values lie in [-r, r]: images * r * fx_scale <= 2^62 fits int64 */
            c->fx_scale[i] = r > 0 && images > 0 ? ldexp(1.0, 62) / ((double)r * (double)images) : 0;
        }
    }
    return QCAL_OK;
}

struct qcal_calib_thread *qcal_calib_thread(struct qcal_calib *c, int tid) { return &c->threads[tid]; }

/* min and max of x[0..n) skipping NaN, folded into *mn / *mx. SSE min/max return their
 * second operand when the first is NaN, so NaN elements never enter the accumulators. */
static void minmax(const float *x, int64_t n, float *mn, float *mx)
{
    __m128 a0 = _mm_set1_ps(*mn), a1 = a0, b0 = _mm_set1_ps(*mx), b1 = b0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128 v0 = _mm_loadu_ps(x + i), v1 = _mm_loadu_ps(x + i + 4);
        a0 = _mm_min_ps(v0, a0), a1 = _mm_min_ps(v1, a1);
        b0 = _mm_max_ps(v0, b0), b1 = _mm_max_ps(v1, b1);
    }
    float la[8], lb[8];
    _mm_storeu_ps(la, a0), _mm_storeu_ps(la + 4, a1), _mm_storeu_ps(lb, b0), _mm_storeu_ps(lb + 4, b1);
    float a = *mn, b = *mx;
    for (int k = 0; k < 8; k++) a = la[k] < a ? la[k] : a, b = lb[k] > b ? lb[k] : b;
    for (; i < n; i++) {
        float v = x[i];
        a = v < a ? v : a; /* NaN compares false: skipped */
        b = v > b ? v : b;
    }
    *mn = a, *mx = b;
}

/* Bin indices of x[0..m) (m <= 256) over [lo, lo + BINS / inv), clamped to the ends;
 * NaN -> nan_bin. Vectorizable. */
static void bin_indices(const float *x, int m, float lo, float inv, float nan_bin, int32_t *bins)
{
    for (int k = 0; k < m; k++) {
        const float v = (x[k] - lo) * inv;
        float r = v >= 0.0f ? (v <= (float)(QCAL_CALIB_BINS - 1) ? v : (float)(QCAL_CALIB_BINS - 1)) : 0.0f;
        r = v == v ? r : nan_bin;
        bins[k] = (int32_t)r;
    }
}

/* Adds x's elements to hist. Large tensors count into four interleaved uint32 copies in
 * `scratch` (4 * (BINS + 1), the last slot of each for NaN) so runs of one bin (the zeros
 * after a ReLU) do not wait on the previous increment of the same counter. */
static void histogram(const struct qcal_calib_stat *s, const float *x, int64_t n, uint64_t *hist, uint64_t *count,
                      void *scratch)
{
    enum { DIRECT = 8192, CHUNK = 1 << 30 };
    const float lo = s->hist_lo, w = s->hist_hi - s->hist_lo;
    const float inv = w > 0 ? (float)QCAL_CALIB_BINS / w : 0.0f;
    int32_t bins[256];
    if (n < DIRECT) {
        for (int64_t i0 = 0; i0 < n; i0 += 256) {
            const int m = (int)(n - i0 < 256 ? n - i0 : 256);
            bin_indices(x + i0, m, lo, inv, -1.0f, bins); /* NaN: not counted */
            for (int k = 0; k < m; k++) {
                if (bins[k] < 0) continue;
                hist[bins[k]]++;
                ++*count;
            }
        }
        return;
    }
    uint32_t(*sub)[QCAL_CALIB_BINS + 1] = scratch;
    for (int64_t c0 = 0; c0 < n; c0 += CHUNK) { /* uint32 counters never overflow */
        const int64_t cn = n - c0 < CHUNK ? n - c0 : CHUNK;
        memset(sub, 0, sizeof(uint32_t) * 4 * (QCAL_CALIB_BINS + 1));
        for (int64_t i0 = 0; i0 < cn; i0 += 256) {
            const int m = (int)(cn - i0 < 256 ? cn - i0 : 256);
            bin_indices(x + c0 + i0, m, lo, inv, (float)QCAL_CALIB_BINS, bins); /* NaN: the spare slot */
            int k = 0;
            for (; k + 4 <= m; k += 4)
                sub[0][bins[k]]++, sub[1][bins[k + 1]]++, sub[2][bins[k + 2]]++, sub[3][bins[k + 3]]++;
            for (; k < m; k++) sub[0][bins[k]]++;
        }
        for (int b = 0; b < QCAL_CALIB_BINS; b++) {
            const uint64_t c = (uint64_t)sub[0][b] + sub[1][b] + sub[2][b] + sub[3][b];
            hist[b] += c;
            *count += c;
        }
    }
}

void qcal_calib_observe_value(struct qcal_calib_thread *t, int value, const struct qcal_tensor *x)
{
    struct qcal_calib *c = t->c;
    if (value < 0 || value >= c->n_values) return;
    int i = c->stat_of_value[value];
    if (i < 0 || x->dtype != QCAL_F32) return;
    const int64_t n = qcal_tensor_numel(x);
    if (c->pass == 1) {
        minmax(x->data, n, &t->min[i], &t->max[i]);
        return;
    }
    histogram(&c->stats[i], x->data, n, t->hist + (size_t)i * QCAL_CALIB_BINS, &t->count[i], t->sub);
    float mn = INFINITY, mx = -INFINITY;
    minmax(x->data, n, &mn, &mx);
    if (t->img_min[i] == INFINITY && t->img_max[i] == -INFINITY) t->seen[t->n_seen++] = i;
    t->img_min[i] = fminf(t->img_min[i], mn);
    t->img_max[i] = fmaxf(t->img_max[i], mx);
}

void qcal_calib_observer(void *ctx, const struct qcal_node *node, int n_out, struct qcal_tensor *const *outs,
                         const uint8_t *layouts)
{
    struct qcal_calib_thread *t = ctx;
    for (int k = 0; k < n_out; k++) /* per-tensor statistics do not depend on the layout */
        if (node->outputs[k] >= 0) qcal_calib_observe_value(t, node->outputs[k], outs[k]);
}

void qcal_calib_image_done(struct qcal_calib_thread *t)
{
    struct qcal_calib *c = t->c;
    if (c->pass != 2) return;
    for (int k = 0; k < t->n_seen; k++) {
        int i = t->seen[k];
        const double f = c->fx_scale[i];
        if (t->img_min[i] <= t->img_max[i]) {
            t->sum_min[i] += llround((double)t->img_min[i] * f);
            t->sum_max[i] += llround((double)t->img_max[i] * f);
        }
        t->img_min[i] = INFINITY, t->img_max[i] = -INFINITY;
    }
    t->n_seen = 0;
}

enum qcal_status qcal_calib_end_pass(struct qcal_calib *c)
{
    enum qcal_status st = QCAL_OK;
    const size_t n = (size_t)c->n;
    if (c->pass == 1) {
        float *mn = malloc(sizeof(float) * (n + 1)), *mx = malloc(sizeof(float) * (n + 1));
        if (!mn || !mx) {
            free(mn), free(mx);
            return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        }
        for (size_t i = 0; i < n; i++) {
            mn[i] = INFINITY, mx[i] = -INFINITY;
            for (int t = 0; t < c->n_threads; t++) {
                mn[i] = fminf(mn[i], c->threads[t].min[i]);
                mx[i] = fmaxf(mx[i], c->threads[t].max[i]);
            }
        }
        if ((st = qcal_par_allreduce_f32_min(mn, n)) == QCAL_OK) st = qcal_par_allreduce_f32_max(mx, n);
        for (size_t i = 0; st == QCAL_OK && i < n; i++) c->stats[i].min = mn[i], c->stats[i].max = mx[i];
        free(mn), free(mx);
    } else {
        /* one buffer: histograms, counts, fixed-point sums, all integers */
        const size_t per = QCAL_CALIB_BINS + 3;
        uint64_t *buf = calloc(n * per + 1, sizeof *buf);
        if (!buf) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        for (int t = 0; t < c->n_threads; t++) {
            const struct qcal_calib_thread *th = &c->threads[t];
            for (size_t i = 0; i < n; i++) {
                uint64_t *b = buf + i * per;
                for (int k = 0; k < QCAL_CALIB_BINS; k++) b[k] += th->hist[i * QCAL_CALIB_BINS + (size_t)k];
                b[QCAL_CALIB_BINS] += th->count[i];
                b[QCAL_CALIB_BINS + 1] += (uint64_t)th->sum_min[i]; /* two's complement: sums wrap exactly */
                b[QCAL_CALIB_BINS + 2] += (uint64_t)th->sum_max[i];
            }
        }
        st = qcal_par_allreduce_u64_sum(buf, n * per);
        for (size_t i = 0; st == QCAL_OK && i < n; i++) {
            struct qcal_calib_stat *s = &c->stats[i];
            const uint64_t *b = buf + i * per;
            memcpy(s->hist, b, sizeof(uint64_t) * QCAL_CALIB_BINS);
            s->count = b[QCAL_CALIB_BINS];
            const double f = c->fx_scale[i] * (double)c->images;
            s->mean_min = f > 0 ? (double)(int64_t)b[QCAL_CALIB_BINS + 1] / f : 0;
            s->mean_max = f > 0 ? (double)(int64_t)b[QCAL_CALIB_BINS + 2] / f : 0;
        }
        free(buf);
    }
    threads_free(c);
    return st;
}

/* ---- range searches ---- */

double qcal_calib_hist_percentile(const uint64_t *hist, int n, double lo, double hi, double p)
{
    uint64_t total = 0;
    for (int i = 0; i < n; i++) total += hist[i];
    if (total == 0) return lo;
    const double want = p / 100.0 * (double)total, w = (hi - lo) / n;
    double cum = 0;
    for (int i = 0; i < n; i++) {
        double next = cum + (double)hist[i];
        if (next >= want && hist[i] > 0) {
            double frac = (want - cum) / (double)hist[i];
            return lo + w * (i + (frac < 0 ? 0 : frac > 1 ? 1 : frac));
        }
        cum = next;
    }
    return hi;
}

/* TensorRT's entropy calibration: for each cut-off i, fold the tail into bin i-1 (P),
 * quantize the first i bins into `levels` groups spread back over their non-empty bins
 * (Q), and keep the i with the smallest KL(P||Q); cut-offs that clip more than 1 % of the
 * values are not candidates (see below). */
double qcal_calib_entropy_threshold(const uint64_t *hist, int n, double top, int levels)
{
    if (n <= levels) return top;
    double *p = malloc(sizeof(double) * (size_t)n), *q = malloc(sizeof(double) * (size_t)n);
    if (!p || !q) {
        free(p), free(q);
        return top;
    }
    double tail = 0;
    for (int i = 0; i < n; i++) tail += (double)hist[i];
    double total_below = 0;
    for (int i = 0; i < levels; i++) total_below += (double)hist[i];
    tail -= total_below; /* counts at and above bin `levels` */
    double best = INFINITY;
    int best_i = n;
    for (int i = levels; i <= n; i++) {
        if (i > levels) {
            tail -= (double)hist[i - 1];
            total_below += (double)hist[i - 1];
        }
        /* KL only measures the resolution lost below the cut-off: when the tail holds much
         * of the mass (a tensor far from zero, e.g. a hard-sigmoid gate) folding it into one
         * bin scores a perfect 0. Never clip more than 1 % of the values. */
        if (tail > 0.01 * (total_below + tail)) continue;
        double sum_p = 0;
        for (int j = 0; j < i; j++) p[j] = (double)hist[j];
        p[i - 1] += tail;
        sum_p = total_below + tail;
        if (sum_p <= 0) continue;
        double sum_q = 0;
        for (int k = 0; k < levels; k++) {
            int b = (int)((int64_t)k * i / levels), e = (int)((int64_t)(k + 1) * i / levels);
            double s = 0;
            int nz = 0;
            for (int j = b; j < e; j++)
                if (hist[j]) s += (double)hist[j], nz++;
            for (int j = b; j < e; j++) q[j] = hist[j] && nz ? s / nz : 0;
            sum_q += s;
        }
        if (sum_q <= 0) continue;
        double kl = 0;
        const double eps = 1e-12;
        for (int j = 0; j < i; j++) {
            if (p[j] <= 0) continue;
            double pj = p[j] / sum_p, qj = q[j] > 0 ? q[j] / sum_q : eps;
            kl += pj * log(pj / qj);
        }
        if (kl < best) best = kl, best_i = i;
    }
    free(p), free(q);
    return top * best_i / n;
}

/* Prefix sums of count, count*centre and count*centre^2 (bin centres in units of bins). */
struct moments {
    double *s0, *s1, *s2;
};

static bool moments_make(const uint64_t *hist, int n, struct moments *m)
{
    m->s0 = calloc((size_t)n + 1, sizeof(double));
    m->s1 = calloc((size_t)n + 1, sizeof(double));
    m->s2 = calloc((size_t)n + 1, sizeof(double));
    if (!m->s0 || !m->s1 || !m->s2) return false;
    for (int j = 0; j < n; j++) {
        double c = j + 0.5, h = (double)hist[j];
        m->s0[j + 1] = m->s0[j] + h;
        m->s1[j + 1] = m->s1[j] + h * c;
        m->s2[j + 1] = m->s2[j] + h * c * c;
    }
    return true;
}

static void moments_free(struct moments *m) { free(m->s0), free(m->s1), free(m->s2); }

/* Expected squared error (in bins^2) of quantizing the histogram with the range [a, b]
 * (bin edges) and `levels` steps: uniform noise step^2/12 inside, distance to the edge
 * plus the in-bin variance outside. */
static double range_error(const struct moments *m, int n, int a, int b, int levels)
{
    const double step = (double)(b - a) / levels;
    double in = m->s0[b] - m->s0[a];
    double e = in * step * step / 12.0;
    double l0 = m->s0[a], l1 = m->s1[a], l2 = m->s2[a];
    e += l2 - 2 * a * l1 + (double)a * a * l0 + l0 / 12.0;
    double r0 = m->s0[n] - m->s0[b], r1 = m->s1[n] - m->s1[b], r2 = m->s2[n] - m->s2[b];
    e += r2 - 2 * b * r1 + (double)b * b * r0 + r0 / 12.0;
    return e;
}

double qcal_calib_mse_threshold(const uint64_t *hist, int n, double top, int levels)
{
    struct moments m;
    if (!moments_make(hist, n, &m)) {
        moments_free(&m);
        return top;
    }
    double best = INFINITY;
    int best_k = n;
    for (int k = 1; k <= n; k++) {
        double e = range_error(&m, n, 0, k, levels);
        if (e < best) best = e, best_k = k;
    }
    moments_free(&m);
    return top * best_k / n;
}

/* Two-sided search over a signed histogram (PyTorch HistogramObserver's greedy shrink):
 * move whichever edge lowers the error more, keep zero inside, remember the best. */
static void mse_range(const uint64_t *hist, int n, double lo, double hi, int levels, double *out_lo, double *out_hi)
{
    struct moments m;
    *out_lo = lo, *out_hi = hi;
    if (!moments_make(hist, n, &m)) {
        moments_free(&m);
        return;
    }
    const double w = (hi - lo) / n;
    int zero = (int)ceil(-lo / w); /* first edge at or above zero */
    if (zero < 0) zero = 0;
    if (zero > n) zero = n;
    int a = 0, b = n, best_a = 0, best_b = n;
    double best = range_error(&m, n, a, b, levels);
    while (a < zero || b > zero) {
        double ea = a < zero && a + 1 < b ? range_error(&m, n, a + 1, b, levels) : INFINITY;
        double eb = b > zero && b - 1 > a ? range_error(&m, n, a, b - 1, levels) : INFINITY;
        if (ea == INFINITY && eb == INFINITY) break;
        if (ea <= eb) a++;
        else b--;
        double e = ea <= eb ? ea : eb;
        if (e < best) best = e, best_a = a, best_b = b;
    }
    moments_free(&m);
    *out_lo = lo + w * best_a;
    *out_hi = lo + w * best_b;
}

struct qcal_qparams qcal_qparams_from_range(float lo, float hi, int preset, bool nonneg)
{
    struct qcal_qparams q = {.lo = lo, .hi = hi};
    if (nonneg) {
        q.dtype = QCAL_U8;
        q.lo = 0;
        q.scale = hi > 0 ? hi / 255.0f : 1.0f;
        q.zero_point = 0;
    } else if (preset == QCAL_PRESET_PERFORMANCE) {
        float t = fmaxf(fabsf(lo), fabsf(hi));
        q.dtype = QCAL_I8;
        q.lo = -t, q.hi = t;
        q.scale = t > 0 ? t / 127.0f : 1.0f;
        q.zero_point = 0;
    } else {
        lo = fminf(lo, 0.0f), hi = fmaxf(hi, 0.0f);
        q.dtype = QCAL_U8;
        q.lo = lo, q.hi = hi;
        q.scale = hi > lo ? (hi - lo) / 255.0f : 1.0f;
        float zp = roundf(-lo / q.scale);
        q.zero_point = (int32_t)(zp < 0 ? 0 : zp > 255 ? 255 : zp);
    }
    return q;
}

/* The |x| histogram of a stat: its own for a non-negative tensor, the two halves of a
 * symmetric [-R, R] one folded otherwise (bins mirror exactly: the range is symmetric). */
static int abs_hist(const struct qcal_calib_stat *s, uint64_t *out)
{
    if (s->hist_lo >= 0) {
        memcpy(out, s->hist, sizeof(uint64_t) * QCAL_CALIB_BINS);
        return QCAL_CALIB_BINS;
    }
    const int h = QCAL_CALIB_BINS / 2;
    for (int j = 0; j < h; j++) out[j] = s->hist[h + j] + s->hist[h - 1 - j];
    return h;
}

static void compute_one(struct qcal_calib_stat *s, const struct qcal_calib_options *o, float *lo, float *hi)
{
    const bool nonneg = s->min >= 0;
    const bool symmetric = !nonneg && o->preset == QCAL_PRESET_PERFORMANCE;
    uint64_t ah[QCAL_CALIB_BINS];
    double top = s->hist_hi; /* |x| histograms span [0, hist_hi] */
    *lo = s->min, *hi = s->max;
    if (!(s->min <= s->max)) { /* never observed */
        *lo = *hi = 0;
        return;
    }
    switch (o->method) {
    case QCAL_CALIB_MINMAX: break;
    case QCAL_CALIB_MEAN_MINMAX: *lo = (float)s->mean_min, *hi = (float)s->mean_max; break;
    case QCAL_CALIB_PERCENTILE:
        if (nonneg || symmetric) {
            int n = abs_hist(s, ah);
            double t = qcal_calib_hist_percentile(ah, n, 0, top, o->percentile);
            *lo = nonneg ? 0 : (float)-t, *hi = (float)t;
        } else {
            *lo = (float)qcal_calib_hist_percentile(s->hist, QCAL_CALIB_BINS, s->hist_lo, s->hist_hi,
                                                    100.0 - o->percentile);
            *hi = (float)qcal_calib_hist_percentile(s->hist, QCAL_CALIB_BINS, s->hist_lo, s->hist_hi, o->percentile);
        }
        break;
    case QCAL_CALIB_ENTROPY: {
        int n = abs_hist(s, ah);
        double t = qcal_calib_entropy_threshold(ah, n, top, nonneg ? 256 : 128);
        *lo = nonneg ? 0 : fmaxf(s->min, (float)-t);
        *hi = fminf(s->max, (float)t);
        if (symmetric) *lo = (float)-t, *hi = (float)t;
        break;
    }
    case QCAL_CALIB_MSE:
        if (nonneg || symmetric) {
            int n = abs_hist(s, ah);
            double t = qcal_calib_mse_threshold(ah, n, top, nonneg ? 255 : 127);
            *lo = nonneg ? 0 : (float)-t, *hi = (float)t;
        } else {
            double a, b;
            mse_range(s->hist, QCAL_CALIB_BINS, s->hist_lo, s->hist_hi, 255, &a, &b);
            *lo = (float)a, *hi = (float)b;
        }
        break;
    }
}

enum qcal_status qcal_calib_compute(struct qcal_calib *c, const struct qcal_calib_options *o)
{
    const int n = c->n, rank = qcal_par_rank(), size = qcal_par_size();
    double *range = malloc(sizeof(double) * (2 * (size_t)n + 1));
    if (!range) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    for (int i = 0; i < 2 * n; i++) range[i] = -INFINITY;
    /* tensor i is searched by rank i % size; its threads share that rank's tensors */
#pragma omp parallel for schedule(dynamic)
    for (int i = rank; i < n; i += size) {
        float lo, hi;
        compute_one(&c->stats[i], o, &lo, &hi);
        range[2 * i] = lo, range[2 * i + 1] = hi;
    }
    enum qcal_status st = qcal_par_allreduce_f64_max(range, 2 * (size_t)n); /* the owner's values */
    for (int i = 0; st == QCAL_OK && i < n; i++) {
        struct qcal_calib_stat *s = &c->stats[i];
        s->q = qcal_qparams_from_range((float)range[2 * i], (float)range[2 * i + 1], o->preset, s->min >= 0);
    }
    free(range);
    return st;
}
