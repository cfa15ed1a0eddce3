#!/usr/bin/python3
"""INT8 against FP32, and qcal INT8 against ONNX Runtime on the same QDQ file, side by side.

    bench/int8_vs_fp32.py [--build build] [--runs 30] [--rounds 3] [--threads 1,2] [--models a,b]

Each model is calibrated by qcal (16 real photos, default method and preset) into a QDQ
model; then, batch 1, each round times qcal FP32, qcal INT8, ONNX Runtime FP32 and ONNX
Runtime INT8 on the same files and thread count (--runs timed runs after 5 warm-up runs,
median). Figures are medians over rounds. Targets (issue "INT8 execution engine"): INT8 over
qcal FP32 >= 2.5x ResNet-50, >= 1.8x MobileNetV2, >= 2x DeepLabV3 and PP-OCRv4 det; qcal INT8
at least 1.2x faster than ONNX Runtime INT8 on the same file.
"""
import os
import shutil
import statistics
import subprocess
import sys

from fp32_vs_ort import ASSETS, ROOT, bench_args, export_models, median_ms

SK = "/usr/lib/python3/dist-packages/skimage/data"
MODELS = {  # model, input shape, job giving the preprocessing
    "mobilenet_v2": ("mobilenet_v2/model.onnx", "1x3x224x224", "mobilenet_v2.yml"),
    "resnet50": ("resnet50/model.onnx", "1x3x224x224", "mobilenet_v2.yml"),
    "deeplabv3_mnv3": ("deeplabv3_mnv3/model.onnx", "1x3x512x512", "deeplabv3.yml"),
    "ppocrv4_det": (os.path.join(ASSETS, "ch_PP-OCRv4_det_infer.onnx"), "1x3x640x640", "ppocr_det.yml"),
}


def photos(d):
    from PIL import Image
    if os.path.isdir(d) and len(os.listdir(d)) == 16:
        return d
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    names = ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png", "page.png"]
    for i in range(16):
        im = Image.open(os.path.join(SK, names[i % len(names)])).convert("RGB")
        w, h = im.size
        im.crop((i * 7 % (w // 4), i * 5 % (h // 4), w - i * 3 % (w // 4), h)).save(os.path.join(d, f"p{i:02d}.jpg"))
    return d


def calibrate(qcal, name, model, job_name, images, out):
    text = open(os.path.join(ROOT, "jobs", job_name)).read().splitlines()
    lines = [f"model: {model}" if l.startswith("model:") else l for l in text]
    lines = [l for l in lines if not l.strip().startswith("labels:")]
    job = os.path.join(out, f"{name}.yml")
    os.makedirs(out, exist_ok=True)
    open(job, "w").write("\n".join(lines) + f"\ndatasets:\n  calibration:\n    source: {images}\n")
    r = subprocess.run([qcal, "calibrate", job, "-o", os.path.join(out, name), "--subset", "16", "--quiet"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"calibrate {name} failed: {r.stderr}")
    return os.path.join(out, name, "model.int8.onnx")


def main():
    a = bench_args(MODELS)
    qcal = os.path.join(a.build, "qcal")
    mdir = export_models(a.build)
    images = photos(os.path.join(a.build, "bench-int8-photos"))
    ort = os.path.join(ROOT, "tests/node/ort_run.js")
    print(f"{'model':15s} {'thr':>3s} {'qcal fp32':>10s} {'qcal int8':>10s} {'speed-up':>9s} "
          f"{'ORT fp32':>9s} {'ORT int8':>9s} {'ORT int8/qcal int8':>19s}")
    for name in a.models.split(","):
        rel, shape, job = MODELS[name]
        model = rel if os.path.isabs(rel) else os.path.join(mdir, rel)
        int8 = calibrate(qcal, name, model, job, images, os.path.join(a.build, "bench-int8"))
        for t in a.threads.split(","):
            rows = []
            for _ in range(a.rounds):
                q = lambda m: median_ms([qcal, "infer", m, "--input-shape", shape, "--threads", t, "--repeat",  # noqa
                                         str(a.runs), "--warmup", "5"])
                o = lambda m: median_ms(["node", ort, m, "--shape", shape, "--threads", t, "--repeat",  # noqa
                                         str(a.runs), "--warmup", "5"])
                rows.append((q(model), q(int8), o(model), o(int8)))
            qf, qi, of, oi = (statistics.median(c) for c in zip(*rows))
            print(f"{name:15s} {t:>3s} {qf:10.3f} {qi:10.3f} {qf / qi:8.2f}x {of:9.3f} {oi:9.3f} {oi / qi:18.2f}x",
                  flush=True)


if __name__ == "__main__":
    main()
