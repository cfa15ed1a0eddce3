/* Data movement: Reshape, Flatten, Squeeze, Unsqueeze, Identity, Transpose, Slice, Gather,
 * Shape, Cast, Pad, Concat, Split; and BatchNormalization (when not folded into a Conv). */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

#include "op-internal.h"
#include "qcal/kernels.h"

static int plain_layout(const struct qcal_graph *g, const struct qcal_node *n, int kernels)
{
    (void)g, (void)n, (void)kernels;
    return QCAL_LAYOUT_PLAIN;
}

static int follow_layout(const struct qcal_graph *g, const struct qcal_node *n, int kernels)
{
    (void)g, (void)n, (void)kernels;
    return -1;
}

/* Ops whose parsed params are all they need at run time share them as state. */
static enum qcal_status params_state(struct qcal_op_prep *pp)
{
    pp->state = pp->node->params;
    pp->impl = "ref";
    return QCAL_OK;
}

static enum qcal_status no_state(struct qcal_op_prep *pp)
{
    pp->state = NULL;
    pp->impl = "ref";
    return QCAL_OK;
}

static enum qcal_status parse_plain(struct qcal_graph *g, struct qcal_node *n, int min_in, int max_in)
{
    return op_check_arity(g, n, min_in, max_in, 1, 1);
}

/* ---- Reshape, Flatten, Squeeze, Unsqueeze, Identity: same bytes, new shape ---- */

static enum qcal_status reshape_parse(struct qcal_graph *g, struct qcal_node *n)
{
    switch (n->op) {
    case QCAL_OP_RESHAPE: return parse_plain(g, n, n->opset >= 5 ? 2 : 1, 2);
    case QCAL_OP_SQUEEZE:
    case QCAL_OP_UNSQUEEZE: return parse_plain(g, n, n->op == QCAL_OP_UNSQUEEZE && n->opset >= 13 ? 2 : 1, 2);
    default: return parse_plain(g, n, 1, 1);
    }
}

static enum qcal_status reshape_infer(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = op_require_inputs(g, n, 1);
    if (st != QCAL_OK) return st;
    const struct qcal_tensor *x = &qcal_in(g, n, 0)->t;
    int64_t dims[QCAL_MAX_DIMS], v[QCAL_MAX_DIMS];
    int nd = 0, c = 0;
    int64_t total = qcal_tensor_numel(x);
    char sx[96];
    switch (n->op) {
    case QCAL_OP_RESHAPE: {
        if ((st = op_const_ints(g, n, 1, v, QCAL_MAX_DIMS, &c)) != QCAL_OK) return st;
        bool allowzero = qcal_node_attr_int(n, "allowzero", 0) != 0;
        int infer_at = -1;
        int64_t known = 1;
        for (int i = 0; i < c; i++) {
            dims[i] = v[i];
            if (v[i] == 0 && !allowzero) {
                if (i >= x->ndim)
                    return OP_ERR(g, n, QCAL_INVALID_MODEL, "shape copies dim %d of a %d-D input", i, x->ndim);
                dims[i] = x->dims[i];
            }
            if (dims[i] == -1) {
                if (infer_at >= 0) return OP_ERR(g, n, QCAL_INVALID_MODEL, "shape has two -1 dims");
                infer_at = i;
            } else if (dims[i] < 0) {
                return OP_ERR(g, n, QCAL_INVALID_MODEL, "shape has dim %lld", (long long)dims[i]);
            } else {
                known *= dims[i];
            }
        }
        nd = c;
        if (infer_at >= 0) {
            if (known == 0 || total % known)
                return OP_ERR(g, n, QCAL_INVALID_MODEL, "cannot reshape %s to the requested shape",
                              qcal_shape_str(x, sx, sizeof sx));
            dims[infer_at] = total / known;
            known *= dims[infer_at];
        }
        if (known != total)
            return OP_ERR(g, n, QCAL_INVALID_MODEL, "cannot reshape %s (%lld elements) to %lld elements",
                          qcal_shape_str(x, sx, sizeof sx), (long long)total, (long long)known);
        break;
    }
    case QCAL_OP_FLATTEN: {
        int axis;
        int64_t a = qcal_node_attr_int(n, "axis", 1);
        if (a == x->ndim) axis = x->ndim;
        else if ((st = op_axis(g, n, a, x->ndim, &axis)) != QCAL_OK) return st;
        dims[0] = 1;
        for (int i = 0; i < axis; i++) dims[0] *= x->dims[i];
        dims[1] = dims[0] ? total / dims[0] : 0;
        nd = 2;
        break;
    }
    case QCAL_OP_SQUEEZE: {
        c = qcal_node_attr_ints(n, "axes", v, QCAL_MAX_DIMS);
        if (qcal_in(g, n, 1) && (st = op_const_ints(g, n, 1, v, QCAL_MAX_DIMS, &c)) != QCAL_OK)
            return st;
        bool drop[QCAL_MAX_DIMS] = {0};
        for (int i = 0; i < c; i++) {
            int a;
            if ((st = op_axis(g, n, v[i], x->ndim, &a)) != QCAL_OK) return st;
            if (x->dims[a] != 1)
                return OP_ERR(g, n, QCAL_INVALID_MODEL, "cannot squeeze axis %d of size %lld", a,
                              (long long)x->dims[a]);
            drop[a] = true;
        }
        for (int i = 0; i < x->ndim; i++)
            if (!(c > 0 ? drop[i] : x->dims[i] == 1)) dims[nd++] = x->dims[i];
        break;
    }
    case QCAL_OP_UNSQUEEZE: {
        c = qcal_node_attr_ints(n, "axes", v, QCAL_MAX_DIMS);
        if (qcal_in(g, n, 1) && (st = op_const_ints(g, n, 1, v, QCAL_MAX_DIMS, &c)) != QCAL_OK)
            return st;
        nd = x->ndim + c;
        if (c <= 0 || nd > QCAL_MAX_DIMS)
            return OP_ERR(g, n, QCAL_INVALID_MODEL, "invalid axes (%d) for a %d-D input", c, x->ndim);
        bool ins[QCAL_MAX_DIMS] = {0};
        for (int i = 0; i < c; i++) {
            int a;
            if ((st = op_axis(g, n, v[i], nd, &a)) != QCAL_OK) return st;
            if (ins[a]) return OP_ERR(g, n, QCAL_INVALID_MODEL, "axis %d repeated", a);
            ins[a] = true;
        }
        for (int i = 0, k = 0; i < nd; i++) dims[i] = ins[i] ? 1 : x->dims[k++];
        break;
    }
    default:
        nd = x->ndim;
        memcpy(dims, x->dims, sizeof(int64_t) * (size_t)nd);
    }
    op_set_output(g, n, 0, x->dtype, nd, dims);
    return QCAL_OK;
}

