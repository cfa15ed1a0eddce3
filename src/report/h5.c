/* HDF5 behind qcal's report interface: deterministic files (no timestamps), written to a
 * temporary name and renamed when complete, errors that name the file and the object. */
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qcal/report.h"

struct qcal_h5 {
    hid_t file, lcpl, dcpl, gcpl;
    char *path;
    char tmp[4096];
    bool writable;
};

static void quiet(void) { if (!getenv("QCAL_H5_ERRORS")) H5Eset_auto2(H5E_DEFAULT, NULL, NULL); } /* errors come back as statuses */

static enum qcal_status props(struct qcal_h5 *f)
{
    f->lcpl = H5Pcreate(H5P_LINK_CREATE);
    f->dcpl = H5Pcreate(H5P_DATASET_CREATE);
    f->gcpl = H5Pcreate(H5P_GROUP_CREATE);
    if (f->lcpl < 0 || f->dcpl < 0 || f->gcpl < 0 || H5Pset_create_intermediate_group(f->lcpl, 1) < 0 ||
        H5Pset_obj_track_times(f->dcpl, 0) < 0 || H5Pset_obj_track_times(f->gcpl, 0) < 0)
        return QCAL_ERR(QCAL_BACKEND_ERROR, "%s: HDF5 property lists", f->path);
    return QCAL_OK;
}

static void h5_free(struct qcal_h5 *f)
{
    if (f->lcpl > 0) H5Pclose(f->lcpl);
    if (f->dcpl > 0) H5Pclose(f->dcpl);
    if (f->gcpl > 0) H5Pclose(f->gcpl);
    free(f->path);
    free(f);
}

static struct qcal_h5 *h5_new(const char *path)
{
    quiet();
    struct qcal_h5 *f = calloc(1, sizeof *f);
    if (f && !(f->path = strdup(path))) {
        free(f);
        f = NULL;
    }
    if (!f) QCAL_LOGE("%s: out of memory", path);
    return f;
}

enum qcal_status qcal_h5_create(const char *path, struct qcal_h5 **out)
{
    struct qcal_h5 *f = h5_new(path);
    if (!f) return QCAL_OUT_OF_MEMORY;
    f->writable = true;
    qcal_temp_name(path, f->tmp, sizeof f->tmp);
    enum qcal_status st = props(f);
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (st == QCAL_OK && (fcpl < 0 || H5Pset_obj_track_times(fcpl, 0) < 0))
        st = QCAL_ERR(QCAL_BACKEND_ERROR, "%s: HDF5 property lists", path);
    if (st == QCAL_OK && (f->file = H5Fcreate(f->tmp, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT)) < 0)
        st = QCAL_ERR(QCAL_IO_ERROR, "%s: cannot create: %s", path, strerror(errno ? errno : EIO));
    if (fcpl >= 0) H5Pclose(fcpl);
    if (st != QCAL_OK) {
        h5_free(f);
        return st;
    }
    *out = f;
    return QCAL_OK;
}

