/* graph: value index, topological sort, cycle and dangling-input errors, compaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "qcal/graph.h"

static int value(struct qcal_graph *g, const char *name)
{
    int id = -1;
    qcal_graph_get_or_add_value(g, name, &id);
    return id;
}

static void node(struct qcal_graph *g, const char *name, const char *op, const char *in0, const char *in1,
                 const char *out)
{
    int ins[2] = {value(g, in0), in1 ? value(g, in1) : -1}, outs[1] = {value(g, out)};
    int id;
    qcal_graph_add_node(g, name, op, "", ins, in1 ? 2 : 1, outs, 1, &id);
    g->values[outs[0]].producer = id;
}

static void test_index(void)
{
    struct qcal_graph *g;
    CHECK(qcal_graph_create("t.onnx", &g) == QCAL_OK);
    char name[32];
    for (int i = 0; i < 1000; i++) { /* forces several index rebuilds */
        snprintf(name, sizeof name, "v%d", i);
        int id;
        CHECK(qcal_graph_add_value(g, name, &id) == QCAL_OK);
        CHECK_EQ_INT(id, i);
    }
    CHECK_EQ_INT(qcal_graph_find_value(g, "v0"), 0);
    CHECK_EQ_INT(qcal_graph_find_value(g, "v999"), 999);
    CHECK_EQ_INT(qcal_graph_find_value(g, "v1000"), -1);
    int id;
    CHECK(qcal_graph_add_value(g, "v5", &id) == QCAL_INVALID_MODEL); /* duplicate name */
    CHECK(qcal_graph_add_temp_value(g, "v5", &id) == QCAL_OK);
    CHECK(strcmp(g->values[id].name, "v5__qcal0") == 0);
    qcal_graph_destroy(g);
}

static struct qcal_graph *chain(bool cycle)
{
    struct qcal_graph *g;
    qcal_graph_create("t.onnx", &g);
    int x = value(g, "x");
    g->values[x].is_input = true;
    /* listed out of order: c needs b needs a */
    node(g, "c", "Relu", "b_out", NULL, "c_out");
    node(g, "b", "Add", "a_out", cycle ? "c_out" : "x", "b_out");
    node(g, "a", "Relu", "x", NULL, "a_out");
    return g;
}

static void test_toposort(void)
{
    struct qcal_graph *g = chain(false);
    CHECK(qcal_graph_toposort(g) == QCAL_OK);
    CHECK(strcmp(g->nodes[0].name, "a") == 0);
    CHECK(strcmp(g->nodes[1].name, "b") == 0);
    CHECK(strcmp(g->nodes[2].name, "c") == 0);
    CHECK_EQ_INT(g->values[qcal_graph_find_value(g, "a_out")].producer, 0);
    CHECK_EQ_INT(g->values[qcal_graph_find_value(g, "x")].n_consumers, 2);
    /* the dead node and the values only it used disappear */
    g->nodes[2].dead = true;
    qcal_graph_compact(g);
    CHECK_EQ_INT(g->n_nodes, 2);
    qcal_graph_destroy(g);

    g = chain(true);
    CHECK(qcal_graph_toposort(g) == QCAL_INVALID_MODEL);
    qcal_graph_destroy(g);

    qcal_graph_create("t.onnx", &g);
    node(g, "lonely", "Relu", "ghost", NULL, "y");
    CHECK(qcal_graph_toposort(g) == QCAL_INVALID_MODEL); /* 'ghost' has no producer */
    qcal_graph_destroy(g);
}

static void test_attrs(void)
{
    struct qcal_graph *g;
    qcal_graph_create("t.onnx", &g);
    node(g, "n", "Conv", "x", NULL, "y");
    struct qcal_node *n = &g->nodes[0];
    n->attrs = calloc(2, sizeof *n->attrs);
    n->n_attrs = 2;
    n->attrs[0].name = strdup("group");
    n->attrs[0].type = QCAL_ATTR_INT;
    n->attrs[0].i = 4;
    n->attrs[1].name = strdup("pads");
    n->attrs[1].type = QCAL_ATTR_INTS;
    n->attrs[1].n = 4;
    n->attrs[1].ints = malloc(4 * sizeof(int64_t));
    for (int i = 0; i < 4; i++) n->attrs[1].ints[i] = i + 1;
    CHECK_EQ_INT(qcal_node_attr_int(n, "group", 1), 4);
    CHECK_EQ_INT(qcal_node_attr_int(n, "missing", 7), 7);
    int64_t v[8];
    CHECK_EQ_INT(qcal_node_attr_ints(n, "pads", v, 8), 4);
    CHECK_EQ_INT(v[3], 4);
    CHECK_EQ_INT(qcal_node_attr_ints(n, "strides", v, 8), -1);
    CHECK(strcmp(qcal_node_attr_string(n, "auto_pad", "NOTSET"), "NOTSET") == 0);
    qcal_graph_destroy(g);
}

