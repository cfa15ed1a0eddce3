#include "qcal/onnx.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"

struct load_ctx {
    struct qcal_graph *g;
    const char *path;
    char dir[PATH_MAX];      /* model folder, for external data */
    char dir_real[PATH_MAX]; /* its canonical form */
};

/* Reads `length` bytes at `offset` of an external data file, refusing any location that
 * resolves outside the model's folder (absolute paths, "..", symlinks out). */
static enum qcal_status read_external(struct load_ctx *c, const Onnx__TensorProto *tp,
                                      void *dst, size_t want)
{
    const char *location = NULL;
    long long offset = 0, length = -1;
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = tp->external_data[i];
        if (!e->key || !e->value) continue;
        if (strcmp(e->key, "location") == 0) location = e->value;
        else if (strcmp(e->key, "offset") == 0) offset = strtoll(e->value, NULL, 10);
        else if (strcmp(e->key, "length") == 0) length = strtoll(e->value, NULL, 10);
    }
    if (!location || !*location)
        return QCAL_ERR(QCAL_INVALID_MODEL, "%s: initializer '%s': external data without location",
                        c->path, tp->name);
    if (location[0] == '/')
        return QCAL_ERR(QCAL_INVALID_MODEL,
                        "%s: initializer '%s': external data location '%s' is absolute; it must "
                        "be inside the model's folder", c->path, tp->name, location);
    char full[PATH_MAX * 2], real[PATH_MAX];
    snprintf(full, sizeof full, "%s/%s", c->dir, location);
    if (!realpath(full, real))
        return QCAL_ERR(QCAL_IO_ERROR, "%s: initializer '%s': external data file '%s': %s",
                        c->path, tp->name, full, strerror(errno));
    size_t dl = strlen(c->dir_real);
    if (strncmp(real, c->dir_real, dl) != 0 || (real[dl] != '/' && strcmp(c->dir_real, "/") != 0))
        return QCAL_ERR(QCAL_INVALID_MODEL,
                        "%s: initializer '%s': external data location '%s' escapes the model's "
                        "folder", c->path, tp->name, location);
    if (offset < 0 || (length >= 0 && (size_t)length != want))
        return QCAL_ERR(QCAL_INVALID_MODEL,
                        "%s: initializer '%s': external data length %lld, expected %zu bytes",
                        c->path, tp->name, length, want);
    FILE *f = fopen(real, "rb");
    if (!f)
        return QCAL_ERR(QCAL_IO_ERROR, "%s: initializer '%s': cannot open '%s': %s", c->path,
                        tp->name, real, strerror(errno));
    size_t got = 0;
    if (fseeko(f, (off_t)offset, SEEK_SET) == 0) got = fread(dst, 1, want, f);
    fclose(f);
    if (got != want)
        return QCAL_ERR(QCAL_INVALID_MODEL,
                        "%s: initializer '%s': external file '%s' holds %zu of the %zu bytes at "
                        "offset %lld", c->path, tp->name, location, got, want, offset);
    return QCAL_OK;
}

