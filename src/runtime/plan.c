/* Planning: kernel choice and memory layout per step, reorders between layouts, and one
 * activation arena whose offsets come from buffer lifetimes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcal/kernels.h"
#include "qcal/runtime.h"

enum { STEP_OP, STEP_REORDER };

/* A planned tensor: a graph value in one layout, or a reordered copy of one. */
struct pval {
    struct qcal_tensor t;  /* logical dims; data set per context for non-constants */
    int layout;
    int value;             /* graph value id */
    int storage;           /* index into storages, -1 for constants */
    const void *const_data;
};

struct storage {
    size_t size, offset;
    int first, last;       /* step range in which it is live */
};

struct step {
    int kind;
    int node;              /* STEP_OP */
    const struct qcal_op_def *def;
    void *state;
    const char *impl;
    size_t scratch;
    int n_in, n_out;
    int *in, *out;         /* pval ids (-1: omitted) */
    uint8_t *in_layout, *out_layout;
};

struct qcal_plan {
    struct qcal_graph *g;
    int kernels;
    int n_steps, cap_steps;
    struct step *steps;
    int n_pvals, cap_pvals;
    struct pval *pvals;
    int n_storages, cap_storages;
    struct storage *storages;
    int *value_pval;       /* graph value -> pval in its produced layout */
    int n_inputs, n_outputs;
    int *input_pval, *output_pval;
    size_t arena_size, scratch_size;
};

struct qcal_exec {
    const struct qcal_plan *plan;
    qcal_observer_fn observer;
    void *observer_ctx;
    uint8_t *arena, *scratch;
    struct qcal_tensor *tensors; /* per pval */
    struct qcal_op_args *args;   /* per step */
    void **bound;                /* per step */
};

static enum qcal_status grow(void **p, int *cap, int need, size_t esize)
{
    if (need <= *cap) return QCAL_OK;
    int cap2 = *cap ? *cap * 2 : 64;
    while (cap2 < need) cap2 *= 2;
    void *q = qcal_realloc_array(*p, (size_t)cap2, esize);
    if (!q) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory while planning");
    memset((char *)q + (size_t)*cap * esize, 0, (size_t)(cap2 - *cap) * esize);
    *p = q;
    *cap = cap2;
    return QCAL_OK;
}

static enum qcal_status new_storage(struct qcal_plan *p, size_t size, int *id_out)
{
    enum qcal_status st = grow((void **)&p->storages, &p->cap_storages, p->n_storages + 1,
                               sizeof *p->storages);
    if (st != QCAL_OK) return st;
    struct storage *s = &p->storages[p->n_storages];
    s->size = qcal_align_up(size ? size : 1, QCAL_ALIGN);
    s->first = s->last = p->n_steps;
    *id_out = p->n_storages++;
    return QCAL_OK;
}

static enum qcal_status new_pval(struct qcal_plan *p, int value, int layout, int storage, int *id_out)
{
    enum qcal_status st = grow((void **)&p->pvals, &p->cap_pvals, p->n_pvals + 1, sizeof *p->pvals);
    if (st != QCAL_OK) return st;
    struct pval *pv = &p->pvals[p->n_pvals];
    const struct qcal_value *v = &p->g->values[value];
    pv->t = v->t;
    pv->t.data = NULL;
    pv->layout = layout;
    pv->value = value;
    pv->storage = storage;
    pv->const_data = qcal_value_is_const(v) ? v->t.data : NULL;
    *id_out = p->n_pvals++;
    return QCAL_OK;
}

/* Marks pv's storage as used by the step just added. */
static void touch(struct qcal_plan *p, int pv)
{
    int s = p->pvals[pv].storage;
    if (s < 0) return;
    if (p->storages[s].last < p->n_steps - 1) p->storages[s].last = p->n_steps - 1;
}