enum qcal_status qcal_h5_open(const char *path, struct qcal_h5 **out)
{
    struct qcal_h5 *f = h5_new(path);
    if (!f) return QCAL_OUT_OF_MEMORY;
    if (access(path, R_OK) != 0) {
        int e = errno;
        h5_free(f);
        return QCAL_ERR(QCAL_IO_ERROR, "%s: cannot open: %s", path, strerror(e));
    }
    if (H5Fis_hdf5(path) <= 0 || (f->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0) {
        h5_free(f);
        return QCAL_ERR(QCAL_INVALID_DATA, "%s: not an HDF5 file", path);
    }
    *out = f;
    return QCAL_OK;
}

enum qcal_status qcal_h5_close(struct qcal_h5 *f, bool commit)
{
    if (!f) return QCAL_OK;
    enum qcal_status st = QCAL_OK;
    if (H5Fclose(f->file) < 0) st = QCAL_ERR(QCAL_IO_ERROR, "%s: closing failed", f->path);
    if (f->writable) {
        if (commit && st == QCAL_OK && rename(f->tmp, f->path) != 0)
            st = QCAL_ERR(QCAL_IO_ERROR, "%s: cannot rename the finished file: %s", f->path, strerror(errno));
        if (!commit || st != QCAL_OK) unlink(f->tmp);
    }
    h5_free(f);
    return st;
}

static hid_t mem_type(int dtype)
{
    switch (dtype) {
    case QCAL_F32: return H5T_NATIVE_FLOAT;
    case QCAL_F64: return H5T_NATIVE_DOUBLE;
    case QCAL_U8: return H5T_NATIVE_UINT8;
    case QCAL_I8: return H5T_NATIVE_INT8;
    case QCAL_I32: return H5T_NATIVE_INT32;
    case QCAL_I64: return H5T_NATIVE_INT64;
    case QCAL_U64: return H5T_NATIVE_UINT64;
    default: return -1;
    }
}

static hid_t file_type(int dtype) /* little-endian on disk, whatever the host */
{
    switch (dtype) {
    case QCAL_F32: return H5T_IEEE_F32LE;
    case QCAL_F64: return H5T_IEEE_F64LE;
    case QCAL_U8: return H5T_STD_U8LE;
    case QCAL_I8: return H5T_STD_I8LE;
    case QCAL_I32: return H5T_STD_I32LE;
    case QCAL_I64: return H5T_STD_I64LE;
    case QCAL_U64: return H5T_STD_U64LE;
    default: return -1;
    }
}

/* A fixed-length NUL-terminated UTF-8 string type of `size` bytes (the caller closes it). */
static hid_t utf8_string(size_t size)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return t;
    H5Tset_size(t, size);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

static enum qcal_status write_raw(struct qcal_h5 *f, const char *path, hid_t ftype, hid_t mtype, int ndim,
                                  const int64_t *dims, const void *data)
{
    hsize_t d[QCAL_MAX_DIMS];
    for (int i = 0; i < ndim; i++) d[i] = (hsize_t)dims[i];
    hid_t space = ndim ? H5Screate_simple(ndim, d, NULL) : H5Screate(H5S_SCALAR);
    hid_t ds = space < 0 ? -1 : H5Dcreate2(f->file, path, ftype, space, f->lcpl, f->dcpl, H5P_DEFAULT);
    herr_t rc = ds < 0 ? -1 : H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (ds >= 0) H5Dclose(ds);
    if (space >= 0) H5Sclose(space);
    if (rc < 0) return QCAL_ERR(QCAL_IO_ERROR, "%s: cannot write dataset %s", f->path, path);
    return QCAL_OK;
}

enum qcal_status qcal_h5_write(struct qcal_h5 *f, const char *path, int dtype, int ndim, const int64_t *dims,
                               const void *data)
{
    if (mem_type(dtype) < 0) return QCAL_ERR(QCAL_UNSUPPORTED, "%s: %s: dtype %s", f->path, path, qcal_dtype_name(dtype));
    return write_raw(f, path, file_type(dtype), mem_type(dtype), ndim, dims, data);
}

enum qcal_status qcal_h5_write_strings(struct qcal_h5 *f, const char *path, int n, const char *const *s)
{
    size_t len = 1;
    for (int i = 0; i < n; i++) len = strlen(s[i]) + 1 > len ? strlen(s[i]) + 1 : len;
    char *buf = calloc((size_t)n + 1, len);
    if (!buf) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    for (int i = 0; i < n; i++) memcpy(buf + (size_t)i * len, s[i], strlen(s[i]));
    hid_t t = utf8_string(len);
    enum qcal_status st = write_raw(f, path, t, t, 1, (int64_t[]){n}, buf);
    H5Tclose(t);
    free(buf);
    return st;
}

enum qcal_status qcal_h5_write_table(struct qcal_h5 *f, const char *path, int n_cols,
                                     const struct qcal_h5_column *cols, int64_t n_rows, size_t row_size,
                                     const void *rows)
{
    /* memory: the caller's row struct; file: the same fields packed, little-endian */
    hid_t mt = H5Tcreate(H5T_COMPOUND, row_size), ft = -1;
    size_t file_size = 0;
    enum qcal_status st = QCAL_OK;
    for (int c = 0; c < n_cols && mt >= 0; c++) {
        const bool str = cols[c].dtype == QCAL_H5_STRING;
        hid_t m = str ? utf8_string(cols[c].size) : mem_type(cols[c].dtype);
        if (m < 0 || H5Tinsert(mt, cols[c].name, cols[c].offset, m) < 0)
            st = QCAL_ERR(QCAL_UNSUPPORTED, "%s: %s: column %s", f->path, path, cols[c].name);
        file_size += str ? cols[c].size : H5Tget_size(file_type(cols[c].dtype));
        if (str) H5Tclose(m);
        if (st != QCAL_OK) break;
    }
    if (st == QCAL_OK && (ft = H5Tcreate(H5T_COMPOUND, file_size)) < 0) st = QCAL_ERR(QCAL_IO_ERROR, "%s: HDF5", f->path);
    for (int c = 0, off = 0; st == QCAL_OK && c < n_cols; c++) {
        const bool str = cols[c].dtype == QCAL_H5_STRING;
        hid_t t = str ? utf8_string(cols[c].size) : file_type(cols[c].dtype);
        if (H5Tinsert(ft, cols[c].name, (size_t)off, t) < 0) st = QCAL_ERR(QCAL_IO_ERROR, "%s: HDF5", f->path);
        off += (int)H5Tget_size(t);
        if (str) H5Tclose(t);
    }
    if (st == QCAL_OK) st = write_raw(f, path, ft, mt, 1, &n_rows, rows);
    if (ft >= 0) H5Tclose(ft);
    if (mt >= 0) H5Tclose(mt);
    return st;
}

static herr_t copy_member(hid_t src, const char *name, const H5L_info_t *info, void *data)
{
    (void)info;
    struct qcal_h5 *f = data;
    return H5Ocopy(src, name, f->file, name, H5P_DEFAULT, f->lcpl) < 0 ? -1 : 0;
}

enum qcal_status qcal_h5_copy_all(struct qcal_h5 *f, const char *src_path)
{
    if (access(src_path, R_OK) != 0) return QCAL_ERR(QCAL_IO_ERROR, "%s: cannot open: %s", src_path, strerror(errno));
    hid_t src = H5Fis_hdf5(src_path) > 0 ? H5Fopen(src_path, H5F_ACC_RDONLY, H5P_DEFAULT) : -1;
    if (src < 0) return QCAL_ERR(QCAL_INVALID_DATA, "%s: not an HDF5 file", src_path);
    /* members in creation order where tracked, else by name: the same order as the source's */
    hsize_t idx = 0;
    const herr_t rc = H5Literate(src, H5_INDEX_NAME, H5_ITER_INC, &idx, copy_member, f);
    H5Fclose(src);
    return rc < 0 ? QCAL_ERR(QCAL_IO_ERROR, "%s: cannot copy the contents of %s", f->path, src_path) : QCAL_OK;
}

bool qcal_h5_file_has(const char *path, const char *obj)
{
    quiet();
    hid_t f = access(path, R_OK) == 0 && H5Fis_hdf5(path) > 0 ? H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT) : -1;
    if (f < 0) return false;
    const bool has = H5Lexists(f, obj, H5P_DEFAULT) > 0;
    H5Fclose(f);
    return has;
}

