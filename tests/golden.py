#!/usr/bin/python3
"""Golden check of one fixture against ONNX Runtime's outputs (computed in the same test
run by tests/node/ort_run.js):

    golden.py --qcal BUILD/qcal --case DIR --kernels ref|dnnl|blas --tol 1e-4 [--shape S]

Runs `qcal infer` on DIR/model.onnx with DIR/input_*.npy and requires, for every output,
max|qcal - ort| <= tol * max|ort| (integer outputs: exact, or within the steps DIR/int_steps.txt
allows), same shape and dtype.
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qcal", required=True)
    ap.add_argument("--case", required=True)
    ap.add_argument("--kernels", default="ref")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--model", default=None)
    ap.add_argument("--ort-dir", default=None)
    ap.add_argument("--threads", default=None)
    ap.add_argument("--extra", action="append", default=[])
    a = ap.parse_args()
    model = a.model or os.path.join(a.case, "model.onnx")
    ort_dir = a.ort_dir or os.path.join(a.case, "ort")
    inputs = sorted(glob.glob(os.path.join(a.case, "input_*.npy")))
    out = os.path.join(a.case, f"qcal_{a.kernels}")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    # three runs: the outputs checked are the last run's, so state leaking between runs fails
    cmd = [a.qcal, "infer", model, "--kernels", a.kernels, "--output-dir", out, "--repeat", "2", "--warmup", "1"]
    for p in inputs:
        cmd += ["--raw-input", p]
    if a.threads:
        cmd += ["--threads", a.threads]
    cmd += a.extra
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print("qcal failed:", " ".join(cmd), "\n", r.stdout, r.stderr)
        return 1
    refs = sorted(glob.glob(os.path.join(ort_dir, "*.npy")))
    if not refs:
        print(f"no reference outputs in {ort_dir}")
        return 1
    bad = 0
    steps_file = os.path.join(a.case, "int_steps.txt")
    steps = int(open(steps_file).read()) if os.path.exists(steps_file) else 0
    for ref_path in refs:
        name = os.path.basename(ref_path)
        got_path = os.path.join(out, name)
        if not os.path.exists(got_path):
            print(f"{name}: qcal wrote no such output")
            bad += 1
            continue
        ref, got = np.load(ref_path), np.load(got_path)
        if ref.shape != got.shape or ref.dtype != got.dtype:
            print(f"{name}: ort {ref.dtype}{ref.shape} vs qcal {got.dtype}{got.shape}")
            bad += 1
            continue
        if ref.dtype.kind in "iub":
            diff = int(np.count_nonzero(ref != got))
            worst = int(np.abs(ref.astype(np.int64) - got).max()) if ref.size else 0
            ok = worst <= steps
            print(f"{name}: {diff} of {ref.size} integer values differ, by at most {worst} (allowed {steps})")
        else:
            scale = float(np.abs(ref).max()) if ref.size else 0.0
            err = float(np.abs(ref.astype(np.float64) - got).max()) if ref.size else 0.0
            lim = a.tol * max(scale, 1e-30)
            ok = err <= lim and np.all(np.isfinite(got))
            print(f"{name}: max|qcal-ort| = {err:.3e}, max|ort| = {scale:.3e}, ratio {err / max(scale, 1e-30):.2e} "
                  f"(limit {a.tol:.0e}) {'ok' if ok else 'FAIL'}")
        bad += 0 if ok else 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