/* NHWC and plain are the same bytes when H*W == 1 or C == 1. */
static bool layouts_agree(const struct qcal_tensor *t)
{
    return t->ndim != 4 || t->dims[1] == 1 || t->dims[2] * t->dims[3] == 1;
}

static enum qcal_status add_step(struct qcal_plan *p, int kind, int n_in, int n_out, struct step **out)
{
    enum qcal_status st = grow((void **)&p->steps, &p->cap_steps, p->n_steps + 1, sizeof *p->steps);
    if (st != QCAL_OK) return st;
    struct step *s = &p->steps[p->n_steps];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->n_in = n_in;
    s->n_out = n_out;
    s->in = calloc((size_t)n_in + 1, sizeof(int));
    s->out = calloc((size_t)n_out + 1, sizeof(int));
    s->in_layout = calloc((size_t)n_in + 1, 1);
    s->out_layout = calloc((size_t)n_out + 1, 1);
    if (!s->in || !s->out || !s->in_layout || !s->out_layout)
        return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory while planning");
    p->n_steps++;
    *out = s;
    return QCAL_OK;
}

/* The pval of `pv`'s value in `layout`, adding a reorder step when the bytes differ. Reordered
 * copies are cached in `alt` so several consumers share one reorder. */
static enum qcal_status in_layout(struct qcal_plan *p, int pv, int layout, int *alt, int *out)
{
    const struct pval *src = &p->pvals[pv];
    enum qcal_status st;
    if (src->layout == layout || src->const_data) {
        *out = pv;
        return QCAL_OK;
    }
    int v = src->value;
    if (alt[v] >= 0 && p->pvals[alt[v]].layout == layout) {
        *out = alt[v];
        return QCAL_OK;
    }
    int id;
    if (layouts_agree(&src->t)) { /* a relabelled view of the same storage */
        if ((st = new_pval(p, v, layout, p->pvals[pv].storage, &id)) != QCAL_OK) return st;
        alt[v] = id;
        *out = id;
        return QCAL_OK;
    }
    int s;
    if ((st = new_storage(p, qcal_tensor_bytes(&src->t), &s)) != QCAL_OK) return st;
    if ((st = new_pval(p, v, layout, s, &id)) != QCAL_OK) return st;
    struct step *step;
    if ((st = add_step(p, STEP_REORDER, 1, 1, &step)) != QCAL_OK) return st;
    step->in[0] = pv;
    step->out[0] = id;
    step->in_layout[0] = (uint8_t)p->pvals[pv].layout;
    step->out_layout[0] = (uint8_t)layout;
    step->impl = "reorder";
    p->storages[s].first = p->n_steps - 1;
    p->storages[s].last = p->n_steps - 1;
    int ss = p->pvals[pv].storage;
    if (ss >= 0 && p->storages[ss].last < p->n_steps - 1) p->storages[ss].last = p->n_steps - 1;
    alt[v] = id;
    *out = id;
    return QCAL_OK;
}

static bool is_view_op(int op)
{
    return op == QCAL_OP_RESHAPE || op == QCAL_OP_FLATTEN || op == QCAL_OP_SQUEEZE ||
           op == QCAL_OP_UNSQUEEZE || op == QCAL_OP_IDENTITY;
}

/* The layout every consumer of value v that has a preference wants, or `fallback` when
 * none has one or they differ. */
static int consumers_layout(const struct qcal_plan *p, int v, int fallback)
{
    const struct qcal_graph *g = p->g;
    int want = -1;
    for (int i = 0; i < g->n_nodes; i++) {
        const struct qcal_node *n = &g->nodes[i];
        if (n->dead) continue;
        for (int k = 0; k < n->n_inputs; k++) {
            if (n->inputs[k] != v) continue;
            const int l = qcal_op_def(n->op)->layout(g, n, p->kernels);
            if (l < 0) continue;
            if (want >= 0 && l != want) return fallback;
            want = l;
        }
    }
    return want < 0 ? fallback : want;
}