/* reorder keeps a given topological order (toposort alone would not), refuses a
 * non-permutation and an order that breaks a dependency; attribute copies are deep */
static void test_reorder_and_copy(void)
{
    struct qcal_graph *g;
    qcal_graph_create("t.onnx", &g);
    const int x = value(g, "x");
    g->values[x].is_input = true;
    node(g, "a", "Relu", "x", NULL, "a_out");
    node(g, "b", "Relu", "a_out", NULL, "b_out");
    node(g, "twin", "Relu", "x", NULL, "t_out"); /* independent of a and b */
    CHECK(qcal_graph_toposort(g) == QCAL_OK);
    CHECK(strcmp(g->nodes[2].name, "twin") == 0); /* min-index order leaves it last */
    CHECK(qcal_graph_reorder(g, (int[]){0, 2, 1}) == QCAL_OK);
    CHECK(strcmp(g->nodes[1].name, "twin") == 0 && strcmp(g->nodes[2].name, "b") == 0);
    CHECK_EQ_INT(g->values[qcal_graph_find_value(g, "b_out")].producer, 2);
    CHECK(qcal_graph_reorder(g, (int[]){0, 0, 1}) == QCAL_INVALID_ARGUMENT);
    /* b before a: toposort puts a first again */
    CHECK(qcal_graph_reorder(g, (int[]){2, 0, 1}) == QCAL_OK);
    CHECK(strcmp(g->nodes[0].name, "a") == 0);

    struct qcal_node *n = &g->nodes[0];
    n->attrs = calloc(2, sizeof *n->attrs);
    n->n_attrs = 2;
    n->attrs[0] = (struct qcal_attr){.name = strdup("pads"), .type = QCAL_ATTR_INTS, .n = 2};
    n->attrs[0].ints = malloc(2 * sizeof(int64_t));
    n->attrs[0].ints[0] = 3, n->attrs[0].ints[1] = 5;
    n->attrs[1] = (struct qcal_attr){.name = strdup("mode"), .type = QCAL_ATTR_STRING, .s = strdup("nearest")};
    CHECK(qcal_node_copy_attrs(&g->nodes[1], &g->nodes[0]) == QCAL_OK);
    g->nodes[0].attrs[0].ints[1] = 9; /* the copy does not share */
    int64_t v[4];
    CHECK_EQ_INT(qcal_node_attr_ints(&g->nodes[1], "pads", v, 4), 2);
    CHECK_EQ_INT(v[1], 5);
    CHECK(strcmp(qcal_node_attr_string(&g->nodes[1], "mode", ""), "nearest") == 0);
    qcal_graph_destroy(g);
}

static void test_post_ops(void)
{
    struct qcal_post_ops p = {.n = 3, .op = {{.kind = QCAL_ACT_LINEAR, .alpha = 2.0f, .beta = 1.0f},
                                             {.kind = QCAL_ACT_SUM},
                                             {.kind = QCAL_ACT_RELU}}};
    float y[3] = {-2.0f, 0.5f, 1.0f}, r[3] = {1.0f, -3.0f, 0.25f};
    qcal_post_ops_apply(&p, y, r, 3);
    CHECK_NEAR(y[0], 0.0f, 0);      /* relu(-4 + 1 + 1) */
    CHECK_NEAR(y[1], 0.0f, 0);      /* relu(2 - 3) */
    CHECK_NEAR(y[2], 3.25f, 1e-7);  /* 3 + 0.25 */
    struct qcal_act hs = {.kind = QCAL_ACT_HARD_SWISH};
    CHECK_NEAR(qcal_act_apply(&hs, 1.0f), 1.0f * 4.0f / 6.0f, 1e-7);
    CHECK_NEAR(qcal_act_apply(&hs, -4.0f), 0.0f, 0);
}

int main(void)
{
    qcal_log_set_level(QCAL_LOG_QUIET); /* expected errors stay quiet */
    test_index();
    test_toposort();
    test_attrs();
    test_reorder_and_copy();
    test_post_ops();
    return check_report();
}
