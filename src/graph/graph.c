#include "qcal/graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Open-addressing hash from value name to id; rebuilt when it fills past half. */
struct name_index {
    int cap;
    int *slots; /* value id, -1 empty */
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static enum qcal_status index_rebuild(struct qcal_graph *g, int cap)
{
    struct name_index *ix = g->index;
    int *slots = malloc(sizeof(int) * (size_t)cap);
    if (!slots) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "%s: out of memory", g->path);
    for (int i = 0; i < cap; i++) slots[i] = -1;
    for (int v = 0; v < g->n_values; v++) {
        uint64_t h = hash_str(g->values[v].name) & (uint64_t)(cap - 1);
        while (slots[h] >= 0) h = (h + 1) & (uint64_t)(cap - 1);
        slots[h] = v;
    }
    free(ix->slots);
    ix->slots = slots;
    ix->cap = cap;
    return QCAL_OK;
}

enum qcal_status qcal_graph_create(const char *path, struct qcal_graph **graph_out)
{
    *graph_out = NULL;
    struct qcal_graph *g = calloc(1, sizeof *g);
    struct name_index *ix = calloc(1, sizeof *ix);
    if (!g || !ix) {
        free(g);
        free(ix);
        return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    }
    g->index = ix;
    g->path = qcal_strdup(path ? path : "<memory>");
    enum qcal_status st = index_rebuild(g, 64);
    if (st != QCAL_OK) {
        qcal_graph_destroy(g);
        return st;
    }
    *graph_out = g;
    return QCAL_OK;
}

void qcal_attr_clear(struct qcal_attr *a)
{
    free(a->name);
    free(a->s);
    free(a->ints);
    free(a->floats);
    for (int i = 0; a->strings && i < a->n; i++) free(a->strings[i]);
    free(a->strings);
    if (a->t) {
        qcal_free(a->t->data);
        free(a->t);
    }
    memset(a, 0, sizeof *a);
}

static void node_clear(struct qcal_graph *g, struct qcal_node *n)
{
    if (n->params && g->free_params) g->free_params(n);
    free(n->name);
    free(n->op_type);
    free(n->domain);
    free(n->inputs);
    free(n->outputs);
    for (int i = 0; i < n->n_attrs; i++) qcal_attr_clear(&n->attrs[i]);
    free(n->attrs);
}

static void value_clear(struct qcal_value *v)
{
    free(v->name);
    if (v->owns_data) qcal_free(v->t.data);
    for (int d = 0; d < QCAL_MAX_DIMS; d++) free(v->dim_param[d]);
}

void qcal_graph_destroy(struct qcal_graph *g)
{
    if (!g) return;
    for (int i = 0; i < g->n_nodes; i++) node_clear(g, &g->nodes[i]);
    for (int i = 0; i < g->n_values; i++) value_clear(&g->values[i]);
    free(g->nodes);
    free(g->values);
    free(g->inputs);
    free(g->outputs);
    free(g->path);
    free(g->name);
    free(g->producer_name);
    free(g->producer_version);
    if (g->index) free(((struct name_index *)g->index)->slots);
    free(g->index);
    free(g);
}

int qcal_graph_find_value(const struct qcal_graph *g, const char *name)
{
    const struct name_index *ix = g->index;
    uint64_t h = hash_str(name) & (uint64_t)(ix->cap - 1);
    while (ix->slots[h] >= 0) {
        if (strcmp(g->values[ix->slots[h]].name, name) == 0) return ix->slots[h];
        h = (h + 1) & (uint64_t)(ix->cap - 1);
    }
    return -1;
}

enum qcal_status qcal_graph_add_value(struct qcal_graph *g, const char *name, int *id_out)
{
    if (qcal_graph_find_value(g, name) >= 0)
        return QCAL_ERR(QCAL_INVALID_MODEL, "%s: tensor '%s' is defined twice", g->path, name);
    if (g->n_values == g->cap_values) {
        int cap = g->cap_values ? 2 * g->cap_values : 256;
        void *p = qcal_realloc_array(g->values, (size_t)cap, sizeof *g->values);
        if (!p) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "%s: out of memory", g->path);
        g->values = p;
        g->cap_values = cap;
    }
    struct qcal_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->name = qcal_strdup(name);
    v->producer = -1;
    if (!v->name) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "%s: out of memory", g->path);
    g->n_values++;
    struct name_index *ix = g->index;
    if (2 * g->n_values > ix->cap) {
        enum qcal_status st = index_rebuild(g, 2 * ix->cap);
        if (st != QCAL_OK) return st;
    } else {
        uint64_t h = hash_str(name) & (uint64_t)(ix->cap - 1);
        while (ix->slots[h] >= 0) h = (h + 1) & (uint64_t)(ix->cap - 1);
        ix->slots[h] = g->n_values - 1;
    }
    *id_out = g->n_values - 1;
    return QCAL_OK;
}