static enum qcal_status reshape_run(const void *state, const struct qcal_op_args *a)
{
    (void)state;
    /* the planner usually aliases output to input; then there is nothing to move */
    if (a->out[0]->data != a->in[0]->data)
        memcpy(a->out[0]->data, a->in[0]->data, qcal_tensor_bytes(a->in[0]));
    return QCAL_OK;
}

const struct qcal_op_def qcal_op_reshape_def = {
    .name = "reshape", .parse = reshape_parse, .infer = reshape_infer, .layout = plain_layout,
    .prepare = no_state, .run = reshape_run,
};

/* ---- Transpose ---- */

struct transpose_params {
    int perm[QCAL_MAX_DIMS];
};

static enum qcal_status transpose_parse(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = parse_plain(g, n, 1, 1);
    if (st == QCAL_OK) st = op_alloc_params(g, n, sizeof(struct transpose_params));
    return st;
}

static enum qcal_status transpose_infer(struct qcal_graph *g, struct qcal_node *n)
{
    struct transpose_params *p = n->params;
    enum qcal_status st = op_require_inputs(g, n, 1);
    if (st != QCAL_OK) return st;
    const struct qcal_tensor *x = &qcal_in(g, n, 0)->t;
    int64_t v[QCAL_MAX_DIMS];
    int c = qcal_node_attr_ints(n, "perm", v, QCAL_MAX_DIMS);
    bool seen[QCAL_MAX_DIMS] = {0};
    if (c < 0) {
        for (int i = 0; i < x->ndim; i++) p->perm[i] = x->ndim - 1 - i;
    } else {
        if (c != x->ndim) return OP_ERR(g, n, QCAL_INVALID_MODEL, "perm has %d values for %d dims", c, x->ndim);
        for (int i = 0; i < c; i++) {
            if (v[i] < 0 || v[i] >= x->ndim || seen[v[i]])
                return OP_ERR(g, n, QCAL_INVALID_MODEL, "perm is not a permutation");
            seen[v[i]] = true;
            p->perm[i] = (int)v[i];
        }
    }
    int64_t dims[QCAL_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) dims[i] = x->dims[p->perm[i]];
    op_set_output(g, n, 0, x->dtype, x->ndim, dims);
    return QCAL_OK;
}

static enum qcal_status transpose_run(const void *state, const struct qcal_op_args *a)
{
    const struct transpose_params *p = state;
    const struct qcal_tensor *x = a->in[0], *y = a->out[0];
    int64_t xs[QCAL_MAX_DIMS], ys[QCAL_MAX_DIMS], src[QCAL_MAX_DIMS];
    op_strides(x, QCAL_LAYOUT_PLAIN, xs);
    op_strides(y, QCAL_LAYOUT_PLAIN, ys);
    for (int i = 0; i < y->ndim; i++) src[i] = xs[p->perm[i]];
    qcal_copy_strided(y->ndim, y->dims, qcal_dtype_size(x->dtype), x->data, src, y->data, ys);
    return QCAL_OK;
}

const struct qcal_op_def qcal_op_transpose_def = {
    .name = "Transpose", .parse = transpose_parse, .infer = transpose_infer, .layout = plain_layout,
    .prepare = params_state, .run = transpose_run,
};

/* ---- DepthToSpace: channels (b1, b2, c) (DCR) or (c, b1, b2) (CRD) into b x b blocks ---- */

struct depth_to_space_params {
    int64_t block;
    bool crd;
};

