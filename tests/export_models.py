#!/usr/bin/python3
"""Exports standard CNN architectures to ONNX with Debian's python3-torch/torchvision
(weights=None: seeded random weights, nothing is downloaded), plus one seeded real input.

    export_models.py OUTDIR [NAME...]   NAME in mobilenet_v2, mobilenet_v2_opset9,
                                        mobilenet_v3_opset17, resnet50, deeplabv3_mnv3

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
}


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
        with torch.no_grad():
            torch.onnx.export(model, x, tmp, opset_version=opset, input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
        np.save(os.path.join(d, "input_0.npy"), x.numpy())
        os.replace(tmp, path)
        print(f"export_models: {name} -> {path}")


if __name__ == "__main__":
    main()
