#!/usr/bin/python3
"""Real-image inputs for the trained PP-OCR models, preprocessed as PaddleOCR does
(det: ImageNet mean/std, sides multiple of 32; cls/rec: height 48, (x/255-0.5)/0.5, right
padding). The photo is scikit-image's page.png (a camera shot of a printed page).

    real_inputs.py OUTDIR ASSETS   -> OUTDIR/ppocr_{det,cls,cls_rot,rec}/{model.onnx,input_0.npy}
"""
import os
import sys

import numpy as np
from PIL import Image

PAGE = "/usr/lib/python3/dist-packages/skimage/data/page.png"


def line_input(img, width):
    w, h = img.size
    nw = min(width, int(np.ceil(48 * w / h)))
    r = np.asarray(img.resize((nw, 48), Image.BILINEAR), np.float32) / 255.0
    x = np.zeros((1, 3, 48, width), np.float32)
    x[0, :, :, :nw] = ((r - 0.5) / 0.5).transpose(2, 0, 1)
    return x


def det_input(img):
    w, h = img.size
    nw, nh = (w + 31) // 32 * 32, (h + 31) // 32 * 32
    d = np.asarray(img.resize((nw, nh), Image.BILINEAR), np.float32) / 255.0
    d = (d - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    return d.transpose(2, 0, 1)[None].astype(np.float32)


def main():
    out, assets = sys.argv[1], sys.argv[2]
    page = Image.open(PAGE).convert("RGB")
    title = page.crop((0, 0, 300, 40))          # "Region-based segmentation"
    cases = {
        "ppocr_det": ("ch_PP-OCRv4_det_infer.onnx", det_input(page)),
        "ppocr_cls": ("ch_ppocr_mobile_v2.0_cls_infer.onnx", line_input(title, 192)),
        "ppocr_cls_rot": ("ch_ppocr_mobile_v2.0_cls_infer.onnx", line_input(title.rotate(180), 192)),
        "ppocr_rec": ("ch_PP-OCRv4_rec_infer.onnx", line_input(title, 320)),
    }
    for name, (model, x) in cases.items():
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        link = os.path.join(d, "model.onnx")
        if os.path.lexists(link) and not os.path.exists(link):
            os.unlink(link)  # a dangling link from an older checkout
        if not os.path.lexists(link):
            os.symlink(os.path.abspath(os.path.join(assets, model)), link)
        np.save(os.path.join(d, "input_0.npy"), x)


if __name__ == "__main__":
    main()
