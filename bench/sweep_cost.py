#!/usr/bin/env python3
"""The calibration part of a 16-configuration sweep against one calibration, on MobileNetV2.

  /usr/bin/python3 bench/sweep_cost.py [--images 300] [--rounds 3] [--eval 100]

The images: distinct random crops (position, size, mirror) of 18 photos and textures of
scikit-image's data, so activations are as varied as a real calibration set's (repeating a
few photos puts point masses in every channel). One sweep grid, preset [performance, mixed] x
method [minmax, mean_minmax, percentile, entropy] x bias_correction [true, false], swept two
ways with `qcal sweep --calibrate-only`, statistics collected once (by the first
configuration), the other 15 computing their scales from them:
- exact: every configuration runs its error pass (bias correction and the per-layer SQNR
  table depend on its scales), so each model equals a standalone run;
- --fast: only the first configuration runs an error pass (recording its layers' per-channel
  input histograms); the others take their scales from the shared statistics and, with bias
  correction, its measured shifts moved to their scales (calibrate --shared-bias).
Prints, as medians over rounds measured side by side: one `qcal calibrate` with the job's
defaults, both sweeps and their ratios to it (the issue's target: < 1.5x), the exact sweep's
per-configuration stage times; then what --fast costs in accuracy, per bias-corrected
configuration: the share of the exact bias correction it misses (squared distance of its
biases to the exact model's over that of the uncorrected model's), and both models' top-1
agreement and median output SNR against the FP32 parent on --eval other images.
"""
import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys

import h5py
import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from calib_vs_infer import ROOT, SK, job, run  # noqa: E402
from calibrate_e2e import conv_biases  # noqa: E402

PHOTOS = ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "retina.jpg", "motorcycle_left.png",
          "hubble_deep_field.jpg", "ihc.png", "camera.png", "coins.png", "horse.png", "grass.png", "gravel.png",
          "brick.png", "moon.png", "color.png", "logo.png", "cell.png"]


