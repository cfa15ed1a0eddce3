#!/usr/bin/python3
"""Data stage vs FP32 inference on MobileNetV2 224 (jobs/mobilenet_v2.yml): JPEG decoding
and preprocessing (shorter side 256, centre crop 224, mean/std) per image against the
model's inference time per image, both measured inside `qcal infer JOB.yml --timing` on the
same real photos (scikit-image's astronaut, coffee, chelsea, rocket, retina, saved as
JPEG, 48 images in all). Target: data/inference < 0.15.

    bench/data_vs_infer.py [--build build] [--threads 1,2] [--rounds 3]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SK = "/usr/lib/python3/dist-packages/skimage/data"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests/export_models.py"), os.path.join(ROOT, "build/models"),
                    "mobilenet_v2"], check=True)
    img = os.path.join(a.build, "bench-images")
    os.makedirs(img, exist_ok=True)
    photos = [Image.open(f"{SK}/{n}").convert("RGB") for n in
              ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "retina.jpg"]]
    for i in range(48):
        p = photos[i % len(photos)]
        p.save(os.path.join(img, f"img{i:03d}.jpg"), quality=90)
    sizes = sorted({f"{p.width}x{p.height}" for p in photos})
    print(f"images: 48 JPEGs of {', '.join(sizes)}")
    print(f"{'threads':>7s} {'data ms':>9s} {'infer ms':>9s} {'data/infer':>10s}")
    for t in a.threads.split(","):
        ratios, dms, ims = [], [], []
        for _ in range(a.rounds):
            r = subprocess.run([os.path.join(a.build, "qcal"), "infer", os.path.join(ROOT, "jobs/mobilenet_v2.yml"), img,
                                "--timing", "--threads", t], capture_output=True, text=True)
            m = re.search(r"data ([0-9.]+) inference ([0-9.]+) data/inference ([0-9.]+)", r.stdout)
            if r.returncode != 0 or not m:
                sys.exit(f"qcal failed: {r.stderr}")
            dms.append(float(m.group(1)))
            ims.append(float(m.group(2)))
            ratios.append(float(m.group(3)))
        print(f"{t:>7s} {statistics.median(dms):9.3f} {statistics.median(ims):9.3f} {statistics.median(ratios):10.3f}")
    print("target: data/infer < 0.15 (times are per image, summed over the threads that share the images)")


if __name__ == "__main__":
    main()