static enum qcal_status plan_node(struct qcal_plan *p, int ni, int *alt)
{
    struct qcal_graph *g = p->g;
    struct qcal_node *n = &g->nodes[ni];
    const struct qcal_op_def *def = qcal_op_def(n->op);
    enum qcal_status st;
    int want = def->layout(g, n, p->kernels);
    if (want < 0) {
        want = QCAL_LAYOUT_PLAIN;
        for (int k = 0; k < n->n_inputs; k++) {
            int v = n->inputs[k];
            if (v >= 0 && !qcal_value_is_const(&g->values[v]) && g->values[v].t.ndim == 4 &&
                p->pvals[p->value_pval[v]].layout == QCAL_LAYOUT_NHWC)
                want = QCAL_LAYOUT_NHWC;
        }
        for (int k = 0; k < n->n_outputs; k++)
            if (n->outputs[k] >= 0 && g->values[n->outputs[k]].t.ndim != 4) want = QCAL_LAYOUT_PLAIN;
    }
    int in_pv[QCAL_OP_MAX_IO];
    for (int k = 0; k < n->n_inputs; k++) {
        int v = n->inputs[k];
        in_pv[k] = -1;
        if (v < 0) continue;
        int layout = g->values[v].t.ndim == 4 ? want : QCAL_LAYOUT_PLAIN;
        if ((st = in_layout(p, p->value_pval[v], layout, alt, &in_pv[k])) != QCAL_OK) return st;
    }
    struct step *s;
    if ((st = add_step(p, STEP_OP, n->n_inputs, n->n_outputs, &s)) != QCAL_OK) return st;
    s->node = ni;
    s->def = def;
    struct qcal_op_prep prep;
    memset(&prep, 0, sizeof prep);
    prep.g = g;
    prep.node = n;
    prep.kernels = p->kernels;
    for (int k = 0; k < n->n_inputs; k++) {
        s->in[k] = in_pv[k];
        if (in_pv[k] >= 0) {
            s->in_layout[k] = prep.in_layout[k] = (uint8_t)p->pvals[in_pv[k]].layout;
            touch(p, in_pv[k]);
        }
    }
    bool view = is_view_op(n->op) && in_pv[0] >= 0 && p->pvals[in_pv[0]].storage >= 0 &&
                p->pvals[in_pv[0]].layout == QCAL_LAYOUT_PLAIN;
    for (int k = 0; k < n->n_outputs; k++) {
        int v = n->outputs[k];
        s->out[k] = -1;
        if (v < 0) continue;
        int layout = g->values[v].t.ndim == 4 ? want : QCAL_LAYOUT_PLAIN;
        /* an op that writes any layout hands a graph output over in the plain one at once,
         * and writes the layout its consumers want (no reorder after it) */
        if (def->any_out_layout && g->values[v].is_output) layout = QCAL_LAYOUT_PLAIN;
        else if (def->any_out_layout && !view && g->values[v].t.ndim == 4) layout = consumers_layout(p, v, layout);
        int storage;
        if (view) {
            storage = p->pvals[in_pv[0]].storage;
        } else if ((st = new_storage(p, qcal_tensor_bytes(&g->values[v].t), &storage)) != QCAL_OK) {
            return st;
        }
        p->storages[storage].last = p->n_steps - 1 > p->storages[storage].last
                                        ? p->n_steps - 1 : p->storages[storage].last;
        if (!view) p->storages[storage].first = p->n_steps - 1;
        int id;
        if ((st = new_pval(p, v, layout, storage, &id)) != QCAL_OK) return st;
        p->value_pval[v] = id;
        s->out[k] = id;
        s->out_layout[k] = prep.out_layout[k] = (uint8_t)layout;
    }
    if ((st = def->prepare(&prep)) != QCAL_OK) {
        s->state = prep.state;
        return st;
    }
    s->state = prep.state;
    s->impl = prep.impl ? prep.impl : "ref";
    s->scratch = prep.scratch_size;
    if (prep.scratch_size > p->scratch_size) p->scratch_size = prep.scratch_size;
    if (view) s->impl = "view";
    return QCAL_OK;
}

