/*
 * qcal report: HDF5 files (src/report/h5.c is the only file that includes hdf5.h).
 *
 *     struct qcal_h5 *f;
 *     qcal_h5_create("out/calibration.h5", &f);       // written as a temporary file
 *     qcal_h5_write(f, "/tensors/min", QCAL_F32, 1, (int64_t[]){n}, min);
 *     qcal_h5_write_strings(f, "/tensors/name", n, names);
 *     qcal_h5_attr_string(f, "/", "method", "entropy");
 *     qcal_h5_close(f, true);                         // true: complete, rename into place
 *
 * Files are byte-identical for the same content: no object timestamps are stored and
 * everything is written in call order. Intermediate groups are created as needed.
 */
#ifndef QCAL_REPORT_H
#define QCAL_REPORT_H

#include "qcal/tensor.h"

struct qcal_h5;

enum qcal_status qcal_h5_create(const char *path, struct qcal_h5 **out);
enum qcal_status qcal_h5_open(const char *path, struct qcal_h5 **out); /* read-only */
/* commit: rename the temporary file to its name (created files); otherwise it is removed. */
enum qcal_status qcal_h5_close(struct qcal_h5 *f, bool commit);

/* Datasets of numeric dtypes (F32, F64, U8, I8, I32, I64, U64). */
enum qcal_status qcal_h5_write(struct qcal_h5 *f, const char *path, int dtype, int ndim, const int64_t *dims,
                               const void *data);
/* A 1-D dataset of fixed-length strings. */
enum qcal_status qcal_h5_write_strings(struct qcal_h5 *f, const char *path, int n, const char *const *s);
/* A table: a 1-D compound dataset of n_rows rows of a C struct of row_size bytes; each
 * column names a field by its offset and dtype (numeric, or QCAL_H5_STRING: a char[size]
 * field holding a NUL-terminated string). Stored packed, little-endian. */
#define QCAL_H5_STRING (-1)
struct qcal_h5_column {
    const char *name;
    int dtype;
    size_t offset, size; /* size: strings only */
};
enum qcal_status qcal_h5_write_table(struct qcal_h5 *f, const char *path, int n_cols,
                                     const struct qcal_h5_column *cols, int64_t n_rows, size_t row_size,
                                     const void *rows);
/* Attributes on a group or dataset (created if it is a group path that does not exist). */
enum qcal_status qcal_h5_attr_string(struct qcal_h5 *f, const char *obj, const char *name, const char *value);
enum qcal_status qcal_h5_attr_f64(struct qcal_h5 *f, const char *obj, const char *name, double value);
enum qcal_status qcal_h5_attr_i64(struct qcal_h5 *f, const char *obj, const char *name, int64_t value);

/* Copies src_obj of the HDF5 file src_path (a group with all it holds, or a dataset) to
 * dst_obj of f. */
enum qcal_status qcal_h5_copy(struct qcal_h5 *f, const char *dst_obj, const char *src_path, const char *src_obj);
/* Copies every member of the root group of the HDF5 file src_path into f's root. */
enum qcal_status qcal_h5_copy_all(struct qcal_h5 *f, const char *src_path);
/* Whether the HDF5 file at path has an object at obj (false for a missing or non-HDF5 file). */
bool qcal_h5_file_has(const char *path, const char *obj);

/* Reads a numeric dataset converted to `dtype`: *data_out (malloc'd, caller frees), its
 * shape in t (t->data = *data_out). */
enum qcal_status qcal_h5_read(struct qcal_h5 *f, const char *path, int dtype, struct qcal_tensor *t);
/* Reads a 1-D string dataset: *strs_out is n malloc'd strings in one malloc'd array. */
enum qcal_status qcal_h5_read_strings(struct qcal_h5 *f, const char *path, int *n_out, char ***strs_out);
enum qcal_status qcal_h5_read_attr_string(struct qcal_h5 *f, const char *obj, const char *name, char *buf,
                                          size_t cap);
/* A table's rows and columns (names malloc'd, in one malloc'd array; is_string per column). */
enum qcal_status qcal_h5_table_columns(struct qcal_h5 *f, const char *path, int64_t *rows, int *n_out,
                                       char ***names_out, bool **is_string_out);
/* One column of a table: numbers as double, or strings (each malloc'd, in a malloc'd array). */
enum qcal_status qcal_h5_read_column_f64(struct qcal_h5 *f, const char *path, const char *column, double **out,
                                         int64_t *rows);
enum qcal_status qcal_h5_read_column_strings(struct qcal_h5 *f, const char *path, const char *column, char ***out,
                                             int64_t *rows);
enum qcal_status qcal_h5_read_attr_f64(struct qcal_h5 *f, const char *obj, const char *name, double *value);

#endif