enum qcal_status qcal_h5_copy(struct qcal_h5 *f, const char *dst_obj, const char *src_path, const char *src_obj)
{
    if (access(src_path, R_OK) != 0) return QCAL_ERR(QCAL_IO_ERROR, "%s: cannot open: %s", src_path, strerror(errno));
    hid_t src = H5Fis_hdf5(src_path) > 0 ? H5Fopen(src_path, H5F_ACC_RDONLY, H5P_DEFAULT) : -1;
    if (src < 0) return QCAL_ERR(QCAL_INVALID_DATA, "%s: not an HDF5 file", src_path);
    enum qcal_status st = QCAL_OK;
    if (H5Lexists(src, src_obj, H5P_DEFAULT) <= 0)
        st = QCAL_ERR(QCAL_INVALID_DATA, "%s: has no %s", src_path, src_obj);
    else if (H5Ocopy(src, src_obj, f->file, dst_obj, H5P_DEFAULT, f->lcpl) < 0)
        st = QCAL_ERR(QCAL_IO_ERROR, "%s: cannot copy %s of %s", f->path, src_obj, src_path);
    H5Fclose(src);
    return st;
}

/* The object at `obj`, creating the group if it is missing. */
static hid_t open_obj(struct qcal_h5 *f, const char *obj)
{
    if (strcmp(obj, "/") == 0 || H5Lexists(f->file, obj, H5P_DEFAULT) > 0) return H5Oopen(f->file, obj, H5P_DEFAULT);
    if (!f->writable) return -1;
    return H5Gcreate2(f->file, obj, f->lcpl, f->gcpl, H5P_DEFAULT);
}