/* Lets an op write its output over an input that no later step reads (activations after
 * a conv, the residual of a fused sum): fewer bytes touched, a smaller arena. */
static void share_in_place(struct qcal_plan *p)
{
    for (int i = 0; i < p->n_steps; i++) {
        const struct step *s = &p->steps[i];
        if (s->kind != STEP_OP || !s->def->inplace || s->n_out < 1 || s->out[0] < 0) continue;
        int k = s->def->inplace(p->g, &p->g->nodes[s->node]);
        if (k < 0 || k >= s->n_in || s->in[k] < 0) continue;
        const struct pval *in = &p->pvals[s->in[k]], *out = &p->pvals[s->out[0]];
        int si = in->storage, so = out->storage;
        if (si < 0 || so < 0 || si == so || in->layout != out->layout) continue;
        struct storage *a = &p->storages[si], *b = &p->storages[so];
        if (a->last != i || a->first < 0 || b->first != i || a->size != b->size ||
            qcal_tensor_bytes(&in->t) != qcal_tensor_bytes(&out->t))
            continue;
        for (int v = 0; v < p->n_pvals; v++)
            if (p->pvals[v].storage == so) p->pvals[v].storage = si;
        a->last = b->last;
        b->size = 0; /* retired */
    }
}

/* Greedy placement, largest buffers first, each at the lowest offset free during its life. */
static void place_storages(struct qcal_plan *p)
{
    int n = p->n_storages;
    int *order = malloc(sizeof(int) * (size_t)(n + 1));
    int *placed = malloc(sizeof(int) * (size_t)(n + 1));
    if (!order || !placed) {
        /* fall back to no sharing */
        size_t off = 0;
        for (int i = 0; i < n; i++) {
            p->storages[i].offset = off;
            off += p->storages[i].size;
        }
        p->arena_size = off;
        free(order);
        free(placed);
        return;
    }
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = 1; i < n; i++) /* insertion sort: size desc, then id for determinism */
        for (int j = i; j > 0; j--) {
            const struct storage *a = &p->storages[order[j]], *b = &p->storages[order[j - 1]];
            if (a->size > b->size || (a->size == b->size && order[j] < order[j - 1])) {
                int t = order[j];
                order[j] = order[j - 1];
                order[j - 1] = t;
            } else {
                break;
            }
        }
    int np = 0;
    size_t arena = 0;
    for (int k = 0; k < n; k++) {
        struct storage *s = &p->storages[order[k]];
        size_t off = 0;
        bool moved = true;
        while (moved) {
            moved = false;
            for (int q = 0; q < np; q++) {
                const struct storage *o = &p->storages[placed[q]];
                bool overlap_time = !(o->last < s->first || s->last < o->first);
                bool overlap_mem = off < o->offset + o->size && o->offset < off + s->size;
                if (overlap_time && overlap_mem) {
                    off = o->offset + o->size;
                    moved = true;
                }
            }
        }
        s->offset = off;
        placed[np++] = order[k];
        if (off + s->size > arena) arena = off + s->size;
    }
    p->arena_size = arena;
    free(order);
    free(placed);
}

