#!/usr/bin/python3
"""INT8 ResNet-50 efficiency: achieved GOPS as a fraction of the machine's INT8 matmul peak.

    bench/int8_efficiency.py [--build build] [--rounds 3] [--threads 1,2] [--size 2048] [--time S]

Peak: bench/int8_peak.c (compiled here into BUILD/int8_peak with cc -O2 -std=c11 -ldnnl
-fopenmp; Debian's libdnnl-dev puts oneapi/dnnl/dnnl.h in /usr/include, so no -I) times a
oneDNN u8 x s8 -> s32 matmul of size --size cubed (weights in the implementation's own
layout, reordered before timing), 5 warm-up and 30 timed runs, median; GOPS = 2*M*N*K / time.

Work: the multiply-accumulates of every Conv, Gemm and MatMul in the model, counted from the
ONNX graph after onnx shape inference at batch 1 (Conv: N*OC*OH*OW * IC/group*KH*KW, i.e.
output elements times the weight's elements per output channel; Gemm and MatMul: output
elements times K). Nothing else (adds, pooling, requantization) is counted, so the GOPS is
the usual "conv/matmul operations per second" figure. GOPS = 2*MACs / latency.

Latency: `qcal bench MODEL --int8 MODEL.int8.onnx --input-shape 1x3x224x224 --threads T
--mode latency --json`, batch 1, the median of its runs, for FP32 (reported as GFLOPS, for
context) and INT8. The models are the ones bench/int8_vs_fp32.py uses: torchvision's
ResNet-50 (seeded weights) exported into BUILD/bench-models and calibrated by qcal on 16
photos into BUILD/bench-int8 (done here too, with that script's functions, so a clean build
directory works). Each round runs the peak and then qcal bench for each thread count; the
figures are medians over --rounds rounds. The 1-minute load average at the start is printed
with them: on a shared machine, anything else running shows there first.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

import onnx
from onnx import shape_inference

from fp32_vs_ort import ROOT, export_models
from int8_vs_fp32 import MODELS, calibrate, photos

NAME = "resnet50"
SHAPE = "1x3x224x224"


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--size", type=int, default=2048, help="M = N = K of the peak matmul")
    ap.add_argument("--time", type=float, help="qcal bench --time per precision (default: qcal's)")
    return ap.parse_args()


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"command failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout}{r.stderr}")
    return r.stdout


def build_peak(build):
    exe = os.path.join(build, "int8_peak")
    run(["cc", "-O2", "-std=c11", os.path.join(ROOT, "bench", "int8_peak.c"), "-o", exe, "-ldnnl", "-fopenmp"])
    return exe


def measure_peak(exe, threads, size):
    """(GOPS, implementation name) from one int8_peak run."""
    line = run([exe, "--threads", threads, "--size", str(size)]).strip()
    fields = dict(f.split("=", 1) for f in line.split())
    if "peak_gops" not in fields:
        sys.exit(f"int8_peak printed no peak_gops: {line}")
    return float(fields["peak_gops"]), fields["impl"]


def count_macs(path, shape):
    """Multiply-accumulates of the Conv, Gemm and MatMul nodes of the model at input SHAPE."""
    model = onnx.load(path)
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        sys.exit(f"{path}: {len(inputs)} graph inputs, need 1")
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != len(shape):
        sys.exit(f"{path}: input {inputs[0].name} has {len(dims)} dims, --input-shape gives {len(shape)}")
    for d, v in zip(dims, shape):
        d.ClearField("dim_param")
        d.dim_value = v
    model = shape_inference.infer_shapes(model)
    g = model.graph
    shapes = {t.name: list(t.dims) for t in g.initializer}
    for v in list(g.input) + list(g.value_info) + list(g.output):
        shapes[v.name] = [d.dim_value if d.HasField("dim_value") else None
                          for d in v.type.tensor_type.shape.dim]

    def dims_of(node, name):
        s = shapes.get(name)
        if s is None or None in s:
            sys.exit(f"{path}: {node.name} ({node.op_type}): shape of {name} not inferred ({s})")
        return s

    def prod(xs):
        p = 1
        for x in xs:
            p *= x
        return p

    macs = 0
    for n in g.node:
        if n.op_type == "Conv":
            macs += prod(dims_of(n, n.output[0])) * prod(dims_of(n, n.input[1])[1:])
        elif n.op_type in ("Gemm", "MatMul"):
            a = dims_of(n, n.input[0])
            trans_a = n.op_type == "Gemm" and any(at.name == "transA" and at.i for at in n.attribute)
            k = a[-2] if trans_a else a[-1]
            macs += prod(dims_of(n, n.output[0])) * k
    return macs


def qcal_latency(qcal, model, int8, threads, seconds):
    """Median latency in ms of (FP32, INT8) from one qcal bench run."""
    cmd = [qcal, "bench", model, "--int8", int8, "--input-shape", SHAPE, "--threads", threads,
           "--mode", "latency", "--json"]
    if seconds:
        cmd += ["--time", str(seconds)]
    out = run(cmd)
    try:
        precisions = json.loads(out)["nodes"][0]["precisions"]
        ms = {p["precision"]: p["latency_ms"]["median"] for p in precisions}
        return ms["fp32"], ms["int8"]
    except (ValueError, KeyError, IndexError) as e:
        sys.exit(f"qcal bench JSON without fp32/int8 latency medians ({e!r}): {out[:400]}")


def main():
    a = parse_args()
    load = os.getloadavg()[0]
    qcal = os.path.join(a.build, "qcal")
    rel, _, job = MODELS[NAME]
    model = os.path.join(export_models(a.build), rel)
    int8 = calibrate(qcal, NAME, model, job, photos(os.path.join(a.build, "bench-int8-photos")),
                     os.path.join(a.build, "bench-int8"))
    peak_exe = build_peak(a.build)
    shape = [int(x) for x in SHAPE.split("x")]
    macs_fp32, macs = count_macs(model, shape), count_macs(int8, shape)
    if macs_fp32 != macs:
        sys.exit(f"MAC counts differ: FP32 model {macs_fp32}, INT8 model {macs}")

    threads = a.threads.split(",")
    samples = {t: [] for t in threads}  # per round: (peak GOPS, FP32 ms, INT8 ms)
    impls = set()
    for _ in range(a.rounds):
        for t in threads:
            gops, impl = measure_peak(peak_exe, t, a.size)
            impls.add(impl)
            samples[t].append((gops,) + qcal_latency(qcal, model, int8, t, a.time))

    print(f"ResNet-50 {SHAPE}: {macs / 1e9:.3f} GMACs in Conv/Gemm/MatMul; peak: oneDNN u8 x s8 -> s32 "
          f"matmul {a.size}^3, impl {', '.join(sorted(impls))}; medians of {a.rounds} round(s); "
          f"1-min load average at start {load:.2f}")
    print(f"{'thr':>3s} {'GMACs':>6s} {'FP32 ms':>8s} {'FP32 GFLOPS':>11s} {'INT8 ms':>8s} "
          f"{'INT8 GOPS':>9s} {'peak GOPS':>9s} {'INT8/peak':>9s}")
    for t in threads:
        peak, fp32_ms, int8_ms = (statistics.median(c) for c in zip(*samples[t]))
        fp32_gflops, int8_gops = 2 * macs / fp32_ms * 1e-6, 2 * macs / int8_ms * 1e-6
        print(f"{t:>3s} {macs / 1e9:6.3f} {fp32_ms:8.3f} {fp32_gflops:11.1f} {int8_ms:8.3f} "
              f"{int8_gops:9.1f} {peak:9.1f} {int8_gops / peak:9.3f}", flush=True)


if __name__ == "__main__":
    main()
