#!/usr/bin/python3
"""qcal evaluate on detection (SSDlite320-MobileNetV3, ssd adapter; a YOLOv8-style head, yolo
adapter) and instance segmentation (a YOLOv8-seg head, instance_segmentation adapter), all
calibrated to INT8 by qcal, on real photos annotated in COCO format.

The annotations are made from the parent's own detections (moved by varying amounts, some
dropped, crowds and a class the model never finds added), so every metric is far from 0 and
1. A numpy implementation written here from the COCO and Pascal VOC rules recomputes from the
report's detection table and the annotation file: the optimized model's matches to the
parent's detections, the per image x class rows, mAP vs the parent, VOC mAP (11-point and
all-points), COCO mAP@[.5:.95]/.5/.75 and the per class AP of both models. The report must
hold the same results at 1, 2 and 4 ranks and 1 or 2 threads; the parent compared with
itself agrees completely.

    evaluate_detect.py --qcal BUILD/qcal --models FIXTURE_MODELS --jobs JOBS --work DIR
"""
import json
import os
import re
import subprocess

import h5py
import numpy as np
from PIL import Image

from calibrate_e2e import MPI_ENV
from checks import Checks, e2e_args
from evaluate_e2e import results, same

SK = "/usr/lib/python3/dist-packages/skimage/data"
PHOTOS = (("astronaut.png", (512, 512)), ("coffee.png", (600, 400)), ("chelsea.png", (451, 300)),
          ("rocket.jpg", (427, 640)), ("motorcycle_left.png", (480, 320)))


