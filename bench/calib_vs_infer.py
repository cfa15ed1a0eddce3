#!/usr/bin/env python3
"""Calibration cost against plain inference, rank scaling and memory, on MobileNetV2.

  /usr/bin/python3 bench/calib_vs_infer.py [--images 300] [--rounds 3] [--memory]   (--rounds 0: memory only)

Prints, as medians over rounds measured side by side in one run:
- per image and pass, calibration (FP32 plan without activation fusion + statistics
  observer) vs `qcal infer` on the same images (fused plan), both at 1 rank x 2 threads;
  target: statistics add < 30 % over plain inference;
- per image, the error pass (each quantized layer and its INT8-simulated twin) vs the same;
- wall time of `mpirun -np 1` vs `-np 2` (1 thread each): speed-up, target >= 1.8x;
- with --memory: peak RSS with 300 and 3000 calibration images (target: < 5 % apart).
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SK = "/usr/lib/python3/dist-packages/skimage/data"
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


def images(d, n):
    if os.path.isdir(d) and len(os.listdir(d)) == n:
        return d
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    photos = [Image.open(f"{SK}/{p}").convert("RGB") for p in
              ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "retina.jpg"]]
    for i in range(n):
        p = photos[i % len(photos)].resize((500, 375) if i % 3 else (375, 500), Image.BICUBIC)
        p.save(os.path.join(d, f"img{i:05d}.jpg"), quality=90)
    return d


def job(build, src, n):
    path = os.path.join(build, f"bench-calib-{n}.yml")
    text = open(os.path.join(ROOT, "jobs/mobilenet_v2.yml")).read()
    text = text.replace("model: ../build/models", f"model: {build}/models").replace("subset: 300", f"subset: {n}")
    open(path, "w").write(text + f"datasets:\n  calibration:\n    source: {src}\n  validation:\n    source: {src}\n")
    return path


def run(cmd):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr}")
    return time.perf_counter() - t0, r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--memory", action="store_true")
    a = ap.parse_args()
    qcal = os.path.join(a.build, "qcal")
    subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests/export_models.py"), os.path.join(a.build, "models"),
                    "mobilenet_v2"], check=True, capture_output=True)
    src = images(os.path.join(a.build, f"bench-calib-images-{a.images}"), a.images)
    j = job(a.build, src, a.images)
    out = os.path.join(a.build, "bench-calib-out")
    rows = []
    for _ in range(a.rounds):
        _, r = run([qcal, "infer", j, "--timing", "--threads", "2"])
        m = re.search(r"inference ([0-9.]+)", r.stdout)
        infer = float(m.group(1)) / 2  # per image, summed over 2 threads -> wall per image
        _, r = run([qcal, "calibrate", j, "-o", out, "--threads", "2", "--quiet"])
        st = {k: float(v) for k, v in re.findall(r"(\w+)\s+min\s+([0-9.]+) s", r.stdout)}
        # per image and pass, wall (stages are summed over 2 threads); observers included
        calib = (st["inference"] + st["observers"]) / 2 / (2 * a.images) * 1e3
        error = (st["error_pass"] + st["error_observers"]) / 2 / a.images * 1e3  # the error pass (twins)
        w1, _ = run(["mpirun", "-np", "1", qcal, "calibrate", j, "-o", out, "--threads", "1", "--quiet"])
        w2, _ = run(["mpirun", "-np", "2", qcal, "calibrate", j, "-o", out, "--threads", "1", "--quiet"])
        rows.append((infer, calib, calib / infer, w1, w2, w1 / w2, error, error / infer))
    med = [statistics.median(c) for c in zip(*rows)] if rows else None
    if med:
        print_times(a, med)
    if a.memory:
        memory(a, qcal, out)


def print_times(a, med):
    print(f"MobileNetV2 224, {a.images} images, medians of {a.rounds} rounds")
    print(f"  qcal infer (fused plan)            {med[0]:8.3f} ms/image   (1 rank x 2 threads)")
    print(f"  calibration pass (observer)        {med[1]:8.3f} ms/image   ratio {med[2]:.3f}  target < 1.30")
    print(f"  error pass (INT8-simulated twins)  {med[6]:8.3f} ms/image   ratio {med[7]:.3f}")
    print(f"  calibrate wall, mpirun -np 1 x 1t  {med[3]:8.2f} s")
    print(f"  calibrate wall, mpirun -np 2 x 1t  {med[4]:8.2f} s           speed-up {med[5]:.2f}x  target >= 1.8x")


def memory(a, qcal, out):
    rss = {}
    big = images(os.path.join(a.build, "bench-calib-images-3000"), 3000)
    for n in (300, 3000):
        jn = job(a.build, big, n)
        _, r = run(["/usr/bin/time", "-v", qcal, "calibrate", jn, "-o", out, "--threads", "2", "--quiet"])
        rss[n] = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1))
    print(f"  peak RSS 300 images {rss[300] / 1024:.1f} MiB, 3000 images {rss[3000] / 1024:.1f} MiB, "
          f"difference {abs(rss[3000] - rss[300]) / rss[300] * 100:.2f} %  target < 5 %")

if __name__ == "__main__":
    main()