enum qcal_status qcal_plan_create(struct qcal_graph *g, const struct qcal_plan_options *o,
                                  struct qcal_plan **plan_out)
{
    enum qcal_status st = QCAL_OK;
    int *alt = NULL;
    *plan_out = NULL;
    struct qcal_plan *p = calloc(1, sizeof *p);
    if (!p) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    p->g = g;
    p->kernels = o ? o->kernels : QCAL_KERNELS_AUTO;
    if ((p->kernels == QCAL_KERNELS_AUTO || p->kernels == QCAL_KERNELS_DNNL) && !qcal_dnnl_available()) {
        if (p->kernels == QCAL_KERNELS_DNNL) {
            st = QCAL_ERR(QCAL_BACKEND_ERROR, "oneDNN is not available on this machine");
            goto cleanup;
        }
        p->kernels = QCAL_KERNELS_BLAS;
    }
    p->value_pval = malloc(sizeof(int) * (size_t)(g->n_values + 1));
    alt = malloc(sizeof(int) * (size_t)(g->n_values + 1));
    p->input_pval = malloc(sizeof(int) * (size_t)(g->n_inputs + 1));
    p->output_pval = malloc(sizeof(int) * (size_t)(g->n_outputs + 1));
    if (!p->value_pval || !alt || !p->input_pval || !p->output_pval) {
        st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        goto cleanup;
    }
    for (int v = 0; v < g->n_values; v++) {
        p->value_pval[v] = -1;
        alt[v] = -1;
        if (qcal_value_is_const(&g->values[v]) && g->values[v].n_consumers > 0)
            QCAL_CHECK(new_pval(p, v, QCAL_LAYOUT_PLAIN, -1, &p->value_pval[v]));
    }
    p->n_inputs = g->n_inputs;
    for (int i = 0; i < g->n_inputs; i++) {
        int v = g->inputs[i], s;
        QCAL_CHECK(new_storage(p, qcal_tensor_bytes(&g->values[v].t), &s));
        p->storages[s].first = -1; /* written before the first step */
        QCAL_CHECK(new_pval(p, v, QCAL_LAYOUT_PLAIN, s, &p->value_pval[v]));
        p->input_pval[i] = p->value_pval[v];
    }
    for (int i = 0; i < g->n_nodes; i++) QCAL_CHECK(plan_node(p, i, alt));
    p->n_outputs = g->n_outputs;
    for (int i = 0; i < g->n_outputs; i++) {
        int v = g->outputs[i];
        if (p->value_pval[v] < 0) QCAL_CHECK(new_pval(p, v, QCAL_LAYOUT_PLAIN, -1, &p->value_pval[v]));
        QCAL_CHECK(in_layout(p, p->value_pval[v], QCAL_LAYOUT_PLAIN, alt, &p->output_pval[i]));
    }
    /* Inputs stay live through the run (a context may run again without new inputs) and
     * outputs to its end (the caller reads them after the run). */
    for (int i = 0; i < g->n_outputs; i++) {
        int s = p->pvals[p->output_pval[i]].storage;
        if (s >= 0) p->storages[s].last = p->n_steps + 1;
    }
    for (int i = 0; i < g->n_inputs; i++) p->storages[p->pvals[p->input_pval[i]].storage].last = p->n_steps + 1;
    share_in_place(p);
    place_storages(p);
cleanup:
    free(alt);
    if (st != QCAL_OK) {
        qcal_plan_destroy(p);
        p = NULL;
    }
    *plan_out = p;
    return st;
}

void qcal_plan_destroy(struct qcal_plan *p)
{
    if (!p) return;
    for (int i = 0; i < p->n_steps; i++) {
        struct step *s = &p->steps[i];
        if (s->kind == STEP_OP && s->def && s->def->destroy) s->def->destroy(s->state);
        free(s->in);
        free(s->out);
        free(s->in_layout);
        free(s->out_layout);
    }
    free(p->steps);
    free(p->pvals);
    free(p->storages);
    free(p->value_pval);
    free(p->input_pval);
    free(p->output_pval);
    free(p);
}

size_t qcal_plan_arena_bytes(const struct qcal_plan *p) { return p->arena_size; }
int qcal_plan_num_steps(const struct qcal_plan *p) { return p->n_steps; }

void qcal_plan_describe(const struct qcal_plan *p, void *file) { qcal_plan_describe_timed(p, file, NULL, 0); }

