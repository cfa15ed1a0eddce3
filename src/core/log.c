#include "qcal/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static enum qcal_log_level log_level = QCAL_LOG_WARN;
static int log_rank = -1;
static void (*abort_hook)(int code);

void qcal_log_set_level(enum qcal_log_level level) { log_level = level; }
void qcal_log_set_rank(int rank) { log_rank = rank; }

static _Thread_local char *capture_buf;
static _Thread_local size_t capture_cap;

void qcal_log_capture(char *buf, size_t cap)
{
    capture_buf = buf, capture_cap = cap;
    if (buf && cap) buf[0] = '\0';
}

void qcal_log(enum qcal_log_level level, const char *func, const char *fmt, ...)
{
    static const char *const tags[] = {"error", "warning", "info", "debug"};
    if (level > log_level && !(level == QCAL_LOG_ERROR && capture_buf)) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (level == QCAL_LOG_ERROR && capture_buf) { /* the first error is the cause */
        if (!capture_buf[0]) snprintf(capture_buf, capture_cap, "%s", msg);
        return;
    }
    /* names come from input files: keep control bytes from breaking the one-line rule */
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    /* One write per line so lines of concurrent ranks do not interleave mid-line. */
    char line[2300];
    if (log_rank >= 0)
        snprintf(line, sizeof line, "qcal[%d]: %s: %s\n", log_rank, tags[level], msg);
    else if (level == QCAL_LOG_DEBUG)
        snprintf(line, sizeof line, "qcal: %s: %s: %s\n", tags[level], func, msg);
    else
        snprintf(line, sizeof line, "qcal: %s: %s\n", tags[level], msg);
    fputs(line, stderr);
}

void qcal_set_abort_hook(void (*hook)(int code)) { abort_hook = hook; }

_Noreturn void qcal_abort(int code)
{
    fflush(stdout);
    fflush(stderr);
    if (abort_hook) abort_hook(code);
    exit(code);
}

_Noreturn void qcal_assert_fail(const char *file, int line, const char *expr)
{
    fprintf(stderr, "qcal: internal error: %s:%d: assertion '%s' failed\n", file, line, expr);
    if (abort_hook) abort_hook(70);
    abort();
}
