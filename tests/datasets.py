#!/usr/bin/python3
"""Datasets and annotations, checked against Python's own reading of the same files:
Pascal VOC (XML + ImageSets, difficult flags, nested part boxes), COCO instances JSON
(boxes, categories by id, polygons, RLE lists and compressed RLE strings drawn as masks),
PNG segmentation masks (palette indices, 1/2/4/8-bit, 255 = ignore), ImageNet label files,
class-per-subfolder trees; subsets (first N, seeded random N) and sharding; and every
bad-annotation case giving one error line naming the file (and line where there is one).

    datasets.py --qcal BUILD/qcal --work DIR
"""
import argparse
import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
from checks import Checks
from PIL import Image

SK = "/usr/lib/python3/dist-packages/skimage/data"
VOC_CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor"]


def rle_encode_string(counts):
    """COCO's compressed RLE string, written from the format's description."""
    out = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1f
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def rle_of_mask(m):
    flat = m.T.reshape(-1)  # column-major
    counts, cur, run = [], 0, 0
    for v in flat:
        if v != cur:
            counts.append(run)
            cur, run = v, 0
        run += 1
    counts.append(run)
    return counts


def mask_of_rle(counts, h, w):
    flat = np.zeros(h * w, np.uint8)
    k = 0
    for i, c in enumerate(counts):
        if i % 2:
            flat[k:k + c] = 1
        k += c
    return flat.reshape(w, h).T