/* TensorProto -> qcal tensor with data owned by the caller (qcal_malloc). */
static enum qcal_status tensor_from_proto(struct load_ctx *c, const Onnx__TensorProto *tp,
                                          const char *what, struct qcal_tensor *out)
{
    const char *name = tp->name && *tp->name ? tp->name : what;
    memset(out, 0, sizeof *out);
    if (tp->n_dims > QCAL_MAX_DIMS)
        return QCAL_ERR(QCAL_UNSUPPORTED, "%s: tensor '%s' has %zu dims (max %d)", c->path, name,
                        tp->n_dims, QCAL_MAX_DIMS);
    out->dtype = tp->data_type;
    out->ndim = (int)tp->n_dims;
    int64_t numel = 1;
    for (size_t i = 0; i < tp->n_dims; i++) {
        if (tp->dims[i] < 0 || (tp->dims[i] > 0 && numel > INT64_MAX / 16 / tp->dims[i]))
            return QCAL_ERR(QCAL_INVALID_MODEL, "%s: tensor '%s' has invalid dim %lld", c->path,
                            name, (long long)tp->dims[i]);
        out->dims[i] = tp->dims[i];
        numel *= tp->dims[i];
    }
    size_t esize = qcal_dtype_size(out->dtype);
    if (esize == 0)
        return QCAL_ERR(QCAL_UNSUPPORTED, "%s: tensor '%s' has unsupported data type %s (%d)",
                        c->path, name, qcal_dtype_name(out->dtype), out->dtype);
    size_t bytes = (size_t)numel * esize;
    uint8_t *data = qcal_malloc(bytes);
    if (!data)
        return QCAL_ERR(QCAL_OUT_OF_MEMORY, "%s: tensor '%s': cannot allocate %zu bytes", c->path,
                        name, bytes);
    enum qcal_status st = QCAL_OK;
    size_t have;
    if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        st = read_external(c, tp, data, bytes);
    } else if (tp->has_raw_data) {
        if (tp->raw_data.len != bytes)
            st = QCAL_ERR(QCAL_INVALID_MODEL, "%s: tensor '%s' has %zu bytes of data, shape %s "
                          "needs %zu", c->path, name, tp->raw_data.len,
                          qcal_shape_str(out, (char[96]){0}, 96), bytes);
        else if (bytes)
            memcpy(data, tp->raw_data.data, bytes);
    } else {
        switch (out->dtype) {
        case QCAL_F32:
            have = tp->n_float_data;
            if (have == (size_t)numel && bytes) memcpy(data, tp->float_data, bytes);
            break;
        case QCAL_I64:
            have = tp->n_int64_data;
            if (have == (size_t)numel && bytes) memcpy(data, tp->int64_data, bytes);
            break;
        case QCAL_F64:
            have = tp->n_double_data;
            if (have == (size_t)numel && bytes) memcpy(data, tp->double_data, bytes);
            break;
        case QCAL_I32:
            have = tp->n_int32_data;
            if (have == (size_t)numel && bytes) memcpy(data, tp->int32_data, bytes);
            break;
        case QCAL_U64: case QCAL_U32:
            have = tp->n_uint64_data;
            for (size_t i = 0; have == (size_t)numel && i < have; i++) {
                if (esize == 8) ((uint64_t *)data)[i] = tp->uint64_data[i];
                else ((uint32_t *)data)[i] = (uint32_t)tp->uint64_data[i];
            }
            break;
        case QCAL_I8: case QCAL_U8: case QCAL_BOOL: case QCAL_I16: case QCAL_U16: case QCAL_F16:
        case QCAL_BF16:
            have = tp->n_int32_data;
            for (size_t i = 0; have == (size_t)numel && i < have; i++) {
                if (esize == 1) data[i] = (uint8_t)tp->int32_data[i];
                else ((uint16_t *)data)[i] = (uint16_t)tp->int32_data[i];
            }
            break;
        default:
            have = 0;
            break;
        }
        if (have != (size_t)numel)
            st = QCAL_ERR(QCAL_INVALID_MODEL,
                          "%s: tensor '%s' has %zu values, shape %s needs %lld", c->path, name,
                          have, qcal_shape_str(out, (char[96]){0}, 96), (long long)numel);
    }
    if (st != QCAL_OK) {
        qcal_free(data);
        return st;
    }
    out->data = data;
    return QCAL_OK;
}

static enum qcal_status add_constant(struct load_ctx *c, const char *name,
                                     const Onnx__TensorProto *tp, const char *what)
{
    /* A node listed earlier may already name it (files are not always sorted); it must not
     * have another definition. */
    int v = qcal_graph_find_value(c->g, name);
    enum qcal_status st;
    if (v >= 0) {
        const struct qcal_value *old = &c->g->values[v];
        if (old->producer >= 0 || old->is_input || qcal_value_is_const(old))
            return QCAL_ERR(QCAL_INVALID_MODEL, "%s: tensor '%s' is defined twice", c->path, name);
    } else if ((st = qcal_graph_add_value(c->g, name, &v)) != QCAL_OK) {
        return st;
    }
    struct qcal_tensor t;
    st = tensor_from_proto(c, tp, what, &t);
    if (st != QCAL_OK) return st;
    qcal_graph_set_constant(c->g, v, t, t.data);
    c->g->values[v].is_initializer = true;
    return QCAL_OK;
}

