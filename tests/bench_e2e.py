#!/usr/bin/env python3
"""qcal bench end to end: MobileNetV2 (FP32) and its INT8 QDQ model written by qcal
calibrate, PP-OCR cls through its job file.

- --json: every latency statistic is there and consistent (min <= median <= p90 <= p99 <=
  max, min <= mean <= max, runs as asked), throughput = runs x batch / seconds, the
  speed-up is the ratio of the medians and of the FPS;
- --batch 2 runs a batch of two; --time bounds the throughput time; --per-layer prints
  one timed row per plan step;
- under mpirun -np 2 on one machine one rank benchmarks the node (one row);
- input: a job's real JPEGs (validation dataset, else calibration), as many as --images,
  in batches; --synthetic, a job without a dataset and a model file run a synthetic tensor;
  the table and the JSON say which; a corrupt JPEG stops the run as in qcal infer (exit 8,
  one line naming it, also under mpirun), skip_bad_images skips it;
- bad input: a missing model, a dynamic input without --input-shape, a bad option: one
  line, documented exit status.
"""
import json
import os
import resource
import shutil
import subprocess
import sys
import time

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


def with_datasets(work, job, name, **datasets):
    """`job` (write_job's, ending in its datasets section) with more datasets."""
    path = os.path.join(work, name)
    text = open(job).read()
    for which, (source, *extra) in datasets.items():
        text += f"  {which}:\n    source: {source}\n" + "".join(f"    {e}\n" for e in extra)
    open(path, "w").write(text)
    return path


def real_images(a, check, fp32, int8, cal_job, sets):
    """bench JOB.yml on the job's JPEGs: where they come from, how many, batches, both
    precisions, --synthetic, corrupt images."""
    def run_json(what, *args, ranks=0):
        r = bench(a.qcal, *args, "--threads", "2", "--streams", "2", "--json", ranks=ranks)
        ok = check(f"{what}: exit 0", r.returncode == 0, r.stderr[-300:])
        return json.loads(r.stdout) if ok else None

    j = run_json("job with a calibration dataset only, fp32 + int8", cal_job, "--int8", int8, "--iterations", "4")
    if j:
        check("no validation dataset: 16 images of the calibration dataset",
              j["input"] == {"source": "images", "images": 16, "skipped": 0, "dataset": "calibration",
                             "path": sets["photos_cal"]}, str(j["input"]))
        for p in j["nodes"][0]["precisions"]:
            check(f"real images, {p['precision']}: latency statistics consistent, throughput = 4 runs",
                  consistent(p["latency_ms"], 4) and p["throughput_runs"] == 4 and p["throughput_fps"] > 0, str(p))

    val_job = with_datasets(a.work, cal_job, "mnv2_val.yml", validation=(sets["photos_val"],))
    j = run_json("validation dataset, --images 5 --batch 2", val_job, "--images", "5", "--batch", "2",
                 "--iterations", "6")
    if j:
        p = j["nodes"][0]["precisions"][0]
        check("the validation dataset first, 5 images (three batches of two)",
              j["input"]["dataset"] == "validation" and j["input"]["images"] == 5 and
              j["input"]["path"] == sets["photos_val"] and j["batch"] == 2, str(j["input"]))
        check("--batch 2 on images: consistent statistics, FPS counts two images per run",
              consistent(p["latency_ms"], 6) and abs(p["throughput_fps"] - 2 * p["throughput_runs"] /
                                                     p["throughput_seconds"]) <= 1e-5 * p["throughput_fps"], str(p))
    r = bench(a.qcal, val_job, "--iterations", "3", "--threads", "2", "--streams", "2")
    check("table: 'input: 16 images from DIR (validation dataset)'", r.returncode == 0 and
          f"  input: 16 images from {sets['photos_val']} (validation dataset)\n" in r.stdout, r.stdout[:400])
    j = run_json("--synthetic with a job", val_job, "--synthetic", "--iterations", "3")
    if j:
        check("--synthetic: synthetic input whatever the job's datasets",
              j["input"] == {"source": "synthetic", "reason": "--synthetic"}, str(j["input"]))
    r = bench(a.qcal, val_job, "--synthetic", "--iterations", "2", "--mode", "latency")
    check("table: 'input: synthetic (--synthetic)'", "  input: synthetic (--synthetic)\n" in r.stdout, r.stdout[:400])
    j = run_json("mpirun -np 2 on images", val_job, "--iterations", "3", ranks=2)
    if j:
        check("mpirun -np 2 on images: one node row, 16 images", len(j["nodes"]) == 1 and j["input"]["images"] == 16,
              str(j["input"]))

    bad = os.path.join(a.work, "bad_val")
    os.makedirs(bad, exist_ok=True)
    for i in range(3):
        shutil.copy(os.path.join(sets["photos_val"], f"img{i:03d}.jpg"), bad)
    data = open(os.path.join(sets["photos_val"], "img003.jpg"), "rb").read()
    corrupt = os.path.join(bad, "img001b.jpg")
    open(corrupt, "wb").write(data[:len(data) // 3])
    bad_job = with_datasets(a.work, cal_job, "mnv2_bad.yml", validation=(bad,))
    for ranks in (0, 2):
        r = bench(a.qcal, bad_job, "--iterations", "2", ranks=ranks)
        errs = [l for l in r.stderr.splitlines() if l.startswith("qcal")]
        check(f"corrupt JPEG{' under mpirun -np 2' if ranks else ''}: exit 8, one line naming it, no table",
              r.returncode == 8 and len(errs) == 1 and corrupt in errs[0] and "median" not in r.stdout,
              f"exit {r.returncode}: {r.stderr.strip()[-300:]}")
    skip_job = with_datasets(a.work, cal_job, "mnv2_skip.yml", validation=(bad, "skip_bad_images: true"))
    j = run_json("corrupt JPEG with skip_bad_images", skip_job, "--iterations", "2")
    if j:
        check("skip_bad_images: the three good images, one skipped",
              j["input"]["images"] == 3 and j["input"]["skipped"] == 1, str(j["input"]))


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

    # --threads 1 must use one core: oneDNN primitives spawn the thread count they were
    # created for, so the plan has to be made after the count is set (CPU time <= wall time;
    # a loaded machine only lowers the ratio)
    t0, c0 = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    r = bench(a.qcal, fp32, "--threads", "1", "--mode", "latency", "--time", "2")
    wall, c1 = time.monotonic() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    check("--threads 1: one core busy (CPU time / wall time <= 1.15)", r.returncode == 0 and cpu <= 1.15 * wall,
          f"cpu {cpu:.2f} s, wall {wall:.2f} s")

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
        j = json.loads(r.stdout)
        p = j["nodes"][0]["precisions"][0]
        check("job file: the job's model", p["path"].endswith("ch_ppocr_mobile_v2.0_cls_infer.onnx"), p["path"])
        check("job without a dataset: synthetic input, says why",
              j["input"] == {"source": "synthetic", "reason": "the job has no dataset"}, str(j["input"]))
    r = bench(a.qcal, fp32, "--iterations", "2", "--json", "--mode", "latency")
    check("model file: synthetic input", r.returncode == 0 and json.loads(r.stdout)["input"]["source"] == "synthetic",
          r.stdout[:300] + r.stderr[-300:])
    real_images(a, check, fp32, int8, job, sets)

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