enum qcal_status qcal_graph_get_or_add_value(struct qcal_graph *g, const char *name, int *id_out)
{
    int id = qcal_graph_find_value(g, name);
    if (id >= 0) {
        *id_out = id;
        return QCAL_OK;
    }
    return qcal_graph_add_value(g, name, id_out);
}

enum qcal_status qcal_graph_add_temp_value(struct qcal_graph *g, const char *base, int *id_out)
{
    char name[256];
    for (int k = 0;; k++) {
        snprintf(name, sizeof name, "%s__qcal%d", base, k);
        if (qcal_graph_find_value(g, name) < 0) return qcal_graph_add_value(g, name, id_out);
    }
}

void qcal_graph_set_constant(struct qcal_graph *g, int v, struct qcal_tensor t, void *data)
{
    struct qcal_value *val = &g->values[v];
    if (val->owns_data) qcal_free(val->t.data);
    val->t = t;
    val->t.data = data;
    val->owns_data = true;
    val->shape_known = true;
    val->producer = -1;
}

enum qcal_status qcal_graph_add_node(struct qcal_graph *g, const char *name, const char *op_type,
                                     const char *domain, const int *inputs, int n_inputs,
                                     const int *outputs, int n_outputs, int *id_out)
{
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? 2 * g->cap_nodes : 128;
        void *p = qcal_realloc_array(g->nodes, (size_t)cap, sizeof *g->nodes);
        if (!p) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "%s: out of memory", g->path);
        g->nodes = p;
        g->cap_nodes = cap;
    }
    struct qcal_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->op = -1;
    n->name = qcal_strdup(name);
    n->op_type = qcal_strdup(op_type);
    n->domain = qcal_strdup(domain ? domain : "");
    n->inputs = malloc(sizeof(int) * (size_t)(n_inputs + 1));
    n->outputs = malloc(sizeof(int) * (size_t)(n_outputs + 1));
    g->n_nodes++;
    if (!n->name || !n->op_type || !n->domain || !n->inputs || !n->outputs)
        return QCAL_ERR(QCAL_OUT_OF_MEMORY, "%s: out of memory", g->path);
    memcpy(n->inputs, inputs, sizeof(int) * (size_t)n_inputs);
    memcpy(n->outputs, outputs, sizeof(int) * (size_t)n_outputs);
    n->n_inputs = n_inputs;
    n->n_outputs = n_outputs;
    if (id_out) *id_out = g->n_nodes - 1;
    return QCAL_OK;
}

enum qcal_status qcal_node_add_attr_int(struct qcal_node *n, const char *name, int64_t v)
{
    struct qcal_attr *a = realloc(n->attrs, sizeof *a * ((size_t)n->n_attrs + 1));
    if (!a) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    n->attrs = a;
    memset(&a[n->n_attrs], 0, sizeof *a);
    a[n->n_attrs].name = qcal_strdup(name);
    a[n->n_attrs].type = QCAL_ATTR_INT;
    a[n->n_attrs].i = v;
    if (!a[n->n_attrs].name) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    n->n_attrs++;
    return QCAL_OK;
}

void qcal_node_clear_attrs(struct qcal_node *n)
{
    for (int i = 0; i < n->n_attrs; i++) qcal_attr_clear(&n->attrs[i]);
    n->n_attrs = 0;
}

const struct qcal_attr *qcal_node_attr(const struct qcal_node *n, const char *name)
{
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0) return &n->attrs[i];
    return NULL;
}

int64_t qcal_node_attr_int(const struct qcal_node *n, const char *name, int64_t def)
{
    const struct qcal_attr *a = qcal_node_attr(n, name);
    return a && a->type == QCAL_ATTR_INT ? a->i : def;
}

float qcal_node_attr_float(const struct qcal_node *n, const char *name, float def)
{
    const struct qcal_attr *a = qcal_node_attr(n, name);
    if (!a) return def;
    if (a->type == QCAL_ATTR_FLOAT) return a->f;
    if (a->type == QCAL_ATTR_INT) return (float)a->i;
    return def;
}

const char *qcal_node_attr_string(const struct qcal_node *n, const char *name, const char *def)
{
    const struct qcal_attr *a = qcal_node_attr(n, name);
    return a && a->type == QCAL_ATTR_STRING && a->s ? a->s : def;
}

int qcal_node_attr_ints(const struct qcal_node *n, const char *name, int64_t *out, int cap)
{
    const struct qcal_attr *a = qcal_node_attr(n, name);
    if (!a) return -1;
    if (a->type == QCAL_ATTR_INT) {
        if (cap > 0) out[0] = a->i;
        return 1;
    }
    if (a->type != QCAL_ATTR_INTS) return -1;
    for (int i = 0; i < a->n && i < cap; i++) out[i] = a->ints[i];
    return a->n;
}

