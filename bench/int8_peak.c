/* The machine's measured INT8 matmul peak: one oneDNN u8 (src) x s8 (weights) matmul of a
 * large square size, timed the way a plan runs it (weights reordered once into the layout
 * the implementation asks for, outside the timing; each run a single execute).
 *
 *     cc -O2 -std=c11 bench/int8_peak.c -o int8_peak -ldnnl -fopenmp
 *     ./int8_peak [--size 2048] [--threads T] [--repeat 30] [--warmup 5] [--dst s32|s8|u8]
 *
 * Threads: --threads T calls omp_set_num_threads(T); without it OMP_NUM_THREADS (or
 * OpenMP's default) applies. oneDNN (Debian's build uses OpenMP) reads the count when the
 * primitive is created and when it runs. Prints one line:
 *
 *     peak_gops=1234.5 impl=brg:avx512_core_vnni threads=2 m=2048 n=2048 k=2048 dst=s32 ...
 *
 * GOPS = 2*M*N*K / median run time (a multiply-accumulate counts as two operations).
 * Exit status 1, with one line on stderr saying what failed, on any error. */
#define _POSIX_C_SOURCE 200809L
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TRY(call)                                                                           \
    do {                                                                                    \
        dnnl_status_t s_ = (call);                                                          \
        if (s_ != dnnl_success) {                                                           \
            fprintf(stderr, "int8_peak: %s failed: %s\n", #call, dnnl_status2str(s_));      \
            goto cleanup;                                                                   \
        }                                                                                   \
    } while (0)

struct options {
    long size, threads, repeat, warmup;
    dnnl_data_type_t dst;
};

static int parse_options(int argc, char **argv, struct options *o)
{
    *o = (struct options){.size = 2048, .threads = 0, .repeat = 30, .warmup = 5, .dst = dnnl_s32};
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        long *num = !strcmp(opt, "--size")      ? &o->size
                    : !strcmp(opt, "--threads") ? &o->threads
                    : !strcmp(opt, "--repeat")  ? &o->repeat
                    : !strcmp(opt, "--warmup")  ? &o->warmup
                                                : NULL;
        if (!strcmp(opt, "-h") || !strcmp(opt, "--help")) {
            printf("usage: %s [--size N] [--threads T] [--repeat R] [--warmup W] [--dst s32|s8|u8]\n",
                   argv[0]);
            exit(0);
        }
        if (!val) {
            fprintf(stderr, "int8_peak: %s: unknown option or missing value\n", opt);
            return 1;
        }
        i++;
        if (num) {
            char *end;
            *num = strtol(val, &end, 10);
            if (*end || *num < (num == &o->threads || num == &o->warmup ? 0 : 1)) {
                fprintf(stderr, "int8_peak: %s %s: need a positive integer\n", opt, val);
                return 1;
            }
        } else if (!strcmp(opt, "--dst")) {
            if (!strcmp(val, "s32")) o->dst = dnnl_s32;
            else if (!strcmp(val, "s8")) o->dst = dnnl_s8;
            else if (!strcmp(val, "u8")) o->dst = dnnl_u8;
            else {
                fprintf(stderr, "int8_peak: --dst %s: need s32, s8 or u8\n", val);
                return 1;
            }
        } else {
            fprintf(stderr, "int8_peak: %s: unknown option\n", opt);
            return 1;
        }
    }
    return 0;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Fills a memory object's bytes with a fixed pseudo-random pattern (masked). */
static dnnl_status_t fill(dnnl_memory_t mem, const dnnl_memory_desc_t *md, uint8_t mask)
{
    void *p;
    dnnl_status_t s = dnnl_memory_get_data_handle(mem, &p);
    if (s != dnnl_success) return s;
    uint32_t x = 12345u;
    size_t n = dnnl_memory_desc_get_size(md);
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        ((uint8_t *)p)[i] = (uint8_t)(x >> 24) & mask;
    }
    return dnnl_success;
}