void qcal_plan_describe_timed(const struct qcal_plan *p, void *file, const double *step_seconds, int runs)
{
    FILE *f = file;
    for (int i = 0; i < p->n_steps; i++) {
        const struct step *s = &p->steps[i];
        char shape[96];
        const struct pval *o = &p->pvals[s->out[0]];
        qcal_shape_str(&o->t, shape, sizeof shape);
        char ms[32] = "";
        if (step_seconds) snprintf(ms, sizeof ms, "%9.3f ms ", 1e3 * step_seconds[i] / (runs ? runs : 1));
        if (s->kind == STEP_REORDER) {
            fprintf(f, "%4d %sreorder %-40s %-14s -> %s\n", i, ms, p->g->values[o->value].name, shape,
                    o->layout == QCAL_LAYOUT_NHWC ? "nhwc" : "plain");
            continue;
        }
        const struct qcal_node *n = &p->g->nodes[s->node];
        fprintf(f, "%4d %s%-18s %-40.40s %-14s %-5s %s%s\n", i, ms, n->op_type, n->name, shape,
                o->layout == QCAL_LAYOUT_NHWC ? "nhwc" : "plain", s->impl,
                n->post.n ? " +post" : "");
    }
    fprintf(f, "arena %.1f MiB, scratch %.1f MiB\n", (double)p->arena_size / 1048576.0,
            (double)p->scratch_size / 1048576.0);
}

enum qcal_status qcal_exec_create(const struct qcal_plan *p, struct qcal_exec **exec_out)
{
    enum qcal_status st = QCAL_OK;
    *exec_out = NULL;
    struct qcal_exec *ex = calloc(1, sizeof *ex);
    if (!ex) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    ex->plan = p;
    ex->arena = qcal_malloc(p->arena_size ? p->arena_size : 1);
    ex->scratch = p->scratch_size ? qcal_malloc(p->scratch_size) : NULL;
    ex->tensors = calloc((size_t)p->n_pvals + 1, sizeof *ex->tensors);
    ex->args = calloc((size_t)p->n_steps + 1, sizeof *ex->args);
    ex->bound = calloc((size_t)p->n_steps + 1, sizeof *ex->bound);
    if (!ex->arena || (p->scratch_size && !ex->scratch) || !ex->tensors || !ex->args || !ex->bound) {
        st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "cannot allocate %.1f MiB of activations",
                      (double)p->arena_size / 1048576.0);
        goto cleanup;
    }
    for (int i = 0; i < p->n_pvals; i++) {
        const struct pval *pv = &p->pvals[i];
        ex->tensors[i] = pv->t;
        ex->tensors[i].data = pv->storage >= 0 ? ex->arena + p->storages[pv->storage].offset
                                               : (void *)pv->const_data;
    }
    for (int i = 0; i < p->n_steps; i++) {
        const struct step *s = &p->steps[i];
        struct qcal_op_args *a = &ex->args[i];
        a->n_in = s->n_in;
        a->n_out = s->n_out;
        for (int k = 0; k < s->n_in; k++) a->in[k] = s->in[k] >= 0 ? &ex->tensors[s->in[k]] : NULL;
        for (int k = 0; k < s->n_out; k++) a->out[k] = s->out[k] >= 0 ? &ex->tensors[s->out[k]] : NULL;
        a->in_layout = s->in_layout;
        a->out_layout = s->out_layout;
        a->scratch = ex->scratch;
        if (s->kind == STEP_OP && s->def->bind) {
            st = s->def->bind(s->state, a, &ex->bound[i]);
            if (st != QCAL_OK) goto cleanup;
            a->bound = ex->bound[i];
        }
    }
cleanup:
    if (st != QCAL_OK) {
        qcal_exec_destroy(ex);
        ex = NULL;
    }
    *exec_out = ex;
    return st;
}