void qcal_graph_update_uses(struct qcal_graph *g)
{
    for (int v = 0; v < g->n_values; v++) {
        g->values[v].n_consumers = 0;
        g->values[v].producer = -1;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        struct qcal_node *n = &g->nodes[i];
        if (n->dead) continue;
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0) g->values[n->inputs[k]].n_consumers++;
        for (int k = 0; k < n->n_outputs; k++)
            if (n->outputs[k] >= 0) g->values[n->outputs[k]].producer = i;
    }
    for (int k = 0; k < g->n_outputs; k++) g->values[g->outputs[k]].n_consumers++;
}

bool qcal_node_default_domain(const struct qcal_node *n)
{
    return !n->domain || !n->domain[0] || strcmp(n->domain, "ai.onnx") == 0;
}

/* Node order[k] moves to position k; `sorted` is a free array of cap_nodes entries. */
static void apply_order(struct qcal_graph *g, struct qcal_node *sorted, const int *order)
{
    for (int i = 0; i < g->n_nodes; i++) sorted[i] = g->nodes[order[i]];
    free(g->nodes);
    g->nodes = sorted;
    qcal_graph_update_uses(g);
}

enum qcal_status qcal_graph_reorder(struct qcal_graph *g, const int *order)
{
    struct qcal_node *sorted = malloc(sizeof *sorted * (size_t)(g->cap_nodes + 1));
    bool *seen = calloc((size_t)g->n_nodes + 1, 1);
    enum qcal_status st = sorted && seen ? QCAL_OK : QCAL_ERR(QCAL_OUT_OF_MEMORY, "%s: out of memory", g->path);
    for (int i = 0; st == QCAL_OK && i < g->n_nodes; i++) {
        if (order[i] < 0 || order[i] >= g->n_nodes || seen[order[i]])
            st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "%s: node order is not a permutation", g->path);
        else
            seen[order[i]] = true;
    }
    free(seen);
    if (st != QCAL_OK) {
        free(sorted);
        return st;
    }
    apply_order(g, sorted, order);
    return qcal_graph_toposort(g);
}

enum qcal_status qcal_node_copy_attrs(struct qcal_node *dst, const struct qcal_node *src)
{
    struct qcal_attr *a = calloc((size_t)src->n_attrs + 1, sizeof *a);
    if (!a) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    bool ok = true;
    for (int i = 0; i < src->n_attrs; i++) {
        const struct qcal_attr *s = &src->attrs[i];
        struct qcal_attr *d = &a[i];
        *d = (struct qcal_attr){.type = s->type, .i = s->i, .f = s->f, .n = s->n};
        d->name = qcal_strdup(s->name);
        ok = ok && d->name;
        if (s->s) ok = ok && (d->s = qcal_strdup(s->s));
        if (s->ints) ok = ok && (d->ints = malloc(sizeof(int64_t) * (size_t)s->n + 1));
        if (d->ints) memcpy(d->ints, s->ints, sizeof(int64_t) * (size_t)s->n);
        if (s->floats) ok = ok && (d->floats = malloc(sizeof(float) * (size_t)s->n + 1));
        if (d->floats) memcpy(d->floats, s->floats, sizeof(float) * (size_t)s->n);
        if (s->strings) ok = ok && (d->strings = calloc((size_t)s->n + 1, sizeof(char *)));
        for (int k = 0; d->strings && k < s->n; k++) ok = ok && (d->strings[k] = qcal_strdup(s->strings[k]));
        if (s->t) {
            size_t bytes = qcal_tensor_bytes(s->t);
            ok = ok && (d->t = malloc(sizeof *d->t));
            if (d->t) {
                *d->t = *s->t;
                d->t->data = qcal_malloc(bytes ? bytes : 1);
                ok = ok && d->t->data;
                if (d->t->data) memcpy(d->t->data, s->t->data, bytes);
            }
        }
    }
    if (!ok) {
        for (int i = 0; i < src->n_attrs; i++) qcal_attr_clear(&a[i]);
        free(a);
        return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    }
    for (int i = 0; i < dst->n_attrs; i++) qcal_attr_clear(&dst->attrs[i]);
    free(dst->attrs);
    dst->attrs = a;
    dst->n_attrs = src->n_attrs;
    return QCAL_OK;
}

