/* IR -> ONNX ModelProto (protobuf-c), written through a temporary file. Every allocation
 * of the message tree goes into one list freed at the end. */
#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"
#include "qcal/onnx.h"

struct pool {
    void **p;
    size_t n, cap;
    bool failed;
};

static void *palloc(struct pool *pl, size_t size)
{
    if (pl->failed) return NULL;
    if (pl->n == pl->cap) {
        size_t cap = pl->cap ? 2 * pl->cap : 1024;
        void **p = realloc(pl->p, sizeof *p * cap);
        if (!p) {
            pl->failed = true;
            return NULL;
        }
        pl->p = p, pl->cap = cap;
    }
    void *m = calloc(1, size ? size : 1);
    if (!m) {
        pl->failed = true;
        return NULL;
    }
    return pl->p[pl->n++] = m;
}

static void pool_free(struct pool *pl)
{
    for (size_t i = 0; i < pl->n; i++) free(pl->p[i]);
    free(pl->p);
}

#define DEFINE_PNEW(T, INIT)                       \
    static T *pnew_##T(struct pool *pl)            \
    {                                              \
        T *m = palloc(pl, sizeof(T));              \
        if (m) *m = (T)INIT;                       \
        return m;                                  \
    }
DEFINE_PNEW(Onnx__TensorProto, ONNX__TENSOR_PROTO__INIT)
DEFINE_PNEW(Onnx__AttributeProto, ONNX__ATTRIBUTE_PROTO__INIT)
DEFINE_PNEW(Onnx__NodeProto, ONNX__NODE_PROTO__INIT)
DEFINE_PNEW(Onnx__ValueInfoProto, ONNX__VALUE_INFO_PROTO__INIT)
DEFINE_PNEW(Onnx__TypeProto, ONNX__TYPE_PROTO__INIT)
DEFINE_PNEW(Onnx__TypeProto__Tensor, ONNX__TYPE_PROTO__TENSOR__INIT)
DEFINE_PNEW(Onnx__TensorShapeProto, ONNX__TENSOR_SHAPE_PROTO__INIT)
DEFINE_PNEW(Onnx__TensorShapeProto__Dimension, ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT)
DEFINE_PNEW(Onnx__OperatorSetIdProto, ONNX__OPERATOR_SET_ID_PROTO__INIT)

static Onnx__TensorProto *tensor_proto(struct pool *pl, const char *name, const struct qcal_tensor *t)
{
    Onnx__TensorProto *tp = pnew_Onnx__TensorProto(pl);
    if (!tp) return NULL;
    tp->name = (char *)name;
    tp->has_data_type = 1;
    tp->data_type = t->dtype;
    tp->n_dims = (size_t)t->ndim;
    tp->dims = (int64_t *)t->dims;
    tp->has_raw_data = 1;
    tp->raw_data.len = qcal_tensor_bytes(t); /* little-endian host, as ONNX stores raw data */
    tp->raw_data.data = t->data;
    return tp;
}

static Onnx__ValueInfoProto *value_info(struct pool *pl, const struct qcal_value *v)
{
    Onnx__ValueInfoProto *vi = pnew_Onnx__ValueInfoProto(pl);
    Onnx__TypeProto *tp = pnew_Onnx__TypeProto(pl);
    Onnx__TypeProto__Tensor *tt = pnew_Onnx__TypeProto__Tensor(pl);
    if (!vi || !tp || !tt) return NULL;
    vi->name = v->name;
    vi->type = tp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    tt->has_elem_type = 1;
    tt->elem_type = v->t.dtype;
    if (!v->shape_known) return vi;
    Onnx__TensorShapeProto *sp = pnew_Onnx__TensorShapeProto(pl);
    Onnx__TensorShapeProto__Dimension **dims = palloc(pl, sizeof *dims * ((size_t)v->t.ndim + 1));
    if (!sp || !dims) return NULL;
    tt->shape = sp;
    sp->n_dim = (size_t)v->t.ndim;
    sp->dim = dims;
    for (int d = 0; d < v->t.ndim; d++) {
        if (!(dims[d] = pnew_Onnx__TensorShapeProto__Dimension(pl))) return NULL;
        dims[d]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        dims[d]->dim_value = v->t.dims[d];
    }
    return vi;
}

static Onnx__AttributeProto *attr_proto(struct pool *pl, const struct qcal_attr *a)
{
    Onnx__AttributeProto *ap = pnew_Onnx__AttributeProto(pl);
    if (!ap) return NULL;
    ap->name = a->name;
    ap->has_type = 1;
    ap->type = (Onnx__AttributeProto__AttributeType)a->type;
    switch (a->type) {
    case QCAL_ATTR_FLOAT: ap->has_f = 1, ap->f = a->f; break;
    case QCAL_ATTR_INT: ap->has_i = 1, ap->i = a->i; break;
    case QCAL_ATTR_STRING:
        ap->has_s = 1;
        ap->s.data = (uint8_t *)a->s;
        ap->s.len = a->s ? strlen(a->s) : 0;
        break;
    case QCAL_ATTR_TENSOR:
        if (!(ap->t = tensor_proto(pl, "", a->t))) return NULL;
        break;
    case QCAL_ATTR_FLOATS: ap->n_floats = (size_t)a->n, ap->floats = a->floats; break;
    case QCAL_ATTR_INTS: ap->n_ints = (size_t)a->n, ap->ints = a->ints; break;
    case QCAL_ATTR_STRINGS: {
        ProtobufCBinaryData *s = palloc(pl, sizeof *s * ((size_t)a->n + 1));
        if (!s) return NULL;
        for (int k = 0; k < a->n; k++) s[k].data = (uint8_t *)a->strings[k], s[k].len = strlen(a->strings[k]);
        ap->n_strings = (size_t)a->n;
        ap->strings = s;
        break;
    }
    default: return NULL;
    }
    return ap;
}