/* Constant node -> constant value. Handles value (tensor) and the scalar/list forms. */
static enum qcal_status add_constant_node(struct load_ctx *c, const Onnx__NodeProto *np,
                                          const char *node_name)
{
    if (np->n_output != 1 || np->n_attribute != 1)
        return QCAL_ERR(QCAL_INVALID_MODEL, "%s: node '%s' (Constant): needs 1 output and 1 "
                        "attribute, has %zu and %zu", c->path, node_name, np->n_output,
                        np->n_attribute);
    const Onnx__AttributeProto *a = np->attribute[0];
    if (a->t && strcmp(a->name, "value") == 0) return add_constant(c, np->output[0], a->t, node_name);
    Onnx__TensorProto tp = ONNX__TENSOR_PROTO__INIT;
    int64_t one = 1;
    if (strcmp(a->name, "value_float") == 0) {
        tp.data_type = QCAL_F32;
        tp.n_float_data = 1;
        tp.float_data = (float *)&a->f;
    } else if (strcmp(a->name, "value_int") == 0) {
        tp.data_type = QCAL_I64;
        tp.n_int64_data = 1;
        tp.int64_data = (int64_t *)&a->i;
    } else if (strcmp(a->name, "value_floats") == 0) {
        tp.data_type = QCAL_F32;
        tp.n_dims = 1;
        one = (int64_t)a->n_floats;
        tp.dims = &one;
        tp.n_float_data = a->n_floats;
        tp.float_data = a->floats;
    } else if (strcmp(a->name, "value_ints") == 0) {
        tp.data_type = QCAL_I64;
        tp.n_dims = 1;
        one = (int64_t)a->n_ints;
        tp.dims = &one;
        tp.n_int64_data = a->n_ints;
        tp.int64_data = a->ints;
    } else {
        return QCAL_ERR(QCAL_UNSUPPORTED, "%s: node '%s' (Constant): attribute '%s' not supported",
                        c->path, node_name, a->name);
    }
    tp.has_data_type = 1;
    return add_constant(c, np->output[0], &tp, node_name);
}

static enum qcal_status copy_attr(struct load_ctx *c, const Onnx__AttributeProto *a,
                                  const char *node_name, struct qcal_attr *out)
{
    memset(out, 0, sizeof *out);
    out->name = qcal_strdup(a->name ? a->name : "");
    out->type = a->type;
    if (!out->name) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    switch (a->type) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT: out->f = a->f; break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT: out->i = a->i; break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING:
        out->s = malloc(a->s.len + 1);
        if (!out->s) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        if (a->s.len) memcpy(out->s, a->s.data, a->s.len);
        out->s[a->s.len] = '\0';
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
        out->n = (int)a->n_floats;
        out->floats = malloc(sizeof(float) * (a->n_floats + 1));
        if (!out->floats) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        if (a->n_floats) memcpy(out->floats, a->floats, sizeof(float) * a->n_floats);
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
        out->n = (int)a->n_ints;
        out->ints = malloc(sizeof(int64_t) * (a->n_ints + 1));
        if (!out->ints) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        if (a->n_ints) memcpy(out->ints, a->ints, sizeof(int64_t) * a->n_ints);
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS:
        out->n = (int)a->n_strings;
        out->strings = calloc(a->n_strings + 1, sizeof(char *));
        if (!out->strings) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        for (size_t i = 0; i < a->n_strings; i++) {
            out->strings[i] = malloc(a->strings[i].len + 1);
            if (!out->strings[i]) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
            if (a->strings[i].len) memcpy(out->strings[i], a->strings[i].data, a->strings[i].len);
            out->strings[i][a->strings[i].len] = '\0';
        }
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR: {
        if (!a->t)
            return QCAL_ERR(QCAL_INVALID_MODEL, "%s: node '%s': tensor attribute '%s' is empty",
                            c->path, node_name, out->name);
        out->t = calloc(1, sizeof *out->t);
        if (!out->t) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        return tensor_from_proto(c, a->t, node_name, out->t);
    }
    default:
        /* Graph-valued attributes (If/Loop/Scan) are kept as type only; those ops are
         * rejected later as unsupported, with their name. */
        break;
    }
    return QCAL_OK;
}

static enum qcal_status value_info_type(struct load_ctx *c, const Onnx__ValueInfoProto *vi, int v,
                                        bool as_input)
{
    struct qcal_value *val = &c->g->values[v];
    if (!vi->type || vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE) {
        if (as_input)
            return QCAL_ERR(QCAL_UNSUPPORTED, "%s: input '%s' is not a tensor", c->path, vi->name);
        return QCAL_OK;
    }
    const Onnx__TypeProto__Tensor *tt = vi->type->tensor_type;
    val->t.dtype = tt->elem_type;
    if (!as_input) return QCAL_OK; /* shapes of intermediates come from shape inference */
    if (!tt->shape)
        return QCAL_ERR(QCAL_UNSUPPORTED, "%s: input '%s' has no shape (rank unknown)", c->path,
                        vi->name);
    if (tt->shape->n_dim > QCAL_MAX_DIMS)
        return QCAL_ERR(QCAL_UNSUPPORTED, "%s: input '%s' has %zu dims", c->path, vi->name,
                        tt->shape->n_dim);
    val->t.ndim = (int)tt->shape->n_dim;
    bool known = true;
    for (size_t d = 0; d < tt->shape->n_dim; d++) {
        const Onnx__TensorShapeProto__Dimension *dim = tt->shape->dim[d];
        if (dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
            dim->dim_value > 0) {
            val->t.dims[d] = dim->dim_value;
        } else {
            val->t.dims[d] = -1;
            known = false;
            if (dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM)
                val->dim_param[d] = qcal_strdup(dim->dim_param);
        }
    }
    val->shape_known = known;
    return QCAL_OK;
}

