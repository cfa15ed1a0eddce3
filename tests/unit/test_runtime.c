/* runtime on a real model (path given by CTest): repeated runs give the same bytes; contexts
 * running concurrently on OpenMP threads (batch mode) give the same bytes as one context
 * alone; the arena reuses memory. Usage: test_runtime MODEL.onnx INPUT.npy [dnnl|all]
 * (all adds the reference kernels: slow on big models) */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "qcal/data.h"
#include "qcal/onnx.h"
#include "qcal/runtime.h"

struct seen {
    int calls;
    const struct qcal_node *last;
    float last_max;
};

static void observe(void *ctx, const struct qcal_node *node, int n_out, struct qcal_tensor *const *outs,
                    const uint8_t *layouts)
{
    struct seen *s = ctx;
    (void)layouts;
    s->calls++;
    s->last = node;
    if (n_out > 0 && outs[0] && outs[0]->dtype == QCAL_F32) {
        const float *d = outs[0]->data;
        s->last_max = d[0];
        for (int64_t i = 1; i < qcal_tensor_numel(outs[0]); i++) s->last_max = d[i] > s->last_max ? d[i] : s->last_max;
    }
}

static void *run_once(struct qcal_exec *ex, const struct qcal_tensor *x, size_t *bytes)
{
    if (qcal_exec_set_input(ex, 0, x) != QCAL_OK || qcal_exec_run(ex) != QCAL_OK) return NULL;
    const struct qcal_tensor *y = qcal_exec_output(ex, 0);
    *bytes = qcal_tensor_bytes(y);
    void *copy = malloc(*bytes);
    memcpy(copy, y->data, *bytes);
    return copy;
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: test_runtime MODEL.onnx INPUT.npy [dnnl|all]\n");
        return 2;
    }
    struct qcal_graph *g = NULL;
    struct qcal_tensor x;
    CHECK(qcal_onnx_load(argv[1], &g) == QCAL_OK);
    CHECK(qcal_npy_read(argv[2], &x) == QCAL_OK);
    if (!g || !x.data) return check_report();
    struct qcal_input_shape shape = {.ndim = x.ndim};
    memcpy(shape.dims, x.dims, sizeof shape.dims);
    struct qcal_prepare_options po = {.n_shapes = 1, .shapes = &shape, .optimize = true};
    CHECK(qcal_model_prepare(g, &po) == QCAL_OK);
    int kernels[] = {QCAL_KERNELS_DNNL, QCAL_KERNELS_REF};
    int n_kernels = argc == 4 && strcmp(argv[3], "dnnl") == 0 ? 1 : 2;
    for (int k = 0; k < n_kernels; k++) {
        struct qcal_plan *plan = NULL;
        struct qcal_plan_options plo = {.kernels = kernels[k]};
        CHECK(qcal_plan_create(g, &plo, &plan) == QCAL_OK);
        size_t total = 0;
        for (int v = 0; v < g->n_values; v++)
            if (!qcal_value_is_const(&g->values[v])) total += qcal_tensor_bytes(&g->values[v].t);
        CHECK(qcal_plan_arena_bytes(plan) < total); /* buffers are reused */

        /* one context, one thread, three runs */
        omp_set_num_threads(1);
        struct qcal_exec *ex = NULL;
        CHECK(qcal_exec_create(plan, &ex) == QCAL_OK);
        size_t n1 = 0, n2 = 0;
        void *ref = run_once(ex, &x, &n1);
        CHECK(qcal_exec_run(ex) == QCAL_OK); /* again, without setting the input */
        CHECK(memcmp(qcal_exec_output(ex, 0)->data, ref, n1) == 0);
        /* the observer sees every node once per run; the last one produced the output */
        struct seen seen = {0};
        qcal_exec_set_observer(ex, observe, &seen);
        CHECK(qcal_exec_run(ex) == QCAL_OK);
        CHECK_EQ_INT(seen.calls, g->n_nodes);
        CHECK(seen.last == &g->nodes[g->n_nodes - 1]);
        const struct qcal_tensor *y = qcal_exec_output(ex, 0);
        float ymax = ((const float *)y->data)[0];
        for (int64_t i = 1; i < qcal_tensor_numel(y); i++)
            ymax = ((const float *)y->data)[i] > ymax ? ((const float *)y->data)[i] : ymax;
        CHECK_NEAR(seen.last_max, ymax, 0);
        qcal_exec_destroy(ex);

        /* batch mode: one context per thread, all at once */
        omp_set_num_threads(2);
        int mismatches = 0;
#pragma omp parallel num_threads(2) reduction(+ : mismatches)
        {
            struct qcal_exec *mine = NULL;
            if (qcal_exec_create(plan, &mine) != QCAL_OK) {
                mismatches++;
            } else {
                for (int r = 0; r < 3; r++) {
                    void *y = run_once(mine, &x, &n2);
                    mismatches += !y || n2 != n1 || memcmp(y, ref, n1) != 0;
                    free(y);
                }
                qcal_exec_destroy(mine);
            }
        }
        CHECK_EQ_INT(mismatches, 0);
        free(ref);
        qcal_plan_destroy(plan);
    }
    qcal_free(x.data);
    qcal_graph_destroy(g);
    return check_report();
}
