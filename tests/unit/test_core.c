/* core and data: status table, allocation, tensors, .npy round trip. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "qcal/data.h"
#include "qcal/tensor.h"

static void test_status(void)
{
    CHECK(strcmp(qcal_status_str(QCAL_OK), "ok") == 0);
    CHECK(strcmp(qcal_status_str(QCAL_UNSUPPORTED), "unsupported model feature") == 0);
    CHECK_EQ_INT(qcal_status_exit_code(QCAL_OK), 0);
    CHECK_EQ_INT(qcal_status_exit_code(QCAL_IO_ERROR), 3);
    CHECK_EQ_INT(qcal_status_exit_code(QCAL_INVALID_DATA), 8);
    CHECK(strcmp(qcal_status_str((enum qcal_status)999), "unknown status") == 0);
}

static void test_alloc(void)
{
    for (size_t n = 0; n < 300; n += 37) {
        void *p = qcal_malloc(n);
        CHECK(p != NULL);
        CHECK_EQ_INT((uintptr_t)p % QCAL_ALIGN, 0);
        qcal_free(p);
    }
    CHECK_EQ_INT(qcal_align_up(65, 64), 128);
    CHECK_EQ_INT(qcal_align_up(64, 64), 64);
    CHECK(qcal_calloc(SIZE_MAX / 2, 4) == NULL); /* overflow is refused, not wrapped */
    qcal_free(NULL);
}

static void test_tensor(void)
{
    struct qcal_tensor t = qcal_tensor_make(QCAL_F32, 4, (int64_t[]){2, 3, 4, 5});
    char buf[64];
    CHECK_EQ_INT(qcal_tensor_numel(&t), 120);
    CHECK_EQ_INT(qcal_tensor_bytes(&t), 480);
    CHECK(strcmp(qcal_shape_str(&t, buf, sizeof buf), "2x3x4x5") == 0);
    struct qcal_tensor s = qcal_tensor_make(QCAL_I64, 0, NULL);
    CHECK_EQ_INT(qcal_tensor_numel(&s), 1);
    CHECK(strcmp(qcal_shape_str(&s, buf, sizeof buf), "scalar") == 0);
    CHECK_EQ_INT(qcal_dtype_size(QCAL_I64), 8);
    CHECK_EQ_INT(qcal_dtype_size(QCAL_STRING), 0);
}

static void test_npy(void)
{
    char path[] = "/tmp/qcal_test_npy_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    int32_t types[] = {QCAL_F32, QCAL_I64, QCAL_U8};
    for (int k = 0; k < 3; k++) {
        struct qcal_tensor t = qcal_tensor_make(types[k], 3, (int64_t[]){2, 1, 5});
        t.data = qcal_malloc(qcal_tensor_bytes(&t));
        for (size_t i = 0; i < qcal_tensor_bytes(&t); i++) ((uint8_t *)t.data)[i] = (uint8_t)(i * 7 + k);
        CHECK(qcal_npy_write(path, &t) == QCAL_OK);
        struct qcal_tensor r;
        CHECK(qcal_npy_read(path, &r) == QCAL_OK);
        CHECK_EQ_INT(r.dtype, types[k]);
        CHECK(qcal_shape_equal(&r, &t));
        CHECK(r.data && memcmp(r.data, t.data, qcal_tensor_bytes(&t)) == 0);
        qcal_free(r.data);
        qcal_free(t.data);
    }
    /* a 1-D array keeps its trailing comma in the header: (5,) */
    struct qcal_tensor v = qcal_tensor_make(QCAL_F32, 1, (int64_t[]){5});
    float vals[5] = {1, 2, 3, 4, 5};
    v.data = vals;
    CHECK(qcal_npy_write(path, &v) == QCAL_OK);
    struct qcal_tensor r;
    CHECK(qcal_npy_read(path, &r) == QCAL_OK);
    CHECK_EQ_INT(r.ndim, 1);
    CHECK_EQ_INT(r.dims[0], 5);
    qcal_free(r.data);
    /* truncated data is an error, not a short read */
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (f) {
        CHECK(ftruncate(fileno(f), 100) == 0);
        fclose(f);
    }
    CHECK(qcal_npy_read(path, &r) == QCAL_INVALID_DATA);
    unlink(path);
    CHECK(qcal_npy_read("/nonexistent/x.npy", &r) == QCAL_IO_ERROR);
}

/* expected values from numpy: np.percentile (linear), mean/std(ddof=1) after dropping
 * |t - mean| > 3 std */
static void test_latency(void)
{
    double t[20];
    for (int i = 0; i < 19; i++) t[i] = 10.0 + (i % 5) * 0.1; /* 10.0 .. 10.4 */
    t[19] = 100.0;                                               /* one slow run */
    struct qcal_latency l;
    qcal_latency_stats(t, 20, &l);
    CHECK_EQ_INT(l.runs, 20);
    CHECK_EQ_INT(l.outliers, 1);
    CHECK_NEAR(l.min, 10.0, 1e-12);
    CHECK_NEAR(l.max, 100.0, 1e-12);
    CHECK_NEAR(l.median, 10.2, 1e-12);
    CHECK_NEAR(l.p90, 10.4, 1e-12);
    CHECK_NEAR(l.p99, 82.976, 1e-9);   /* 10.4 + 0.81 * 89.6 */
    double s = 0, m = 0;
    for (int i = 0; i < 19; i++) m += 10.0 + (i % 5) * 0.1;
    m /= 19;
    for (int i = 0; i < 19; i++) s += (10.0 + (i % 5) * 0.1 - m) * (10.0 + (i % 5) * 0.1 - m);
    CHECK_NEAR(l.mean, m, 1e-12);
    CHECK_NEAR(l.std, sqrt(s / 18), 1e-12);
    double one[1] = {0.5};
    qcal_latency_stats(one, 1, &l);
    CHECK(l.median == 0.5 && l.p99 == 0.5 && l.std == 0 && l.outliers == 0);
}

int main(void)
{
    qcal_log_set_level(QCAL_LOG_QUIET); /* expected errors stay quiet */
    test_status();
    test_alloc();
    test_tensor();
    test_npy();
    test_latency();
    return check_report();
}