static enum qcal_status depth_to_space_parse(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = parse_plain(g, n, 1, 1);
    if (st == QCAL_OK) st = op_alloc_params(g, n, sizeof(struct depth_to_space_params));
    if (st != QCAL_OK) return st;
    struct depth_to_space_params *p = n->params;
    const char *mode = qcal_node_attr_string(n, "mode", "DCR");
    p->block = qcal_node_attr_int(n, "blocksize", 0);
    p->crd = strcmp(mode, "CRD") == 0;
    if (!p->crd && strcmp(mode, "DCR") != 0)
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "mode '%s' (DCR or CRD)", mode);
    if (p->block < 1 || p->block > 4096) return OP_ERR(g, n, QCAL_INVALID_MODEL, "blocksize must be 1 to 4096");
    return QCAL_OK;
}

static enum qcal_status depth_to_space_infer(struct qcal_graph *g, struct qcal_node *n)
{
    const struct depth_to_space_params *p = n->params;
    enum qcal_status st = op_require_inputs(g, n, 1);
    if (st != QCAL_OK) return st;
    const struct qcal_tensor *x = &qcal_in(g, n, 0)->t;
    const int64_t bb = p->block * p->block;
    if (x->ndim != 4) return OP_ERR(g, n, QCAL_INVALID_MODEL, "input has %d dims, not 4", x->ndim);
    if (x->dims[1] % bb != 0)
        return OP_ERR(g, n, QCAL_INVALID_MODEL, "%" PRId64 " channels do not split into %" PRId64 "x%" PRId64
                      " blocks", x->dims[1], p->block, p->block);
    const int64_t dims[4] = {x->dims[0], x->dims[1] / bb, x->dims[2] * p->block, x->dims[3] * p->block};
    op_set_output(g, n, 0, x->dtype, 4, dims);
    return QCAL_OK;
}

/* One strided copy over y viewed as [N, C, H, b1, W, b2], in either layout. */
static enum qcal_status depth_to_space_run(const void *state, const struct qcal_op_args *a)
{
    const struct depth_to_space_params *p = state;
    const struct qcal_tensor *x = a->in[0], *y = a->out[0];
    const int64_t b = p->block, c = y->dims[1];
    int64_t xs[QCAL_MAX_DIMS] = {0}, ys[QCAL_MAX_DIMS] = {0};
    op_strides(x, op_in_layout(a, 0), xs);
    op_strides(y, op_out_layout(a, 0), ys);
    const int64_t dims[6] = {y->dims[0], c, x->dims[2], b, x->dims[3], b};
    const int64_t dst[6] = {ys[0], ys[1], ys[2] * b, ys[2], ys[3] * b, ys[3]};
    int64_t src[6] = {xs[0], xs[1] * b * b, xs[2], xs[1] * b, xs[3], xs[1]};
    if (!p->crd) src[1] = xs[1], src[3] = xs[1] * b * c, src[5] = xs[1] * c;
    qcal_copy_strided(6, dims, qcal_dtype_size(x->dtype), x->data, src, y->data, dst);
    return QCAL_OK;
}

const struct qcal_op_def qcal_op_depth_to_space_def = {
    .name = "DepthToSpace", .parse = depth_to_space_parse, .infer = depth_to_space_infer,
    .layout = follow_layout, .prepare = params_state, .run = depth_to_space_run, .any_out_layout = true,
};

/* ---- Slice ---- */

struct slice_params {
    int64_t start[QCAL_MAX_DIMS], step[QCAL_MAX_DIMS];
};

static enum qcal_status slice_parse(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = parse_plain(g, n, n->opset >= 10 ? 3 : 1, 5);
    if (st == QCAL_OK) st = op_alloc_params(g, n, sizeof(struct slice_params));
    return st;
}

static enum qcal_status slice_infer(struct qcal_graph *g, struct qcal_node *n)
{
    struct slice_params *p = n->params;
    enum qcal_status st = op_require_inputs(g, n, 1);
    if (st != QCAL_OK) return st;
    const struct qcal_tensor *x = &qcal_in(g, n, 0)->t;
    int64_t starts[QCAL_MAX_DIMS], ends[QCAL_MAX_DIMS], axes[QCAL_MAX_DIMS], steps[QCAL_MAX_DIMS];
    int ns, ne, na = -1, nst = -1;
    if (n->opset < 10) {
        ns = qcal_node_attr_ints(n, "starts", starts, QCAL_MAX_DIMS);
        ne = qcal_node_attr_ints(n, "ends", ends, QCAL_MAX_DIMS);
        na = qcal_node_attr_ints(n, "axes", axes, QCAL_MAX_DIMS);
    } else {
        if ((st = op_const_ints(g, n, 1, starts, QCAL_MAX_DIMS, &ns)) != QCAL_OK) return st;
        if ((st = op_const_ints(g, n, 2, ends, QCAL_MAX_DIMS, &ne)) != QCAL_OK) return st;
        if (qcal_in(g, n, 3) && (st = op_const_ints(g, n, 3, axes, QCAL_MAX_DIMS, &na)) != QCAL_OK)
            return st;
        if (qcal_in(g, n, 4) && (st = op_const_ints(g, n, 4, steps, QCAL_MAX_DIMS, &nst)) != QCAL_OK)
            return st;
    }
    if (ns < 0 || ns != ne || (na >= 0 && na != ns) || (nst >= 0 && nst != ns))
        return OP_ERR(g, n, QCAL_INVALID_MODEL, "starts, ends, axes and steps differ in length");
    int64_t dims[QCAL_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) {
        p->start[i] = 0;
        p->step[i] = 1;
        dims[i] = x->dims[i];
    }
    for (int i = 0; i < ns; i++) {
        int a;
        if ((st = op_axis(g, n, na >= 0 ? axes[i] : i, x->ndim, &a)) != QCAL_OK) return st;
        int64_t dim = x->dims[a], step = nst >= 0 ? steps[i] : 1, s = starts[i], e = ends[i];
        if (step == 0) return OP_ERR(g, n, QCAL_INVALID_MODEL, "step is 0");
        if (s < 0) s += dim;
        if (e < 0) e += dim;
        if (step > 0) {
            s = s < 0 ? 0 : s > dim ? dim : s;
            e = e < 0 ? 0 : e > dim ? dim : e;
            dims[a] = e > s ? (e - s + step - 1) / step : 0;
        } else {
            s = s < 0 ? -1 : s > dim - 1 ? dim - 1 : s;
            e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
            dims[a] = s > e ? (s - e - step - 1) / -step : 0;
        }
        p->start[a] = s;
        p->step[a] = step;
    }
    op_set_output(g, n, 0, x->dtype, x->ndim, dims);
    return QCAL_OK;
}