static enum qcal_status write_attr(struct qcal_h5 *f, const char *obj, const char *name, hid_t type, const void *v)
{
    hid_t o = open_obj(f, obj);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = o < 0 || space < 0 ? -1 : H5Acreate2(o, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, type, v);
    if (a >= 0) H5Aclose(a);
    if (space >= 0) H5Sclose(space);
    if (o >= 0) H5Oclose(o);
    if (rc < 0) return QCAL_ERR(QCAL_IO_ERROR, "%s: cannot write attribute %s of %s", f->path, name, obj);
    return QCAL_OK;
}

enum qcal_status qcal_h5_attr_string(struct qcal_h5 *f, const char *obj, const char *name, const char *value)
{
    hid_t t = utf8_string(strlen(value) + 1);
    enum qcal_status st = write_attr(f, obj, name, t, value);
    H5Tclose(t);
    return st;
}

enum qcal_status qcal_h5_attr_f64(struct qcal_h5 *f, const char *obj, const char *name, double value)
{
    return write_attr(f, obj, name, H5T_NATIVE_DOUBLE, &value);
}

enum qcal_status qcal_h5_attr_i64(struct qcal_h5 *f, const char *obj, const char *name, int64_t value)
{
    return write_attr(f, obj, name, H5T_NATIVE_INT64, &value);
}

