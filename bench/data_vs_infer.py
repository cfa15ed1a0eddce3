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
    photos = [Image.open(f"{SK}/{n}").convert("RGB") for n in
              ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "retina.jpg"]]
    sets = {}
    # set A: the photos as they are (300x451 up to 1411x1411); set B: ImageNet-typical sizes
    # (500x375 landscape, 375x500 portrait, the most common shapes of ImageNet val)
    for name, size in (("photos", None), ("imagenet-sized", True)):
        d = os.path.join(a.build, f"bench-images-{name}")
        os.makedirs(d, exist_ok=True)
        for i in range(48):
            p = photos[i % len(photos)]
            if size:
                p = p.resize((500, 375) if i % 3 else (375, 500), Image.BICUBIC)
            p.save(os.path.join(d, f"img{i:03d}.jpg"), quality=90)
        sets[name] = d
    print(f"{'images':>15s} {'threads':>7s} {'decode ms':>9s} {'prep ms':>8s} {'data ms':>8s} {'infer ms':>9s} "
          f"{'data/infer':>10s}")
    for name, img in sets.items():
        for t in a.threads.split(","):
            rows = []
            for _ in range(a.rounds):
                r = subprocess.run([os.path.join(a.build, "qcal"), "infer", os.path.join(ROOT, "jobs/mobilenet_v2.yml"),
                                    img, "--timing", "--threads", t], capture_output=True, text=True)
                m = re.search(r"data ([0-9.]+) inference ([0-9.]+) data/inference ([0-9.]+).*decode ([0-9.]+), "
                              r"preprocess ([0-9.]+)", r.stdout)
                if r.returncode != 0 or not m:
                    sys.exit(f"qcal failed: {r.stderr}")
                rows.append([float(g) for g in m.groups()])
            med = [statistics.median(col) for col in zip(*rows)]
            print(f"{name:>15s} {t:>7s} {med[3]:9.3f} {med[4]:8.3f} {med[0]:8.3f} {med[1]:9.3f} {med[2]:10.3f}")
    print("target: data/infer < 0.15 (times are per image, summed over the threads that share the images)")


if __name__ == "__main__":
    main()
