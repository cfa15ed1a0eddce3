#!/usr/bin/python3
"""Same bytes at any thread count: every real model's output is identical with 1 and 2
OpenMP threads (kernels split work over independent outputs only, never over a reduction).

    thread_invariance.py --qcal BUILD/qcal --models DIR --kernels dnnl [--kernels blas]
"""
import argparse
import filecmp
import os
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qcal", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--kernels", action="append", default=[])
    a = ap.parse_args()
    failed = total = 0
    for name in sorted(os.listdir(a.models)):
        d = os.path.join(a.models, name)
        if not os.path.exists(os.path.join(d, "model.onnx")):
            continue
        for k in a.kernels:
            outs = []
            for t in ("1", "2"):
                out = os.path.join(d, f"threads{t}_{k}.npy")
                r = subprocess.run([a.qcal, "infer", os.path.join(d, "model.onnx"), "--raw-input",
                                    os.path.join(d, "input_0.npy"), "--kernels", k, "--threads", t, "--output", out],
                                   capture_output=True, text=True)
                outs.append(out if r.returncode == 0 else None)
            ok = None not in outs and filecmp.cmp(outs[0], outs[1], shallow=False)
            print(f"{name} {k}: {'identical' if ok else 'FAIL: outputs differ between 1 and 2 threads'}")
            total += 1
            failed += not ok
    print(f"{total - failed} passed, {failed} failed")
    return 1 if failed or total == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