enum qcal_status qcal_h5_read(struct qcal_h5 *f, const char *path, int dtype, struct qcal_tensor *t)
{
    memset(t, 0, sizeof *t);
    if (H5Lexists(f->file, path, H5P_DEFAULT) <= 0)
        return QCAL_ERR(QCAL_INVALID_DATA, "%s: no dataset %s", f->path, path);
    hid_t ds = H5Dopen2(f->file, path, H5P_DEFAULT);
    hid_t space = ds < 0 ? -1 : H5Dget_space(ds);
    int nd = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
    enum qcal_status st = QCAL_OK;
    hsize_t d[QCAL_MAX_DIMS];
    if (nd < 0 || nd > QCAL_MAX_DIMS) {
        st = QCAL_ERR(QCAL_INVALID_DATA, "%s: dataset %s unreadable", f->path, path);
        goto done;
    }
    H5Sget_simple_extent_dims(space, d, NULL);
    *t = qcal_tensor_make(dtype, nd, NULL);
    for (int i = 0; i < nd; i++) t->dims[i] = (int64_t)d[i];
    t->data = malloc(qcal_tensor_bytes(t) + 1);
    if (!t->data) {
        st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    if (H5Dread(ds, mem_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, t->data) < 0) {
        free(t->data);
        t->data = NULL;
        st = QCAL_ERR(QCAL_INVALID_DATA, "%s: dataset %s cannot be read as %s", f->path, path, qcal_dtype_name(dtype));
    }
done:
    if (space >= 0) H5Sclose(space);
    if (ds >= 0) H5Dclose(ds);
    return st;
}

/* The compound dataset at path, its type and row count; -1 on failure (message given). */
static hid_t open_table(struct qcal_h5 *f, const char *path, hid_t *type, int64_t *rows)
{
    if (H5Lexists(f->file, path, H5P_DEFAULT) <= 0) {
        (void)QCAL_ERR(QCAL_INVALID_DATA, "%s: no table %s", f->path, path);
        return -1;
    }
    hid_t ds = H5Dopen2(f->file, path, H5P_DEFAULT);
    hid_t space = ds < 0 ? -1 : H5Dget_space(ds);
    *type = ds < 0 ? -1 : H5Dget_type(ds);
    hsize_t n = 0;
    const bool ok = space >= 0 && *type >= 0 && H5Tget_class(*type) == H5T_COMPOUND &&
                    H5Sget_simple_extent_ndims(space) == 1 && H5Sget_simple_extent_dims(space, &n, NULL) == 1;
    if (space >= 0) H5Sclose(space);
    if (!ok) {
        if (*type >= 0) H5Tclose(*type);
        if (ds >= 0) H5Dclose(ds);
        (void)QCAL_ERR(QCAL_INVALID_DATA, "%s: %s is not a table", f->path, path);
        return -1;
    }
    *rows = (int64_t)n;
    return ds;
}

enum qcal_status qcal_h5_table_columns(struct qcal_h5 *f, const char *path, int64_t *rows, int *n_out,
                                       char ***names_out, bool **is_string_out)
{
    hid_t type;
    hid_t ds = open_table(f, path, &type, rows);
    if (ds < 0) return QCAL_INVALID_DATA;
    const int n = H5Tget_nmembers(type);
    char **names = calloc((size_t)n + 1, sizeof *names);
    bool *str = calloc((size_t)n + 1, sizeof *str);
    enum qcal_status st = names && str ? QCAL_OK : QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    for (int c = 0; st == QCAL_OK && c < n; c++) {
        char *m = H5Tget_member_name(type, (unsigned)c);
        names[c] = m ? strdup(m) : NULL;
        H5free_memory(m);
        str[c] = H5Tget_member_class(type, (unsigned)c) == H5T_STRING;
        if (!names[c]) st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    }
    H5Tclose(type);
    H5Dclose(ds);
    if (st != QCAL_OK) {
        for (int c = 0; names && c < n; c++) free(names[c]);
        free(names);
        free(str);
        return st;
    }
    *n_out = n, *names_out = names, *is_string_out = str;
    return QCAL_OK;
}

/* One member of a table read into buf (rows x size bytes) as memory type mt. */
static enum qcal_status read_member(struct qcal_h5 *f, const char *path, const char *column, hid_t mt, size_t size,
                                    void **buf_out, int64_t *rows)
{
    hid_t type;
    hid_t ds = open_table(f, path, &type, rows);
    if (ds < 0) return QCAL_INVALID_DATA;
    enum qcal_status st = QCAL_OK;
    if (H5Tget_member_index(type, column) < 0) st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "%s: %s has no column '%s'",
                                                            f->path, path, column);
    hid_t one = st == QCAL_OK ? H5Tcreate(H5T_COMPOUND, size) : -1;
    void *buf = st == QCAL_OK ? calloc((size_t)*rows + 1, size) : NULL;
    if (st == QCAL_OK && (one < 0 || !buf || H5Tinsert(one, column, 0, mt) < 0 ||
                          H5Dread(ds, one, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0))
        st = QCAL_ERR(QCAL_INVALID_DATA, "%s: column %s of %s unreadable", f->path, column, path);
    if (one >= 0) H5Tclose(one);
    H5Tclose(type);
    H5Dclose(ds);
    if (st != QCAL_OK) free(buf);
    else *buf_out = buf;
    return st;
}

enum qcal_status qcal_h5_read_column_f64(struct qcal_h5 *f, const char *path, const char *column, double **out,
                                         int64_t *rows)
{
    return read_member(f, path, column, H5T_NATIVE_DOUBLE, sizeof(double), (void **)out, rows);
}

enum qcal_status qcal_h5_read_column_strings(struct qcal_h5 *f, const char *path, const char *column, char ***out,
                                             int64_t *rows)
{
    enum { LEN = 1024 };
    hid_t t = utf8_string(LEN);
    char *buf = NULL;
    enum qcal_status st = read_member(f, path, column, t, LEN, (void **)&buf, rows);
    H5Tclose(t);
    if (st != QCAL_OK) return st;
    char **s = calloc((size_t)*rows + 1, sizeof *s);
    for (int64_t i = 0; s && i < *rows; i++) {
        if (!(s[i] = strndup(buf + (size_t)i * LEN, LEN - 1))) {
            for (int64_t k = 0; k < i; k++) free(s[k]);
            free(s);
            s = NULL;
        }
    }
    free(buf);
    if (!s) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    *out = s;
    return QCAL_OK;
}

enum qcal_status qcal_h5_read_strings(struct qcal_h5 *f, const char *path, int *n_out, char ***strs_out)
{
    *n_out = 0;
    *strs_out = NULL;
    if (H5Lexists(f->file, path, H5P_DEFAULT) <= 0)
        return QCAL_ERR(QCAL_INVALID_DATA, "%s: no dataset %s", f->path, path);
    hid_t ds = H5Dopen2(f->file, path, H5P_DEFAULT);
    hid_t ft = ds < 0 ? -1 : H5Dget_type(ds);
    hid_t space = ds < 0 ? -1 : H5Dget_space(ds);
    enum qcal_status st = QCAL_OK;
    char *buf = NULL;
    hsize_t n = 0;
    if (ft < 0 || space < 0 || H5Tget_class(ft) != H5T_STRING || H5Tis_variable_str(ft) ||
        H5Sget_simple_extent_ndims(space) != 1) {
        st = QCAL_ERR(QCAL_INVALID_DATA, "%s: %s is not a 1-D fixed-length string dataset", f->path, path);
        goto done;
    }
    H5Sget_simple_extent_dims(space, &n, NULL);
    size_t len = H5Tget_size(ft);
    char **strs = calloc((size_t)n + 1, sizeof *strs);
    buf = calloc((size_t)n + 1, len + 1);
    if (!strs || !buf) {
        free(strs);
        st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    if (H5Dread(ds, ft, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        free(strs);
        st = QCAL_ERR(QCAL_INVALID_DATA, "%s: dataset %s unreadable", f->path, path);
        goto done;
    }
    for (hsize_t i = 0; i < n; i++) {
        strs[i] = strndup(buf + i * len, len);
        if (!strs[i]) {
            for (hsize_t k = 0; k < i; k++) free(strs[k]);
            free(strs);
            st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
            goto done;
        }
    }
    *n_out = (int)n;
    *strs_out = strs;
done:
    free(buf);
    if (space >= 0) H5Sclose(space);
    if (ft >= 0) H5Tclose(ft);
    if (ds >= 0) H5Dclose(ds);
    return st;
}

static enum qcal_status read_attr(struct qcal_h5 *f, const char *obj, const char *name, hid_t *a_out)
{
    hid_t o = H5Lexists(f->file, obj, H5P_DEFAULT) > 0 || strcmp(obj, "/") == 0 ? H5Oopen(f->file, obj, H5P_DEFAULT) : -1;
    hid_t a = o < 0 || H5Aexists(o, name) <= 0 ? -1 : H5Aopen(o, name, H5P_DEFAULT);
    if (o >= 0) H5Oclose(o);
    if (a < 0) return QCAL_ERR(QCAL_INVALID_DATA, "%s: no attribute %s on %s", f->path, name, obj);
    *a_out = a;
    return QCAL_OK;
}

enum qcal_status qcal_h5_read_attr_string(struct qcal_h5 *f, const char *obj, const char *name, char *buf, size_t cap)
{
    hid_t a;
    enum qcal_status st = read_attr(f, obj, name, &a);
    if (st != QCAL_OK) return st;
    hid_t t = H5Aget_type(a);
    size_t len = t < 0 ? 0 : H5Tget_size(t);
    char *tmp = len && H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t) ? calloc(1, len + 1) : NULL;
    if (!tmp || H5Aread(a, t, tmp) < 0) st = QCAL_ERR(QCAL_INVALID_DATA, "%s: attribute %s of %s is not a string", f->path, name, obj);
    else snprintf(buf, cap, "%s", tmp);
    free(tmp);
    if (t >= 0) H5Tclose(t);
    H5Aclose(a);
    return st;
}

enum qcal_status qcal_h5_read_attr_f64(struct qcal_h5 *f, const char *obj, const char *name, double *value)
{
    hid_t a;
    enum qcal_status st = read_attr(f, obj, name, &a);
    if (st != QCAL_OK) return st;
    if (H5Aread(a, H5T_NATIVE_DOUBLE, value) < 0)
        st = QCAL_ERR(QCAL_INVALID_DATA, "%s: attribute %s of %s is not a number", f->path, name, obj);
    H5Aclose(a);
    return st;
}
