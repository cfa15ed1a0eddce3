#!/usr/bin/python3
"""Bad input gets one clear error line, a documented non-zero exit status, no crash and no
partial output (run under ASan/UBSan too: a sanitizer report fails the case).

    bad_inputs.py --qcal BUILD/qcal --work DIR --model GOOD.onnx
"""
import argparse
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

EXIT = {"arg": 2, "io": 3, "model": 4, "unsupported": 5, "data": 8}


def tiny_model(path, nodes, inits, opset=13, inputs=(("X", [1, 2, 4, 4]),)):
    g = helper.make_graph(nodes, "bad", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 7
    onnx.save(m, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qcal", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--model", required=True)
    a = ap.parse_args()
    w = a.work
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(os.path.join(w, "m"))
    good = open(a.model, "rb").read()
    open(f"{w}/truncated.onnx", "wb").write(good[: len(good) // 2])
    open(f"{w}/random.onnx", "wb").write(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    open(f"{w}/empty.onnx", "wb").close()
    wt = numpy_helper.from_array(np.ones((3, 2, 3, 3), np.float32), "W")
    tiny_model(f"{w}/missing_init.onnx", [helper.make_node("Conv", ["X", "W", "B"], ["Y"], name="conv_7")], [wt])
    tiny_model(f"{w}/unsupported.onnx", [helper.make_node("NonZero", ["X"], ["Y"], name="nz_1")], [])
    tiny_model(f"{w}/custom_domain.onnx", [helper.make_node("Foo", ["X"], ["Y"], name="foo_1", domain="com.acme")], [])
    tiny_model(f"{w}/old_opset.onnx", [helper.make_node("Relu", ["X"], ["Y"])], [], opset=6)
    tiny_model(f"{w}/bad_weight.onnx", [helper.make_node("Conv", ["X", "W"], ["Y"], name="conv_3")],
               [numpy_helper.from_array(np.ones((3, 2, 3), np.float32), "W")])
    tiny_model(f"{w}/cycle.onnx", [helper.make_node("Relu", ["X2"], ["X1"], name="r1"),
                                   helper.make_node("Relu", ["X1"], ["X2"], name="r2"),
                                   helper.make_node("Add", ["X", "X2"], ["Y"], name="a")], [])
    tiny_model(f"{w}/dynamic.onnx", [helper.make_node("Relu", ["X"], ["Y"])], [], inputs=(("X", ["N", 3, "H", "W"]),))
    tiny_model(f"{w}/huge_resize.onnx", [helper.make_node("Resize", ["X", "", "", "sizes"], ["Y"], name="big")],
               [numpy_helper.from_array(np.array([1, 2, 1 << 31, 1 << 31], np.int64), "sizes")])
    for name, loc in [("escape", "../secret.bin"), ("absolute", "/etc/passwd")]:
        t = numpy_helper.from_array(np.ones((3, 2, 3, 3), np.float32), "W")
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        for k, v in [("location", loc), ("offset", "0"), ("length", "216")]:
            e = t.external_data.add()
            e.key, e.value = k, v
        tiny_model(f"{w}/m/{name}.onnx", [helper.make_node("Conv", ["X", "W"], ["Y"], name="conv_e")], [t])
    open(f"{w}/secret.bin", "wb").write(b"\0" * 216)
    np.save(f"{w}/x_wrong.npy", np.zeros((1, 3, 16, 19), np.float32))
    np.save(f"{w}/x_ok.npy", np.zeros((1, 3, 17, 19), np.float32))
    open(f"{w}/corrupt.npy", "wb").write(b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'")
    os.makedirs(f"{w}/readonly", exist_ok=True)

    cases = [
        # name, args, expected exit, substrings the one error line must hold
        ("missing file", [f"{w}/nope.onnx"], "io", ["nope.onnx", "cannot open"]),
        ("truncated model", [f"{w}/truncated.onnx"], "model", ["truncated.onnx", "not a valid ONNX model"]),
        ("random bytes", [f"{w}/random.onnx"], "model", ["random.onnx"]),
        ("empty file", [f"{w}/empty.onnx"], "model", ["empty.onnx", "empty"]),
        ("missing initializer", [f"{w}/missing_init.onnx"], "model", ["conv_7", "'B'"]),
        ("unsupported op", [f"{w}/unsupported.onnx"], "unsupported", ["nz_1", "NonZero", "opset 13"]),
        ("custom domain", [f"{w}/custom_domain.onnx"], "unsupported", ["foo_1", "com.acme::Foo"]),
        ("old opset", [f"{w}/old_opset.onnx"], "unsupported", ["opset 6"]),
        ("weight rank", [f"{w}/bad_weight.onnx"], "model", ["conv_3", "weight has 3 dims"]),
        ("cycle", [f"{w}/cycle.onnx"], "model", ["cycle"]),
        ("output too large", [f"{w}/huge_resize.onnx"], "model", ["'big'", "too large"]),
        ("input too large", [f"{w}/dynamic.onnx", "--input-shape", "1x3x9000000000x9000000000"], "arg",
         ["'X'", "too large"]),
        ("dynamic dims unbound", [f"{w}/dynamic.onnx"], "arg", ["dynamic dim 0 (N)", "--input-shape"]),
        ("external data escapes", [f"{w}/m/escape.onnx"], "model", ["escape.onnx", "escapes the model's folder"]),
        ("external data absolute", [f"{w}/m/absolute.onnx"], "model", ["absolute.onnx", "absolute"]),
        ("wrong input rank", [a.model, "--input-shape", "1x3x17"], "arg", ["has 4 dims", "1x3x17"]),
        ("wrong input dims", [a.model, "--input-shape", "1x4x17x19"], "arg", ["differs in dim 1"]),
        ("corrupt .npy input", [a.model, "--raw-input", f"{w}/corrupt.npy"], "data", ["corrupt.npy"]),
        ("raw input of wrong shape", [a.model, "--input-shape", "1x3x17x19", "--raw-input", f"{w}/x_wrong.npy"],
         "arg", ["1x3x17x19", "1x3x16x19"]),
        ("unknown kernels", [a.model, "--kernels", "gpu"], "arg", ["--kernels 'gpu'"]),
        ("unknown option", [a.model, "--frobnicate"], "arg", ["--frobnicate"]),
        ("image argument before the data module", [a.model, "cat.jpg"], "arg", ["--raw-input"]),
        ("no model", [], "arg", ["MODEL.onnx is missing"]),
        ("unwritable output", [a.model, "--raw-input", f"{w}/x_ok.npy", "--output", f"{w}/nodir/y.npy"], "io",
         ["nodir/y.npy", "cannot create"]),
    ]
    failed = 0
    for name, args, want, needles in cases:
        r = subprocess.run([a.qcal, "infer"] + args, capture_output=True, text=True)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        problems = []
        if r.returncode != EXIT[want]:
            problems.append(f"exit {r.returncode}, expected {EXIT[want]}")
        if len(lines) != 1 or not lines[0].startswith("qcal: error: "):
            problems.append(f"expected one 'qcal: error:' line, got {lines}")
        for n in needles:
            if n not in r.stderr:
                problems.append(f"message lacks {n!r}")
        if "Sanitizer" in r.stderr or "runtime error" in r.stderr:
            problems.append("sanitizer report")
        print(f"{name}: {'ok' if not problems else 'FAIL ' + '; '.join(problems)}  [{lines[0] if lines else ''}]")
        failed += bool(problems)
    # the positive twin of the external-data cases: a file inside the folder loads and runs
    t = numpy_helper.from_array(np.full((3, 2, 3, 3), 0.5, np.float32), "W")
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in [("location", "weights.bin"), ("offset", "16"), ("length", "216")]:
        e = t.external_data.add()
        e.key, e.value = k, v
    open(f"{w}/m/weights.bin", "wb").write(b"\0" * 16 + np.full(54, 0.5, np.float32).tobytes())
    tiny_model(f"{w}/m/inside.onnx", [helper.make_node("Conv", ["X", "W"], ["Y"], name="conv_i")], [t])
    np.save(f"{w}/ones.npy", np.ones((1, 2, 4, 4), np.float32))
    r = subprocess.run([a.qcal, "infer", f"{w}/m/inside.onnx", "--raw-input", f"{w}/ones.npy", "--output",
                        f"{w}/inside_y.npy"], capture_output=True, text=True)
    y = np.load(f"{w}/inside_y.npy") if r.returncode == 0 else None
    ok = y is not None and y.shape == (1, 3, 2, 2) and np.allclose(y, 9.0)  # 2 channels x 9 taps x 0.5
    print(f"external data inside the folder: {'ok' if ok else 'FAIL ' + r.stderr}")
    failed += not ok
    cases.append(None)
    # nodes not in topological order (a Constant defined after its consumer) still load
    c = np.arange(16, dtype=np.float32).reshape(1, 2, 2, 4) / 8.0
    tiny_model(f"{w}/unsorted.onnx", [helper.make_node("Add", ["r", "C"], ["Y"], name="add"),
                                      helper.make_node("Relu", ["X"], ["r"], name="relu"),
                                      helper.make_node("Constant", [], ["C"], value=numpy_helper.from_array(c))],
               [], inputs=(("X", [1, 2, 2, 4]),))
    x = np.linspace(-1, 1, 16, dtype=np.float32).reshape(1, 2, 2, 4)
    np.save(f"{w}/unsorted_x.npy", x)
    r = subprocess.run([a.qcal, "infer", f"{w}/unsorted.onnx", "--raw-input", f"{w}/unsorted_x.npy", "--output",
                        f"{w}/unsorted_y.npy"], capture_output=True, text=True)
    ok = r.returncode == 0 and np.allclose(np.load(f"{w}/unsorted_y.npy"), np.maximum(x, 0) + c)
    print(f"unsorted nodes: {'ok' if ok else 'FAIL ' + r.stderr}")
    failed += not ok
    cases.append(None)
    # mutated models: random byte flips and truncations of a valid model never crash qcal
    rng = np.random.default_rng(2026)
    crashes = []
    models = [a.model, os.path.join(os.path.dirname(os.path.dirname(a.model)), "nhwc_residual_se", "model.onnx")]
    for i in range(150):
        src = open(models[i % len(models)], "rb").read()
        b = bytearray(src)
        for _ in range(int(rng.integers(1, 8))):
            b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
        if i % 5 == 0:
            b = b[: int(rng.integers(1, len(b)))]
        path = f"{w}/mutant.onnx"
        open(path, "wb").write(bytes(b))
        r = subprocess.run([a.qcal, "infer", path], capture_output=True, text=True, errors="replace", timeout=60)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        bad = r.returncode not in (0, 2, 3, 4, 5, 6, 8) or "Sanitizer" in r.stderr or "runtime error" in r.stderr \
            or (r.returncode != 0 and len(lines) != 1)
        if bad:
            crashes.append((i, r.returncode, r.stderr[-300:]))
            open(f"{w}/mutant_{i}.onnx", "wb").write(bytes(b))
    print(f"150 mutated models: {'ok' if not crashes else 'FAIL ' + repr(crashes[:3])}")
    failed += bool(crashes)
    cases.append(None)
    if os.listdir(f"{w}/readonly") or any(f.startswith("y.npy") for f in os.listdir(w)):
        print("partial output files left behind: FAIL")
        failed += 1
    print(f"{len(cases) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
