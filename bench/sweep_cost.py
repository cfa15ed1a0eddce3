#!/usr/bin/env python3
"""The calibration part of a 16-configuration sweep against one calibration, on MobileNetV2.

  /usr/bin/python3 bench/sweep_cost.py [--images 300] [--rounds 3]

The sweep lists preset [performance, mixed] x method [minmax, mean_minmax, percentile,
entropy] x bias_correction [true, false] on one subset: `qcal sweep --calibrate-only`
collects the statistics once (its first configuration) and the other 15 recompute their
scales from them and run the error pass. Prints, as medians over rounds measured side by
side: the wall time of one `qcal calibrate` (the job's defaults), of the sweep, and the
ratio (the issue's target: < 1.5x), plus the sweep's per-configuration stage times.
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
    out1, out16 = os.path.join(a.build, "bench-sweep-single"), os.path.join(a.build, "bench-sweep-16")
    rows = []
    for _ in range(a.rounds):
        shutil.rmtree(out16, ignore_errors=True)
        t1, _ = run([qcal, "calibrate", single, "-o", out1, "--threads", "2", "--quiet"])
        t16, _ = run([qcal, "sweep", sweep, "-o", out16, "--calibrate-only", "--threads", "2"])
        rows.append((t1, t16, t16 / t1))
    t1, t16, ratio = (statistics.median(c) for c in zip(*rows))
    print(f"MobileNetV2, {a.images} images, 1 rank x 2 threads, medians of {a.rounds} rounds")
    print(f"  one calibration            {t1:8.2f} s")
    print(f"  16-configuration sweep     {t16:8.2f} s   ({t16 / 16:.2f} s per configuration)")
    print(f"  sweep / one calibration    {ratio:8.2f} x   (target < 1.5x)")
    stages = {}
    for k in range(16):
        with h5py.File(os.path.join(out16, f"c{k:03d}", "timing.h5"), "r") as t:
            names = [n.decode() for n in t["stages/name"][()]]
            for n, v in zip(names, t["stages/seconds_min_mean_max"][()][:, 1]):
                stages.setdefault(n, []).append(float(v))
    print("  stage seconds (summed over threads): first configuration / mean of the other 15")
    for n, v in stages.items():
        print(f"    {n:16s} {v[0]:7.3f} / {statistics.mean(v[1:]):7.3f}")


if __name__ == "__main__":
    main()
