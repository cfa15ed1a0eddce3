#!/usr/bin/env python3
"""The calibration part of a 16-configuration sweep against one calibration, on MobileNetV2.

  /usr/bin/python3 bench/sweep_cost.py [--images 300] [--rounds 3]

Two sweeps of 16 configurations on one subset, `qcal sweep --calibrate-only`, statistics
collected once (by the first configuration), the other 15 computing their scales from them:
- exact: preset [performance, mixed] x method [minmax, mean_minmax, percentile, entropy] x
  bias_correction [true, false]; every configuration runs its error pass (bias correction and
  the per-layer SQNR table depend on its scales), so each model equals a standalone run;
- fast: preset x method x percentile [99.99, 99.999], bias_correction false, `--fast`: no
  error pass (no SQNR table), each model the same bytes as a standalone --no-bias-correction run.
Prints, as medians over rounds measured side by side: one `qcal calibrate` with the job's
defaults, both sweeps and their ratios to it (the issue's target: < 1.5x), and the exact
sweep's per-configuration stage times.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys

import h5py

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from calib_vs_infer import ROOT, images, job, run  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    qcal = os.path.join(a.build, "qcal")
    subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests/export_models.py"), os.path.join(a.build, "models"),
                    "mobilenet_v2"], check=True, capture_output=True)
    src = images(os.path.join(a.build, f"bench-calib-images-{a.images}"), a.images)
    single = job(a.build, src, a.images)
    sweep = single.replace(".yml", "-sweep.yml")
    text = open(single).read().replace("  preset: performance\n  method: mean_minmax\n",
                                       "  preset: [performance, mixed]\n"
                                       "  method: [minmax, mean_minmax, percentile, entropy]\n"
                                       "  bias_correction: [true, false]\n")
    open(sweep, "w").write(text)
    fast = single.replace(".yml", "-sweep-fast.yml")
    open(fast, "w").write(open(single).read().replace(
        "  preset: performance\n  method: mean_minmax\n",
        "  preset: [performance, mixed]\n  method: [minmax, mean_minmax, percentile, entropy]\n"
        "  percentile: [99.99, 99.999]\n  bias_correction: false\n"))
    out1, out16 = os.path.join(a.build, "bench-sweep-single"), os.path.join(a.build, "bench-sweep-16")
    outf = os.path.join(a.build, "bench-sweep-16-fast")
    rows = []
    for _ in range(a.rounds):
        shutil.rmtree(out16, ignore_errors=True)
        shutil.rmtree(outf, ignore_errors=True)
        t1, _ = run([qcal, "calibrate", single, "-o", out1, "--threads", "2", "--quiet"])
        t16, _ = run([qcal, "sweep", sweep, "-o", out16, "--calibrate-only", "--threads", "2"])
        tf, _ = run([qcal, "sweep", fast, "-o", outf, "--calibrate-only", "--fast", "--threads", "2"])
        t1f, _ = run([qcal, "calibrate", single, "-o", out1, "--threads", "2", "--quiet", "--no-bias-correction",
                      "--no-error-pass"])
        rows.append((t1, t16, t16 / t1, tf, tf / t1, t1f, tf / t1f))
    t1, t16, ratio, tf, rf, t1f, rff = (statistics.median(c) for c in zip(*rows))
    print(f"MobileNetV2, {a.images} images, 1 rank x 2 threads, medians of {a.rounds} rounds")
    print(f"  one calibration (job defaults: bias correction on)   {t1:8.2f} s")
    print(f"  exact 16-configuration sweep                        {t16:8.2f} s  {ratio:6.2f} x  (target < 1.5x)")
    print(f"  --fast 16-configuration sweep (no bias correction)  {tf:8.2f} s  {rf:6.2f} x  (target < 1.5x)")
    print(f"  one calibration without bias correction / SQNR      {t1f:8.2f} s  (--fast sweep / it: {rff:.2f} x)")
    stages = {}
    for k in range(16):
        with h5py.File(os.path.join(out16, f"c{k:03d}", "timing.h5"), "r") as t:
            names = [n.decode() for n in t["stages/name"][()]]
            for n, v in zip(names, t["stages/seconds_min_mean_max"][()][:, 1]):
                stages.setdefault(n, []).append(float(v))
    print("  exact sweep, stage seconds (summed over threads): first configuration / mean of the other 15")
    for n, v in stages.items():
        print(f"    {n:16s} {v[0]:7.3f} / {statistics.mean(v[1:]):7.3f}")


if __name__ == "__main__":
    main()