static bool add_opset(struct pool *pl, Onnx__ModelProto *m, const char *domain, int64_t version)
{
    for (size_t i = 0; i < m->n_opset_import; i++)
        if (strcmp(m->opset_import[i]->domain, domain) == 0) {
            if (m->opset_import[i]->version < version) m->opset_import[i]->version = version;
            return true;
        }
    Onnx__OperatorSetIdProto *o = pnew_Onnx__OperatorSetIdProto(pl);
    if (!o) return false;
    o->domain = (char *)domain;
    o->has_version = 1;
    o->version = version;
    m->opset_import[m->n_opset_import++] = o;
    return true;
}

enum qcal_status qcal_onnx_save(const struct qcal_graph *g, const char *path)
{
    struct pool pl = {0};
    Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
    Onnx__GraphProto gp = ONNX__GRAPH_PROTO__INIT;
    enum qcal_status st = QCAL_OK;
    uint8_t *buf = NULL;
    m.has_ir_version = 1;
    m.ir_version = g->ir_version > 7 ? g->ir_version : 7;
    m.producer_name = "qcal";
    m.producer_version = QCAL_VERSION;
    m.graph = &gp;
    gp.name = g->name && g->name[0] ? g->name : "qcal";
    m.opset_import = palloc(&pl, sizeof *m.opset_import * ((size_t)g->n_nodes + 2));
    gp.node = palloc(&pl, sizeof *gp.node * ((size_t)g->n_nodes + 1));
    gp.initializer = palloc(&pl, sizeof *gp.initializer * ((size_t)g->n_values + 1));
    gp.input = palloc(&pl, sizeof *gp.input * ((size_t)g->n_inputs + 1));
    gp.output = palloc(&pl, sizeof *gp.output * ((size_t)g->n_outputs + 1));
    bool *used = palloc(&pl, (size_t)g->n_values + 1);
    if (pl.failed || !add_opset(&pl, &m, "", g->opset)) goto oom;
    for (int i = 0; i < g->n_nodes; i++) {
        const struct qcal_node *n = &g->nodes[i];
        if (n->dead) continue;
        Onnx__NodeProto *np = pnew_Onnx__NodeProto(&pl);
        char **ins = palloc(&pl, sizeof(char *) * ((size_t)n->n_inputs + 1));
        char **outs = palloc(&pl, sizeof(char *) * ((size_t)n->n_outputs + 1));
        Onnx__AttributeProto **attrs = palloc(&pl, sizeof *attrs * ((size_t)n->n_attrs + 1));
        if (!np || !ins || !outs || !attrs) goto oom;
        np->name = n->name;
        np->op_type = n->op_type;
        np->domain = n->domain && n->domain[0] ? n->domain : NULL;
        if (np->domain && !add_opset(&pl, &m, np->domain, n->opset)) goto oom;
        for (int k = 0; k < n->n_inputs; k++) {
            ins[k] = n->inputs[k] >= 0 ? g->values[n->inputs[k]].name : "";
            if (n->inputs[k] >= 0) used[n->inputs[k]] = true;
        }
        for (int k = 0; k < n->n_outputs; k++) outs[k] = n->outputs[k] >= 0 ? g->values[n->outputs[k]].name : "";
        np->n_input = (size_t)n->n_inputs, np->input = ins;
        np->n_output = (size_t)n->n_outputs, np->output = outs;
        for (int k = 0; k < n->n_attrs; k++) {
            if (!(attrs[k] = attr_proto(&pl, &n->attrs[k]))) {
                if (pl.failed) goto oom;
                st = QCAL_ERR(QCAL_UNSUPPORTED, "%s: node '%s' (%s): attribute '%s' of type %d cannot be written",
                              path, n->name, n->op_type, n->attrs[k].name, n->attrs[k].type);
                goto cleanup;
            }
        }
        np->n_attribute = (size_t)n->n_attrs, np->attribute = attrs;
        gp.node[gp.n_node++] = np;
    }
    for (int k = 0; k < g->n_outputs; k++) used[g->outputs[k]] = true;
    for (int v = 0; v < g->n_values; v++) {
        const struct qcal_value *val = &g->values[v];
        if (!used[v] || !qcal_value_is_const(val)) continue;
        if (qcal_dtype_size(val->t.dtype) == 0) {
            st = QCAL_ERR(QCAL_UNSUPPORTED, "%s: constant '%s' of type %s cannot be written", path, val->name,
                          qcal_dtype_name(val->t.dtype));
            goto cleanup;
        }
        if (!(gp.initializer[gp.n_initializer++] = tensor_proto(&pl, val->name, &val->t))) goto oom;
    }
    for (int k = 0; k < g->n_inputs; k++)
        if (!(gp.input[gp.n_input++] = value_info(&pl, &g->values[g->inputs[k]]))) goto oom;
    for (int k = 0; k < g->n_outputs; k++)
        if (!(gp.output[gp.n_output++] = value_info(&pl, &g->values[g->outputs[k]]))) goto oom;
    size_t size = onnx__model_proto__get_packed_size(&m);
    if (!(buf = malloc(size + 1))) goto oom;
    onnx__model_proto__pack(&m, buf);
    st = qcal_write_file(path, buf, size);
    goto cleanup;
oom:
    st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "%s: out of memory", path);
cleanup:
    free(buf);
    pool_free(&pl);
    return st;
}
