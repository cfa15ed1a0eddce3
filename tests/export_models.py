#!/usr/bin/python3
"""Exports standard CNN architectures to ONNX with Debian's python3-torch/torchvision
(weights=None: seeded random weights, nothing is downloaded), plus one seeded real input.

    export_models.py OUTDIR [NAME...]   NAME in mobilenet_v2, mobilenet_v2_opset9,
                                        mobilenet_v3_opset17, resnet50, deeplabv3_mnv3,
                                        ssdlite_mnv3, yoloseg_mnv3, yolo_mnv3

Each lands as OUTDIR/NAME/model.onnx and OUTDIR/NAME/input_0.npy. Existing exports are
kept (the export is slow and deterministic).
"""
import os
import sys
import warnings

import numpy as np
import torch
import torchvision

warnings.filterwarnings("ignore")

MODELS = {
    "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(weights=None), (1, 3, 224, 224)),
    # the same architecture through the oldest and newest opsets qcal reads
    "mobilenet_v2_opset9": (lambda: torchvision.models.mobilenet_v2(weights=None), (1, 3, 224, 224), 9),
    "mobilenet_v3_opset17": (lambda: torchvision.models.mobilenet_v3_small(weights=None), (1, 3, 224, 224), 17),
    "resnet50": (lambda: torchvision.models.resnet50(weights=None), (1, 3, 224, 224)),
    "deeplabv3_mnv3": (lambda: torchvision.models.segmentation.deeplabv3_mobilenet_v3_large(
        weights=None, weights_backbone=None, aux_loss=False), (1, 3, 512, 512)),
    # detection and instance segmentation: outputs before NMS (qcal's adapters do it)
    "ssdlite_mnv3": (lambda: SSDDecoded(torchvision.models.detection.ssdlite320_mobilenet_v3_large(
        weights=None, weights_backbone=None)), (1, 3, 320, 320), 13, ["boxes", "scores"]),
    "yoloseg_mnv3": (lambda: YoloSeg(), (1, 3, 320, 320), 13, ["output0", "output1"]),
    "yolo_mnv3": (lambda: YoloSeg(nm=0), (1, 3, 320, 320), 13, ["output0"]),
}


class SSDDecoded(torch.nn.Module):
    """torchvision's SSDlite320-MobileNetV3 up to its box decoding: boxes [1, A, 4] (x0, y0, x1,
    y1 normalized to the input) and class probabilities [1, A, 91] (0 = background), i.e.
    everything but NMS, the way SSD exports usually end."""

    def __init__(self, m):
        super().__init__()
        self.backbone, self.head = m.backbone, m.head
        x = torch.zeros(1, 3, 320, 320)
        m.eval()
        with torch.no_grad():
            feats = list(m.backbone(x).values())
            from torchvision.models.detection.image_list import ImageList
            a = m.anchor_generator(ImageList(x, [(320, 320)]), feats)[0]  # [A, 4] xyxy pixels
        self.register_buffer("prior_c", ((a[:, :2] + a[:, 2:]) / 2).unsqueeze(0))
        self.register_buffer("prior_s", (a[:, 2:] - a[:, :2]).unsqueeze(0))
        self.w = m.box_coder.weights  # (10, 10, 5, 5)

    def forward(self, x):
        out = self.head(list(self.backbone(x).values()))
        d, logits = out["bbox_regression"], out["cls_logits"]
        c = d[..., :2] / torch.tensor(self.w[:2]) * self.prior_s + self.prior_c
        s = torch.exp(d[..., 2:] / torch.tensor(self.w[2:])) * self.prior_s
        boxes = torch.cat([c - s / 2, c + s / 2], dim=-1) / 320.0
        return boxes, torch.softmax(logits, dim=-1)


class YoloSeg(torch.nn.Module):
    """A YOLOv8-seg-style instance segmentation head on MobileNetV3-Large (stride 16):
    output0 [1, 4 + 80 + 32, N] (box centre/size in input pixels, class scores, mask
    coefficients), output1 [1, 32, 40, 40] mask prototypes."""

    def __init__(self, nc=80, nm=32):
        super().__init__()
        self.features = torchvision.models.mobilenet_v3_large(weights=None).features[:13]  # 112 ch, stride 16
        self.pred = torch.nn.Conv2d(112, 4 + nc + nm, 1)
        self.proto = torch.nn.Sequential(torch.nn.Conv2d(112, 64, 3, padding=1), torch.nn.ReLU(),
                                         torch.nn.Upsample(scale_factor=2, mode="nearest"),
                                         torch.nn.Conv2d(64, nm, 1)) if nm else None
        gy, gx = torch.meshgrid(torch.arange(20.0), torch.arange(20.0), indexing="ij")
        self.register_buffer("grid", torch.stack([gx, gy]).reshape(1, 2, 400))
        self.nc = nc

    def forward(self, x):
        f = self.features(x)
        p = self.pred(f).flatten(2)  # [1, 4 + nc + nm, 400]
        xy = (torch.sigmoid(p[:, :2]) * 2 - 0.5 + self.grid) * 16
        wh = torch.sigmoid(p[:, 2:4]) * 2
        wh = wh * wh * 48
        cls = torch.sigmoid(p[:, 4:4 + self.nc])
        if self.proto is None:  # YOLOv8 detection: [1, 4 + nc, N]
            return torch.cat([xy, wh, cls], dim=1)
        return torch.cat([xy, wh, cls, p[:, 4 + self.nc:]], dim=1), self.proto(f)


class OutOnly(torch.nn.Module):
    """Segmentation models return a dict; export its 'out' tensor."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        y = self.m(x)
        return y["out"] if isinstance(y, dict) else y


def fix_bn_stats(model, seed):
    # Random-init BN has mean 0 / var 1; give it realistic statistics so folding is exercised.
    g = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            c = mod.num_features
            mod.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
            mod.running_var.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
            mod.weight.data.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
            mod.bias.data.copy_(torch.randn(c, generator=g) * 0.1)


def main():
    out = sys.argv[1]
    names = sys.argv[2:] or list(MODELS)
    for name in names:
        d = os.path.join(out, name)
        path = os.path.join(d, "model.onnx")
        if os.path.exists(path):
            continue
        os.makedirs(d, exist_ok=True)
        torch.manual_seed(0)
        build, shape = MODELS[name][:2]
        opset = MODELS[name][2] if len(MODELS[name]) > 2 else 13
        model = build()
        fix_bn_stats(model, 1)
        model = OutOnly(model).eval()
        x = torch.from_numpy(np.random.default_rng(7).random(shape, dtype=np.float32) * 2 - 1)
        tmp = path + ".tmp"
        outs = MODELS[name][3] if len(MODELS[name]) > 3 else ["output"]
        with torch.no_grad():
            torch.onnx.export(model, x, tmp, opset_version=opset, input_names=["input"], output_names=outs,
                              dynamic_axes=None if outs != ["output"] else {"input": {0: "batch"}, "output": {0: "batch"}})
        np.save(os.path.join(d, "input_0.npy"), x.numpy())
        os.replace(tmp, path)
        print(f"export_models: {name} -> {path}")


if __name__ == "__main__":
    main()
