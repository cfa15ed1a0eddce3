/*
 * qcal quant: an FP32 graph becomes a QDQ graph.
 *
 *     struct qcal_quant_sel sel;
 *     qcal_quant_select(g, &opts, &sel);         // nodes to quantize, activations to observe
 *     ... calibration fills stats for sel.values ...
 *     qcal_quant_to_qdq(g, &sel, calib, &qo);     // int8 weights, int32 biases, Q/DQ pairs
 *     qcal_quant_upgrade_opset(g, 13);            // ops whose encoding changed before 13
 *     qcal_onnx_save(g, "model.int8.onnx");
 *
 * Quantized ops: Conv, ConvTranspose, Gemm and MatMul (constant weights per output channel,
 * symmetric int8 in [-127, 127]; biases int32 at scale_x * scale_w), Add and Mul of two
 * activations, AveragePool and GlobalAveragePool. Everything else, and every node in the
 * ignored scope, stays FP32.
 */
#ifndef QCAL_QUANT_H
#define QCAL_QUANT_H

#include "qcal/calib.h"

struct qcal_quant_options {
    int n_ignored_names, n_ignored_types;
    char *const *ignored_names; /* node names, exact */
    char *const *ignored_types; /* op types, exact */
};

struct qcal_quant_sel {
    int n_nodes, n_values, n_shared;
    int *nodes;   /* node indices, graph order */
    bool *fp32;   /* per node: in the ignored scope, reads FP32 inputs even where they are
                   * quantized for other consumers */
    int *values;  /* activation value ids to quantize (each once, first use order) */
    int *shared;  /* pairs (input, output) of Concat nodes whose output is quantized: the
                   * input is quantized with the output's parameters (not observed), so
                   * the int8 Concat only copies bytes */
};

enum qcal_status qcal_quant_select(const struct qcal_graph *g, const struct qcal_quant_options *o,
                                   struct qcal_quant_sel *sel);
void qcal_quant_sel_free(struct qcal_quant_sel *sel);

/* Rewrites g in place into QDQ form with the parameters in c (one stat per sel value, same
 * order). Node and value indices of g change. */
enum qcal_status qcal_quant_to_qdq(struct qcal_graph *g, const struct qcal_quant_sel *sel,
                                   const struct qcal_calib *c);

/* Rewrites nodes of an older default-domain opset whose encoding changed before `opset`
 * (Clip, Softmax/LogSoftmax, Squeeze/Unsqueeze, Split) and sets the graph's opset. Ops
 * qcal cannot convert are errors naming the node. */
enum qcal_status qcal_quant_upgrade_opset(struct qcal_graph *g, int64_t opset);

/* INT8-simulated twins measure each quantized layer's quantization error in the FP32
 * runtime. For every selected node, the twin computes the same op on its quantized inputs
 * after a Q/DQ pair, with its weight and bias as INT8 sees them (int8 per channel, int32 at
 * scale_x * scale_w), and `error` = twin output - FP32 output is kept for an observer. The
 * inputs are the FP32 tensors, so each layer's own error is measured, not the sum of the
 * errors before it (what bias correction needs). Each twin follows its node, so memory
 * stays close to the plain model's. */
struct qcal_quant_layer {
    char *name;            /* node name */
    char *op;              /* op type */
    char *output;          /* its FP32 output tensor: what the layer is known by */
    int y, error;          /* value ids: FP32 output, twin - FP32 (kept alive for observers) */
    int axis;              /* channel axis of y, plain layout (last for Gemm/MatMul, else 1) */
    int64_t channels;
    double bound;          /* no |y| or |error| element can exceed it (from weights and ranges) */
    bool bias_correctable; /* Conv / ConvTranspose / Gemm whose 1-D bias is (or can be) added */
    int input;             /* value id of its quantized activation input 0 (-1: none) */
    int input_axis;        /* its channel axis (weighted layers: 1, Gemm: last) */
    int64_t input_channels;
};
struct qcal_quant_twins {
    int n;
    struct qcal_quant_layer *layers;
};
/* Adds the twins to a prepared FP32 graph g with the selection and scales of the
 * calibration (stats matched by name); g must be prepared again (qcal_model_prepare)
 * before planning. */
enum qcal_status qcal_quant_add_twins(struct qcal_graph *g, const struct qcal_quant_sel *sel,
                                      const struct qcal_calib *c, struct qcal_quant_twins *tw);
void qcal_quant_twins_free(struct qcal_quant_twins *tw);

/* Adds shift[c] to the bias of the node producing `output` (creating a bias if it has
 * none): fast bias correction, before qcal_quant_to_qdq. */
enum qcal_status qcal_quant_correct_bias(struct qcal_graph *g, const char *output, const double *shift,
                                         int64_t channels);

/* How the mean output of the weighted layer producing `output` moves when the means of its
 * input channels move by d[i] and its input scale goes from sx0 to sx1: delta[c] =
 * sum_i Wq[c, i] d[i] (Wq: the INT8 weight summed over its kernel; a ConvTranspose's scaled
 * by input over output pixels) plus the change of the int32 bias. Conv, ConvTranspose, Gemm. */
enum qcal_status qcal_quant_mean_effect(const struct qcal_graph *g, const char *output, const double *d,
                                        int64_t in_channels, float sx0, float sx1, double *delta, int64_t channels);

/* Symmetric per-channel int8 of w viewed as [outer, ch, inner] along ch: scale[c] =
 * max|w| / 127 (1 for an all-zero channel), q = round(w / scale) in [-127, 127]. */
void qcal_quant_weights(const float *w, int64_t outer, int64_t ch, int64_t inner, int8_t *q, float *scale);

#endif