static enum qcal_status build_graph(struct load_ctx *c, const Onnx__ModelProto *m)
{
    struct qcal_graph *g = c->g;
    enum qcal_status st;
    const Onnx__GraphProto *gp = m->graph;
    if (!gp) return QCAL_ERR(QCAL_INVALID_MODEL, "%s: model has no graph", c->path);
    g->ir_version = m->ir_version;
    g->producer_name = qcal_strdup(m->producer_name ? m->producer_name : "");
    g->producer_version = qcal_strdup(m->producer_version ? m->producer_version : "");
    g->name = qcal_strdup(gp->name ? gp->name : "");
    g->opset = -1;
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const char *d = m->opset_import[i]->domain;
        if (!d || !*d || strcmp(d, "ai.onnx") == 0) g->opset = m->opset_import[i]->version;
    }
    if (g->opset < 0 && m->n_opset_import == 0 && m->ir_version >= 3)
        return QCAL_ERR(QCAL_INVALID_MODEL, "%s: model declares no opset", c->path);
    if (g->opset < QCAL_ONNX_MIN_OPSET || g->opset > QCAL_ONNX_MAX_OPSET)
        return QCAL_ERR(QCAL_UNSUPPORTED, "%s: opset %lld is not supported (qcal reads opsets "
                        "%d to %d)", c->path, (long long)g->opset, QCAL_ONNX_MIN_OPSET,
                        QCAL_ONNX_MAX_OPSET);
    if (gp->n_sparse_initializer)
        return QCAL_ERR(QCAL_UNSUPPORTED, "%s: sparse initializers are not supported", c->path);

    for (size_t i = 0; i < gp->n_initializer; i++) {
        const Onnx__TensorProto *tp = gp->initializer[i];
        if (!tp->name || !*tp->name)
            return QCAL_ERR(QCAL_INVALID_MODEL, "%s: initializer %zu has no name", c->path, i);
        if ((st = add_constant(c, tp->name, tp, tp->name)) != QCAL_OK) return st;
    }
    g->inputs = malloc(sizeof(int) * (gp->n_input + 1));
    g->outputs = malloc(sizeof(int) * (gp->n_output + 1));
    if (!g->inputs || !g->outputs) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        if (!vi->name || !*vi->name)
            return QCAL_ERR(QCAL_INVALID_MODEL, "%s: graph input %zu has no name", c->path, i);
        if (qcal_graph_find_value(g, vi->name) >= 0) continue; /* initializer listed as input */
        int v;
        if ((st = qcal_graph_add_value(g, vi->name, &v)) != QCAL_OK) return st;
        g->values[v].is_input = true;
        if ((st = value_info_type(c, vi, v, true)) != QCAL_OK) return st;
        g->inputs[g->n_inputs++] = v;
    }
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *np = gp->node[i];
        char fallback[300];
        const char *name = np->name;
        if (!name || !*name) {
            snprintf(fallback, sizeof fallback, "%s_%zu", np->op_type ? np->op_type : "node", i);
            name = fallback;
        }
        if (!np->op_type || !*np->op_type)
            return QCAL_ERR(QCAL_INVALID_MODEL, "%s: node %zu ('%s') has no op_type", c->path, i,
                            name);
        const char *dom = np->domain ? np->domain : "";
        bool default_domain = !*dom || strcmp(dom, "ai.onnx") == 0;
        if (default_domain && strcmp(np->op_type, "Constant") == 0) {
            if ((st = add_constant_node(c, np, name)) != QCAL_OK) return st;
            continue;
        }
        int ins[64], outs[64];
        if (np->n_input > 64 || np->n_output > 64)
            return QCAL_ERR(QCAL_UNSUPPORTED, "%s: node '%s' (%s) has too many inputs/outputs",
                            c->path, name, np->op_type);
        for (size_t k = 0; k < np->n_input; k++) {
            ins[k] = -1;
            if (np->input[k] && *np->input[k])
                if ((st = qcal_graph_get_or_add_value(g, np->input[k], &ins[k])) != QCAL_OK)
                    return st;
        }
        for (size_t k = 0; k < np->n_output; k++) {
            outs[k] = -1;
            if (!np->output[k] || !*np->output[k]) continue;
            int v = qcal_graph_find_value(g, np->output[k]);
            if (v >= 0 && (g->values[v].producer >= 0 || g->values[v].is_input ||
                           qcal_value_is_const(&g->values[v])))
                return QCAL_ERR(QCAL_INVALID_MODEL, "%s: node '%s' (%s) writes '%s', which "
                                "already has a producer", c->path, name, np->op_type,
                                np->output[k]);
            if (v < 0 && (st = qcal_graph_add_value(g, np->output[k], &v)) != QCAL_OK) return st;
            outs[k] = v;
        }
        int id;
        if ((st = qcal_graph_add_node(g, name, np->op_type, dom, ins, (int)np->n_input, outs,
                                      (int)np->n_output, &id)) != QCAL_OK)
            return st;
        for (size_t k = 0; k < np->n_output; k++)
            if (outs[k] >= 0) g->values[outs[k]].producer = id;
        struct qcal_node *n = &g->nodes[id];
        n->opset = (int)g->opset;
        n->attrs = calloc(np->n_attribute + 1, sizeof *n->attrs);
        if (!n->attrs) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        for (size_t k = 0; k < np->n_attribute; k++) {
            n->n_attrs++;
            if ((st = copy_attr(c, np->attribute[k], name, &n->attrs[k])) != QCAL_OK) return st;
        }
    }
    for (size_t i = 0; i < gp->n_value_info; i++) {
        int v = qcal_graph_find_value(g, gp->value_info[i]->name ? gp->value_info[i]->name : "");
        if (v >= 0 && !qcal_value_is_const(&g->values[v]))
            if ((st = value_info_type(c, gp->value_info[i], v, false)) != QCAL_OK) return st;
    }
    if (gp->n_output == 0) return QCAL_ERR(QCAL_INVALID_MODEL, "%s: graph has no outputs", c->path);
    for (size_t i = 0; i < gp->n_output; i++) {
        const char *name = gp->output[i]->name ? gp->output[i]->name : "";
        int v = qcal_graph_find_value(g, name);
        if (v < 0)
            return QCAL_ERR(QCAL_INVALID_MODEL, "%s: graph output '%s' is produced by no node",
                            c->path, name);
        g->values[v].is_output = true;
        g->outputs[g->n_outputs++] = v;
    }
    return QCAL_OK;
}