void qcal_exec_destroy(struct qcal_exec *ex)
{
    if (!ex) return;
    for (int i = 0; ex->bound && i < ex->plan->n_steps; i++) {
        const struct step *s = &ex->plan->steps[i];
        if (ex->bound[i] && s->def && s->def->unbind) s->def->unbind(ex->bound[i]);
    }
    qcal_free(ex->arena);
    qcal_free(ex->scratch);
    free(ex->tensors);
    free(ex->args);
    free(ex->bound);
    free(ex);
}

enum qcal_status qcal_exec_set_input(struct qcal_exec *ex, int i, const struct qcal_tensor *t)
{
    const struct qcal_plan *p = ex->plan;
    if (i < 0 || i >= p->n_inputs) return QCAL_ERR(QCAL_INVALID_ARGUMENT, "input %d does not exist", i);
    struct qcal_tensor *dst = &ex->tensors[p->input_pval[i]];
    char want[96], have[96];
    if (t->dtype != dst->dtype || !qcal_shape_equal(t, dst))
        return QCAL_ERR(QCAL_INVALID_ARGUMENT, "input '%s' must be %s %s, got %s %s",
                        p->g->values[p->pvals[p->input_pval[i]].value].name,
                        qcal_dtype_name(dst->dtype), qcal_shape_str(dst, want, sizeof want),
                        qcal_dtype_name(t->dtype), qcal_shape_str(t, have, sizeof have));
    memcpy(dst->data, t->data, qcal_tensor_bytes(t));
    return QCAL_OK;
}

static void reorder(const struct qcal_tensor *src, int src_layout, struct qcal_tensor *dst, int dst_layout)
{
    int64_t ss[QCAL_MAX_DIMS] = {0}, ds[QCAL_MAX_DIMS] = {0};
    qcal_strides(src, src_layout == QCAL_LAYOUT_NHWC, ss);
    qcal_strides(dst, dst_layout == QCAL_LAYOUT_NHWC, ds);
    qcal_copy_strided(src->ndim, src->dims, qcal_dtype_size(src->dtype), src->data, ss, dst->data, ds);
}

enum qcal_status qcal_exec_run(struct qcal_exec *ex) { return qcal_exec_run_timed(ex, NULL); }

enum qcal_status qcal_exec_run_timed(struct qcal_exec *ex, double *step_seconds)
{
    const struct qcal_plan *p = ex->plan;
    for (int i = 0; i < p->n_steps; i++) {
        double t0 = step_seconds ? qcal_now() : 0.0;
        const struct step *s = &p->steps[i];
        struct qcal_op_args *a = &ex->args[i];
        if (s->kind == STEP_REORDER) {
            reorder(a->in[0], s->in_layout[0], a->out[0], s->out_layout[0]);
        } else {
            enum qcal_status st = s->def->run(s->state, a);
            if (st != QCAL_OK) {
                const struct qcal_node *n = &p->g->nodes[s->node];
                return QCAL_ERR(st, "%s: node '%s' (%s) failed", p->g->path, n->name, n->op_type);
            }
            if (ex->observer)
                ex->observer(ex->observer_ctx, &p->g->nodes[s->node], a->n_out, a->out, s->out_layout);
        }
        if (step_seconds) step_seconds[i] += qcal_now() - t0;
    }
    return QCAL_OK;
}

void qcal_exec_set_observer(struct qcal_exec *ex, qcal_observer_fn fn, void *ctx)
{
    ex->observer = fn;
    ex->observer_ctx = ctx;
}

const struct qcal_tensor *qcal_exec_output(const struct qcal_exec *ex, int i)
{
    return &ex->tensors[ex->plan->output_pval[i]];
}

int qcal_exec_num_outputs(const struct qcal_exec *ex) { return ex->plan->n_outputs; }

const char *qcal_exec_output_name(const struct qcal_exec *ex, int i)
{
    const struct qcal_plan *p = ex->plan;
    return p->g->values[p->pvals[p->output_pval[i]].value].name;
}
