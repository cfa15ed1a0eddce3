/* Minimal assertions for qcal's C unit tests: each failure prints both values and the
 * location; the run ends with "N passed, N failed" and a matching exit status. */
#ifndef QCAL_TEST_CHECK_H
#define QCAL_TEST_CHECK_H

#include <math.h>
#include <stdio.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (cond) check_passed++;                                                     \
        else {                                                                        \
            check_failed++;                                                           \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);  \
        }                                                                             \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                       \
    do {                                                                                         \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                    \
        if (va_ == vb_) check_passed++;                                                          \
        else {                                                                                   \
            check_failed++;                                                                      \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld vs %lld\n", __FILE__, __LINE__, #a, #b, \
                    va_, vb_);                                                                   \
        }                                                                                        \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                     \
    do {                                                                                          \
        double va_ = (a), vb_ = (b);                                                              \
        if (fabs(va_ - vb_) <= (tol)) check_passed++;                                             \
        else {                                                                                    \
            check_failed++;                                                                       \
            fprintf(stderr, "%s:%d: |%s - %s| <= %g failed: %.9g vs %.9g\n", __FILE__, __LINE__, \
                    #a, #b, (double)(tol), va_, vb_);                                             \
        }                                                                                         \
    } while (0)

static inline int check_report(void)
{
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

/* Deterministic pseudo-random floats in [-1, 1). */
static inline float check_rand(unsigned long long *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return (float)((*s >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

#endif
