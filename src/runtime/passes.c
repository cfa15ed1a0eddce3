/* Graph rewrites that keep results equal up to float rounding. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qcal/runtime.h"

void qcal_batchnorm_coefficients(const float *scale, const float *bias, const float *mean,
                                 const float *var, float eps, int64_t c, float *a, float *b)
{
    for (int64_t i = 0; i < c; i++) {
        a[i] = scale[i] / sqrtf(var[i] + eps);
        b[i] = bias[i] - mean[i] * a[i];
    }
}

/* The only live consumer of value v, or -1 when it has none or several, or is an output. */
static int sole_consumer(const struct qcal_graph *g, int v)
{
    if (g->values[v].is_output || g->values[v].n_consumers != 1) return -1;
    for (int i = 0; i < g->n_nodes; i++) {
        const struct qcal_node *n = &g->nodes[i];
        if (n->dead) continue;
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] == v) return i;
    }
    return -1;
}

static bool all_const(const struct qcal_graph *g, const struct qcal_node *n, int from, int to)
{
    for (int k = from; k < to; k++)
        if (k >= n->n_inputs || n->inputs[k] < 0 || !qcal_value_is_const(&g->values[n->inputs[k]]))
            return false;
    return true;
}

/* Conv -> BatchNormalization becomes one Conv with scaled weights and shifted bias. New
 * constants are made, so weights shared with other nodes stay intact. */
enum qcal_status qcal_pass_fold_batchnorm(struct qcal_graph *g)
{
    enum qcal_status st = QCAL_OK;
    qcal_graph_update_uses(g);
    for (int i = 0; i < g->n_nodes; i++) {
        struct qcal_node *bn = &g->nodes[i];
        if (bn->dead || bn->op != QCAL_OP_BATCH_NORM || !all_const(g, bn, 1, 5)) continue;
        int x = bn->inputs[0];
        int ci = g->values[x].producer;
        if (ci < 0 || sole_consumer(g, x) != i) continue;
        struct qcal_node *conv = &g->nodes[ci];
        if (conv->op != QCAL_OP_CONV || conv->act.kind != QCAL_ACT_NONE || !all_const(g, conv, 1, 2))
            continue;
        if (conv->n_inputs > 2 && conv->inputs[2] >= 0 && !all_const(g, conv, 2, 3)) continue;
        const struct qcal_tensor *w = &g->values[conv->inputs[1]].t;
        int64_t oc = w->dims[0], per = qcal_tensor_numel(w) / oc;
        float *a = malloc(2 * sizeof(float) * (size_t)oc);
        float *nw = qcal_malloc(sizeof(float) * (size_t)(oc * per));
        float *nb = qcal_malloc(sizeof(float) * (size_t)oc);
        if (!a || !nw || !nb) {
            free(a);
            qcal_free(nw);
            qcal_free(nb);
            return QCAL_ERR(QCAL_OUT_OF_MEMORY, "%s: out of memory folding '%s'", g->path, bn->name);
        }
        float *b = a + oc;
        qcal_batchnorm_coefficients(g->values[bn->inputs[1]].t.data, g->values[bn->inputs[2]].t.data,
                                    g->values[bn->inputs[3]].t.data, g->values[bn->inputs[4]].t.data,
                                    qcal_node_attr_float(bn, "epsilon", 1e-5f), oc, a, b);
        const float *wd = w->data;
        const float *bd = conv->n_inputs > 2 && conv->inputs[2] >= 0
                              ? g->values[conv->inputs[2]].t.data : NULL;
        for (int64_t o = 0; o < oc; o++) {
            for (int64_t k = 0; k < per; k++) nw[o * per + k] = wd[o * per + k] * a[o];
            nb[o] = (bd ? bd[o] : 0.0f) * a[o] + b[o];
        }
        free(a);
        int wv, bv;
        struct qcal_tensor wt = *w, bt = qcal_tensor_make(QCAL_F32, 1, &oc);
        wt.data = NULL;
        if ((st = qcal_graph_add_temp_value(g, g->values[conv->inputs[1]].name, &wv)) != QCAL_OK ||
            (st = qcal_graph_add_temp_value(g, conv->name, &bv)) != QCAL_OK) {
            qcal_free(nw);
            qcal_free(nb);
            return st;
        }
        bn = &g->nodes[i]; /* values may have moved, nodes have not; refresh anyway */
        conv = &g->nodes[ci];
        qcal_graph_set_constant(g, wv, wt, nw);
        qcal_graph_set_constant(g, bv, bt, nb);
        if (conv->n_inputs < 3) {
            int *ins = realloc(conv->inputs, sizeof(int) * 3);
            if (!ins) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
            conv->inputs = ins;
            conv->n_inputs = 3;
        }
        conv->inputs[1] = wv;
        conv->inputs[2] = bv;
        conv->outputs[0] = bn->outputs[0];
        bn->dead = true;
        qcal_graph_update_uses(g);
    }
    return st;
}

static bool fusable_producer(const struct qcal_node *n)
{
    return (n->op == QCAL_OP_CONV || n->op == QCAL_OP_CONV_TRANSPOSE || n->op == QCAL_OP_GEMM ||
            n->op == QCAL_OP_MATMUL) && n->act.kind == QCAL_ACT_NONE;
}

/* A scalar float constant input equal to `want`. */
static bool const_scalar_is(const struct qcal_graph *g, int v, float want)
{
    if (v < 0) return false;
    const struct qcal_value *val = &g->values[v];
    if (!qcal_value_is_const(val) || val->t.dtype != QCAL_F32 || qcal_tensor_numel(&val->t) != 1)
        return false;
    return fabsf(((const float *)val->t.data)[0] - want) <= 1e-6f * fabsf(want);
}

