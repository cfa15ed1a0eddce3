/*
 * qcal onnx: ONNX model files to and from the graph IR, through protobuf-c code generated
 * at build time from the system's onnx.proto (libonnx-dev).
 *
 *     struct qcal_graph *g = NULL;
 *     if (qcal_onnx_load("model.onnx", &g) != QCAL_OK) return 1;  // error already logged
 *
 * Loading checks what the runtime relies on: a default-domain opset qcal supports, every
 * initializer's data present and of the declared size, external data files inside the
 * model's folder. Constant nodes become constant values.
 */
#ifndef QCAL_ONNX_H
#define QCAL_ONNX_H

#include "qcal/graph.h"

#define QCAL_ONNX_MIN_OPSET 9
#define QCAL_ONNX_MAX_OPSET 17

/* Loads `path`; on success *graph_out is owned by the caller (qcal_graph_destroy). */
enum qcal_status qcal_onnx_load(const char *path, struct qcal_graph **graph_out);

/* Decodes a TensorProto-shaped buffer already in memory (used for tests). */
enum qcal_status qcal_onnx_load_buffer(const void *data, size_t size, const char *path,
                                       struct qcal_graph **graph_out);

/* Writes g as an ONNX model (ir_version >= 7, the graph's opsets, constants as
 * initializers, fixed input/output shapes) through a temporary file renamed when complete. */
enum qcal_status qcal_onnx_save(const struct qcal_graph *g, const char *path);

#endif