static enum qcal_status slice_run(const void *state, const struct qcal_op_args *a)
{
    const struct slice_params *p = state;
    const struct qcal_tensor *x = a->in[0], *y = a->out[0];
    int64_t xs[QCAL_MAX_DIMS], ys[QCAL_MAX_DIMS], ss[QCAL_MAX_DIMS], off = 0;
    op_strides(x, QCAL_LAYOUT_PLAIN, xs);
    op_strides(y, QCAL_LAYOUT_PLAIN, ys);
    for (int i = 0; i < x->ndim; i++) {
        ss[i] = xs[i] * p->step[i];
        off += p->start[i] * xs[i];
    }
    size_t es = qcal_dtype_size(x->dtype);
    if (qcal_tensor_numel(y) == 0) return QCAL_OK;
    qcal_copy_strided(y->ndim, y->dims, es, (const char *)x->data + (size_t)off * es, ss, y->data, ys);
    return QCAL_OK;
}

const struct qcal_op_def qcal_op_slice_def = {
    .name = "Slice", .parse = slice_parse, .infer = slice_infer, .layout = plain_layout,
    .prepare = params_state, .run = slice_run,
};

/* ---- Gather ---- */

struct gather_params {
    int axis;
};

static enum qcal_status gather_parse(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = parse_plain(g, n, 2, 2);
    if (st == QCAL_OK) st = op_alloc_params(g, n, sizeof(struct gather_params));
    return st;
}

static enum qcal_status gather_infer(struct qcal_graph *g, struct qcal_node *n)
{
    struct gather_params *p = n->params;
    enum qcal_status st = op_require_inputs(g, n, 2);
    if (st != QCAL_OK) return st;
    const struct qcal_tensor *x = &qcal_in(g, n, 0)->t, *idx = &qcal_in(g, n, 1)->t;
    if (idx->dtype != QCAL_I64 && idx->dtype != QCAL_I32)
        return OP_ERR(g, n, QCAL_INVALID_MODEL, "indices must be int32 or int64");
    if ((st = op_axis(g, n, qcal_node_attr_int(n, "axis", 0), x->ndim, &p->axis)) != QCAL_OK)
        return st;
    int nd = x->ndim - 1 + idx->ndim;
    if (nd > QCAL_MAX_DIMS) return OP_ERR(g, n, QCAL_UNSUPPORTED, "output has %d dims", nd);
    int64_t dims[QCAL_MAX_DIMS];
    int k = 0;
    for (int i = 0; i < p->axis; i++) dims[k++] = x->dims[i];
    for (int i = 0; i < idx->ndim; i++) dims[k++] = idx->dims[i];
    for (int i = p->axis + 1; i < x->ndim; i++) dims[k++] = x->dims[i];
    op_set_output(g, n, 0, x->dtype, nd, dims);
    return QCAL_OK;
}

static enum qcal_status gather_run(const void *state, const struct qcal_op_args *a)
{
    const struct gather_params *p = state;
    const struct qcal_tensor *x = a->in[0], *idx = a->in[1];
    int64_t outer = 1, inner = 1, len = x->dims[p->axis], ni = qcal_tensor_numel(idx);
    for (int i = 0; i < p->axis; i++) outer *= x->dims[i];
    for (int i = p->axis + 1; i < x->ndim; i++) inner *= x->dims[i];
    size_t es = qcal_dtype_size(x->dtype), row = (size_t)inner * es;
    const char *xd = x->data;
    char *yd = a->out[0]->data;
    for (int64_t j = 0; j < ni; j++) {
        int64_t k = idx->dtype == QCAL_I64 ? ((const int64_t *)idx->data)[j]
                                           : ((const int32_t *)idx->data)[j];
        if (k < -len || k >= len)
            return QCAL_ERR(QCAL_INVALID_DATA, "Gather: index %lld is out of range [%lld, %lld)",
                            (long long)k, (long long)-len, (long long)len);
        if (k < 0) k += len;
        for (int64_t o = 0; o < outer; o++)
            memcpy(yd + ((size_t)(o * ni + j)) * row, xd + ((size_t)(o * len + k)) * row, row);
    }
    return QCAL_OK;
}

