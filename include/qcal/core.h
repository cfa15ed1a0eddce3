/*
 * qcal core: status codes, logging, aligned allocation, timers and CPU features.
 *
 * Every fallible function returns an `enum qcal_status` and hands results back through
 * a trailing `*_out` parameter. Errors are logged once, where they are detected, with the
 * file, node, line or image that caused them:
 *
 *     if (w->ndim != 4)
 *         return QCAL_ERR(QCAL_INVALID_MODEL, "%s (Conv): weight has %d dims, need 4",
 *                         node->name, w->ndim);
 */
#ifndef QCAL_CORE_H
#define QCAL_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define QCAL_VERSION "0.1.0"

/* X(name, exit status, description). Exit statuses are documented in `qcal --help`. */
#define QCAL_STATUS_LIST(X)                                                   \
    X(QCAL_OK, 0, "ok")                                                       \
    X(QCAL_INVALID_ARGUMENT, 2, "invalid argument")                           \
    X(QCAL_IO_ERROR, 3, "input/output error")                                 \
    X(QCAL_INVALID_MODEL, 4, "invalid model")                                 \
    X(QCAL_UNSUPPORTED, 5, "unsupported model feature")                       \
    X(QCAL_OUT_OF_MEMORY, 6, "out of memory")                                 \
    X(QCAL_BACKEND_ERROR, 7, "backend library error")                         \
    X(QCAL_INVALID_DATA, 8, "invalid input data")                            \
    X(QCAL_INVALID_JOB, 9, "invalid job file")

enum qcal_status {
#define QCAL_X(name, code, desc) name,
    QCAL_STATUS_LIST(QCAL_X)
#undef QCAL_X
        QCAL_STATUS_COUNT
};

const char *qcal_status_str(enum qcal_status s);
int qcal_status_exit_code(enum qcal_status s);

/* Logging. Messages go to stderr, prefixed with the MPI rank once one is set. */
enum qcal_log_level { QCAL_LOG_QUIET = -1, QCAL_LOG_ERROR, QCAL_LOG_WARN, QCAL_LOG_INFO, QCAL_LOG_DEBUG };
void qcal_log_set_level(enum qcal_log_level level);
void qcal_log_set_rank(int rank);
void qcal_log(enum qcal_log_level level, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* While buf is set, this thread's error messages are not printed: the first one is kept in
 * buf (cap bytes) for the caller to report or to count as skipped. NULL stops capturing. */
void qcal_log_capture(char *buf, size_t cap);

#define QCAL_LOGE(...) qcal_log(QCAL_LOG_ERROR, __func__, __VA_ARGS__)
#define QCAL_LOGW(...) qcal_log(QCAL_LOG_WARN, __func__, __VA_ARGS__)
#define QCAL_LOGI(...) qcal_log(QCAL_LOG_INFO, __func__, __VA_ARGS__)
#define QCAL_LOGD(...) qcal_log(QCAL_LOG_DEBUG, __func__, __VA_ARGS__)

/* Log an error and evaluate to `status`: `return QCAL_ERR(QCAL_IO_ERROR, "%s: ...", path);` */
#define QCAL_ERR(status, ...) (qcal_log(QCAL_LOG_ERROR, __func__, __VA_ARGS__), (status))

/* Propagate a failing status to the function's `cleanup:` block. Needs `st` in scope. */
#define QCAL_CHECK(expr)                 \
    do {                                 \
        st = (expr);                     \
        if (st != QCAL_OK) goto cleanup; \
    } while (0)

/* Programmer errors only; never with side effects. Aborts the whole job (MPI_Abort once
 * the par module registered its abort hook). */
#define QCAL_ASSERT(cond)                                                   \
    do {                                                                    \
        if (!(cond)) qcal_assert_fail(__FILE__, __LINE__, #cond);           \
    } while (0)
_Noreturn void qcal_assert_fail(const char *file, int line, const char *expr);
void qcal_set_abort_hook(void (*hook)(int code));
_Noreturn void qcal_abort(int code);

/* Allocation. All buffers handed to kernels are 64-byte aligned. The returned memory is
 * owned by the caller and released with qcal_free (NULL-safe). */
#define QCAL_ALIGN 64
void *qcal_malloc(size_t size);
void *qcal_calloc(size_t count, size_t size);
void *qcal_realloc_array(void *ptr, size_t count, size_t size); /* unaligned, like realloc */
void qcal_free(void *ptr);
char *qcal_strdup(const char *s);
static inline size_t qcal_align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

/* Reads a whole regular file (at most max_bytes, 0: no limit) into memory owned by the
 * caller (free()), NUL-terminated past *size_out. Errors name the file. */
enum qcal_status qcal_read_file(const char *path, size_t max_bytes, void **data_out, size_t *size_out);

/* Writes `size` bytes to `path` through a temporary file in the same folder, renamed over
 * `path` only when complete (never a partial file under the final name). */
enum qcal_status qcal_write_file(const char *path, const void *data, size_t size);
/* The same for n pieces written one after the other (a header and its data). */
enum qcal_status qcal_write_parts(const char *path, int n, const void *const *data, const size_t *size);
/* The temporary name these use for `path` (for writers that stream, e.g. HDF5). */
void qcal_temp_name(const char *path, char *buf, size_t cap);

/* Monotonic time in seconds. */
double qcal_now(void);

/* Latency statistics of n timed runs (seconds), as OpenVINO's benchmark_app and its INT8
 * labs report them: median and percentiles (linear interpolation between order
 * statistics, numpy's default) over all runs; runs farther than 3 standard deviations
 * from the mean are counted as outliers and left out of mean and std. */
struct qcal_latency {
    int64_t runs, outliers;
    double median, mean, std, min, max, p90, p99;
};
/* Sorts `t` in place. n >= 1. */
void qcal_latency_stats(double *t, int64_t n, struct qcal_latency *out);
/* Percentile p (0..100) of sorted values, linear between order statistics. */
double qcal_percentile_sorted(const double *sorted, int64_t n, double p);

/* CPU features, detected once at run time (kernels never assume them at build time). */
struct qcal_cpu_features {
    bool avx2, fma, avx512f, avx512bw, avx512vl, avx512_vbmi, avx512_vnni, avx512_bf16, avx_vnni;
};
const struct qcal_cpu_features *qcal_cpu(void);

/* Threads available to one operation (OpenMP max threads). */
int qcal_num_threads(void);

#endif
