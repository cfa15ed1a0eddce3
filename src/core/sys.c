#include "qcal/core.h"

#include <cpuid.h>
#include <omp.h>
#include <time.h>

double qcal_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int qcal_num_threads(void) { return omp_get_max_threads(); }

static struct qcal_cpu_features cpu_features;

static void cpu_detect(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    bool osxsave = c & (1u << 27);
    cpu_features.fma = c & (1u << 12);
    unsigned long long xcr0 = 0;
    if (osxsave) {
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        xcr0 = ((unsigned long long)hi << 32) | lo;
    }
    bool ymm = (xcr0 & 0x6) == 0x6, zmm = (xcr0 & 0xe6) == 0xe6;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return;
    cpu_features.avx2 = ymm && (b & (1u << 5));
    cpu_features.avx512f = zmm && (b & (1u << 16));
    cpu_features.avx512bw = zmm && (b & (1u << 30));
    cpu_features.avx512vl = zmm && (b & (1u << 31));
    cpu_features.avx512_vbmi = zmm && (c & (1u << 1));
    cpu_features.avx512_vnni = zmm && (c & (1u << 11));
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) {
        cpu_features.avx_vnni = ymm && (a & (1u << 4));
        cpu_features.avx512_bf16 = zmm && (a & (1u << 5));
    }
}

const struct qcal_cpu_features *qcal_cpu(void)
{
    static int done;
#pragma omp critical(qcal_cpu_detect)
    if (!done) {
        cpu_detect();
        done = 1;
    }
    return &cpu_features;
}