const struct qcal_op_def qcal_op_gather_def = {
    .name = "Gather", .parse = gather_parse, .infer = gather_infer, .layout = plain_layout,
    .prepare = params_state, .run = gather_run,
};

/* ---- Shape: shapes are static after binding, so the output is a constant ---- */

static enum qcal_status shape_parse(struct qcal_graph *g, struct qcal_node *n)
{
    return parse_plain(g, n, 1, 1);
}

static enum qcal_status shape_infer(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = op_require_inputs(g, n, 1);
    if (st != QCAL_OK) return st;
    const struct qcal_tensor *x = &qcal_in(g, n, 0)->t;
    int64_t start = qcal_node_attr_int(n, "start", 0), end = qcal_node_attr_int(n, "end", x->ndim);
    if (start < 0) start += x->ndim;
    if (end < 0) end += x->ndim;
    start = start < 0 ? 0 : start > x->ndim ? x->ndim : start;
    end = end < 0 ? 0 : end > x->ndim ? x->ndim : end;
    int64_t count = end > start ? end - start : 0;
    int64_t *data = qcal_malloc(sizeof(int64_t) * (size_t)(count + 1));
    if (!data) return OP_ERR(g, n, QCAL_OUT_OF_MEMORY, "out of memory");
    for (int64_t i = 0; i < count; i++) data[i] = x->dims[start + i];
    qcal_graph_set_constant(g, n->outputs[0], qcal_tensor_make(QCAL_I64, 1, &count), data);
    return QCAL_OK;
}

static enum qcal_status shape_run(const void *state, const struct qcal_op_args *a)
{
    (void)state, (void)a;
    return QCAL_OK; /* never planned: infer made the output a constant */
}

const struct qcal_op_def qcal_op_shape_def = {
    .name = "Shape", .parse = shape_parse, .infer = shape_infer, .layout = plain_layout,
    .prepare = no_state, .run = shape_run,
};

/* ---- Cast ---- */

struct cast_params {
    int32_t to;
};

static enum qcal_status cast_parse(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = parse_plain(g, n, 1, 1);
    if (st != QCAL_OK || (st = op_alloc_params(g, n, sizeof(struct cast_params))) != QCAL_OK) return st;
    struct cast_params *p = n->params;
    p->to = (int32_t)qcal_node_attr_int(n, "to", 0);
    switch (p->to) {
    case QCAL_F32: case QCAL_F64: case QCAL_I64: case QCAL_I32: case QCAL_I8: case QCAL_U8:
    case QCAL_BOOL: return QCAL_OK;
    default:
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "cast to %s is not supported", qcal_dtype_name(p->to));
    }
}

static enum qcal_status cast_infer(struct qcal_graph *g, struct qcal_node *n)
{
    const struct cast_params *p = n->params;
    enum qcal_status st = op_require_inputs(g, n, 1);
    if (st != QCAL_OK) return st;
    const struct qcal_tensor *x = &qcal_in(g, n, 0)->t;
    switch (x->dtype) {
    case QCAL_F32: case QCAL_F64: case QCAL_I64: case QCAL_I32: case QCAL_I8: case QCAL_U8:
    case QCAL_BOOL: break;
    default:
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "cast from %s is not supported", qcal_dtype_name(x->dtype));
    }
    op_set_output(g, n, 0, p->to, x->ndim, x->dims);
    return QCAL_OK;
}

static double load_as_double(const void *p, int32_t dt, int64_t i)
{
    switch (dt) {
    case QCAL_F32: return ((const float *)p)[i];
    case QCAL_F64: return ((const double *)p)[i];
    case QCAL_I64: return (double)((const int64_t *)p)[i];
    case QCAL_I32: return ((const int32_t *)p)[i];
    case QCAL_I8: return ((const int8_t *)p)[i];
    default: return ((const uint8_t *)p)[i];
    }
}

static enum qcal_status cast_run(const void *state, const struct qcal_op_args *a)
{
    (void)state;
    const struct qcal_tensor *x = a->in[0], *y = a->out[0];
    int64_t count = qcal_tensor_numel(x);
    if (x->dtype == y->dtype) {
        memcpy(y->data, x->data, qcal_tensor_bytes(x));
        return QCAL_OK;
    }
    for (int64_t i = 0; i < count; i++) {
        /* int64 -> int64 paths avoid the double round trip above; the rest is exact enough */
        double v = load_as_double(x->data, x->dtype, i);
        switch (y->dtype) {
        case QCAL_F32: ((float *)y->data)[i] = (float)v; break;
        case QCAL_F64: ((double *)y->data)[i] = v; break;
        case QCAL_I64:
            ((int64_t *)y->data)[i] = x->dtype == QCAL_I32 ? ((const int32_t *)x->data)[i] : (int64_t)v;
            break;
        case QCAL_I32: ((int32_t *)y->data)[i] = (int32_t)v; break;
        case QCAL_I8: ((int8_t *)y->data)[i] = (int8_t)v; break;
        case QCAL_U8: ((uint8_t *)y->data)[i] = (uint8_t)v; break;
        case QCAL_BOOL: ((uint8_t *)y->data)[i] = v != 0.0; break;
        default: break;
        }
    }
    return QCAL_OK;
}

const struct qcal_op_def qcal_op_cast_def = {
    .name = "Cast", .parse = cast_parse, .infer = cast_infer, .layout = plain_layout,
    .prepare = no_state, .run = cast_run,
};