def mask_of_polygons(polys, h, w):
    """Ray casting at every pixel centre (a different algorithm from qcal's scanline fill)."""
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    out = np.zeros((h, w), bool)
    for p in polys:
        pts = np.array(p, float).reshape(-1, 2)
        inside = np.zeros((h, w), bool)
        for i in range(len(pts)):
            (x0, y0), (x1, y1) = pts[i], pts[(i + 1) % len(pts)]
            cross = (y0 <= ys) != (y1 <= ys)
            with np.errstate(divide="ignore", invalid="ignore"):
                xi = x0 + (ys - y0) / (y1 - y0) * (x1 - x0)
            inside ^= cross & (xi > xs)
        out |= inside
    return out.astype(np.uint8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qcal", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    w = os.path.abspath(a.work)
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(w)
    open(f"{w}/none.onnx", "wb").close()  # job files name a model; `qcal dataset` does not read it
    check = Checks()

    def job(name, dataset_yaml):
        p = f"{w}/{name}.yml"
        with open(p, "w") as f:
            f.write("model: none.onnx\ndatasets:\n  validation:\n" +
                    "".join("    " + l + "\n" for l in dataset_yaml.strip().splitlines()))
        return p

    def dataset(jobfile, *args):
        return subprocess.run([a.qcal, "dataset", jobfile] + list(args), capture_output=True, text=True,
                              errors="replace")

    def load(jobfile, *args):
        r = dataset(jobfile, "--json", *args)
        if r.returncode != 0:
            print(r.stderr)
            return None
        return json.loads(r.stdout)

    def expect_error(what, jobfile, needles, status=8):
        r = dataset(jobfile)
        lines = r.stderr.strip().splitlines()
        ok = r.returncode == status and len(lines) == 1 and all(n in lines[0] for n in needles)
        check(f"error: {what}", ok, f"status {r.returncode}, stderr {r.stderr.strip()!r}, wanted {needles}")

    photos = [Image.open(f"{SK}/{n}").convert("RGB") for n in ("astronaut.png", "coffee.png", "chelsea.png")]

    def save_jpeg(path, k, size):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        photos[k % 3].resize(size).save(path, quality=90)

    # ---------------- Pascal VOC ----------------
    voc = f"{w}/VOC"
    ids = [f"2008_{i:06d}" for i in range(7)]
    rng = np.random.default_rng(5)
    expected_voc = {}
    for i, id_ in enumerate(ids):
        save_jpeg(f"{voc}/JPEGImages/{id_}.jpg", i, (64 + 8 * i, 48 + 4 * i))
        root = ET.Element("annotation")
        ET.SubElement(root, "folder").text = "VOC2012"
        if i != 3:  # one file without <filename>: the image is found by its id
            ET.SubElement(root, "filename").text = f"{id_}.jpg"
        size = ET.SubElement(root, "size")
        for k, v in (("width", 64 + 8 * i), ("height", 48 + 4 * i), ("depth", 3)):
            ET.SubElement(size, k).text = str(v)
        objs = []
        for k in range(i % 4):  # image 0 and 4 have no objects
            cls = int(rng.integers(0, 20))
            x0, y0 = int(rng.integers(1, 20)), int(rng.integers(1, 20))
            box = [x0, y0, x0 + int(rng.integers(2, 30)), y0 + int(rng.integers(2, 20))]
            diff = int(k == 1)
            o = ET.SubElement(root, "object")
            ET.SubElement(o, "name").text = f" {VOC_CLASSES[cls]}\n"  # whitespace is trimmed
            ET.SubElement(o, "pose").text = "Unspecified"
            ET.SubElement(o, "truncated").text = "0"
            ET.SubElement(o, "difficult").text = str(diff)
            bb = ET.SubElement(o, "bndbox")
            for name, v in zip(("xmin", "ymin", "xmax", "ymax"), box):
                ET.SubElement(bb, name).text = str(v)
            part = ET.SubElement(o, "part")  # person layout parts have their own bndbox: not objects
            ET.SubElement(part, "name").text = "hand"
            pb = ET.SubElement(part, "bndbox")
            for name in ("xmin", "ymin", "xmax", "ymax"):
                ET.SubElement(pb, name).text = "1"
            objs.append([cls] + box + [diff, 0])
        os.makedirs(f"{voc}/Annotations", exist_ok=True)
        ET.ElementTree(root).write(f"{voc}/Annotations/{id_}.xml")
        expected_voc[id_] = objs
    os.makedirs(f"{voc}/ImageSets/Main")
    val_ids = ids[1:6]
    with open(f"{voc}/ImageSets/Main/val.txt", "w") as f:
        f.write("\n".join(val_ids) + "\n")
    j = job("voc", f"""
source: VOC/JPEGImages
annotations: VOC/Annotations
annotation_format: voc
imageset: VOC/ImageSets/Main/val.txt
""")
    d = load(j)
    check("voc: loads", d is not None)
    if d:
        check("voc: images in imageset order", [os.path.basename(im["path"]) for im in d["images"]] ==
              [f"{i}.jpg" for i in val_ids], str([im["path"] for im in d["images"]]))
        check("voc: the 20 classes by default", d["classes"] == VOC_CLASSES)
        got = {os.path.basename(im["path"])[:-4]: im["objects"] for im in d["images"]}
        check("voc: boxes, classes and difficult flags equal ElementTree's reading",
              got == {i: expected_voc[i] for i in val_ids}, f"{got} vs {expected_voc}")
    # without an imageset: every XML, sorted
    j = job("voc_all", "source: VOC/JPEGImages\nannotations: VOC/Annotations\nannotation_format: voc")
    d = load(j)
    check("voc: without imageset, every annotation in sorted order",
          d is not None and [os.path.basename(im["path"])[:-4] for im in d["images"]] == ids)

    # VOC errors
    def voc_variant(name, xml_text, imageset=None):
        vdir = f"{w}/{name}"
        shutil.copytree(voc, vdir)
        with open(f"{vdir}/Annotations/{ids[2]}.xml", "w") as f:
            f.write(xml_text)
        return job(name, f"source: {name}/JPEGImages\nannotations: {name}/Annotations\nannotation_format: voc")
    good = open(f"{voc}/Annotations/{ids[2]}.xml").read()
    expect_error("voc: malformed XML names file and line",
                 voc_variant("voc_bad1", "<annotation>\n<object>\n<name>cat</name>\n</annotation>\n"),
                 [f"{ids[2]}.xml:4:", "malformed XML"])
    expect_error("voc: class outside the list", voc_variant("voc_bad2", good.replace(
        [c for c in VOC_CLASSES if f">{c}" in good or f" {c}" in good][0], "unicorn", 1)),
                 [f"{ids[2]}.xml:", "class 'unicorn' is not in the class list"])
    expect_error("voc: box coordinate not a number", voc_variant("voc_bad3", good.replace("<xmin>", "<xmin>x", 1)),
                 [f"{ids[2]}.xml:", "is not a number"])
    expect_error("voc: not a VOC file", voc_variant("voc_bad4", "<html></html>"),
                 [f"{ids[2]}.xml:1", "not <annotation>"])
    expect_error("voc: empty annotation file", voc_variant("voc_bad5", ""), [f"{ids[2]}.xml", "malformed XML"])
    j = voc_variant("voc_bad6", good.replace(f"<filename>{ids[2]}.jpg", "<filename>gone.jpg"))
    expect_error("voc: annotation naming a missing image", j, [f"{ids[2]}.xml", "gone.jpg", "does not exist"])
    with open(f"{w}/voc_bad7.txt", "w") as f:
        f.write(f"{ids[0]}\nnope_1\n")
    j = job("voc_bad7", "source: VOC/JPEGImages\nannotations: VOC/Annotations\nannotation_format: voc\n"
            "imageset: voc_bad7.txt")
    expect_error("voc: imageset naming a missing annotation", j, ["voc_bad7.txt:2:", "nope_1.xml"])
    with open(f"{w}/my_classes.txt", "w") as f:
        f.write("cat\ndog\n")
    j = job("voc_bad8", "source: VOC/JPEGImages\nannotations: VOC/Annotations\nannotation_format: voc\n"
            "classes: my_classes.txt")
    expect_error("voc: classes file without a class used", j, ["is not in the class list"])

    # ---------------- COCO ----------------
    coco = f"{w}/coco"
    os.makedirs(f"{coco}/val")
    images, anns, expected_masks = [], [], {}
    cats = [{"id": 18, "name": "dog"}, {"id": 1, "name": "person"}, {"id": 3, "name": "car"}]
    ann_id = 100
    for i in range(5):
        W, H = 40 + 6 * i, 30 + 3 * i
        save_jpeg(f"{coco}/val/{i:012d}.jpg", i, (W, H))
        images.append({"id": 1000 - i, "file_name": f"{i:012d}.jpg", "width": W, "height": H})
    rng = np.random.default_rng(9)
    for k in range(9):
        i = [0, 0, 1, 3, 3, 3, 4, 0, 1][k]  # image 2 has no annotation; annotations out of image order
        W, H = images[i]["width"], images[i]["height"]
        x, y, bw, bh = [round(float(v), 2) for v in (rng.uniform(0, 10), rng.uniform(0, 8), rng.uniform(3, 25),
                                                        rng.uniform(3, 18))]
        a_ = {"id": ann_id, "image_id": images[i]["id"], "category_id": cats[k % 3]["id"], "bbox": [x, y, bw, bh],
              "area": bw * bh, "iscrowd": 0}
        if k % 3 == 0:  # polygons (two parts for some)
            polys = [[x + 0.3, y + 0.2, x + bw - 0.4, y + 1.3, x + bw * 0.6, y + bh - 0.3]]
            if k == 3:
                polys.append([x + 1.1, y + bh * 0.5, x + bw * 0.5, y + bh * 0.6, x + 2.2, y + bh - 0.7,
                              x + 0.6, y + bh * 0.8])
            a_["segmentation"] = polys
            expected_masks[ann_id] = mask_of_polygons(polys, H, W)
        else:  # crowd RLE as a list, or compressed string
            m = np.zeros((H, W), np.uint8)
            m[int(y):int(y + bh), int(x):int(x + bw)] = 1
            m[int(y) + 1:int(y) + 3, int(x) + 1] = 0
            counts = rle_of_mask(m)
            a_["segmentation"] = {"size": [H, W], "counts": counts if k % 3 == 1 else rle_encode_string(counts)}
            a_["iscrowd"] = int(k % 3 == 1)
            expected_masks[ann_id] = m
        anns.append(a_)
        ann_id += 1
    inst = {"info": {}, "licenses": [], "images": images, "annotations": anns, "categories": cats}
    with open(f"{coco}/instances_val.json", "w") as f:
        json.dump(inst, f, indent=1)
    j = job("coco", "source: coco/val\nannotations: coco/instances_val.json\nannotation_format: coco")
    os.makedirs(f"{w}/coco_masks")
    d = load(j, "--draw-masks", f"{w}/coco_masks")
    check("coco: loads", d is not None)
    if d:
        check("coco: images in file order", [os.path.basename(im["path"]) for im in d["images"]] ==
              [im["file_name"] for im in images])
        order = sorted(cats, key=lambda c: c["id"])
        check("coco: classes in category id order", d["classes"] == [c["name"] for c in order] and
              d["class_ids"] == [c["id"] for c in order], f"{d['classes']} {d['class_ids']}")
        cls_of = {c["id"]: k for k, c in enumerate(order)}
        ok_boxes, ok_masks, n_masks = True, True, 0
        for i, im in enumerate(d["images"]):
            want = [a_ for a_ in anns if a_["image_id"] == images[i]["id"]]
            if len(want) != len(im["objects"]):
                ok_boxes = False
                continue
            for k, (a_, o) in enumerate(zip(want, im["objects"])):
                x, y, bw, bh = a_["bbox"]
                box = [np.float32(x), np.float32(y), np.float32(x + bw), np.float32(y + bh)]
                if o[0] != cls_of[a_["category_id"]] or not np.allclose(o[1:5], box, rtol=0, atol=1e-5) or \
                        o[6] != a_["iscrowd"]:
                    ok_boxes = False
                got = np.load(f"{w}/coco_masks/{i}_{k}.npy")
                n_masks += 1
                if not np.array_equal(got, expected_masks[a_["id"]]):
                    ok_masks = False
                    print(f"mask of annotation {a_['id']} differs in {int((got != expected_masks[a_['id']]).sum())} "
                          f"pixels ({'polygon' if isinstance(a_['segmentation'], list) else 'rle'})")
        check("coco: annotations grouped by image in file order, boxes x+w/y+h, crowd flags", ok_boxes)
        check(f"coco: {n_masks} masks (polygons, RLE lists, compressed RLE) equal numpy's", ok_masks and n_masks == 9)

    def coco_variant(name, mutate, text=None):
        doc = json.loads(json.dumps(inst))
        if mutate:
            mutate(doc)
        with open(f"{w}/{name}.json", "w") as f:
            f.write(text if text is not None else json.dumps(doc, indent=1))
        return job(name, f"source: coco/val\nannotations: {name}.json\nannotation_format: coco")
    expect_error("coco: malformed JSON names line and column", coco_variant("coco_bad1", None, '{\n "images": [\n  {"id": 1,]\n'),
                 ["coco_bad1.json:3:", "malformed JSON"])
    expect_error("coco: annotation naming a missing image_id",
                 coco_variant("coco_bad2", lambda d_: d_["annotations"][2].update(image_id=77)),
                 ["coco_bad2.json", "annotation id 102", "image_id 77"])
    expect_error("coco: category outside the categories",
                 coco_variant("coco_bad3", lambda d_: d_["annotations"][0].update(category_id=5)),
                 ["coco_bad3.json", "annotation id 100", "category_id"])
    expect_error("coco: image file missing",
                 coco_variant("coco_bad4", lambda d_: d_["images"][1].update(file_name="missing.jpg")),
                 ["coco_bad4.json", "missing.jpg", "does not exist"])
    expect_error("coco: RLE size not the image's",
                 coco_variant("coco_bad5", lambda d_: d_["annotations"][1]["segmentation"].update(size=[3, 3])),
                 ["coco_bad5.json", "annotation id 101", "RLE 'size'"])
    expect_error("coco: corrupt compressed RLE",
                 coco_variant("coco_bad6", lambda d_: d_["annotations"][2]["segmentation"].update(counts="0~~")),
                 ["coco_bad6.json", "annotation id 102", "RLE"])
    expect_error("coco: bbox with negative width",
                 coco_variant("coco_bad7", lambda d_: d_["annotations"][3].update(bbox=[1, 1, -2, 3])),
                 ["coco_bad7.json", "annotation id 103", "bbox"])
    expect_error("coco: not an instances file", coco_variant("coco_bad8", None, "[1, 2, 3]"),
                 ["coco_bad8.json", "not COCO instances"])
    expect_error("coco: duplicate image id",
                 coco_variant("coco_bad9", lambda d_: d_["images"][1].update(id=1000)),
                 ["coco_bad9.json", "image id 1000 appears twice"])

    # ---------------- PNG segmentation masks ----------------
    seg = f"{w}/seg"
    palette = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [7] * (3 * 252) + [224, 224, 192]
    sizes = [(40, 30), (33, 21), (50, 26), (17, 40)]
    seg_ids = [f"img_{i}" for i in range(4)]
    for i, (id_, (W, H)) in enumerate(zip(seg_ids, sizes)):
        save_jpeg(f"{seg}/JPEGImages/{id_}.jpg", i, (W, H))
        m = (np.arange(W * H).reshape(H, W) * (i + 3) // 7 % 5).astype(np.uint8)
        m[0, :] = 255  # VOC's "ignore" border
        os.makedirs(f"{seg}/SegmentationClass", exist_ok=True)
        p = f"{seg}/SegmentationClass/{id_}.png"
        if i == 0:
            pm = Image.fromarray(m, "P")
            pm.putpalette(palette)
            pm.save(p)  # 8-bit palette, like VOC's SegmentationClass
        elif i == 1:
            Image.fromarray(m, "L").save(p)  # 8-bit gray
        elif i == 2:
            m = m % 4
            pm = Image.fromarray(m, "P")
            pm.putpalette(palette[:12])
            pm.save(p, bits=2)  # 2-bit palette
        else:
            m = m % 16
            pm = Image.fromarray(m, "P")
            pm.putpalette(palette[:48])
            pm.save(p, bits=4)
    with open(f"{seg}/val.txt", "w") as f:
        f.write("\n".join(seg_ids) + "\n")
    j = job("seg", "source: seg/JPEGImages\nannotation_format: masks\nmasks: seg/SegmentationClass\n"
            "imageset: seg/val.txt")
    os.makedirs(f"{w}/seg_out")
    d = load(j, "--draw-masks", f"{w}/seg_out")
    check("masks: loads", d is not None)
    if d:
        ok = True
        for i, id_ in enumerate(seg_ids):
            want = np.array(Image.open(f"{seg}/SegmentationClass/{id_}.png"))  # raw indices for P and L modes
            got = np.load(f"{w}/seg_out/{i}.npy")
            if not np.array_equal(got, want):
                ok = False
                print(f"mask {id_}: shape {got.shape} vs {want.shape}, {int((got != want).sum())} pixels differ")
        check("masks: palette indices (8, 4, 2-bit) and gray values equal PIL's, 255 kept", ok)
    j2 = job("seg_noset", "source: seg/JPEGImages\nannotation_format: masks\nmasks: seg/SegmentationClass")
    d2 = load(j2)
    check("masks: without imageset, masks by image stem",
          d2 is not None and [os.path.basename(im["mask"]) for im in d2["images"]] == [f"{i}.png" for i in seg_ids])
    bad_masks = {
        "not an RGB image": lambda p: Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(p),
        "16-bit": lambda p: Image.fromarray(np.zeros((30, 40), np.uint16) + 300).save(p),
        "corrupt or truncated PNG": lambda p: open(p, "r+b").truncate(60),
        "not a PNG": lambda p: open(p, "wb").write(b"GIF89a" + bytes(40)),
    }
    for k, (needle, spoil) in enumerate(bad_masks.items()):
        shutil.copytree(seg, f"{w}/seg_bad{k}")
        spoil(f"{w}/seg_bad{k}/SegmentationClass/img_0.png")
        r = dataset(job(f"seg_bad{k}", f"source: seg/JPEGImages\nannotation_format: masks\n"
                        f"masks: seg_bad{k}/SegmentationClass\nimageset: seg/val.txt"), "--draw-masks", f"{w}/seg_out")
        line = r.stderr.strip()
        check(f"error: mask {needle}", r.returncode == 8 and f"seg_bad{k}/SegmentationClass/img_0.png" in line and
              needle in line and len(line.splitlines()) == 1, line)
    os.remove(f"{w}/seg_bad0/SegmentationClass/img_3.png")
    expect_error("masks: image without a mask", job("seg_bad", "source: seg/JPEGImages\nannotation_format: masks\n"
                 "masks: seg_bad0/SegmentationClass\nimageset: seg/val.txt"), ["seg/val.txt:4:", "no mask"])

    # ---------------- ImageNet labels and class subfolders ----------------
    inet = f"{w}/inet"
    os.makedirs(f"{inet}/val")
    labels = []
    for i in range(6):
        save_jpeg(f"{inet}/val/ILSVRC2012_val_{i + 1:08d}.JPEG", i, (32, 32))
        labels.append((f"ILSVRC2012_val_{i + 1:08d}.JPEG", (i * 7) % 5))
    with open(f"{inet}/val.txt", "w") as f:
        f.write("".join(f"{n} {l}\n" for n, l in labels))
    with open(f"{inet}/classes.txt", "w") as f:
        f.write("tench\ngoldfish\nshark\ntiger shark\nhammerhead\n")
    j = job("inet", "source: inet/val\nannotations: inet/val.txt\nannotation_format: imagenet\n"
            "classes: inet/classes.txt")
    d = load(j)
    check("imagenet: labels from the annotations file", d is not None and
          [(os.path.basename(im["path"]), im["label"]) for im in d["images"]] == labels and
          d["classes"][3] == "tiger shark")
    with open(f"{inet}/val_bad.txt", "w") as f:
        f.write("".join(f"{n} {l}\n" for n, l in labels[:3]) + f"{labels[3][0]} 9\n")
    expect_error("imagenet: label outside the class list",
                 job("inet_bad1", "source: inet/val\nannotations: inet/val_bad.txt\nannotation_format: imagenet\n"
                     "classes: inet/classes.txt"), ["inet/val_bad.txt", labels[3][0], "label 9", "5 classes"])
    with open(f"{inet}/val_bad2.txt", "w") as f:
        f.write(f"{labels[0][0]} 1\nILSVRC2012_val_00000099.JPEG 2\n")
    expect_error("imagenet: annotation naming a missing image",
                 job("inet_bad2", "source: inet/val\nannotations: inet/val_bad2.txt\nannotation_format: imagenet"),
                 ["val_bad2.txt:2:", "00000099.JPEG", "does not exist"])
    with open(f"{inet}/val_bad3.txt", "w") as f:
        f.write(f"{labels[0][0]} 1\n{labels[1][0]} one\n")
    expect_error("imagenet: malformed label line",
                 job("inet_bad3", "source: inet/val\nannotations: inet/val_bad3.txt\nannotation_format: imagenet"),
                 ["val_bad3.txt:2:", "file label"])
    expect_error("imagenet: missing annotation file",
                 job("inet_bad4", "source: inet/val\nannotations: inet/nothing.txt\nannotation_format: imagenet"),
                 ["inet/nothing.txt"], status=3)
    tree = f"{w}/tree"
    for k, cls in enumerate(["n02_zebra", "n01_tench", "n03_ant"]):
        for i in range(k + 1):
            save_jpeg(f"{tree}/{cls}/sub/{i}.jpg" if i == 2 else f"{tree}/{cls}/{i}.jpg", i, (24, 24))
    d = load(job("tree", "source: tree\nannotation_format: subfolders"))
    check("subfolders: classes are the sorted subfolders, labels by folder, recursive",
          d is not None and d["classes"] == ["n01_tench", "n02_zebra", "n03_ant"] and
          [(os.path.relpath(im["path"], tree), im["label"]) for im in d["images"]] ==
          [("n01_tench/0.jpg", 0), ("n01_tench/1.jpg", 0), ("n02_zebra/0.jpg", 1), ("n03_ant/0.jpg", 2),
           ("n03_ant/1.jpg", 2), ("n03_ant/sub/2.jpg", 2)], str(d and d["images"]))
    with open(f"{w}/tree_classes.txt", "w") as f:
        f.write("n03_ant\nn02_zebra\n")
    expect_error("subfolders: subfolder outside the class list",
                 job("tree_bad", "source: tree\nannotation_format: subfolders\nclasses: tree_classes.txt"),
                 ["subfolder 'n01_tench' is not in the class list"])

    # ---------------- subsets and sharding ----------------
    full = load(job("tree_all", "source: tree\nannotation_format: subfolders"))
    first = load(job("tree_first", "source: tree\nannotation_format: subfolders\nsubset: 4"))
    check("subset: first N", first is not None and first["images"] == full["images"][:4])
    rnd = [load(job(f"tree_rnd{s}", f"source: tree\nannotation_format: subfolders\nsubset: 3\n"
                    f"subset_random: true\nseed: {s}")) for s in (1, 1, 2, 3, 4)]
    idx = [[im["index"] for im in r_["images"]] for r_ in rnd]
    check("subset: seeded random N is the same on every run, sorted, distinct", idx[0] == idx[1] and
          all(len(x) == 3 and x == sorted(set(x)) and all(0 <= v < 6 for v in x) for x in idx), str(idx))
    check("subset: different seeds draw different subsets", len({tuple(x) for x in idx[1:]}) > 1, str(idx))
    check("subset: images keep their annotations", all(
        full["images"][im["index"]] == dict(im) for r_ in rnd for im in r_["images"]))
    ok = True
    for n in (1, 2, 3, 4, 7):
        parts = [load(job("tree_all", "source: tree\nannotation_format: subfolders"), "--shard", f"{r_}/{n}")
                 for r_ in range(n)]
        joined = [im for p in parts for im in p["images"]]
        sizes_ = [len(p["images"]) for p in parts]
        ok &= joined == full["images"] and max(sizes_) - min(sizes_) <= 1
    check("sharding: slices in rank order rebuild the dataset for 1-7 ranks, sizes within one", ok)
    # COCO subsets carry their objects along
    sub = load(job("coco_sub", "source: coco/val\nannotations: coco/instances_val.json\nannotation_format: coco\n"
                   "subset: 2\nsubset_random: true\nseed: 7"))
    fullc = load(job("coco", "source: coco/val\nannotations: coco/instances_val.json\nannotation_format: coco"))
    check("subset: COCO objects follow their images", sub is not None and
          all(im == fullc["images"][im["index"]] for im in sub["images"]))

    # ---------------- job-file checks on dataset keys ----------------
    def expect_job_error(what, text, needle):
        p = f"{w}/jobbad.yml"
        with open(p, "w") as f:
            f.write(text)
        r = dataset(p)
        check(f"job error: {what}", r.returncode == 9 and needle in r.stderr and "jobbad.yml:" in r.stderr,
              r.stderr.strip())
    expect_job_error("voc without annotations", "model: none.onnx\ndatasets:\n  validation:\n    source: x\n"
                     "    annotation_format: voc\n", "needs 'annotations'")
    expect_job_error("masks key with another format", "model: none.onnx\ndatasets:\n  validation:\n    source: x\n"
                     "    masks: m/\n", "'masks' is used with annotation_format masks")
    expect_job_error("unknown format", "model: none.onnx\ndatasets:\n  validation:\n    source: x\n"
                     "    annotation_format: kitti\n", "annotation_format")

    return check.report("dataset checks")


if __name__ == "__main__":
    raise SystemExit(main())
