#!/usr/bin/env python3
"""qcal bench end to end: MobileNetV2 (FP32) and its INT8 QDQ model written by qcal
calibrate, PP-OCR cls through its job file.

- --json: every latency statistic is there and consistent (min <= median <= p90 <= p99 <=
  max, min <= mean <= max, runs as asked), throughput = runs x batch / seconds, the
  speed-up is the ratio of the medians and of the FPS;
- --batch 2 runs a batch of two; --time bounds the throughput time; --per-layer prints
  one timed row per plan step;
- under mpirun -np 2 on one machine one rank benchmarks the node (one row);
- bad input: a missing model, a dynamic input without --input-shape, a bad option: one
  line, documented exit status.
"""
import json
import os
import subprocess
import sys

from calibrate_e2e import MPI_ENV, make_images, write_job
from checks import Checks, e2e_args


def bench(qcal, *args, ranks=0):
    cmd = [qcal, "bench", *args]
    if ranks:
        cmd = ["mpirun", "--oversubscribe", "-np", str(ranks), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=MPI_ENV, timeout=600)


def consistent(lat, runs):
    keys = ("median", "mean", "std", "min", "max", "p90", "p99", "outliers", "runs")
    return all(k in lat for k in keys) and lat["runs"] == runs and 0 < lat["min"] <= lat["median"] <= lat["p90"] \
        <= lat["p99"] <= lat["max"] and lat["min"] <= lat["mean"] <= lat["max"] and lat["std"] >= 0 and \
        0 <= lat["outliers"] < runs


def main():
    a = e2e_args()
    check = Checks()
    fp32 = os.path.join(a.models, "mobilenet_v2", "model.onnx")
    sets = make_images(a.work)
    job = write_job(a.work, a.jobs, "mobilenet_v2", fp32, sets["photos_cal"])
    out = os.path.join(a.work, "int8")
    r = subprocess.run([a.qcal, "calibrate", job, "-o", out, "--subset", "4", "--quiet"], capture_output=True, text=True)
    if not check("calibrate MobileNetV2 (4 images)", r.returncode == 0, r.stderr[-300:]):
        return check.report("bench checks")
    int8 = os.path.join(out, "model.int8.onnx")

    r = bench(a.qcal, fp32, "--int8", int8, "--iterations", "25", "--json", "--threads", "2", "--streams", "2")
    ok = r.returncode == 0
    j = json.loads(r.stdout) if ok else {}
    check("fp32 + int8, 25 runs, --json: exit 0", ok, r.stderr[-300:])
    if ok:
        node = j["nodes"][0]
        ps = {p["precision"]: p for p in node["precisions"]}
        check("both precisions with their paths", set(ps) == {"fp32", "int8"} and ps["fp32"]["path"] == fp32 and
              ps["int8"]["path"] == int8, str(list(ps)))
        for name, p in ps.items():
            check(f"{name}: latency statistics consistent, 25 runs", consistent(p["latency_ms"], 25),
                  str(p["latency_ms"]))
            check(f"{name}: throughput = runs x batch / seconds (25 runs)", p["throughput_runs"] == 25 and
                  abs(p["throughput_fps"] - 25 / p["throughput_seconds"]) <= 1e-5 * p["throughput_fps"], str(p))
        sp = node["speedup"]
        check("speed-up = fp32 median / int8 median and int8 FPS / fp32 FPS",
              abs(sp["latency"] - ps["fp32"]["latency_ms"]["median"] / ps["int8"]["latency_ms"]["median"]) < 1e-4 and
              abs(sp["throughput"] - ps["int8"]["throughput_fps"] / ps["fp32"]["throughput_fps"]) < 1e-4, str(sp))
        check("threads and streams as asked", j["threads"] == 2 and j["streams"] == 2 and j["batch"] == 1, str(j))

    r = bench(a.qcal, fp32, "--batch", "2", "--iterations", "6", "--json", "--mode", "throughput")
    if check("--batch 2 --mode throughput: exit 0", r.returncode == 0, r.stderr[-300:]):
        p = json.loads(r.stdout)["nodes"][0]["precisions"][0]
        check("--batch 2: FPS counts two images per run, no latency in throughput mode",
              "latency_ms" not in p and abs(p["throughput_fps"] - 2 * p["throughput_runs"] / p["throughput_seconds"])
              <= 1e-5 * p["throughput_fps"], str(p))

    r = bench(a.qcal, fp32, "--time", "0.5", "--json", "--streams", "2")
    if check("--time 0.5: exit 0", r.returncode == 0, r.stderr[-300:]):
        p = json.loads(r.stdout)["nodes"][0]["precisions"][0]
        check("--time 0.5: runs for about half a second in each mode", p["latency_ms"]["runs"] >= 1 and
              0.5 <= p["throughput_seconds"] < 5, str(p))

    r = bench(a.qcal, fp32, "--iterations", "5", "--per-layer", "--mode", "latency")
    steps = [l for l in r.stdout.splitlines() if " ms " in l]
    check("--per-layer: a timed row per plan step and the latency table", r.returncode == 0 and len(steps) > 20 and
          "median" in r.stdout, r.stdout[-300:] + r.stderr[-300:])

    r = bench(a.qcal, fp32, "--iterations", "5", "--json", ranks=2)
    if check("mpirun -np 2: exit 0", r.returncode == 0, r.stderr[-300:]):
        nodes = json.loads(r.stdout)["nodes"]
        check("mpirun -np 2 on one machine: one node row, benchmarked by rank 0", len(nodes) == 1 and
              nodes[0]["rank"] == 0, str(nodes))

    cls_job = os.path.join(a.jobs, "ppocr_cls.yml")
    r = bench(a.qcal, cls_job, "--iterations", "5", "--json")
    if check("job file (PP-OCR cls): exit 0", r.returncode == 0, r.stderr[-300:]):
        p = json.loads(r.stdout)["nodes"][0]["precisions"][0]
        check("job file: the job's model", p["path"].endswith("ch_ppocr_mobile_v2.0_cls_infer.onnx"), p["path"])

    det = os.path.join(os.path.dirname(os.path.abspath(a.jobs)), "tests", "node", "node_modules",
                       "@gutenye", "ocr-models", "assets", "ch_PP-OCRv4_det_infer.onnx")
    cases = [
        ("missing model", [os.path.join(a.work, "none.onnx")], 3, "none.onnx"),
        ("dynamic input without --input-shape", [det], 2, "--input-shape"),
        ("bad --mode", [fp32, "--mode", "fast"], 2, "--mode"),
        ("bad --input-shape", [fp32, "--input-shape", "1xAx3"], 2, "--input-shape"),
    ]
    for what, args, code, needle in cases:
        r = bench(a.qcal, *args, "--iterations", "2", ranks=2)
        errs = [l for l in r.stderr.splitlines() if l.startswith("qcal")]
        check(f"{what}: exit {code}, one line", r.returncode == code and len(errs) == 1 and needle in errs[0],
              f"exit {r.returncode}: {r.stderr.strip()[-300:]}")
    r = bench(a.qcal, det, "--input-shape", "1x3x320x320", "--iterations", "3", "--json")
    check("dynamic input bound by --input-shape: runs", r.returncode == 0, r.stderr[-300:])
    return check.report("bench checks")


if __name__ == "__main__":
    sys.exit(main())