/* ---- Pad ---- */

enum { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE };

struct pad_params {
    int mode;
    float value;
    int64_t begin[QCAL_MAX_DIMS], end[QCAL_MAX_DIMS];
};

static enum qcal_status pad_parse(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = parse_plain(g, n, n->opset >= 11 ? 2 : 1, 4);
    if (st != QCAL_OK || (st = op_alloc_params(g, n, sizeof(struct pad_params))) != QCAL_OK) return st;
    struct pad_params *p = n->params;
    const char *mode = qcal_node_attr_string(n, "mode", "constant");
    if (strcmp(mode, "constant") == 0) p->mode = PAD_CONSTANT;
    else if (strcmp(mode, "reflect") == 0) p->mode = PAD_REFLECT;
    else if (strcmp(mode, "edge") == 0) p->mode = PAD_EDGE;
    else return OP_ERR(g, n, QCAL_UNSUPPORTED, "mode '%s' is not supported", mode);
    p->value = qcal_node_attr_float(n, "value", 0.0f);
    return QCAL_OK;
}

static enum qcal_status pad_infer(struct qcal_graph *g, struct qcal_node *n)
{
    struct pad_params *p = n->params;
    enum qcal_status st = op_require_inputs(g, n, 1);
    if (st != QCAL_OK) return st;
    const struct qcal_tensor *x = &qcal_in(g, n, 0)->t;
    if (x->dtype != QCAL_F32) return OP_ERR(g, n, QCAL_UNSUPPORTED, "input must be float32");
    int64_t pads[2 * QCAL_MAX_DIMS], axes[QCAL_MAX_DIMS];
    int c, na = -1;
    if (n->opset < 11) {
        c = qcal_node_attr_ints(n, "pads", pads, 2 * QCAL_MAX_DIMS);
    } else {
        if ((st = op_const_ints(g, n, 1, pads, 2 * QCAL_MAX_DIMS, &c)) != QCAL_OK) return st;
        if (qcal_in(g, n, 2)) {
            int k;
            if ((st = op_const_floats(g, n, 2, &p->value, 1, &k)) != QCAL_OK) return st;
        }
        if (qcal_in(g, n, 3) && (st = op_const_ints(g, n, 3, axes, QCAL_MAX_DIMS, &na)) != QCAL_OK)
            return st;
    }
    int count = na >= 0 ? na : x->ndim;
    if (c != 2 * count) return OP_ERR(g, n, QCAL_INVALID_MODEL, "pads has %d values, need %d", c, 2 * count);
    memset(p->begin, 0, sizeof p->begin);
    memset(p->end, 0, sizeof p->end);
    for (int i = 0; i < count; i++) {
        int a = i;
        if (na >= 0 && (st = op_axis(g, n, axes[i], x->ndim, &a)) != QCAL_OK) return st;
        p->begin[a] = pads[i];
        p->end[a] = pads[i + count];
    }
    int64_t dims[QCAL_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) {
        dims[i] = x->dims[i] + p->begin[i] + p->end[i];
        if (dims[i] < 0 || (p->mode == PAD_REFLECT && (p->begin[i] >= x->dims[i] || p->end[i] >= x->dims[i])))
            return OP_ERR(g, n, QCAL_INVALID_MODEL, "pads do not fit axis %d", i);
        if (p->begin[i] < 0 || p->end[i] < 0)
            return OP_ERR(g, n, QCAL_UNSUPPORTED, "negative pads are not supported");
    }
    op_set_output(g, n, 0, QCAL_F32, x->ndim, dims);
    return QCAL_OK;
}

static enum qcal_status pad_run(const void *state, const struct qcal_op_args *a)
{
    const struct pad_params *p = state;
    const struct qcal_tensor *x = a->in[0], *y = a->out[0];
    const float *xd = x->data;
    float *yd = y->data;
    int64_t xs[QCAL_MAX_DIMS], count = qcal_tensor_numel(y), idx[QCAL_MAX_DIMS] = {0};
    op_strides(x, QCAL_LAYOUT_PLAIN, xs);
    for (int64_t e = 0; e < count; e++) {
        int64_t off = 0;
        bool outside = false;
        for (int d = 0; d < y->ndim; d++) {
            int64_t i = idx[d] - p->begin[d], len = x->dims[d];
            if (i < 0 || i >= len) {
                if (p->mode == PAD_CONSTANT) outside = true;
                else if (p->mode == PAD_EDGE) i = i < 0 ? 0 : len - 1;
                else i = i < 0 ? -i : 2 * (len - 1) - i;
            }
            off += i * xs[d];
        }
        yd[e] = outside ? p->value : xd[off];
        for (int d = y->ndim - 1; d >= 0; d--) {
            if (++idx[d] < y->dims[d]) break;
            idx[d] = 0;
        }
    }
    return QCAL_OK;
}

const struct qcal_op_def qcal_op_pad_def = {
    .name = "Pad", .parse = pad_parse, .infer = pad_infer, .layout = plain_layout,
    .prepare = params_state, .run = pad_run,
};

/* ---- Concat (any layout: copies through strides) ---- */

struct axis_only {
    int axis;
    int64_t split[QCAL_OP_MAX_IO];
};

