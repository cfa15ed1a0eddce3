#!/usr/bin/python3
"""Generates the op-level fixture models (seeded weights) and their inputs for qcal's
golden tests, plus a manifest for tests/node/ort_run.js, which computes the expected
outputs with ONNX Runtime during the test run.

    gen_fixtures.py OUTDIR      -> OUTDIR/<case>/model.onnx, input_<i>.npy, manifest.json
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT
I64 = TensorProto.INT64
rng = np.random.default_rng(20261122)
CASES = []


def randn(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def case(name, nodes, inputs, outputs, inits=None, opset=13, data=None):
    """inputs: [(name, shape)] float32 graph inputs; outputs: [(name, elem_type)]."""
    inits = inits or {}
    g = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(n, F, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, t, None) for n, t in outputs],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)],
                          producer_name="qcal-fixtures")
    m.ir_version = 7 if opset < 15 else 8
    m = onnx.shape_inference.infer_shapes(m)
    # outputs declared without shapes: fill them from shape inference for the checker
    vi = {v.name: v for v in m.graph.value_info}
    for o in m.graph.output:
        if o.name in vi:
            o.CopyFrom(vi[o.name])
        elif not o.type.tensor_type.HasField("shape"):
            o.type.tensor_type.shape.SetInParent()
    onnx.checker.check_model(m)
    feeds = data or [randn(*s) for _, s in inputs]
    CASES.append((name, m, feeds))


def conv_case(name, x, w, b=True, opset=13, **attrs):
    inits = {"W": randn(*w, scale=0.3)}
    ins = ["X", "W"]
    if b:
        inits["B"] = randn(w[0] if "ConvT" not in name else w[1] * attrs.get("group", 1), scale=0.1)
        ins.append("B")
    op = "ConvTranspose" if "ConvT" in name else "Conv"
    case(name, [helper.make_node(op, ins, ["Y"], **attrs)], [("X", x)], [("Y", F)], inits, opset)


# ---- convolutions ----
conv_case("conv_basic", [1, 3, 17, 19], [8, 3, 3, 3], pads=[1, 1, 1, 1])
conv_case("conv_stride_dil", [2, 4, 20, 18], [6, 4, 3, 3], strides=[2, 2], dilations=[2, 2], pads=[2, 1, 0, 2])
conv_case("conv_group", [1, 8, 15, 15], [12, 2, 3, 3], group=4, pads=[1, 1, 1, 1], b=False)
conv_case("conv_depthwise", [1, 16, 14, 14], [16, 1, 3, 3], group=16, strides=[2, 2], pads=[1, 1, 1, 1])
conv_case("conv_same_upper", [1, 5, 13, 11], [7, 5, 4, 4], auto_pad="SAME_UPPER", strides=[2, 2])
conv_case("conv_same_lower", [1, 5, 13, 11], [7, 5, 4, 3], auto_pad="SAME_LOWER")
conv_case("conv_valid", [1, 5, 9, 9], [4, 5, 5, 5], auto_pad="VALID")
conv_case("conv_pointwise", [1, 32, 7, 9], [24, 32, 1, 1])
conv_case("conv_1d", [2, 6, 30], [5, 6, 3], pads=[1, 1], strides=[2])
conv_case("ConvT_basic", [1, 8, 6, 7], [8, 4, 2, 2], strides=[2, 2])
# kernel == stride (PP-OCR's det head): qcal runs these as row GEMMs on NHWC
conv_case("ConvT_k2s2_batch2", [2, 5, 3, 4], [5, 3, 2, 2], strides=[2, 2])
conv_case("ConvT_k3s3_oc1", [1, 4, 5, 3], [4, 1, 3, 3], strides=[3, 3])
conv_case("ConvT_pads", [1, 6, 5, 5], [6, 3, 3, 3], strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])
conv_case("ConvT_group", [1, 8, 5, 6], [8, 2, 4, 4], group=2, strides=[2, 2], pads=[1, 1, 1, 1])

# ---- Gemm / MatMul ----
case("gemm_bias", [helper.make_node("Gemm", ["A", "B", "C"], ["Y"], transB=1, alpha=0.7, beta=1.3)],
     [("A", [3, 20])], [("Y", F)], {"B": randn(10, 20), "C": randn(10)})
case("gemm_transA_matrixC", [helper.make_node("Gemm", ["A", "B", "C"], ["Y"], transA=1)],
     [("A", [20, 4])], [("Y", F)], {"B": randn(20, 6), "C": randn(4, 6)})
case("matmul_const", [helper.make_node("MatMul", ["A", "B"], ["Y"])], [("A", [2, 5, 16])], [("Y", F)],
     {"B": randn(16, 12)})
case("matmul_batched", [helper.make_node("MatMul", ["A", "B"], ["Y"])], [("A", [2, 3, 4, 8]), ("B", [3, 8, 5])],
     [("Y", F)])
case("matmul_vec", [helper.make_node("MatMul", ["A", "B"], ["Y"])], [("A", [7]), ("B", [2, 7, 3])], [("Y", F)])

# ---- elementwise binary (broadcasting) ----
for op in ["Add", "Sub", "Mul", "Div"]:
    case(f"{op.lower()}_bcast", [helper.make_node(op, ["A", "B"], ["Y"])], [("A", [2, 3, 4, 5]), ("B", [3, 1, 5])],
         [("Y", F)])
case("add_scalar_first", [helper.make_node("Add", ["C", "A"], ["Y"])], [("A", [1, 4, 3, 3])], [("Y", F)],
     {"C": np.array(0.5, np.float32)})
case("pow", [helper.make_node("Pow", ["A", "B"], ["Y"])], [("A", [3, 4])], [("Y", F)], {"B": np.array([2.0], np.float32)},
     data=[np.abs(randn(3, 4)) + 0.1])
case("prelu", [helper.make_node("PRelu", ["X", "S"], ["Y"])], [("X", [1, 4, 5, 5])], [("Y", F)],
     {"S": randn(4, 1, 1)})
case("sqrt", [helper.make_node("Sqrt", ["X"], ["Y"])], [("X", [2, 9])], [("Y", F)], data=[np.abs(randn(2, 9))])
case("exp", [helper.make_node("Exp", ["X"], ["Y"])], [("X", [2, 9])], [("Y", F)])

# ---- activations ----
for op, attrs in [("Relu", {}), ("LeakyRelu", {"alpha": 0.1}), ("Sigmoid", {}), ("Tanh", {}),
                  ("HardSigmoid", {"alpha": 0.25, "beta": 0.4}), ("HardSwish", {})]:
    case(op.lower(), [helper.make_node(op, ["X"], ["Y"], **attrs)], [("X", [2, 3, 7, 5])], [("Y", F)],
         data=[randn(2, 3, 7, 5, scale=4.0)], opset=14 if op == "HardSwish" else 13)
case("clip_inputs", [helper.make_node("Clip", ["X", "lo", "hi"], ["Y"])], [("X", [3, 10])], [("Y", F)],
     {"lo": np.array(-0.5, np.float32), "hi": np.array(0.7, np.float32)})
case("clip_attrs_opset9", [helper.make_node("Clip", ["X"], ["Y"], min=0.0, max=6.0)], [("X", [3, 10])], [("Y", F)],
     opset=9, data=[randn(3, 10, scale=5.0)])

# ---- softmax family ----
case("softmax13", [helper.make_node("Softmax", ["X"], ["Y"], axis=1)], [("X", [2, 5, 3])], [("Y", F)])
case("softmax11_coerce", [helper.make_node("Softmax", ["X"], ["Y"], axis=1)], [("X", [2, 5, 3])], [("Y", F)], opset=11)
case("logsoftmax", [helper.make_node("LogSoftmax", ["X"], ["Y"])], [("X", [4, 10])], [("Y", F)])

# ---- pooling ----
def pool(name, op, x, **attrs):
    case(name, [helper.make_node(op, ["X"], ["Y"], **attrs)], [("X", x)], [("Y", F)])

pool("maxpool_basic", "MaxPool", [1, 4, 11, 12], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
pool("maxpool_ceil", "MaxPool", [1, 3, 10, 10], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
pool("maxpool_dil", "MaxPool", [1, 3, 12, 12], kernel_shape=[2, 2], dilations=[2, 2])
pool("avgpool_exclude", "AveragePool", [1, 4, 9, 9], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
pool("avgpool_include", "AveragePool", [1, 4, 9, 9], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
     count_include_pad=1)
pool("avgpool_ceil", "AveragePool", [1, 2, 10, 11], kernel_shape=[3, 2], strides=[2, 2], ceil_mode=1)
pool("avgpool_same", "AveragePool", [1, 2, 10, 11], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")
pool("avgpool_1d", "AveragePool", [2, 3, 20], kernel_shape=[4], strides=[3])
pool("gap", "GlobalAveragePool", [2, 6, 7, 5])
pool("gmp", "GlobalMaxPool", [2, 6, 7, 5])

# ---- reductions, argmax, topk ----
case("reducemean", [helper.make_node("ReduceMean", ["X"], ["Y"], axes=[-1], keepdims=1)], [("X", [2, 6, 10])], [("Y", F)])
case("reducemean_multi", [helper.make_node("ReduceMean", ["X"], ["Y"], axes=[1, 2], keepdims=0)], [("X", [2, 6, 4, 3])],
     [("Y", F)])
case("reducemax", [helper.make_node("ReduceMax", ["X"], ["Y"], axes=[0, 2])], [("X", [3, 4, 5])], [("Y", F)])
case("argmax", [helper.make_node("ArgMax", ["X"], ["Y"], axis=1, keepdims=0)], [("X", [3, 10, 4])], [("Y", I64)])
case("topk", [helper.make_node("TopK", ["X", "K"], ["V", "I"], axis=-1)], [("X", [3, 20])], [("V", F), ("I", I64)],
     {"K": np.array([5], np.int64)})

# ---- batch norm (standalone), concat, split ----
case("batchnorm", [helper.make_node("BatchNormalization", ["X", "s", "b", "m", "v"], ["Y"], epsilon=1e-3)],
     [("X", [2, 5, 4, 3])], [("Y", F)],
     {"s": randn(5), "b": randn(5), "m": randn(5), "v": np.abs(randn(5)) + 0.5})
case("concat_ch", [helper.make_node("Concat", ["A", "B", "C"], ["Y"], axis=1)],
     [("A", [1, 2, 4, 4]), ("B", [1, 3, 4, 4]), ("C", [1, 1, 4, 4])], [("Y", F)])
case("concat_last", [helper.make_node("Concat", ["A", "B"], ["Y"], axis=-1)], [("A", [2, 3, 4]), ("B", [2, 3, 2])], [("Y", F)])
case("split13", [helper.make_node("Split", ["X", "S"], ["Y0", "Y1", "Y2"], axis=1)], [("X", [2, 9, 3])],
     [("Y0", F), ("Y1", F), ("Y2", F)], {"S": np.array([2, 3, 4], np.int64)})
case("split_equal11", [helper.make_node("Split", ["X"], ["Y0", "Y1"], axis=-1)], [("X", [2, 3, 8])],
     [("Y0", F), ("Y1", F)], opset=11)

# ---- shape manipulation ----
case("reshape", [helper.make_node("Reshape", ["X", "S"], ["Y"])], [("X", [2, 3, 4])], [("Y", F)],
     {"S": np.array([0, -1, 2], np.int64)})
case("flatten", [helper.make_node("Flatten", ["X"], ["Y"], axis=2)], [("X", [2, 3, 4, 5])], [("Y", F)])
case("transpose", [helper.make_node("Transpose", ["X"], ["Y"], perm=[0, 2, 3, 1])], [("X", [2, 3, 4, 5])], [("Y", F)])
case("squeeze13", [helper.make_node("Squeeze", ["X", "A"], ["Y"])], [("X", [1, 3, 1, 5])], [("Y", F)],
     {"A": np.array([0, 2], np.int64)})
case("squeeze11", [helper.make_node("Squeeze", ["X"], ["Y"], axes=[2])], [("X", [1, 3, 1, 5])], [("Y", F)], opset=11)
case("unsqueeze13", [helper.make_node("Unsqueeze", ["X", "A"], ["Y"])], [("X", [3, 5])], [("Y", F)],
     {"A": np.array([0, -1], np.int64)})
case("unsqueeze11", [helper.make_node("Unsqueeze", ["X"], ["Y"], axes=[1])], [("X", [3, 5])], [("Y", F)], opset=11)
case("identity", [helper.make_node("Identity", ["X"], ["Y"])], [("X", [3, 5])], [("Y", F)])
case("slice", [helper.make_node("Slice", ["X", "s", "e", "a", "st"], ["Y"])], [("X", [4, 10, 6])], [("Y", F)],
     {"s": np.array([1, -1], np.int64), "e": np.array([100, 0], np.int64), "a": np.array([1, 2], np.int64),
      "st": np.array([3, -2], np.int64)})
case("slice_opset9", [helper.make_node("Slice", ["X"], ["Y"], starts=[1, 0], ends=[3, -1], axes=[0, 2])],
     [("X", [4, 5, 6])], [("Y", F)], opset=9)
case("gather", [helper.make_node("Gather", ["X", "I"], ["Y"], axis=1)], [("X", [3, 6, 2])], [("Y", F)],
     {"I": np.array([[0, 5], [-1, 2]], np.int64)})
case("pad_constant", [helper.make_node("Pad", ["X", "P", "V"], ["Y"])], [("X", [1, 2, 4, 4])], [("Y", F)],
     {"P": np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64), "V": np.array(0.25, np.float32)})
case("pad_reflect", [helper.make_node("Pad", ["X", "P"], ["Y"], mode="reflect")], [("X", [1, 2, 5, 5])], [("Y", F)],
     {"P": np.array([0, 0, 2, 1, 0, 0, 1, 2], np.int64)})
case("pad_edge_opset9", [helper.make_node("Pad", ["X"], ["Y"], mode="edge", pads=[0, 1, 2, 0, 1, 0])],
     [("X", [2, 3, 4])], [("Y", F)], opset=9)
# Shape -> Gather -> Cast -> Concat -> Reshape: the chain exporters emit; folded at load
case("shape_chain", [
    helper.make_node("Shape", ["X"], ["s"]),
    helper.make_node("Gather", ["s", "i0"], ["n"], axis=0),
    helper.make_node("Unsqueeze", ["n", "ax"], ["nu"]),
    helper.make_node("Cast", ["nu"], ["nc"], to=I64),
    helper.make_node("Concat", ["nc", "m1"], ["shape"], axis=0),
    helper.make_node("Reshape", ["X", "shape"], ["Y"])],
    [("X", [2, 3, 4, 5])], [("Y", F)],
    {"i0": np.array(0, np.int64), "ax": np.array([0], np.int64), "m1": np.array([-1], np.int64)})
case("constant_nodes", [
    helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(randn(3, 1, 5))),
    helper.make_node("Constant", [], ["f"], value_float=2.5),
    helper.make_node("Constant", [], ["shape"], value_ints=[6, 5]),
    helper.make_node("Add", ["X", "c"], ["a"]),
    helper.make_node("Mul", ["a", "f"], ["m"]),
    helper.make_node("Reshape", ["m", "shape"], ["Y"])], [("X", [2, 3, 1, 5])], [("Y", F)])
case("cast_roundtrip", [helper.make_node("Cast", ["X"], ["i"], to=I64), helper.make_node("Cast", ["i"], ["Y"], to=F)],
     [("X", [3, 7])], [("Y", F)], data=[randn(3, 7, scale=10.0)])

# ---- QuantizeLinear / DequantizeLinear (what QDQ models are made of) ----
U8, I8, I32 = TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32

# Cases whose integer outputs may be one step from ONNX Runtime's: its QuantizeLinear
# multiplies by 1/scale where the ONNX spec (and qcal) divides, so a value a hair above a
# rounding tie (4.9 / 0.04 = 122.500008) can round the other way (ORT: 4.9 * 25 = 122.5 -> 122).
# (qcal's fused ops equal its unfused QDQ graph exactly; that is what the plan tests show.)
INT_STEPS = {"qlookup_hardswish_u8": 1, "qmul_se_gate_u8": 1, "qmul_se_gate_per_image_u8": 1}


def qdq(name, x, scale, zp, zp_type, axis=None, opset=13, data=None):
    attrs = {} if axis is None else {"axis": axis}
    sc = np.array(scale, np.float32)
    z = np.array(zp, np.uint8 if zp_type == U8 else np.int8)
    case(name, [helper.make_node("QuantizeLinear", ["X", "s", "z"], ["q"], **attrs),
                helper.make_node("DequantizeLinear", ["q", "s", "z"], ["Y"], **attrs)],
         [("X", x)], [("Y", F)], {"s": sc, "z": z}, opset, data)


qdq("qdq_u8_tensor", [1, 3, 8, 8], 0.05, 128, U8, data=[randn(1, 3, 8, 8, scale=4.0)])
qdq("qdq_i8_tensor_opset10", [2, 5, 7], 0.02, -3, I8, opset=10, data=[randn(2, 5, 7, scale=3.0)])
qdq("qdq_i8_axis1", [1, 4, 6, 6], [0.01, 0.02, 0.05, 0.1], [0, 0, 0, 0], I8, axis=1,
    data=[randn(1, 4, 6, 6, scale=4.0)])
qdq("qdq_u8_axis_last", [2, 3, 5], [0.03, 0.02, 0.05, 0.01, 0.04], [0, 10, 128, 200, 255], U8, axis=-1,
    data=[randn(2, 3, 5, scale=3.0)])
# exact ties x / scale = k + 0.5 round to even; values far outside the range saturate
ties = (np.arange(-40, 40, dtype=np.float32) + 0.5).reshape(1, 80) * 0.5
ties[0, :4] = [1e6, -1e6, 63.75, -64.25]
qdq("qdq_ties", [1, 80], 0.5, 0, I8, data=[ties])
qdq("qdq_u8_ties", [1, 80], 0.5, 100, U8, data=[ties])
# a QDQ conv as qcal writes it: int8 per-channel weights, int32 bias at sx * sw
wq = rng.integers(-127, 128, size=(6, 3, 3, 3)).astype(np.int8)
ws = (rng.random(6) * 0.01 + 0.001).astype(np.float32)
bq = rng.integers(-2000, 2000, size=6).astype(np.int32)
case("qdq_conv", [
    helper.make_node("QuantizeLinear", ["X", "xs", "xz"], ["xq"]),
    helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
    helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
    helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["bd"], axis=0),
    helper.make_node("Conv", ["xd", "wd", "bd"], ["Y"], pads=[1, 1, 1, 1])],
    [("X", [1, 3, 9, 9])], [("Y", F)],
    {"xs": np.array(0.03, np.float32), "xz": np.array(0, np.int8), "wq": wq, "ws": ws,
     "wz": np.zeros(6, np.int8), "bq": bq, "bs": (ws * np.float32(0.03)).astype(np.float32),
     "bz": np.zeros(6, np.int32)})

# Paddle's learnable affine block after a QDQ conv: Conv -> Mul(a) -> Add(b) -> Q, folded by
# qcal into the weight scales (negated int8 weights for a < 0) and the int32 bias; the float
# order differs from the graph's, so the codes may be a step apart (INT_STEPS)
for tag, alpha in (("neg", -0.7), ("pos", 1.3)):
    case(f"qdq_conv_affine_{tag}", [
        helper.make_node("QuantizeLinear", ["X", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
        helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["bd"], axis=0),
        helper.make_node("Conv", ["xd", "wd", "bd"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["a", "c"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["t"]),
        helper.make_node("Relu", ["t"], ["r"]),
        helper.make_node("QuantizeLinear", ["r", "ys", "yz"], ["Y"])],
        [("X", [1, 3, 9, 9])], [("Y", U8)],
        {"xs": np.array(0.03, np.float32), "xz": np.array(0, np.int8), "wq": wq, "ws": ws,
         "wz": np.zeros(6, np.int8), "bq": bq, "bs": (ws * np.float32(0.03)).astype(np.float32),
         "bz": np.zeros(6, np.int32), "a": np.array(alpha, np.float32), "b": np.array(0.3, np.float32),
         "ys": np.array(0.02, np.float32), "yz": np.array(5, np.uint8)})
    INT_STEPS[f"qdq_conv_affine_{tag}"] = 1

# ConvTranspose with kernel = stride on QDQ inputs (PP-OCR det's head): qcal runs it as a
# 1x1 convolution to s*s*OC channels (a QLinearConv when a QuantizeLinear follows) and a
# DepthToSpace of the codes
wt = rng.integers(-127, 128, size=(5, 4, 2, 2)).astype(np.int8)
wts = (rng.random(4) * 0.02 + 0.002).astype(np.float32)
bt = rng.integers(-3000, 3000, size=4).astype(np.int32)
for tag, tail, out_t in (("relu_q_u8", ["Relu", "QuantizeLinear"], U8), ("sigmoid_f32", ["Sigmoid"], F)):
    nodes = [helper.make_node("QuantizeLinear", ["X", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=1),
             helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["bd"], axis=0),
             helper.make_node("ConvTranspose", ["xd", "wd", "bd"], ["t0"], strides=[2, 2], kernel_shape=[2, 2])]
    for k, op in enumerate(tail):
        ins = [f"t{k}", "ys", "yz"] if op == "QuantizeLinear" else [f"t{k}"]
        nodes.append(helper.make_node(op, ins, ["Y" if k == len(tail) - 1 else f"t{k + 1}"]))
    case(f"qdq_convT_k2s2_{tag}", nodes, [("X", [1, 5, 6, 7])], [("Y", out_t)],
         {"xs": np.array(0.04, np.float32), "xz": np.array(3, np.int8), "wq": wt, "ws": wts,
          "wz": np.zeros(4, np.int8), "bq": bt, "bs": (wts * np.float32(0.04)).astype(np.float32),
          "bz": np.zeros(4, np.int32), "ys": np.array(0.05, np.float32), "yz": np.array(0, np.uint8)})
    INT_STEPS[f"qdq_convT_k2s2_{tag}"] = 1

# an SE gate's QDQ 1x1 conv ending in HardSigmoid: no QuantizeLinear reads the conv, so qcal
# runs it as an INT8 convolution with float output and HardSigmoid as its post-op
case("qdq_conv_hardsigmoid_q_u8", [
    helper.make_node("QuantizeLinear", ["X", "xs", "xz"], ["xq"]),
    helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
    helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
    helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["bd"], axis=0),
    helper.make_node("Conv", ["xd", "wd", "bd"], ["c"], pads=[1, 1, 1, 1]),
    helper.make_node("HardSigmoid", ["c"], ["h"], alpha=0.2, beta=0.5),
    helper.make_node("QuantizeLinear", ["h", "ys", "yz"], ["Y"])],
    [("X", [1, 3, 9, 9])], [("Y", U8)],
    {"xs": np.array(0.03, np.float32), "xz": np.array(0, np.int8), "wq": wq, "ws": ws,
     "wz": np.zeros(6, np.int8), "bq": bq, "bs": (ws * np.float32(0.03)).astype(np.float32),
     "bz": np.zeros(6, np.int32), "ys": np.array(1 / 255, np.float32), "yz": np.array(0, np.uint8)})

# MaxPool between a QDQ conv and its QuantizeLinear: qcal quantizes first (max pooling
# commutes with monotone quantization, exactly) and pools the int8 codes (oneDNN on NHWC)
for tag, zt, z in (("u8", U8, 0), ("i8", I8, -10)):
    npz = np.uint8 if zt == U8 else np.int8
    case(f"qdq_conv_maxpool_{tag}", [
        helper.make_node("QuantizeLinear", ["X", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
        helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["bd"], axis=0),
        helper.make_node("Conv", ["xd", "wd", "bd"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("QuantizeLinear", ["p", "ys", "yz"], ["Y"])],
        [("X", [1, 3, 9, 9])], [("Y", zt)],
        {"xs": np.array(0.03, np.float32), "xz": np.array(0, np.int8), "wq": wq, "ws": ws,
         "wz": np.zeros(6, np.int8), "bq": bq, "bs": (ws * np.float32(0.03)).astype(np.float32),
         "bz": np.zeros(6, np.int32), "ys": np.array(0.01, np.float32), "yz": np.array(z, npz)})

# nearest Resize before a QuantizeLinear: qcal quantizes first and copies codes (exact)
case("qdq_conv_resize_nearest_u8", [
    helper.make_node("QuantizeLinear", ["X", "xs", "xz"], ["xq"]),
    helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
    helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
    helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["bd"], axis=0),
    helper.make_node("Conv", ["xd", "wd", "bd"], ["c"], pads=[1, 1, 1, 1]),
    helper.make_node("Resize", ["c", "", "scales"], ["r"], mode="nearest"),
    helper.make_node("QuantizeLinear", ["r", "ys", "yz"], ["Y"])],
    [("X", [1, 3, 9, 9])], [("Y", U8)],
    {"xs": np.array(0.03, np.float32), "xz": np.array(0, np.int8), "wq": wq, "ws": ws,
     "wz": np.zeros(6, np.int8), "bq": bq, "bs": (ws * np.float32(0.03)).astype(np.float32),
     "bz": np.zeros(6, np.int32), "scales": np.array([1, 1, 2, 2], np.float32), "ys": np.array(0.01, np.float32),
     "yz": np.array(128, np.uint8)})
case("qdq_resize_nearest_requantize_i8", [
    helper.make_node("QuantizeLinear", ["X", "xs", "xz"], ["xq"]),
    helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
    helper.make_node("Resize", ["xd", "", "", "sizes"], ["r"], mode="nearest"),
    helper.make_node("QuantizeLinear", ["r", "ys", "yz"], ["Y"])],
    [("X", [2, 3, 5, 4])], [("Y", I8)],
    {"xs": np.array(0.05, np.float32), "xz": np.array(3, np.int8), "sizes": np.array([2, 3, 10, 12], np.int64),
     "ys": np.array(0.07, np.float32), "yz": np.array(-2, np.int8)}, data=[randn(2, 3, 5, 4, scale=3.0)])

# QDQ Gemm (classifier heads): qcal runs QGemm, a 1x1 INT8 convolution; float out when no
# QuantizeLinear follows, int8 out (through Relu) when one does
gw = rng.integers(-127, 128, size=(7, 20)).astype(np.int8)
gs = (rng.random(7) * 0.01 + 0.001).astype(np.float32)
gb = rng.integers(-3000, 3000, size=7).astype(np.int32)
case("qgemm_f32_out", [
    helper.make_node("QuantizeLinear", ["X", "xs", "xz"], ["xq"]),
    helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
    helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
    helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["bd"], axis=0),
    helper.make_node("Gemm", ["xd", "wd", "bd"], ["Y"], transB=1)],
    [("X", [3, 20])], [("Y", F)],
    {"xs": np.array(0.04, np.float32), "xz": np.array(120, np.uint8), "wq": gw, "ws": gs, "wz": np.zeros(7, np.int8),
     "bq": gb, "bs": (gs * np.float32(0.04)).astype(np.float32), "bz": np.zeros(7, np.int32)},
    data=[randn(3, 20, scale=2.0)])
case("qgemm_relu_q_i8", [
    helper.make_node("QuantizeLinear", ["X", "xs", "xz"], ["xq"]),
    helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
    helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=1),
    helper.make_node("Gemm", ["xd", "wd"], ["g"]),
    helper.make_node("Relu", ["g"], ["r"]),
    helper.make_node("QuantizeLinear", ["r", "ys", "yz"], ["Y"])],
    [("X", [2, 20])], [("Y", I8)],
    {"xs": np.array(0.05, np.float32), "xz": np.array(-3, np.int8), "wq": np.ascontiguousarray(gw.T), "ws": gs,
     "wz": np.zeros(7, np.int8), "ys": np.array(0.1, np.float32), "yz": np.array(-100, np.int8)},
    data=[randn(2, 20, scale=2.0)])
INT_STEPS["qgemm_relu_q_i8"] = 1  # oneDNN multiplies by 1/y_scale
case("qgemm_matmul_1d_f32_out", [  # a vector times a matrix (numpy: [K] x [K, N] gives [N])
    helper.make_node("QuantizeLinear", ["X", "xs", "xz"], ["xq"]),
    helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
    helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=1),
    helper.make_node("MatMul", ["xd", "wd"], ["Y"])],
    [("X", [20])], [("Y", F)],
    {"xs": np.array(0.05, np.float32), "xz": np.array(130, np.uint8), "wq": np.ascontiguousarray(gw.T), "ws": gs,
     "wz": np.zeros(7, np.int8)}, data=[randn(20, scale=2.0)])
case("qgemm_matmul_3d_f32_out", [  # MatMul with constant int8 weights (axis -1), rows of a 3-D input
    helper.make_node("QuantizeLinear", ["X", "xs", "xz"], ["xq"]),
    helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
    helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=-1),
    helper.make_node("MatMul", ["xd", "wd"], ["Y"])],
    [("X", [2, 3, 20])], [("Y", F)],
    {"xs": np.array(0.05, np.float32), "xz": np.array(7, np.int8), "wq": np.ascontiguousarray(gw.T), "ws": gs,
     "wz": np.zeros(7, np.int8)}, data=[randn(2, 3, 20, scale=2.0)])

# QLinearConv (the INT8 convolution qcal runs): uint8 and int8 activations, per-channel
# weight scales, int32 bias, groups / strides / padding; output dequantized for the compare
def qlinear_conv(name, x, oc, k, group=1, x_u8=True, y_u8=True, **attrs):
    ic = x[1]
    xz = np.array(128 if x_u8 else 3, np.uint8 if x_u8 else np.int8)
    yz = np.array(100 if y_u8 else -4, np.uint8 if y_u8 else np.int8)
    w = rng.integers(-127, 128, size=(oc, ic // group, k, k)).astype(np.int8)
    ws = (rng.random(oc) * 0.004 + 0.001).astype(np.float32)
    b = rng.integers(-500, 500, size=oc).astype(np.int32)
    xs = np.array(0.02, np.float32)
    ys = np.array(0.02 * 0.003 * 127 * (ic // group) * k * k / 30, np.float32)
    case(name, [
        helper.make_node("QuantizeLinear", ["X", "xs", "xz"], ["xq"]),
        helper.make_node("QLinearConv", ["xq", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["yq"], group=group,
                         **attrs),
        helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["Y"])],
        [("X", x)], [("Y", F)],
        {"xs": xs, "xz": xz, "w": w, "ws": ws, "wz": np.zeros(oc, np.int8), "ys": ys, "yz": yz, "b": b},
        data=[randn(*x, scale=1.5)])


qlinear_conv("qlinear_conv_u8", [1, 3, 9, 9], 8, 3, pads=[1, 1, 1, 1])
qlinear_conv("qlinear_conv_s8_dw_stride2", [1, 8, 10, 10], 8, 3, group=8, x_u8=False, y_u8=False, strides=[2, 2],
             pads=[1, 1, 1, 1])
qlinear_conv("qlinear_conv_1x1_batch2", [2, 16, 7, 7], 24, 1)



# Elementwise QDQ regions qcal runs as one 256-entry table (QLinearLookup) and quantized
# Mul/Add with a broadcast operand (QLinearMul): outputs are the int8 codes, compared exactly.
def sc(v):
    return np.array(v, np.float32)


case("qlookup_hardswish_u8", [  # x * HardSigmoid(x), both operands quantized (MobileNetV3 export)
    helper.make_node("QuantizeLinear", ["X", "xs", "xz"], ["xq"]),
    helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
    helper.make_node("HardSigmoid", ["xd"], ["h"], alpha=1.0 / 6, beta=0.5),
    helper.make_node("QuantizeLinear", ["h", "hs", "hz"], ["hq"]),
    helper.make_node("DequantizeLinear", ["hq", "hs", "hz"], ["hd"]),
    helper.make_node("Mul", ["xd", "hd"], ["m"]),
    helper.make_node("QuantizeLinear", ["m", "ys", "yz"], ["Y"])],
    [("X", [1, 4, 9, 9])], [("Y", U8)],
    {"xs": sc(0.05), "xz": np.array(100, np.uint8), "hs": sc(1 / 255), "hz": np.array(0, np.uint8),
     "ys": sc(0.04), "yz": np.array(30, np.uint8)}, data=[randn(1, 4, 9, 9, scale=3.0)])
case("qlookup_paddle_hardswish_i8", [  # x * Clip(x + 3, 0, 6) / 6 (PaddlePaddle export), int8
    helper.make_node("QuantizeLinear", ["X", "xs", "xz"], ["xq"]),
    helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
    helper.make_node("Add", ["xd", "three"], ["a"]),
    helper.make_node("Clip", ["a", "zero", "six"], ["c"]),
    helper.make_node("Mul", ["xd", "c"], ["m"]),
    helper.make_node("Div", ["m", "six"], ["d"]),
    helper.make_node("QuantizeLinear", ["d", "ys", "yz"], ["Y"])],
    [("X", [1, 3, 7, 11])], [("Y", I8)],
    {"xs": sc(0.06), "xz": np.array(-5, np.int8), "three": sc(3), "zero": sc(0), "six": sc(6), "ys": sc(0.05),
     "yz": np.array(-20, np.int8)}, data=[randn(1, 3, 7, 11, scale=4.0)])
case("qlookup_requantize_sigmoid", [  # a plain requantization and a Sigmoid, uint8 -> int8
    helper.make_node("QuantizeLinear", ["X", "xs", "xz"], ["xq"]),
    helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
    helper.make_node("QuantizeLinear", ["xd", "rs", "rz"], ["R"]),
    helper.make_node("Sigmoid", ["xd"], ["g"]),
    helper.make_node("QuantizeLinear", ["g", "ys", "yz"], ["Y"])],
    [("X", [2, 50])], [("R", I8), ("Y", I8)],
    {"xs": sc(0.1), "xz": np.array(128, np.uint8), "rs": sc(0.07), "rz": np.array(3, np.int8), "ys": sc(1 / 256),
     "yz": np.array(-128, np.int8)}, data=[randn(2, 50, scale=6.0)])


case("qmoves_concat_reshape_u8", [  # int8 through Concat and Reshape: the bytes themselves
    helper.make_node("QuantizeLinear", ["X", "s", "z"], ["xq"]),
    helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
    helper.make_node("QuantizeLinear", ["G", "s", "z"], ["gq"]),
    helper.make_node("DequantizeLinear", ["gq", "s", "z"], ["gd"]),
    helper.make_node("Concat", ["xd", "gd", "xd"], ["c"], axis=1),
    helper.make_node("QuantizeLinear", ["c", "s", "z"], ["cq"]),
    helper.make_node("DequantizeLinear", ["cq", "s", "z"], ["cd"]),
    helper.make_node("Reshape", ["cd", "shape"], ["r"]),
    helper.make_node("QuantizeLinear", ["r", "s", "z"], ["Y"])],
    [("X", [1, 3, 4, 5]), ("G", [1, 2, 4, 5])], [("Y", U8)],
    {"s": sc(0.05), "z": np.array(120, np.uint8), "shape": np.array([1, 8, 20], np.int64)},
    data=[randn(1, 3, 4, 5, scale=3.0), randn(1, 2, 4, 5, scale=3.0)])


for tag, zt, z, shape in (("u8", U8, 100, [2, 7, 6, 5]), ("i8", I8, -7, [2, 7, 6, 5]),
                          ("u8_80ch", U8, 20, [1, 80, 9, 7])):  # SE squeeze: DQ -> GlobalAveragePool -> Q
    npz = np.uint8 if zt == U8 else np.int8
    case(f"qgap_{tag}", [
        helper.make_node("QuantizeLinear", ["X", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("GlobalAveragePool", ["xd"], ["p"]),
        helper.make_node("QuantizeLinear", ["p", "ys", "yz"], ["Y"])],
        [("X", shape)], [("Y", zt)],
        {"xs": sc(0.05), "xz": np.array(z, npz), "ys": sc(0.013), "yz": np.array(z // 2, npz)},
        data=[randn(*shape, scale=3.0)])
    INT_STEPS[f"qgap_{tag}"] = 1  # integer sums vs the graph's float sums (see QLinearGlobalAveragePool)


def qmul_case(name, x, g, op="Mul", u8=True):
    zt = np.uint8 if u8 else np.int8
    case(name, [
        helper.make_node("QuantizeLinear", ["X", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("QuantizeLinear", ["G", "gs", "gz"], ["gq"]),
        helper.make_node("DequantizeLinear", ["gq", "gs", "gz"], ["gd"]),
        helper.make_node(op, ["gd", "xd"], ["m"]),  # the broadcast operand first: qcal swaps
        helper.make_node("QuantizeLinear", ["m", "ys", "yz"], ["Y"])],
        [("X", x), ("G", g)], [("Y", U8 if u8 else I8)],
        {"xs": sc(0.05), "xz": np.array(120 if u8 else 2, zt), "gs": sc(1 / 250), "gz": np.array(0, zt),
         "ys": sc(0.03), "yz": np.array(110 if u8 else -3, zt)},
        data=[randn(*x, scale=3.0), (rng.random(g) * (1.0 if u8 else 2.0) - (0.0 if u8 else 1.0)).astype(np.float32)])


qmul_case("qmul_se_gate_u8", [1, 24, 6, 5], [1, 24, 1, 1])
qmul_case("qmul_se_gate_i8_batch2", [2, 17, 4, 4], [17, 1, 1], u8=False)
qmul_case("qmul_se_gate_per_image_u8", [2, 20, 3, 5], [2, 20, 1, 1])
qmul_case("qmul_scalar_u8", [1, 5, 3, 3], [1])
qmul_case("qadd_same_i8", [1, 3, 33], [1, 3, 33], op="Add", u8=False)

# ---- resize / upsample ----
def resize(name, x, opset=13, sizes=None, scales=None, **attrs):
    inits = {}
    if opset >= 11:
        ins = ["X", "", "scales", "sizes"] if opset >= 13 else ["X", "roi", "scales", "sizes"]
        inits["roi"] = np.array([], np.float32)
        inits["scales"] = np.array(scales if scales else [], np.float32)
        if sizes:
            inits["sizes"] = np.array(sizes, np.int64)
        else:
            ins = ins[:3]
        if opset >= 13:
            del inits["roi"]
    else:
        ins = ["X", "scales"]
        inits["scales"] = np.array(scales, np.float32)
    case(name, [helper.make_node("Resize", ins, ["Y"], **attrs)], [("X", x)], [("Y", F)], inits, opset)

resize("resize_nearest_x2", [1, 3, 5, 6], scales=[1, 1, 2, 2], mode="nearest")
resize("resize_nearest_asym_floor", [1, 3, 5, 6], scales=[1, 1, 2, 3], mode="nearest",
       coordinate_transformation_mode="asymmetric", nearest_mode="floor")
resize("resize_nearest_sizes", [1, 2, 7, 5], sizes=[1, 2, 10, 12], mode="nearest")
resize("resize_linear_half_pixel", [1, 3, 5, 6], sizes=[1, 3, 13, 9], mode="linear")
resize("resize_linear_pytorch", [1, 3, 5, 6], scales=[1, 1, 4, 4], mode="linear",
       coordinate_transformation_mode="pytorch_half_pixel")
resize("resize_linear_align", [1, 2, 4, 7], sizes=[1, 2, 9, 5], mode="linear",
       coordinate_transformation_mode="align_corners")
resize("resize_opset10", [1, 2, 4, 5], opset=10, scales=[1, 1, 2, 2], mode="nearest")
resize("resize_opset11_linear", [1, 2, 4, 5], opset=11, scales=[1, 1, 2, 2], mode="linear")
case("upsample_opset9", [helper.make_node("Upsample", ["X", "scales"], ["Y"], mode="nearest")], [("X", [1, 2, 3, 4])],
     [("Y", F)], {"scales": np.array([1, 1, 2, 2], np.float32)}, opset=9)

# ---- passes: fusion patterns must not change results ----
case("fuse_conv_bn_relu", [
    helper.make_node("Conv", ["X", "W", "B"], ["c"], pads=[1, 1, 1, 1]),
    helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["bn"]),
    helper.make_node("Relu", ["bn"], ["Y"])], [("X", [1, 4, 9, 9])], [("Y", F)],
    {"W": randn(6, 4, 3, 3, scale=0.3), "B": randn(6), "s": randn(6), "b": randn(6), "m": randn(6),
     "v": np.abs(randn(6)) + 0.5})
for tag, group, ks in (("k2s2", 1, 2), ("group2_k3s2", 2, 3)):  # PP-OCR's det head: ConvT -> Add -> BN -> Relu
    case(f"fuse_convT_add_bn_relu_{tag}", [
        helper.make_node("ConvTranspose", ["X", "W"], ["c"], strides=[2, 2], group=group),
        helper.make_node("Add", ["c", "B"], ["a"]),
        helper.make_node("BatchNormalization", ["a", "s", "b", "m", "v"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["Y"])], [("X", [1, 4, 5, 6])], [("Y", F)],
        {"W": randn(4, 6 // group, ks, ks, scale=0.3), "B": randn(1, 6, 1, 1), "s": randn(6), "b": randn(6),
         "m": randn(6), "v": np.abs(randn(6)) + 0.5})
for tag, mode, x, b in (("dcr", "DCR", [1, 8, 3, 4], 2), ("crd_batch2", "CRD", [2, 18, 2, 3], 3)):
    case(f"depth_to_space_{tag}", [helper.make_node("DepthToSpace", ["X"], ["Y"], blocksize=b, mode=mode)],
         [("X", x)], [("Y", F)])
case("fuse_conv_paddle_hardswish", [
    helper.make_node("Conv", ["X", "W"], ["c"], pads=[1, 1, 1, 1]),
    helper.make_node("Add", ["c", "three"], ["a"]),
    helper.make_node("Clip", ["a", "zero", "six"], ["cl"]),
    helper.make_node("Mul", ["c", "cl"], ["m"]),
    helper.make_node("Div", ["m", "six"], ["Y"])], [("X", [1, 4, 8, 8])], [("Y", F)],
    {"W": randn(8, 4, 3, 3, scale=0.5), "three": np.array(3, np.float32), "zero": np.array(0, np.float32),
     "six": np.array(6, np.float32)})
case("fuse_conv_swish", [
    helper.make_node("Conv", ["X", "W"], ["c"]),
    helper.make_node("Sigmoid", ["c"], ["s"]),
    helper.make_node("Mul", ["c", "s"], ["Y"])], [("X", [1, 4, 6, 6])], [("Y", F)], {"W": randn(5, 4, 1, 1)})
case("fuse_conv_clip6_hsig", [
    helper.make_node("Conv", ["X", "W"], ["c"], strides=[2, 2]),
    helper.make_node("Clip", ["c", "zero", "six"], ["r6"]),
    helper.make_node("Conv", ["r6", "W2"], ["d"]),
    helper.make_node("HardSigmoid", ["d"], ["Y"], alpha=0.2, beta=0.5)], [("X", [1, 3, 12, 12])], [("Y", F)],
    {"W": randn(8, 3, 3, 3), "W2": randn(4, 8, 1, 1), "zero": np.array(0, np.float32), "six": np.array(6, np.float32)})
case("fuse_gemm_relu", [helper.make_node("Gemm", ["A", "B", "C"], ["g"], transB=1), helper.make_node("Relu", ["g"], ["Y"])],
     [("A", [2, 16])], [("Y", F)], {"B": randn(8, 16), "C": randn(8)})
case("fuse_conv_hardswish_opset13", [
    helper.make_node("Conv", ["X", "W"], ["c"], pads=[1, 1, 1, 1]),
    helper.make_node("HardSigmoid", ["c"], ["h"], alpha=1.0 / 6.0, beta=0.5),
    helper.make_node("Mul", ["c", "h"], ["Y"])], [("X", [1, 4, 8, 8])], [("Y", F)], {"W": randn(8, 4, 3, 3)})
# an NHWC chain with a layout-following op between convs and a residual add
case("nhwc_residual_se", [
    helper.make_node("Conv", ["X", "W1", "B1"], ["c1"], pads=[1, 1, 1, 1]),
    helper.make_node("Relu", ["c1"], ["r1"]),
    helper.make_node("GlobalAveragePool", ["r1"], ["p"]),
    helper.make_node("Conv", ["p", "W2"], ["s"]),
    helper.make_node("HardSigmoid", ["s"], ["h"]),
    helper.make_node("Mul", ["r1", "h"], ["se"]),
    helper.make_node("Conv", ["se", "W3"], ["c3"], pads=[1, 1, 1, 1]),
    helper.make_node("Add", ["c3", "r1"], ["res"]),
    helper.make_node("Resize", ["res", "", "sc"], ["up"], mode="nearest"),
    helper.make_node("Concat", ["up", "up"], ["cat"], axis=1),
    helper.make_node("MaxPool", ["cat"], ["Y"], kernel_shape=[2, 2], strides=[2, 2])],
    [("X", [1, 3, 10, 10])], [("Y", F)],
    {"W1": randn(16, 3, 3, 3, scale=0.5), "B1": randn(16), "W2": randn(16, 16, 1, 1, scale=0.3),
     "W3": randn(16, 16, 3, 3, scale=0.2), "sc": np.array([1, 1, 2, 2], np.float32)})

# PP-LCNetV3-style learnable affine blocks around a Paddle HardSwish, and per-channel scaling
case("fuse_conv_affine_chain", [
    helper.make_node("Conv", ["X", "W", "B"], ["c"], pads=[1, 1, 1, 1]),
    helper.make_node("Mul", ["a1", "c"], ["m1"]),
    helper.make_node("Add", ["m1", "b1"], ["x1"]),
    helper.make_node("Add", ["x1", "three"], ["p3"]),
    helper.make_node("Clip", ["p3", "zero", "six"], ["cl"]),
    helper.make_node("Mul", ["x1", "cl"], ["hm"]),
    helper.make_node("Div", ["hm", "six"], ["hs"]),
    helper.make_node("Mul", ["a2", "hs"], ["m2"]),
    helper.make_node("Sub", ["m2", "b2"], ["x2"]),
    helper.make_node("Conv", ["x2", "W2"], ["c2"]),
    helper.make_node("Mul", ["c2", "chs"], ["Y"])], [("X", [1, 3, 10, 10])], [("Y", F)],
    {"W": randn(8, 3, 3, 3, scale=0.5), "B": randn(8), "a1": np.array([1.7], np.float32),
     "b1": np.array([0.3], np.float32), "three": np.array(3, np.float32), "zero": np.array(0, np.float32),
     "six": np.array(6, np.float32), "a2": np.array([0.6], np.float32), "b2": np.array([-0.2], np.float32),
     "W2": randn(4, 8, 1, 1), "chs": randn(1, 4, 1, 1)})

# The integer-op fixtures are compared with ONNX Runtime within one step (its QuantizeLinear
# rounds x * (1/scale)); check_fusion.py holds qcal's fused ops to its unfused graph exactly.
for _name, _, _ in CASES:
    if _name.startswith(("qlookup_", "qmul_", "qadd_", "qgap_", "qgemm_", "qmoves_", "qdq_conv_", "qdq_resize_")):
        INT_STEPS.setdefault(_name, 1)


def main():
    if sys.argv[1] == "--list":
        print(";".join(n for n, _, _ in CASES))
        return
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    manifest = []
    for name, model, feeds in CASES:
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        onnx.save(model, os.path.join(d, "model.onnx"))
        inputs = []
        for i, x in enumerate(feeds):
            p = os.path.join(d, f"input_{i}.npy")
            np.save(p, x)
            inputs.append(p)
        if name in INT_STEPS:
            with open(os.path.join(d, "int_steps.txt"), "w") as f:
                f.write(f"{INT_STEPS[name]}\n")
        manifest.append({"model": os.path.join(d, "model.onnx"), "inputs": inputs,
                         "outDir": os.path.join(d, "ort")})
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    with open(os.path.join(out, "cases.txt"), "w") as f:
        f.write("\n".join(n for n, _, _ in CASES) + "\n")
    print(f"gen_fixtures: {len(CASES)} cases in {out}")


if __name__ == "__main__":
    main()
