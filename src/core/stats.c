/* Latency statistics (qcal bench). */
#include <math.h>
#include <stdlib.h>

#include "qcal/core.h"

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double qcal_percentile_sorted(const double *v, int64_t n, double p)
{
    if (n <= 0) return NAN;
    const double pos = p / 100.0 * (double)(n - 1);
    const int64_t i = (int64_t)floor(pos);
    if (i >= n - 1) return v[n - 1];
    if (i < 0) return v[0];
    return v[i] + (pos - (double)i) * (v[i + 1] - v[i]);
}

static void mean_std(const double *t, int64_t n, double lo, double hi, double *mean, double *std, int64_t *kept)
{
    double sum = 0, sq = 0;
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        if (t[i] < lo || t[i] > hi) continue;
        sum += t[i];
        k++;
    }
    *mean = k ? sum / (double)k : NAN;
    for (int64_t i = 0; i < n; i++)
        if (t[i] >= lo && t[i] <= hi) sq += (t[i] - *mean) * (t[i] - *mean);
    *std = k > 1 ? sqrt(sq / (double)(k - 1)) : 0; /* sample std */
    *kept = k;
}

void qcal_latency_stats(double *t, int64_t n, struct qcal_latency *o)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    o->runs = n;
    o->min = t[0], o->max = t[n - 1];
    o->median = qcal_percentile_sorted(t, n, 50);
    o->p90 = qcal_percentile_sorted(t, n, 90);
    o->p99 = qcal_percentile_sorted(t, n, 99);
    double mean, std;
    int64_t kept;
    mean_std(t, n, -INFINITY, INFINITY, &mean, &std, &kept);
    /* one pass of 3-sigma rejection: the flagged runs, then mean and std without them */
    mean_std(t, n, mean - 3 * std, mean + 3 * std, &o->mean, &o->std, &kept);
    o->outliers = n - kept;
}