static enum qcal_status concat_parse(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = op_check_arity(g, n, 1, QCAL_OP_MAX_IO, 1, 1);
    if (st == QCAL_OK) st = op_alloc_params(g, n, sizeof(struct axis_only));
    return st;
}

static enum qcal_status concat_infer(struct qcal_graph *g, struct qcal_node *n)
{
    struct axis_only *p = n->params;
    enum qcal_status st = op_require_inputs(g, n, n->n_inputs);
    if (st != QCAL_OK) return st;
    const struct qcal_tensor *x0 = &qcal_in(g, n, 0)->t;
    if (!qcal_node_attr(n, "axis")) return OP_ERR(g, n, QCAL_INVALID_MODEL, "attribute axis is missing");
    if ((st = op_axis(g, n, qcal_node_attr_int(n, "axis", 0), x0->ndim, &p->axis)) != QCAL_OK)
        return st;
    int64_t dims[QCAL_MAX_DIMS];
    memcpy(dims, x0->dims, sizeof dims);
    dims[p->axis] = 0;
    for (int i = 0; i < n->n_inputs; i++) {
        const struct qcal_tensor *x = &qcal_in(g, n, i)->t;
        bool ok = x->ndim == x0->ndim && x->dtype == x0->dtype;
        for (int d = 0; ok && d < x->ndim; d++) ok = d == p->axis || x->dims[d] == x0->dims[d];
        if (!ok) {
            char s0[96], s1[96];
            return OP_ERR(g, n, QCAL_INVALID_MODEL, "input %d (%s %s) does not match input 0 (%s %s)",
                          i, qcal_dtype_name(x->dtype), qcal_shape_str(x, s1, sizeof s1),
                          qcal_dtype_name(x0->dtype), qcal_shape_str(x0, s0, sizeof s0));
        }
        dims[p->axis] += x->dims[p->axis];
    }
    op_set_output(g, n, 0, x0->dtype, x0->ndim, dims);
    return QCAL_OK;
}

static int concat_layout(const struct qcal_graph *g, const struct qcal_node *n, int kernels)
{
    (void)kernels;
    const struct qcal_value *x = &g->values[n->inputs[0]];
    return x->t.ndim == 4 ? -1 : QCAL_LAYOUT_PLAIN;
}

static enum qcal_status concat_run(const void *state, const struct qcal_op_args *a)
{
    const struct axis_only *p = state;
    const struct qcal_tensor *y = a->out[0];
    int64_t ys[QCAL_MAX_DIMS], xs[QCAL_MAX_DIMS], at = 0;
    op_strides(y, op_out_layout(a, 0), ys);
    size_t es = qcal_dtype_size(y->dtype);
    for (int i = 0; i < a->n_in; i++) {
        const struct qcal_tensor *x = a->in[i];
        op_strides(x, op_in_layout(a, i), xs);
        qcal_copy_strided(x->ndim, x->dims, es, x->data, xs,
                          (char *)y->data + (size_t)(at * ys[p->axis]) * es, ys);
        at += x->dims[p->axis];
    }
    return QCAL_OK;
}

const struct qcal_op_def qcal_op_concat_def = {
    .name = "Concat", .parse = concat_parse, .infer = concat_infer, .layout = concat_layout,
    .prepare = params_state, .run = concat_run,
};

/* ---- Split ---- */

static enum qcal_status split_parse(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = op_check_arity(g, n, 1, 2, 1, QCAL_OP_MAX_IO);
    if (st == QCAL_OK) st = op_alloc_params(g, n, sizeof(struct axis_only));
    return st;
}

static enum qcal_status split_infer(struct qcal_graph *g, struct qcal_node *n)
{
    struct axis_only *p = n->params;
    enum qcal_status st = op_require_inputs(g, n, 1);
    if (st != QCAL_OK) return st;
    const struct qcal_tensor *x = &qcal_in(g, n, 0)->t;
    if ((st = op_axis(g, n, qcal_node_attr_int(n, "axis", 0), x->ndim, &p->axis)) != QCAL_OK)
        return st;
    int c = qcal_node_attr_ints(n, "split", p->split, QCAL_OP_MAX_IO);
    if (qcal_in(g, n, 1) && (st = op_const_ints(g, n, 1, p->split, QCAL_OP_MAX_IO, &c)) != QCAL_OK)
        return st;
    int64_t len = x->dims[p->axis], sum = 0;
    if (c < 0) {
        int64_t each = (len + n->n_outputs - 1) / n->n_outputs;
        for (int i = 0; i < n->n_outputs; i++) {
            p->split[i] = len - sum < each ? len - sum : each;
            sum += p->split[i];
        }
        c = n->n_outputs;
    }
    if (c != n->n_outputs) return OP_ERR(g, n, QCAL_INVALID_MODEL, "split has %d values for %d outputs", c, n->n_outputs);
    sum = 0;
    for (int i = 0; i < c; i++) {
        if (p->split[i] < 0) return OP_ERR(g, n, QCAL_INVALID_MODEL, "negative split");
        sum += p->split[i];
    }
    if (sum != len)
        return OP_ERR(g, n, QCAL_INVALID_MODEL, "split sums to %lld, axis has %lld", (long long)sum, (long long)len);
    for (int i = 0; i < c; i++) {
        int64_t dims[QCAL_MAX_DIMS];
        memcpy(dims, x->dims, sizeof dims);
        dims[p->axis] = p->split[i];
        op_set_output(g, n, i, x->dtype, x->ndim, dims);
    }
    return QCAL_OK;
}

