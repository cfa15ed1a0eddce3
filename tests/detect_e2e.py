#!/usr/bin/python3
"""Detection and instance segmentation through `qcal infer JOB.yml` on real photos:
SSDlite320-MobileNetV3 (ssd adapter) and a YOLOv8-seg head (instance_segmentation adapter).
The raw outputs qcal dumps must match ONNX Runtime on the same preprocessed tensors, and the
boxes qcal prints must be what a numpy re-implementation of the adapter (threshold,
per-class NMS over the best 400 candidates, sort, top-k, boxes mapped back to the file's
pixels; masks from the prototypes) gets from those outputs.

    detect_e2e.py --qcal BUILD/qcal --models FIXTURE_MODELS --jobs JOBS --work DIR
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess

import numpy as np
from checks import Checks
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
SK = "/usr/lib/python3/dist-packages/skimage/data"


def iou(a, b):
    iw, ih = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = np.float32(iw) * np.float32(ih)
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / ua if ua > 0 else 0.0


def nms(cands, thr, top_k):
    """cands: (score, anchor, cls, box) -> kept, sorted by score (ties: anchor, class)."""
    kept = []
    for c in sorted({c[2] for c in cands}):
        group = sorted([x for x in cands if x[2] == c], key=lambda x: (-x[0], x[1]))[:400]
        mine = []
        for x in group:
            if all(iou(k[3], x[3]) <= thr for k in mine):
                mine.append(x)
        kept += mine
    kept.sort(key=lambda x: (-x[0], x[1], x[2]))
    return kept[:top_k]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qcal", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--jobs", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    a.models, a.jobs = os.path.abspath(a.models), os.path.abspath(a.jobs)
    w = os.path.abspath(a.work)
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(f"{w}/img")
    for n, size in (("astronaut.png", (512, 512)), ("coffee.png", (600, 400)), ("chelsea.png", (451, 300))):
        Image.open(f"{SK}/{n}").convert("RGB").resize(size).save(f"{w}/img/{n[:-4]}.jpg", quality=90)
    check = Checks()

    for name, job, thr in (("ssdlite_mnv3", "ssdlite.yml", 0.0125), ("yoloseg_mnv3", "yoloseg.yml", 0.5)):
        text = open(os.path.join(a.jobs, job)).read()
        text = re.sub(r"^model: .*$", f"model: {a.models}/{name}/model.onnx", text, flags=re.M)
        text = re.sub(r"labels: (\S+)", lambda m: f"labels: {os.path.join(a.jobs, m.group(1))}", text)
        text = re.sub(r"confidence_threshold: \S+", f"confidence_threshold: {thr}", text)
        text = text.split("datasets:")[0] + "adapter:" + text.split("adapter:")[1]
        jf = f"{w}/{job}"
        open(jf, "w").write(text)
        out = f"{w}/out_{name}"
        os.makedirs(out)
        r = subprocess.run([a.qcal, "infer", jf, f"{w}/img", "--output-dir", out, "--threads", "2"],
                           capture_output=True, text=True)
        check(f"{name}: qcal infer runs", r.returncode == 0, r.stderr)
        if r.returncode:
            continue
        labels = open(os.path.join(a.jobs, re.search(r"labels: (\S+)", text).group(1))).read().splitlines()
        printed = {}
        cur = None
        for line in r.stdout.splitlines():
            if not line.startswith(" "):
                cur = os.path.basename(line)
                printed[cur] = []
            elif "[" in line:
                m = re.match(r"  (.*) ([0-9.]+) \[(\S+) (\S+) (\S+) (\S+)\](?: mask (\d+) px)?", line)
                printed[cur].append((m.group(1), float(m.group(2)), [float(m.group(k)) for k in range(3, 7)],
                                     int(m.group(7)) if m.group(7) else None))
        # qcal's raw outputs against ONNX Runtime on the same inputs
        manifest = [{"model": f"{a.models}/{name}/model.onnx", "inputs": [f], "outDir": f + ".ort"}
                    for f in sorted(glob.glob(f"{out}/*.input.npy"))]
        json.dump(manifest, open(f"{w}/manifest.json", "w"))
        subprocess.run(["node", os.path.join(HERE, "node/ort_run.js"), "--manifest", f"{w}/manifest.json"],
                       check=True, capture_output=True)
        worst = 0.0
        for m in manifest:
            for ref_path in glob.glob(m["outDir"] + "/*.npy"):
                got = np.load(m["inputs"][0].replace(".input.npy", "." + os.path.basename(ref_path)))
                ref = np.load(ref_path)
                worst = max(worst, float(np.abs(got - ref).max() / np.abs(ref).max()))
        check(f"{name}: raw outputs match ONNX Runtime", worst <= 1e-3, f"max rel diff {worst:.2e}")
        # the adapter, re-done in numpy on qcal's dumped outputs
        ok, n_boxes = True, 0
        for img in sorted(printed):
            W, H = Image.open(f"{w}/img/{img}").size
            base = f"{out}/{img}"
            cands = []
            if name == "ssdlite_mnv3":
                boxes, scores = np.load(f"{base}.boxes.npy")[0], np.load(f"{base}.scores.npy")[0]
                for an, c in zip(*np.nonzero(scores[:, 1:] >= np.float32(thr))):
                    cands.append((scores[an, c + 1], an, c, boxes[an] * np.float32(320)))
                kept = nms(cands, np.float32(0.45), 100)
            else:
                p = np.load(f"{base}.output0.npy")[0]  # [116, N]
                protos = np.load(f"{base}.output1.npy")[0]
                for an, c in zip(*np.nonzero(p[4:84].T >= np.float32(thr))):
                    cx, cy, bw, bh = p[:4, an]
                    cands.append((p[4 + c, an], an, c, np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2],
                                                               np.float32)))
                kept = nms(cands, np.float32(0.7), 100)
            want = []
            for score, an, c, b in kept:
                sx, sy = W / 320, H / 320
                area = None
                if name == "yoloseg_mnv3":
                    logit = np.tensordot(p[84:, an], protos, axes=1)  # [40, 40]
                    ys, xs = np.mgrid[0:320, 0:320]
                    up = logit[ys * 40 // 320, xs * 40 // 320]
                    inside = (xs + 0.5 >= b[0]) & (xs + 0.5 < b[2]) & (ys + 0.5 >= b[1]) & (ys + 0.5 < b[3])
                    area = int(((up > 0) & inside).sum())
                want.append((labels[c], float(score), [b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy], area))
            got = printed[img]
            same = len(got) == len(want) and all(
                g[0] == v[0] and abs(g[1] - v[1]) <= 1e-4 and np.allclose(g[2], v[2], atol=0.06) and
                (v[3] is None or abs(g[3] - v[3]) <= max(2, 0.01 * v[3])) for g, v in zip(got, want))
            if not same:
                ok = False
                print(f"  {img}: qcal {got[:3]} ... ({len(got)}) vs numpy {want[:3]} ... ({len(want)})")
            n_boxes += len(got)
        check(f"{name}: {n_boxes} printed boxes equal numpy's adapter on the same outputs", ok and n_boxes > 0)
    return check.report("detection checks")


if __name__ == "__main__":
    raise SystemExit(main())