int main(int argc, char **argv)
{
    struct options o;
    if (parse_options(argc, argv, &o)) return 1;
    if (o.threads > 0) omp_set_num_threads((int)o.threads);

    int rc = 1;
    dnnl_engine_t engine = NULL;
    dnnl_stream_t stream = NULL;
    dnnl_primitive_desc_t pd = NULL, reorder_pd = NULL;
    dnnl_primitive_t matmul = NULL, reorder = NULL;
    dnnl_memory_t src = NULL, wei_user = NULL, wei = NULL, dst = NULL;
    double *times = calloc((size_t)o.repeat, sizeof *times);
    if (!times) {
        fprintf(stderr, "int8_peak: out of memory for %ld timings\n", o.repeat);
        return 1;
    }

    const dnnl_dims_t a_dims = {o.size, o.size}, b_dims = {o.size, o.size}, c_dims = {o.size, o.size};
    dnnl_memory_desc_t a_md, b_user_md, b_any_md, c_md;
    TRY(dnnl_memory_desc_init_by_tag(&a_md, 2, a_dims, dnnl_u8, dnnl_ab));
    TRY(dnnl_memory_desc_init_by_tag(&b_user_md, 2, b_dims, dnnl_s8, dnnl_ab));
    TRY(dnnl_memory_desc_init_by_tag(&b_any_md, 2, b_dims, dnnl_s8, dnnl_format_tag_any));
    TRY(dnnl_memory_desc_init_by_tag(&c_md, 2, c_dims, o.dst, dnnl_ab));

    TRY(dnnl_engine_create(&engine, dnnl_cpu, 0));
    TRY(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    dnnl_matmul_desc_t desc;
    TRY(dnnl_matmul_desc_init(&desc, &a_md, &b_any_md, NULL, &c_md));
    TRY(dnnl_primitive_desc_create(&pd, &desc, NULL, engine, NULL));
    const char *impl = NULL;
    TRY(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl));
    TRY(dnnl_primitive_create(&matmul, pd));
    const dnnl_memory_desc_t *b_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);

    TRY(dnnl_memory_create(&src, &a_md, engine, DNNL_MEMORY_ALLOCATE));
    TRY(dnnl_memory_create(&wei_user, &b_user_md, engine, DNNL_MEMORY_ALLOCATE));
    TRY(dnnl_memory_create(&wei, b_md, engine, DNNL_MEMORY_ALLOCATE));
    TRY(dnnl_memory_create(&dst, &c_md, engine, DNNL_MEMORY_ALLOCATE));
    /* Weights in [0, 127] keep the s32 sums far from overflow; the speed does not depend
     * on the values. */
    TRY(fill(src, &a_md, 0xff));
    TRY(fill(wei_user, &b_user_md, 0x7f));

    TRY(dnnl_reorder_primitive_desc_create(&reorder_pd, &b_user_md, engine, b_md, engine, NULL));
    TRY(dnnl_primitive_create(&reorder, reorder_pd));
    dnnl_exec_arg_t reorder_args[] = {{DNNL_ARG_FROM, wei_user}, {DNNL_ARG_TO, wei}};
    TRY(dnnl_primitive_execute(reorder, stream, 2, reorder_args));
    TRY(dnnl_stream_wait(stream));

    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}};
    for (long i = 0; i < o.warmup; i++) {
        TRY(dnnl_primitive_execute(matmul, stream, 3, args));
        TRY(dnnl_stream_wait(stream));
    }
    for (long i = 0; i < o.repeat; i++) {
        double t0 = now_s();
        TRY(dnnl_primitive_execute(matmul, stream, 3, args));
        TRY(dnnl_stream_wait(stream));
        times[i] = now_s() - t0;
    }
    qsort(times, (size_t)o.repeat, sizeof *times, cmp_double);
    double median = o.repeat % 2 ? times[o.repeat / 2] : 0.5 * (times[o.repeat / 2 - 1] + times[o.repeat / 2]);
    double ops = 2.0 * (double)o.size * (double)o.size * (double)o.size;
    printf("peak_gops=%.1f impl=%s threads=%d m=%ld n=%ld k=%ld dst=%s median_ms=%.3f min_ms=%.3f "
           "repeat=%ld\n",
           ops / median * 1e-9, impl, omp_get_max_threads(), o.size, o.size, o.size,
           dnnl_dt2str(o.dst), median * 1e3, times[0] * 1e3, o.repeat);
    rc = 0;

cleanup:
    dnnl_memory_destroy(dst);
    dnnl_memory_destroy(wei);
    dnnl_memory_destroy(wei_user);
    dnnl_memory_destroy(src);
    dnnl_primitive_destroy(reorder);
    dnnl_primitive_destroy(matmul);
    dnnl_primitive_desc_destroy(reorder_pd);
    dnnl_primitive_desc_destroy(pd);
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(engine);
    free(times);
    return rc;
}