def diverse_images(d, n, seed):
    """n distinct JPEGs: random crops of the photos, some mirrored, at varied sizes."""
    if os.path.isdir(d) and len(os.listdir(d)) == n:
        return d
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    rng = random.Random(seed)
    photos = [Image.open(os.path.join(SK, p)).convert("RGB") for p in PHOTOS if os.path.exists(os.path.join(SK, p))]
    for i in range(n):
        p = photos[i % len(photos)]
        w, h = p.size
        cw, ch = rng.randint(w // 4, w), rng.randint(h // 4, h)
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        im = p.crop((x, y, x + cw, y + ch)).resize((rng.randint(240, 480), rng.randint(240, 480)), Image.BICUBIC)
        if rng.random() < 0.5:
            im = ImageOps.mirror(im)
        im.save(os.path.join(d, f"img{i:05d}.jpg"), quality=90)
    return d


def agreement(qcal, job_path, model, report, n):
    subprocess.run([qcal, "evaluate", job_path, "--optimized", model, "-o", report, "--subset", str(n), "--threads",
                    "2", "--quiet"], check=True, capture_output=True)
    with h5py.File(report, "r") as f:
        return float(f["summary"].attrs["top1_agreement"]), float(f["summary/tensors"]["snr_db_median"][0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--eval", type=int, default=100)
    a = ap.parse_args()
    qcal = os.path.join(a.build, "qcal")
    subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests/export_models.py"), os.path.join(a.build, "models"),
                    "mobilenet_v2"], check=True, capture_output=True)
    src = diverse_images(os.path.join(a.build, f"bench-sweep-images-{a.images}"), a.images, 1)
    val = diverse_images(os.path.join(a.build, f"bench-sweep-val-{a.eval}"), a.eval, 2)
    single = job(a.build, src, a.images).replace(".yml", "-diverse.yml")
    text = open(job(a.build, src, a.images)).read().replace(f"validation:\n    source: {src}", f"validation:\n    source: {val}")
    open(single, "w").write(text)
    sweep = single.replace(".yml", "-sweep.yml")
    open(sweep, "w").write(text.replace("  preset: performance\n  method: mean_minmax\n",
                                        "  preset: [performance, mixed]\n"
                                        "  method: [minmax, mean_minmax, percentile, entropy]\n"
                                        "  bias_correction: [true, false]\n"))
    out1, out16 = os.path.join(a.build, "bench-sweep-single"), os.path.join(a.build, "bench-sweep-16")
    outf = os.path.join(a.build, "bench-sweep-16-fast")
    rows = []
    for _ in range(a.rounds):
        shutil.rmtree(out16, ignore_errors=True)
        shutil.rmtree(outf, ignore_errors=True)
        t1, _ = run([qcal, "calibrate", single, "-o", out1, "--threads", "2", "--quiet"])
        t16, _ = run([qcal, "sweep", sweep, "-o", out16, "--calibrate-only", "--threads", "2"])
        tf, _ = run([qcal, "sweep", sweep, "-o", outf, "--calibrate-only", "--fast", "--threads", "2"])
        rows.append((t1, t16, t16 / t1, tf, tf / t1))
    t1, t16, ratio, tf, rf = (statistics.median(c) for c in zip(*rows))
    print(f"MobileNetV2, {a.images} distinct images, 1 rank x 2 threads, medians of {a.rounds} rounds")
    print(f"  one calibration (job defaults: bias correction on)   {t1:8.2f} s")
    print(f"  exact 16-configuration sweep                        {t16:8.2f} s  {ratio:6.2f} x  (target < 1.5x)")
    print(f"  --fast 16-configuration sweep (same grid)           {tf:8.2f} s  {rf:6.2f} x  (target < 1.5x)")
    stages = {}
    for k in range(16):
        with h5py.File(os.path.join(out16, f"c{k:03d}", "timing.h5"), "r") as t:
            names = [n.decode() for n in t["stages/name"][()]]
            for n, v in zip(names, t["stages/seconds_min_mean_max"][()][:, 1]):
                stages.setdefault(n, []).append(float(v))
    print("  exact sweep, stage seconds (summed over threads): first configuration / mean of the other 15")
    for n, v in stages.items():
        print(f"    {n:16s} {v[0]:7.3f} / {statistics.mean(v[1:]):7.3f}")
    print(f"  --fast vs exact, bias-corrected configurations ({a.eval} validation images):")
    print("    config  preset       method        missed  agreement exact/fast  median SNR dB exact/fast")
    for k in range(0, 16, 2):  # bias correction on (even), off (odd) in the same scales
        c = f"c{k:03d}"
        ex, fa, un = (conv_biases(os.path.join(d, f"c{j:03d}", "model.int8.onnx")) for d, j in
                      ((out16, k), (outf, k), (out16, k + 1)))
        miss = sum(float(np.sum((fa[n] - ex[n]) ** 2)) for n in ex) / \
            max(sum(float(np.sum((un.get(n, 0 * ex[n]) - ex[n]) ** 2)) for n in ex), 1e-30)
        ae, se = agreement(qcal, single, os.path.join(out16, c, "model.int8.onnx"), os.path.join(out16, c, "eval.h5"), a.eval)
        af, sf = agreement(qcal, single, os.path.join(outf, c, "model.int8.onnx"), os.path.join(outf, c, "eval.h5"), a.eval)
        with h5py.File(os.path.join(out16, c, "calibration.h5"), "r") as f:
            preset, method = f["scales"].attrs["preset"], f["scales"].attrs["method"]
        preset, method = (x.decode() if isinstance(x, bytes) else x for x in (preset, method))
        print(f"    {c}    {preset:12s} {method:12s} {miss:7.4f}  {ae:.3f} / {af:.3f}         {se:6.2f} / {sf:6.2f}"
              f"{'   (records: exact)' if k == 0 else ''}")


if __name__ == "__main__":
    main()
