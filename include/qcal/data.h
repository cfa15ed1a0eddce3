/*
 * qcal data: inputs and outputs as files. This module grows into images, datasets and
 * annotations; for now it reads and writes NumPy .npy arrays (format versions 1-3,
 * little-endian, C order).
 *
 *     struct qcal_tensor t;
 *     if (qcal_npy_read("x.npy", &t) == QCAL_OK) { ...; qcal_free(t.data); }
 */
#ifndef QCAL_DATA_H
#define QCAL_DATA_H

#include "qcal/tensor.h"

/* Reads a .npy file; t_out->data is allocated with qcal_malloc and owned by the caller. */
enum qcal_status qcal_npy_read(const char *path, struct qcal_tensor *t_out);

/* Writes t (plain layout) to `path` through a temporary file renamed when complete. */
enum qcal_status qcal_npy_write(const char *path, const struct qcal_tensor *t);

#endif