static enum qcal_status split_run(const void *state, const struct qcal_op_args *a)
{
    const struct axis_only *p = state;
    const struct qcal_tensor *x = a->in[0];
    int64_t xs[QCAL_MAX_DIMS], ys[QCAL_MAX_DIMS], at = 0;
    op_strides(x, QCAL_LAYOUT_PLAIN, xs);
    size_t es = qcal_dtype_size(x->dtype);
    for (int i = 0; i < a->n_out; i++) {
        struct qcal_tensor *y = a->out[i];
        if (y) {
            op_strides(y, QCAL_LAYOUT_PLAIN, ys);
            qcal_copy_strided(y->ndim, y->dims, es, (const char *)x->data + (size_t)(at * xs[p->axis]) * es,
                              xs, y->data, ys);
        }
        at += p->split[i];
    }
    return QCAL_OK;
}

const struct qcal_op_def qcal_op_split_def = {
    .name = "Split", .parse = split_parse, .infer = split_infer, .layout = plain_layout,
    .prepare = params_state, .run = split_run,
};

/* ---- BatchNormalization (inference form): y = x * a[c] + b[c] ---- */

struct bn_state {
    int64_t c;
    float *ab; /* a[c], then b[c] */
};

static enum qcal_status batchnorm_parse(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = op_check_arity(g, n, 5, 5, 1, 1);
    if (st != QCAL_OK) return st;
    if (qcal_node_attr_int(n, "training_mode", 0))
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "training mode is not supported");
    return QCAL_OK;
}

static enum qcal_status batchnorm_infer(struct qcal_graph *g, struct qcal_node *n)
{
    enum qcal_status st = op_require_inputs(g, n, 5);
    if (st != QCAL_OK) return st;
    const struct qcal_tensor *x = &qcal_in(g, n, 0)->t;
    if (x->ndim < 2 || x->dtype != QCAL_F32)
        return OP_ERR(g, n, QCAL_UNSUPPORTED, "input must be float32 with at least 2 dims");
    for (int i = 1; i < 5; i++) {
        const struct qcal_value *v = qcal_in(g, n, i);
        if (qcal_tensor_numel(&v->t) != x->dims[1] || v->t.dtype != QCAL_F32)
            return OP_ERR(g, n, QCAL_INVALID_MODEL, "'%s' needs %lld float values", v->name,
                          (long long)x->dims[1]);
    }
    op_set_output(g, n, 0, QCAL_F32, x->ndim, x->dims);
    return QCAL_OK;
}

static void bn_destroy(void *state)
{
    struct bn_state *s = state;
    if (!s) return;
    qcal_free(s->ab);
    free(s);
}

static enum qcal_status batchnorm_prepare(struct qcal_op_prep *pp)
{
    struct qcal_graph *g = pp->g;
    struct qcal_node *n = pp->node;
    for (int i = 1; i < 5; i++)
        if (!qcal_value_is_const(qcal_in(g, n, i)))
            return OP_ERR(g, n, QCAL_UNSUPPORTED, "scale, bias, mean and var must be constant");
    struct bn_state *s = calloc(1, sizeof *s);
    if (!s) return OP_ERR(g, n, QCAL_OUT_OF_MEMORY, "out of memory");
    pp->state = s;
    s->c = qcal_in(g, n, 0)->t.dims[1];
    s->ab = qcal_malloc(2 * sizeof(float) * (size_t)s->c);
    if (!s->ab) return OP_ERR(g, n, QCAL_OUT_OF_MEMORY, "out of memory");
    qcal_batchnorm_coefficients(qcal_in(g, n, 1)->t.data, qcal_in(g, n, 2)->t.data,
                                qcal_in(g, n, 3)->t.data, qcal_in(g, n, 4)->t.data,
                                qcal_node_attr_float(n, "epsilon", 1e-5f), s->c, s->ab, s->ab + s->c);
    pp->impl = "ref";
    return QCAL_OK;
}

static enum qcal_status batchnorm_run(const void *state, const struct qcal_op_args *args)
{
    const struct bn_state *s = state;
    const struct qcal_tensor *x = args->in[0];
    const float *xd = x->data, *a = s->ab, *b = s->ab + s->c;
    float *y = args->out[0]->data;
    int64_t n = x->dims[0], c = s->c, plane = qcal_tensor_numel(x) / (n * c);
    if (op_in_layout(args, 0) == QCAL_LAYOUT_NHWC) {
        for (int64_t i = 0; i < n * plane; i++)
            for (int64_t k = 0; k < c; k++) y[i * c + k] = xd[i * c + k] * a[k] + b[k];
    } else {
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < c; k++) {
                const float *xp = xd + (i * c + k) * plane;
                float *yp = y + (i * c + k) * plane;
                for (int64_t j = 0; j < plane; j++) yp[j] = xp[j] * a[k] + b[k];
            }
    }
    return QCAL_OK;
}

const struct qcal_op_def qcal_op_batchnorm_def = {
    .name = "BatchNormalization", .parse = batchnorm_parse, .infer = batchnorm_infer,
    .layout = follow_layout, .prepare = batchnorm_prepare, .run = batchnorm_run,
    .destroy = bn_destroy,
};