/* The other input of a binary node that uses v once. */
static int other_input(const struct qcal_node *n, int v)
{
    if (n->n_inputs != 2) return -1;
    if (n->inputs[0] == v && n->inputs[1] != v) return n->inputs[1];
    if (n->inputs[1] == v && n->inputs[0] != v) return n->inputs[0];
    return -1;
}

/* Consumers of v (at most 4). */
static int consumers(const struct qcal_graph *g, int v, int *out)
{
    int c = 0;
    for (int i = 0; i < g->n_nodes && c < 4; i++) {
        const struct qcal_node *n = &g->nodes[i];
        if (n->dead) continue;
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] == v) {
                out[c++] = i;
                break;
            }
    }
    return c;
}

/* y = x * Clip(x + 3, 0, 6) / 6 as Paddle exports HardSwish: returns the node producing y
 * and marks the pattern's nodes in `nodes`, or -1. */
static int match_paddle_hardswish(const struct qcal_graph *g, int x, int *nodes)
{
    int cons[4];
    if (g->values[x].is_output || g->values[x].n_consumers != 2 || consumers(g, x, cons) != 2) return -1;
    for (int t = 0; t < 2; t++) {
        const struct qcal_node *add = &g->nodes[cons[t]], *mul = &g->nodes[cons[1 - t]];
        if (add->op != QCAL_OP_ADD || mul->op != QCAL_OP_MUL) continue;
        if (!const_scalar_is(g, other_input(add, x), 3.0f)) continue;
        int ci = sole_consumer(g, add->outputs[0]);
        if (ci < 0) continue;
        const struct qcal_node *clip = &g->nodes[ci];
        struct qcal_act act;
        if (!qcal_ops_node_act(clip, &act) || act.kind != QCAL_ACT_CLIP || act.alpha != 0.0f ||
            act.beta != 6.0f)
            continue;
        if (sole_consumer(g, clip->outputs[0]) != cons[1 - t] ||
            other_input(mul, x) != clip->outputs[0])
            continue;
        int di = sole_consumer(g, mul->outputs[0]);
        if (di < 0) continue;
        const struct qcal_node *div = &g->nodes[di];
        bool ok = (div->op == QCAL_OP_DIV && div->inputs[0] == mul->outputs[0] &&
                   const_scalar_is(g, div->inputs[1], 6.0f)) ||
                  (div->op == QCAL_OP_MUL && const_scalar_is(g, other_input(div, mul->outputs[0]), 1.0f / 6.0f));
        if (!ok) continue;
        nodes[0] = cons[t];
        nodes[1] = ci;
        nodes[2] = cons[1 - t];
        nodes[3] = di;
        return di;
    }
    return -1;
}

enum qcal_status qcal_pass_fuse_activations(struct qcal_graph *g)
{
    qcal_graph_update_uses(g);
    for (int i = 0; i < g->n_nodes; i++) {
        struct qcal_node *n = &g->nodes[i];
        if (n->dead || !fusable_producer(n)) continue;
        int y = n->outputs[0];
        int c = sole_consumer(g, y);
        struct qcal_act act;
        if (c >= 0 && qcal_ops_node_act(&g->nodes[c], &act) && g->nodes[c].inputs[0] == y) {
            n->act = act;
            n->outputs[0] = g->nodes[c].outputs[0];
            g->nodes[c].dead = true;
            qcal_graph_update_uses(g);
            continue;
        }
        int cons[4];
        if (!g->values[y].is_output && g->values[y].n_consumers == 2 && consumers(g, y, cons) == 2) {
            /* x * Sigmoid(x) */
            for (int t = 0; t < 2; t++) {
                struct qcal_node *sig = &g->nodes[cons[t]], *mul = &g->nodes[cons[1 - t]];
                if (sig->op != QCAL_OP_SIGMOID || mul->op != QCAL_OP_MUL) continue;
                if (sole_consumer(g, sig->outputs[0]) != cons[1 - t] ||
                    other_input(mul, y) != sig->outputs[0])
                    continue;
                n->act.kind = QCAL_ACT_SWISH;
                n->outputs[0] = mul->outputs[0];
                sig->dead = mul->dead = true;
                qcal_graph_update_uses(g);
                break;
            }
            if (n->act.kind != QCAL_ACT_NONE) continue;
            int nodes[4];
            int last = match_paddle_hardswish(g, y, nodes);
            if (last >= 0) {
                n->act.kind = QCAL_ACT_HARD_SWISH;
                n->outputs[0] = g->nodes[last].outputs[0];
                for (int k = 0; k < 4; k++) g->nodes[nodes[k]].dead = true;
                qcal_graph_update_uses(g);
            }
        }
    }
    return QCAL_OK;
}

void qcal_pass_eliminate_dead(struct qcal_graph *g)
{
    qcal_graph_update_uses(g);
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        struct qcal_node *n = &g->nodes[i];
        if (n->dead) continue;
        bool used = false;
        for (int k = 0; k < n->n_outputs && !used; k++)
            used = n->outputs[k] >= 0 && (g->values[n->outputs[k]].n_consumers > 0 ||
                                          g->values[n->outputs[k]].is_output);
        if (used) continue;
        n->dead = true;
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0) g->values[n->inputs[k]].n_consumers--;
    }
    qcal_graph_compact(g);
}