def iou(d, g, crowd=False):
    iw, ih = min(d[2], g[2]) - max(d[0], g[0]), min(d[3], g[3]) - max(d[1], g[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    ad = (d[2] - d[0]) * (d[3] - d[1])
    uni = ad if crowd else ad + (g[2] - g[0]) * (g[3] - g[1]) - inter
    return inter / uni if uni > 0 else 0.0


def match_coco(dets, gts, thr):
    """pycocotools' evaluateImg loop: dets best first; gts (box, ignore, crowd), ignored last."""
    matched, out = [False] * len(gts), []
    for d in dets:
        best, m = min(thr, 1 - 1e-10), -1
        for j, (g, ign, crowd) in enumerate(gts):
            if matched[j] and not crowd:
                continue
            if m > -1 and not gts[m][1] and ign:
                break
            v = iou(d, g, crowd)
            if v < best:
                continue
            best, m = v, j
        if m == -1:
            out.append(0)
        else:
            matched[m] = True
            out.append(2 if gts[m][1] else 1)
    return out


def match_voc(dets, gts, thr=0.5):
    """The VOC devkit: the largest IoU decides; difficult (here: ignored) -> neither."""
    taken, out = [False] * len(gts), []
    for d in dets:
        ovs = [iou(d, g, crowd) for g, _, crowd in gts]
        if not ovs or max(ovs) <= thr:
            out.append(0)
            continue
        j = int(np.argmax(ovs))
        if gts[j][1]:
            out.append(2)
        elif taken[j]:
            out.append(0)
        else:
            taken[j] = True
            out.append(1)
    return out


def ap(scores, states, n_ref, method):
    if n_ref == 0:
        return float("nan")
    scores, states = np.asarray(scores, np.float64), np.asarray(states)
    keep = states != 2
    order = np.argsort(-scores[keep], kind="mergesort")
    tp = np.cumsum(states[keep][order] == 1)
    fp = np.cumsum(states[keep][order] == 0)
    rec = tp / n_ref
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    if method == "voc11":
        return float(sum((prec[rec >= t].max() if (rec >= t).any() else 0) for t in np.arange(0, 1.1, 0.1)) / 11)
    mrec, mpre = np.concatenate([[0], rec, [1]]), np.concatenate([[0], prec, [0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    if method == "all":
        i = np.where(mrec[1:] != mrec[:-1])[0]
        return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))
    env = mpre[1:-1]
    q = np.zeros(101)
    inds = np.searchsorted(rec, np.linspace(0, 1, 101), side="left")
    for ri, pi in enumerate(inds):
        if pi >= len(env):
            break
        q[ri] = env[pi]
    return float(q.mean())


def mean_ap(per_class):
    v = [x for x in per_class.values() if not np.isnan(x)]
    return float(np.mean(v)) if v else float("nan")


def write_job(work, jobs, models, name, template, thr, validation, annotations=None):
    text = open(os.path.join(jobs, template)).read()
    text = re.sub(r"^model: .*$", f"model: {models}/{name}/model.onnx", text, flags=re.M)
    text = re.sub(r"labels: (\S+)", lambda m: f"labels: {os.path.join(jobs, m.group(1))}", text)
    text = re.sub(r"confidence_threshold: \S+", f"confidence_threshold: {thr}", text)
    data = f"datasets:\n  calibration:\n    source: {validation}\n  validation:\n    source: {validation}\n"
    if annotations:
        data += f"    annotations: {annotations}\n    annotation_format: coco\n"
    text = text.split("datasets:")[0] + data + "adapter:" + text.split("adapter:")[1].split("metrics:")[0]
    path = os.path.join(work, f"{name}{'_ann' if annotations else ''}.yml")
    open(path, "w").write(text)
    return path


def make_annotations(path, images, dets, labels, rng):
    """COCO annotations from the parent's detections: per image its best ones, moved by 0-40% of
    their size (some stay matches at IoU 0.5, fewer at 0.95), a crowd over one of them, and
    an object of a class with no detection."""
    names = [n for n in labels if n != "N/A"]
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(labels) if n != "N/A"]
    by_name = {c["name"]: c["id"] for c in cats}
    ann, imgs, aid = [], [], 1
    for k, (fname, (W, H)) in enumerate(images):
        imgs.append({"id": k + 1, "file_name": fname, "width": W, "height": H})
        mine = dets[dets["image"] == k]
        mine = mine[mine["model"] == 0]
        inside = (mine["x0"] >= 0) & (mine["y0"] >= 0) & (mine["x1"] <= W) & (mine["y1"] <= H) & \
                 (mine["x1"] > mine["x0"] + 4) & (mine["y1"] > mine["y0"] + 4)
        mine = mine[inside][:12]
        for j, d in enumerate(mine):
            if j % 5 == 4:
                continue  # missed by the annotator
            x0, y0, x1, y1 = (float(d[c]) for c in ("x0", "y0", "x1", "y1"))
            w, h = x1 - x0, y1 - y0
            shift = [0.0, 0.05, 0.15, 0.3, 0.4][j % 5] * rng.uniform(0.5, 1.0)
            x0 += shift * w * rng.choice([-1, 1])
            y0 += shift * h * rng.choice([-1, 1])
            x0, y0 = max(0.0, x0), max(0.0, y0)
            w, h = min(w, W - x0), min(h, H - y0)
            crowd = int(j == 2)
            ann.append({"id": aid, "image_id": k + 1, "category_id": by_name[labels[int(d["class"])]],
                        "bbox": [round(x0, 2), round(y0, 2), round(w, 2), round(h, 2)], "area": w * h,
                        "iscrowd": crowd,
                        "segmentation": [[x0, y0, x0 + w, y0, x0 + w, y0 + h, x0, y0 + h]]})
            aid += 1
        ann.append({"id": aid, "image_id": k + 1, "category_id": by_name[names[-1]],
                    "bbox": [1, 1, W / 3, H / 3], "area": W * H / 9, "iscrowd": 0,
                    "segmentation": [[1, 1, 1 + W / 3, 1, 1 + W / 3, 1 + H / 3, 1, 1 + H / 3]]})
        aid += 1
    json.dump({"images": imgs, "annotations": ann, "categories": cats}, open(path, "w"))
    return {c["id"]: labels.index(c["name"]) for c in cats}, ann


def numpy_metrics(dets, ann, cat_to_model, n_images):
    """Both models' VOC/COCO metrics from the detection table and the annotations."""
    out = {}
    objects = {}
    for a in ann:
        c = cat_to_model[a["category_id"]]
        if not a["iscrowd"]:
            objects[c] = objects.get(c, 0) + 1
    for m in (0, 1):
        pooled = {}  # class -> (scores, voc states, coco states per threshold)
        for k in range(n_images):
            mine = dets[(dets["image"] == k) & (dets["model"] == m)]
            mine = mine[np.argsort(mine["rank"])]
            for c in sorted(set(int(x) for x in mine["class"])):
                dc = mine[mine["class"] == c]
                boxes = [[float(d[f]) for f in ("x0", "y0", "x1", "y1")] for d in dc]
                gts = []
                for ign in (0, 1):
                    for a in ann:
                        if a["image_id"] == k + 1 and cat_to_model[a["category_id"]] == c and a["iscrowd"] == ign:
                            x, y, w, h = a["bbox"]
                            gts.append(([np.float32(x), np.float32(y), np.float32(x) + np.float32(w),
                                         np.float32(y) + np.float32(h)], bool(ign), bool(ign)))
                s, v, co = pooled.setdefault(c, ([], [], [[] for _ in range(10)]))
                s += [float(d["score"]) for d in dc]
                v += match_voc(boxes, gts)
                for t in range(10):
                    co[t] += match_coco(boxes, gts, 0.5 + 0.05 * t)
        classes = set(objects)
        ap_voc = {c: ap(pooled.get(c, ([], [], 0))[0], pooled.get(c, ([], [], 0))[1], objects[c], "all")
                  for c in classes}
        ap_11 = {c: ap(pooled.get(c, ([], [], 0))[0], pooled.get(c, ([], [], 0))[1], objects[c], "voc11")
                 for c in classes}
        coco_t = []
        for t in range(10):
            coco_t.append({c: ap(pooled[c][0], pooled[c][2][t], objects[c], "coco") if c in pooled else 0.0
                           for c in classes})
        who = "parent" if m == 0 else "optimized"
        out[f"{who}_voc_map"] = mean_ap(ap_voc)
        out[f"{who}_voc_map_11pt"] = mean_ap(ap_11)
        out[f"{who}_coco_map50"] = mean_ap(coco_t[0])
        out[f"{who}_coco_map75"] = mean_ap(coco_t[5])
        out[f"{who}_coco_map"] = float(np.mean([mean_ap(x) for x in coco_t]))
        out[f"{who}_class_ap50"] = ap_voc
        out[f"{who}_class_ap"] = {c: float(np.mean([x[c] for x in coco_t])) for c in classes}
    out["objects"] = sum(objects.values())
    return out


def numpy_vs_parent(dets, n_images, given=None):
    """The optimized model's detections matched to the parent's: per detection, per image x
    class rows and the pooled mAP. `given`: take the matches from this table (mask matching)."""
    flags, rows, pooled, n_parent = {}, [], {}, {}
    for k in range(n_images):
        par, opt = dets[(dets["image"] == k) & (dets["model"] == 0)], dets[(dets["image"] == k) & (dets["model"] == 1)]
        for c in sorted(set(int(x) for x in par["class"]) | set(int(x) for x in opt["class"])):
            oc, pc = opt[opt["class"] == c], par[par["class"] == c]
            gts = [([float(d[f]) for f in ("x0", "y0", "x1", "y1")], False, False) for d in pc]
            st = match_coco([[float(d[f]) for f in ("x0", "y0", "x1", "y1")] for d in oc], gts, 0.5) \
                if given is None else [int(d["parent_match"]) for d in oc]
            for d, s in zip(oc, st):
                flags[(k, int(d["rank"]))] = s
            rows.append((k, c, len(oc), len(pc), sum(x == 1 for x in st),
                         ap([float(d["score"]) for d in oc], st, len(pc), "all")))
            p = pooled.setdefault(c, ([], []))
            p[0].extend(float(d["score"]) for d in oc)
            p[1].extend(st)
            n_parent[c] = n_parent.get(c, 0) + len(pc)
    m = mean_ap({c: ap(pooled.get(c, ([], []))[0], pooled.get(c, ([], []))[1], n_parent[c], "all")
                 for c in n_parent})
    return flags, rows, m


def close(a, b, tol=1e-9):
    return (np.isnan(a) and np.isnan(b)) or abs(a - b) <= tol


def main():
    a = e2e_args()
    a.models, a.jobs = os.path.abspath(a.models), os.path.abspath(a.jobs)
    check = Checks()
    img = os.path.join(a.work, "img")
    os.makedirs(img)
    images = []
    for n, size in PHOTOS:
        Image.open(f"{SK}/{n}").convert("RGB").resize(size).save(f"{img}/{n[:-4]}.jpg", quality=90)
        images.append((f"{n[:-4]}.jpg", size))
    images.sort()
    rng = np.random.default_rng(7)

    def run(cmd, ranks=0):
        if ranks:
            cmd = ["mpirun", "--oversubscribe", "-np", str(ranks), *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, env=MPI_ENV, timeout=900)

    for name, template, thr in (("ssdlite_mnv3", "ssdlite.yml", 0.0125), ("yolo_mnv3", "yolo.yml", 0.5),
                                ("yoloseg_mnv3", "yoloseg.yml", 0.5)):
        job = write_job(a.work, a.jobs, a.models, name, template, thr, img)
        cal = os.path.join(a.work, f"cal_{name}")
        r = run([a.qcal, "calibrate", job, "-o", cal, "--quiet"])
        if not check(f"{name}: calibrate", r.returncode == 0, r.stderr[-300:]):
            continue
        int8 = os.path.join(cal, "model.int8.onnx")
        plain = os.path.join(a.work, f"{name}_plain.h5")
        r = run([a.qcal, "evaluate", job, "--optimized", int8, "-o", plain, "--quiet"])
        if not check(f"{name}: evaluate without annotations", r.returncode == 0, r.stderr[-300:]):
            continue
        with h5py.File(plain, "r") as f:
            dets0 = f["comparison/detections"][()]
            check(f"{name}: no accuracy without annotations", "accuracy" not in f)
        lf = re.search(r"labels: (\S+)", open(os.path.join(a.jobs, template)).read()).group(1)
        labels = open(os.path.join(a.jobs, lf)).read().splitlines()
        ann_path = os.path.join(a.work, f"{name}_instances.json")
        cat_to_model, ann = make_annotations(ann_path, images, dets0, labels, rng)
        job = write_job(a.work, a.jobs, a.models, name, template, thr, img, ann_path)
        reps = {}
        for ranks, threads in ((0, 1), (0, 2), (2, 1), (4, 1)):
            rep = os.path.join(a.work, f"{name}_{ranks}x{threads}.h5")
            r = run([a.qcal, "evaluate", job, "--optimized", int8, "-o", rep, "--threads", str(threads)], ranks)
            if check(f"{name}: evaluate {max(ranks, 1)} ranks x {threads} threads", r.returncode == 0,
                     r.stderr[-300:]):
                reps[(ranks, threads)] = rep
                if (ranks, threads) == (0, 1):
                    print(r.stdout.strip())
        if (0, 1) not in reps:
            continue
        base = results(reps[(0, 1)])
        for key, rep in reps.items():
            if key != (0, 1):
                check(f"{name}: same results at {max(key[0], 1)} ranks x {key[1]} threads as 1 x 1",
                      same(base, results(rep)))
        f = h5py.File(reps[(0, 1)], "r")
        dets = f["comparison/detections"][()]
        check(f"{name}: the annotated run finds the same detections", dets.tobytes() == dets0.tobytes())
        n = len(f["comparison/images"])
        masks = name == "yoloseg_mnv3"  # matched to the parent on masks: pooling checked from the report's flags
        flags, rows, m = numpy_vs_parent(dets, n, dets if masks else None)
        opt = dets[dets["model"] == 1]
        got = {(int(d["image"]), int(d["rank"])): int(d["parent_match"]) for d in opt}
        if not masks:
            check(f"{name}: parent_match of {len(opt)} optimized detections = numpy's COCO matching",
                  got == {k: int(v == 1) for k, v in flags.items()})
        ic = f["comparison/image_class"][()]
        mine = [(int(r_["image"]), int(r_["class"]), int(r_["optimized"]), int(r_["parent"]), int(r_["matches"]),
                 float(r_["ap"])) for r_ in ic]
        check(f"{name}: {len(rows)} image x class rows (A_c, B_c, matches, AP) = numpy's",
              len(mine) == len(rows) and all(x[:5] == y[:5] and close(x[5], y[5]) for x, y in zip(mine, rows)),
              f"{mine[:3]} vs {rows[:3]}")
        summ = dict(f["summary"].attrs)
        check(f"{name}: mAP vs the parent {summ['map_vs_parent']:.4f} = numpy's {m:.4f}",
              close(summ["map_vs_parent"], m))
        imgs = f["comparison/images"][()]
        check(f"{name}: per image A, B, matches add up",
              int(imgs["n_optimized"].sum()) == summ["optimized_detections"] == len(opt) and
              int(imgs["matches"].sum()) == summ["matches"] == sum(v == 1 for v in flags.values()))
        want = numpy_metrics(dets, ann, cat_to_model, n)
        acc = dict(f["accuracy"].attrs)
        for key in ("voc_map", "voc_map_11pt", "coco_map", "coco_map50", "coco_map75"):
            for who in ("parent", "optimized"):
                k = f"{who}_{key}"
                check(f"{name}: {k} {acc.get(k, np.nan):.4f} = numpy's {want[k]:.4f}", close(acc.get(k, np.nan),
                                                                                           want[k]))
        check(f"{name}: the metrics are neither 0 nor 1", 0.02 < acc["parent_voc_map"] < 0.95 and
              0.01 < acc["parent_coco_map"] < 0.95, f"{acc['parent_voc_map']} {acc['parent_coco_map']}")
        check(f"{name}: objects {acc['objects']} = {want['objects']}", acc["objects"] == want["objects"])
        cls = f["accuracy/classes"][()]
        ok = len(cls) == len(want["parent_class_ap50"])
        for row in cls:
            c = int(row["class"])
            ok = ok and row["name"].decode() == labels[c] and close(row["parent_ap50"], want["parent_class_ap50"][c])
            ok = ok and close(row["optimized_ap"], want["optimized_class_ap"][c])
        check(f"{name}: per class AP ({len(cls)} classes) = numpy's", ok)
        if name == "yoloseg_mnv3":
            check(f"{name}: mask mAP reported", all(f"{w}_coco_segm_map" in acc for w in ("parent", "optimized")) and
                  0 < acc["parent_coco_segm_map"] < 1, str(acc.get("parent_coco_segm_map")))
        f.close()
        # the parent against itself: every detection matches, every metric the same
        selfrep = os.path.join(a.work, f"{name}_self.h5")
        r = run([a.qcal, "evaluate", job, "--optimized", os.path.join(a.models, name, "model.onnx"), "-o", selfrep,
                 "--quiet"])
        if check(f"{name}: evaluate the parent against itself", r.returncode == 0, r.stderr[-300:]):
            with h5py.File(selfrep, "r") as g:
                s_, ac = dict(g["summary"].attrs), dict(g["accuracy"].attrs)
                check(f"{name}: self-comparison: all {s_['parent_detections']} detections match, mAP vs parent 1",
                      s_["matches"] == s_["parent_detections"] == s_["optimized_detections"] > 0 and
                      s_["map_vs_parent"] == 1.0 and s_["identical_images"] == n)
                check(f"{name}: self-comparison: parent and optimized metrics equal",
                      all(ac[k] == ac[k.replace("parent_", "optimized_")] for k in ac if k.startswith("parent_")))
        # qcal visualize: the two panels are the same picture for the self-comparison, not for INT8
        panels = []
        for rep in (selfrep, reps[(0, 1)]):
            png = rep.replace(".h5", ".png")
            r = run([a.qcal, "visualize", rep, "--image", images[0][0], "-o", png])
            if r.returncode == 0:
                pic = np.asarray(Image.open(png).convert("RGB"))
                W, H = images[0][1]
                pw = min(max(W, 320), 560)
                ph = int(round(H * pw / W))
                panels.append((pic[56:56 + ph, 12:12 + pw], pic[56:56 + ph, 24 + pw:24 + 2 * pw]))
        check(f"{name}: visualize: identical panels for the parent against itself, different for INT8",
              len(panels) == 2 and np.array_equal(*panels[0]) and not np.array_equal(*panels[1]) and
              panels[1][0].std() > 10, r.stderr[-300:])
    return check.report("detection evaluation checks")


if __name__ == "__main__":
    raise SystemExit(main())