enum qcal_status qcal_onnx_load_buffer(const void *data, size_t size, const char *path,
                                       struct qcal_graph **graph_out)
{
    *graph_out = NULL;
    struct load_ctx c;
    memset(&c, 0, sizeof c);
    c.path = path;
    snprintf(c.dir, sizeof c.dir, "%s", path);
    char *slash = strrchr(c.dir, '/');
    if (slash) *slash = '\0';
    else snprintf(c.dir, sizeof c.dir, ".");
    if (!realpath(c.dir, c.dir_real)) snprintf(c.dir_real, sizeof c.dir_real, "%s", c.dir);

    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, size, data);
    if (!m)
        return QCAL_ERR(QCAL_INVALID_MODEL, "%s: not a valid ONNX model (protobuf decoding "
                        "failed: truncated or not a model file)", path);
    enum qcal_status st = qcal_graph_create(path, &c.g);
    if (st == QCAL_OK) st = build_graph(&c, m);
    onnx__model_proto__free_unpacked(m, NULL);
    if (st != QCAL_OK) {
        qcal_graph_destroy(c.g);
        return st;
    }
    *graph_out = c.g;
    return QCAL_OK;
}

enum qcal_status qcal_onnx_load(const char *path, struct qcal_graph **graph_out)
{
    void *data = NULL;
    size_t size = 0;
    *graph_out = NULL;
    enum qcal_status st = qcal_read_file(path, 0, &data, &size);
    if (st != QCAL_OK) return st;
    if (size == 0) {
        free(data);
        return QCAL_ERR(QCAL_INVALID_MODEL, "%s: empty file", path);
    }
    st = qcal_onnx_load_buffer(data, size, path, graph_out);
    free(data);
    return st;
}