enum qcal_status qcal_graph_toposort(struct qcal_graph *g)
{
    enum qcal_status st = QCAL_OK;
    int n = g->n_nodes;
    bool *ready_value = calloc((size_t)g->n_values + 1, sizeof(bool));
    bool *placed = calloc((size_t)n + 1, sizeof(bool));
    int *missing = calloc((size_t)n + 1, sizeof(int));
    int *order = malloc(sizeof(int) * (size_t)(n + 1));
    int *queue = malloc(sizeof(int) * (size_t)(n + 1));
    /* consumers lists in CSR form */
    int *cons_start = calloc((size_t)g->n_values + 1, sizeof(int));
    int *cons = NULL;
    struct qcal_node *sorted = NULL;
    if (!ready_value || !placed || !missing || !order || !queue || !cons_start) {
        st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "%s: out of memory", g->path);
        goto cleanup;
    }
    for (int v = 0; v < g->n_values; v++) {
        const struct qcal_value *val = &g->values[v];
        ready_value[v] = val->is_input || qcal_value_is_const(val) || val->is_initializer;
    }
    int total = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < g->nodes[i].n_inputs; k++) {
            int v = g->nodes[i].inputs[k];
            if (v >= 0 && !ready_value[v]) {
                missing[i]++;
                cons_start[v + 1]++;
                total++;
            }
        }
    for (int v = 0; v < g->n_values; v++) cons_start[v + 1] += cons_start[v];
    cons = malloc(sizeof(int) * (size_t)(total + 1));
    int *fill = calloc((size_t)g->n_values + 1, sizeof(int));
    if (!cons || !fill) {
        free(fill);
        st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "%s: out of memory", g->path);
        goto cleanup;
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < g->nodes[i].n_inputs; k++) {
            int v = g->nodes[i].inputs[k];
            if (v >= 0 && !ready_value[v]) cons[cons_start[v] + fill[v]++] = i;
        }
    free(fill);
    /* Kahn's algorithm with a min-index priority (linear scan of a small ready set keeps
     * the original order among independent nodes, which makes plans reproducible). */
    int head = 0, count = 0, nq = 0;
    for (int i = 0; i < n; i++)
        if (missing[i] == 0) queue[nq++] = i;
    while (head < nq) {
        int best = head;
        for (int q = head + 1; q < nq; q++)
            if (queue[q] < queue[best]) best = q;
        int i = queue[best];
        queue[best] = queue[head++];
        placed[i] = true;
        order[count++] = i;
        for (int k = 0; k < g->nodes[i].n_outputs; k++) {
            int v = g->nodes[i].outputs[k];
            if (v < 0 || ready_value[v]) continue;
            ready_value[v] = true;
            for (int c = cons_start[v]; c < cons_start[v + 1]; c++) {
                /* a node may use the same value twice: decrement once per use */
                if (--missing[cons[c]] == 0) queue[nq++] = cons[c];
            }
        }
    }
    if (count < n) {
        for (int i = 0; i < n; i++) {
            if (placed[i]) continue;
            const struct qcal_node *nd = &g->nodes[i];
            for (int k = 0; k < nd->n_inputs; k++) {
                int v = nd->inputs[k];
                if (v >= 0 && !ready_value[v]) {
                    bool produced = false;
                    for (int j = 0; j < n && !produced; j++)
                        for (int o = 0; o < g->nodes[j].n_outputs; o++)
                            if (g->nodes[j].outputs[o] == v) produced = true;
                    st = QCAL_ERR(QCAL_INVALID_MODEL,
                                  produced ? "%s: node '%s' (%s) is part of a cycle through '%s'"
                                           : "%s: node '%s' (%s) uses '%s', which is not a graph "
                                             "input, initializer or node output",
                                  g->path, nd->name, nd->op_type, g->values[v].name);
                    goto cleanup;
                }
            }
        }
        st = QCAL_ERR(QCAL_INVALID_MODEL, "%s: graph has a cycle", g->path);
        goto cleanup;
    }
    sorted = malloc(sizeof *sorted * (size_t)(g->cap_nodes + 1));
    if (!sorted) {
        st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "%s: out of memory", g->path);
        goto cleanup;
    }
    apply_order(g, sorted, order);
cleanup:
    free(ready_value);
    free(placed);
    free(missing);
    free(order);
    free(queue);
    free(cons_start);
    free(cons);
    return st;
}

void qcal_graph_compact(struct qcal_graph *g)
{
    int k = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].dead) {
            node_clear(g, &g->nodes[i]);
            continue;
        }
        g->nodes[k++] = g->nodes[i];
    }
    g->n_nodes = k;
    qcal_graph_update_uses(g);
    /* Release constants nothing uses any more (folded chains, BN parameters). */
    for (int v = 0; v < g->n_values; v++) {
        struct qcal_value *val = &g->values[v];
        if (val->n_consumers == 0 && val->owns_data && !val->is_output) {
            qcal_free(val->t.data);
            val->t.data = NULL;
            val->owns_data = false;
            val->is_initializer = false;
        }
    }
}
