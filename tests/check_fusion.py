#!/usr/bin/python3
"""The passes really fire: after folding and fusion, the plan of each pattern fixture holds
only the ops listed here (golden.py proves the results did not change).

    check_fusion.py --qcal BUILD/qcal --fixtures DIR
"""
import argparse
import os
import shutil
import subprocess
import sys

import numpy as np

EXPECTED = {
    "fuse_conv_bn_relu": ["Conv"],
    "fuse_conv_paddle_hardswish": ["Conv"],
    "fuse_convT_add_bn_relu_k2s2": ["Conv", "DepthToSpace"],  # kernel = stride: a 1x1 conv + DepthToSpace
    "fuse_convT_add_bn_relu_group2_k3s2": ["ConvTranspose"],
    "fuse_conv_swish": ["Conv"],
    "fuse_conv_hardswish_opset13": ["Conv"],
    "fuse_conv_clip6_hsig": ["Conv", "Conv"],
    "fuse_gemm_relu": ["Gemm"],
    "fuse_conv_affine_chain": ["Conv", "Conv"],
    "shape_chain": ["Reshape"],
    "constant_nodes": ["Add", "Mul", "Reshape"],
    "qdq_conv_affine_neg": ["QuantizeLinear", "QLinearConv"],
    "qdq_conv_affine_pos": ["QuantizeLinear", "QLinearConv"],
    "qmoves_concat_reshape_u8": ["QuantizeLinear", "QuantizeLinear", "Concat", "Reshape"],
    "qdq_conv_maxpool_u8": ["QuantizeLinear", "QLinearConv", "MaxPool"],
    "qdq_conv_maxpool_i8": ["QuantizeLinear", "QLinearConv", "MaxPool"],
    "qdq_conv_resize_nearest_u8": ["QuantizeLinear", "QLinearConv", "Resize"],
    "qdq_convT_k2s2_relu_q_u8": ["QuantizeLinear", "QLinearConv", "DepthToSpace"],
    "qdq_convT_k2s2_sigmoid_f32": ["QuantizeLinear", "QLinearConv", "DepthToSpace"],
    "qdq_conv": ["QuantizeLinear", "QLinearConv"],
    "qdq_conv_hardsigmoid_q_u8": ["QuantizeLinear", "QLinearConv", "QuantizeLinear"],
    "qdq_resize_nearest_requantize_i8": ["QuantizeLinear", "QLinearLookup", "Resize"],
    "qgap_u8": ["QuantizeLinear", "QLinearGlobalAveragePool"],
    "qgap_i8": ["QuantizeLinear", "QLinearGlobalAveragePool"],
    "qgap_u8_80ch": ["QuantizeLinear", "QLinearGlobalAveragePool"],
    "qgemm_f32_out": ["QuantizeLinear", "QGemm"],
    "qgemm_relu_q_i8": ["QuantizeLinear", "QGemm"],
    "qgemm_matmul_3d_f32_out": ["QuantizeLinear", "QGemm"],
    "qgemm_matmul_1d_f32_out": ["QuantizeLinear", "QGemm"],
    "qlookup_hardswish_u8": ["QuantizeLinear", "QLinearLookup"],
    "qlookup_paddle_hardswish_i8": ["QuantizeLinear", "QLinearLookup"],
    "qlookup_requantize_sigmoid": ["QuantizeLinear", "QLinearLookup", "QLinearLookup"],
    "qmul_se_gate_u8": ["QuantizeLinear", "QuantizeLinear", "QLinearMul"],
    "qmul_se_gate_i8_batch2": ["QuantizeLinear", "QuantizeLinear", "QLinearMul"],
    "qmul_se_gate_per_image_u8": ["QuantizeLinear", "QuantizeLinear", "QLinearMul"],
    "qmul_scalar_u8": ["QuantizeLinear", "QuantizeLinear", "QLinearMul"],
    "qadd_same_i8": ["QuantizeLinear", "QuantizeLinear", "QLinearAdd"],
    "nhwc_residual_se": ["Conv", "GlobalAveragePool", "Conv", "Mul", "Conv", "Resize", "Concat", "MaxPool"],
}


# Integer ops that run the QDQ graph's own float arithmetic: same bytes as the graph run
# op by op (--no-optimize), whatever ONNX Runtime's rounding does.
EXACT_VS_UNFUSED = ("qlookup_", "qmul_", "qadd_", "qmoves_", "qdq_resize_")


def fused_equals_unfused(qcal, d, inputs):
    outs = []
    for extra, tag in (([], "fused"), (["--no-optimize"], "unfused")):
        out = os.path.join(d, f"check_{tag}")
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        cmd = [qcal, "infer", os.path.join(d, "model.onnx"), "--kernels", "ref", "--output-dir", out, *extra]
        for f in inputs:
            cmd += ["--raw-input", os.path.join(d, f)]
        if subprocess.run(cmd, capture_output=True, text=True).returncode != 0:
            return False
        outs.append({f: np.load(os.path.join(out, f)) for f in sorted(os.listdir(out))})
    return outs[0].keys() == outs[1].keys() and all(np.array_equal(outs[0][k], outs[1][k]) for k in outs[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qcal", required=True)
    ap.add_argument("--fixtures", required=True)
    a = ap.parse_args()
    failed = 0
    for case, want in EXPECTED.items():
        d = os.path.join(a.fixtures, case)
        inputs = sorted(f for f in os.listdir(d) if f.startswith("input_") and f.endswith(".npy"))
        cmd = [a.qcal, "infer", os.path.join(d, "model.onnx"), "--verbose", "--kernels", "ref"]
        for f in inputs:
            cmd += ["--raw-input", os.path.join(d, f)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        ops = [l.split()[1] for l in r.stdout.splitlines() if l[:4].strip().isdigit() and l.split()[1] != "reorder"]
        ok = r.returncode == 0 and ops == want
        print(f"{case}: {'ok' if ok else 'FAIL'} plan {ops}, expected {want}")
        failed += not ok
        if case.startswith(EXACT_VS_UNFUSED):
            same = fused_equals_unfused(a.qcal, d, inputs)
            print(f"{case}: fused integer ops {'equal' if same else 'DIFFER from'} the unfused QDQ graph")
            failed += not same
    print(f"{len(EXPECTED) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
