#include "qcal/core.h"

static const char *const status_names[] = {
#define QCAL_X(name, code, desc) desc,
    QCAL_STATUS_LIST(QCAL_X)
#undef QCAL_X
};

static const int status_codes[] = {
#define QCAL_X(name, code, desc) code,
    QCAL_STATUS_LIST(QCAL_X)
#undef QCAL_X
};

_Static_assert(sizeof(status_names) / sizeof(status_names[0]) == QCAL_STATUS_COUNT,
               "status table out of sync");

const char *qcal_status_str(enum qcal_status s)
{
    return (unsigned)s < QCAL_STATUS_COUNT ? status_names[s] : "unknown status";
}

int qcal_status_exit_code(enum qcal_status s)
{
    return (unsigned)s < QCAL_STATUS_COUNT ? status_codes[s] : 1;
}
