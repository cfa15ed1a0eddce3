#!/usr/bin/python3
"""qcal sweep end to end on PP-OCR cls (real text-line crops, labelled upright / turned 180):
a job listing two subsets x two presets x two methods (8 configurations) swept at 2 ranks.

Checks: the manifest's numbering and statistics sharing; every configuration's model and
calibration.h5 equal a standalone 1-rank `qcal calibrate` with those settings, byte for byte
(statistics reuse is exact); only the first configuration of each subset ran the statistics
passes (timing.h5); a second run skips everything; a configuration whose report was deleted,
or that was killed half-way, is redone alone and ends with the same model; `--summarize`:
sweep.h5's rows equal the configurations' reports, the Pareto front and the recommendation
equal a Python computation from the same numbers; bad sweep jobs and arguments fail with one
line.
"""
import json
import os
import shutil
import signal
import subprocess
import time

import h5py
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from calibrate_e2e import MPI_ENV, conv_biases, make_images, ppocr_cls_labelled_job
from checks import Checks, e2e_args


def mtimes(root):
    return {os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns for d, _, fs in os.walk(root) for f in fs}


def shift_errors(uncorrected, exact, shared, leader):
    """Squared distance to the exact biases of the shared estimate's, of the leader's shifts
    (the recording run's, unmoved) and of no correction."""
    un, ex, sh, ld = (conv_biases(p) for p in (uncorrected, exact, shared, leader))
    names = [k for k in ex if k in sh and k in ld]
    un = {k: un.get(k, np.zeros_like(ex[k])) for k in names}  # a Conv without bias: correction adds one
    e_sh = sum(float(np.sum((sh[k] - ex[k]) ** 2)) for k in names)
    e_ld = sum(float(np.sum((ld[k] - ex[k]) ** 2)) for k in names)
    e_none = sum(float(np.sum((un[k] - ex[k]) ** 2)) for k in names)
    return e_sh, e_ld, e_none, len(names)


def main():
    a = e2e_args("--ort")
    check = Checks()
    sets = make_images(a.work)
    job, _ = ppocr_cls_labelled_job(a.work, a.jobs, a.ort, sets)
    text = open(job).read()
    text += ("calibration:\n  subset: [12, 24]\n  preset: [performance, mixed]\n  method: [minmax, entropy]\n"
             "accuracy_aware:\n  max_drop: 0.02\n")
    open(job, "w").write(text)
    out = os.path.join(a.work, "sweep")

    def sweep(*args, ranks=2, **kw):
        cmd = [a.qcal, "sweep", job, "-o", out, "--bench-time", "0.2", "--threads", "1", *args]
        if ranks:
            cmd = ["mpirun", "--oversubscribe", "-np", str(ranks), *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, env=MPI_ENV, timeout=900, **kw)

    r = sweep()
    if not check("sweep of 8 configurations at 2 ranks", r.returncode == 0, r.stderr[-400:]):
        return check.report()
    man = json.load(open(os.path.join(out, "manifest.json")))
    confs = man["configurations"]
    want = [(s, p, m) for s in (12, 24) for p in ("performance", "mixed") for m in ("minmax", "entropy")]
    check("manifest: 8 configurations numbered subset, preset, method (the last fastest); statistics per subset",
          [(c["subset"], c["preset"], c["method"]) for c in confs] == want and
          [c["statistics_from"] for c in confs] == [0] * 4 + [4] * 4 and man["axes"] == ["subset", "preset", "method"],
          confs[:2])

    # every configuration = a standalone calibration with its settings, byte for byte
    ok, detail = True, ""
    for c in confs:
        solo = os.path.join(a.work, f"solo_{c['id']}")
        r = subprocess.run([a.qcal, "calibrate", job, "-o", solo, "--quiet", "--subset", str(c["subset"]), "--preset",
                            c["preset"], "--method", c["method"]], capture_output=True, text=True)
        for f in ("model.int8.onnx", "calibration.h5"):
            same = r.returncode == 0 and open(os.path.join(solo, f), "rb").read() == \
                open(os.path.join(out, c["dir"], f), "rb").read()
            if not same:
                ok, detail = False, f"{c['dir']}/{f} {r.stderr[-200:]}"
    check("each configuration's model and calibration.h5 = a standalone 1-rank qcal calibrate", ok, detail)
    passes = []
    for c in confs:
        with h5py.File(os.path.join(out, c["dir"], "timing.h5"), "r") as t:
            names = [n.decode() for n in t["stages/name"][()]]
            passes.append(float(t["stages/seconds_min_mean_max"][()][names.index("inference"), 1]) > 0)
    check("statistics passes ran only for the first configuration of each subset (c000, c004)",
          passes == [True, False, False, False, True, False, False, False], passes)

    # resume: nothing to do; then a deleted report, then a killed configuration
    before = mtimes(out)
    r = sweep()
    after = mtimes(out)
    changed = [p for p in after if before.get(p) != after[p] and not p.endswith("manifest.json")]
    check("a second run skips every configuration and rewrites nothing but the manifest",
          r.returncode == 0 and r.stdout.count("complete, skipped") == 8 and not changed, changed[:3])
    os.unlink(os.path.join(out, "c003", "report.h5"))
    model3 = open(os.path.join(out, "c003", "model.int8.onnx"), "rb").read()
    before = mtimes(out)
    r = sweep()
    after = mtimes(out)
    changed = sorted({os.path.relpath(p, out).split("/")[0] for p in after if before.get(p) != after[p]} -
                     {"manifest.json"})
    check("a deleted report: only that configuration runs again (evaluate only)",
          r.returncode == 0 and changed == ["c003"] and "c003: evaluate" in r.stdout and "c003: bench" not in r.stdout,
          (changed, r.stdout[-300:]))
    shutil.rmtree(os.path.join(out, "c006"))
    p = subprocess.Popen([a.qcal, "sweep", job, "-o", out, "--config", "6", "--bench-time", "5"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=MPI_ENV)
    deadline = time.time() + 120  # kill it once its calibration is written, during the benchmark
    while time.time() < deadline and not os.path.exists(os.path.join(out, "c006", "calibration.h5")):
        time.sleep(0.05)
    time.sleep(1.0)
    p.send_signal(signal.SIGKILL)
    p.wait()
    half = not os.path.exists(os.path.join(out, "c006", "report.h5"))
    r = sweep("--config", "6", ranks=0)
    ok = r.returncode == 0 and os.path.exists(os.path.join(out, "c006", "report.h5")) and \
        open(os.path.join(out, "c006", "model.int8.onnx"), "rb").read() == \
        open(os.path.join(a.work, "solo_6", "model.int8.onnx"), "rb").read()
    check("a configuration killed half-way is completed by --config on the next run, same model", half and ok,
          r.stderr[-300:])
    check("the redone configuration 3 keeps its model", model3 == open(os.path.join(out, "c003", "model.int8.onnx"),
                                                                       "rb").read())

    # --summarize: rows = reports; Pareto front and recommendation recomputed here
    r = subprocess.run([a.qcal, "sweep", "--summarize", out], capture_output=True, text=True, cwd="/")
    if not check("sweep --summarize (from another folder)", r.returncode == 0, r.stderr[-300:]):
        return check.report()
    print(r.stdout)
    with h5py.File(os.path.join(out, "sweep.h5"), "r") as f:
        rows = f["configurations"][()]
        rec = int(f.attrs["recommended"])
    ok = len(rows) == 8 and all(rows["complete"] == 1)
    for c, row in zip(confs, rows):
        with h5py.File(os.path.join(out, c["dir"], "report.h5"), "r") as g:
            acc = g["accuracy"].attrs
            nodes = g["performance/nodes"][()]
            ok = ok and row["metric"] == b"top1" and row["optimized"] == acc["optimized_top1"] and \
                row["drop"] == acc["parent_top1"] - acc["optimized_top1"] and \
                row["int8_latency_ms"] == nodes["latency_median_ms"][1] and \
                row["latency_speedup"] == nodes["latency_speedup"][1] and row["method"].decode() == c["method"]
    check("sweep.h5: each row's metric, drop, INT8 latency and speed-up = its report's", ok)
    acc, lat = rows["optimized"], rows["int8_latency_ms"]
    front = [not any((acc[j] >= acc[k] and lat[j] <= lat[k] and (acc[j] > acc[k] or lat[j] < lat[k]))
                     for j in range(8) if j != k) for k in range(8)]
    within = [k for k in range(8) if rows["drop"][k] <= np.float32(0.02)]
    best = min(within, key=lambda k: (lat[k], k)) if within else -1
    check("Pareto front (metric up, latency down) and the recommendation (fastest within max_drop 0.02)",
          list(rows["pareto"] == 1) == front and rec == best and list(rows["recommended"]) ==
          [int(k == best) for k in range(8)] and f"recommended: c{best:03d}" in r.stdout, (front, rec, best))

    # a model with fewer quantized layers from a run's statistics and error pass, no images
    c0 = os.path.join(out, "c000")
    res = {}
    for tag, extra in (("full", []), ("reuse", ["--from-stats", os.path.join(c0, "calibration.h5"), "--reuse-errors"])):
        d = os.path.join(a.work, f"ignore_{tag}")
        r = subprocess.run([a.qcal, "calibrate", job, "-o", d, "--quiet", "--subset", "12", "--preset", "performance",
                            "--method", "minmax", "--ignore", "p2o.Conv.3", "--ignore", "p2o.Conv.5", *extra],
                           capture_output=True, text=True)
        res[tag] = open(os.path.join(d, "model.int8.onnx"), "rb").read() if r.returncode == 0 else r.stderr
    check("calibrate --reuse-errors --ignore (no image pass) = a full calibration ignoring the same nodes",
          isinstance(res["full"], bytes) and res["full"] == res["reuse"] and
          res["full"] != open(os.path.join(c0, "model.int8.onnx"), "rb").read(), str(res.get("reuse"))[:300])

    # --fast: configurations without bias correction skip the error pass, same models
    fast_job = os.path.join(a.work, "fast.yml")
    open(fast_job, "w").write(text[:text.rindex("\ncalibration:\n") + 1] +
                              "calibration:\n  subset: 12\n  method: [minmax, entropy]\n  bias_correction: false\n"
                              "  ignored:\n    - {}\n    - {names: [p2o.Conv.3], types: [Add]}\n")
    fast = os.path.join(a.work, "fast")
    r = subprocess.run([a.qcal, "sweep", fast_job, "-o", fast, "--fast", "--calibrate-only", "--threads", "1"],
                       capture_output=True, text=True)
    ok = r.returncode == 0
    fman = json.load(open(os.path.join(fast, "manifest.json"))) if ok else {"configurations": []}
    ok = ok and [c["statistics_from"] for c in fman["configurations"]] == [0, 1, 0, 1] and \
        fman["configurations"][1]["ignored"] == {"names": ["p2o.Conv.3"], "types": ["Add"]}
    for k, (m, ig) in enumerate((("minmax", []), ("minmax", ["--ignore", "p2o.Conv.3", "--ignore-type", "Add"]),
                                 ("entropy", []), ("entropy", ["--ignore", "p2o.Conv.3", "--ignore-type", "Add"]))):
        solo = os.path.join(a.work, f"fast_solo_{k}")
        r2 = subprocess.run([a.qcal, "calibrate", fast_job, "-o", solo, "--quiet", "--method", m, "--no-bias-correction",
                             "--no-job-ignored", *ig], capture_output=True, text=True)
        d = os.path.join(fast, f"c{k:03d}")
        ok = ok and r2.returncode == 0 and open(os.path.join(d, "model.int8.onnx"), "rb").read() == \
            open(os.path.join(solo, "model.int8.onnx"), "rb").read()
        if ok:
            with h5py.File(os.path.join(d, "calibration.h5"), "r") as f, \
                    h5py.File(os.path.join(d, "timing.h5"), "r") as t:
                names = [n.decode() for n in t["stages/name"][()]]
                ok = "layers" not in f and float(t["stages/seconds_min_mean_max"][()][names.index("error_pass"), 1]) == 0
    check("--fast x an ignored-scope axis: statistics per scope, no error pass, no /layers, each model = a "
          "standalone --no-bias-correction calibration with that scope", ok, r.stderr[-300:])

    # --fast with bias correction: the leader records its layers' inputs, the others estimate
    # their shifts from its measured ones (calibrate --shared-bias)
    sb_job = os.path.join(a.work, "shared.yml")
    open(sb_job, "w").write(text[:text.rindex("\ncalibration:\n") + 1] +
                            "calibration:\n  subset: 24\n  method: [minmax, entropy, percentile]\n  percentile: 99.9\n"
                            "  bias_correction: [true, false]\n")
    sb = os.path.join(a.work, "shared")
    shutil.rmtree(sb, ignore_errors=True)
    r = subprocess.run(["mpirun", "--oversubscribe", "-np", "2", a.qcal, "sweep", sb_job, "-o", sb, "--fast",
                        "--calibrate-only", "--threads", "1"], capture_output=True, text=True, env=MPI_ENV, timeout=900)
    ok = r.returncode == 0
    solo = {}
    for m in ("minmax", "entropy", "percentile"):  # exact standalone runs at 1 rank (the job's bias correction: on)
        for bc in (True, False):
            d = os.path.join(a.work, f"sb_solo_{m}_{bc}")
            extra = (["--record-inputs"] if m == "minmax" else []) if bc else ["--no-bias-correction"]
            r2 = subprocess.run([a.qcal, "calibrate", sb_job, "-o", d, "--quiet", "--method", m, "--threads", "2",
                                 *extra], capture_output=True, text=True)
            ok = ok and r2.returncode == 0
            solo[m, bc] = d

    def rd(d, f="model.int8.onnx"):
        return open(os.path.join(d, f), "rb").read() if os.path.exists(os.path.join(d, f)) else None
    c = [os.path.join(sb, f"c{k:03d}") for k in range(6)]
    if ok:
        with h5py.File(os.path.join(c[0], "calibration.h5"), "r") as f0, \
                h5py.File(os.path.join(c[2], "calibration.h5"), "r") as f2:
            ok = "inputs/bin_start" in f0 and f2.attrs["bias_correction"] in ("shared statistics", b"shared statistics") and "layers" not in f2
    check("--fast with bias correction: the leader (2 ranks) records per-channel input histograms, its model and "
          "calibration.h5 = a standalone 1-rank --record-inputs run byte for byte; the others carry no SQNR table",
          ok and rd(c[0], "calibration.h5") == rd(solo["minmax", True], "calibration.h5") and
          rd(c[0]) == rd(solo["minmax", True]), r.stderr[-400:])
    rec = {}
    for ranks in (1, 2, 4):  # recording on every 5th image of 24, the images shared by the ranks
        d = os.path.join(a.work, f"sb_rec_{ranks}")
        cmd = [a.qcal, "calibrate", sb_job, "-o", d, "--quiet", "--threads", "1", "--record-inputs", "--record-images",
               "5"]
        r2 = subprocess.run(["mpirun", "--oversubscribe", "-np", str(ranks), *cmd], capture_output=True, text=True,
                            env=MPI_ENV, timeout=900)
        rec[ranks] = rd(d, "calibration.h5") if r2.returncode == 0 else r2.stderr
    with h5py.File(os.path.join(a.work, "sb_rec_1", "calibration.h5"), "r") as f:
        counts = f["inputs/point_masses"][()].sum(1) + np.add.reduceat(f["inputs/bin_count"][()],
                                                                      f["inputs/bin_start"][()][:-1])
        first = int(f["inputs/channels"][0])
    check("--record-images 5 of 24 images: every 5th image recorded (each channel of the model's input counts "
          "5 x 48 x 192 values), calibration.h5 the same bytes at 1, 2 and 4 ranks",
          isinstance(rec[1], bytes) and rec[1] == rec[2] == rec[4] and bool(np.all(counts[:first] == 5 * 48 * 192)),
          (counts[:3], str(rec[2])[:200]))
    check("--fast, a configuration without bias correction = the standalone --no-bias-correction run",
          ok and rd(c[1]) is not None and rd(c[1]) == rd(solo["minmax", False]))
    d = os.path.join(a.work, "sb_same_scales")
    r2 = subprocess.run([a.qcal, "calibrate", sb_job, "-o", d, "--quiet", "--method", "minmax", "--shared-bias",
                         "--from-stats", os.path.join(c[0], "calibration.h5")], capture_output=True, text=True)
    check("--shared-bias at the recording run's own scales is exact: its model = that run's byte for byte",
          ok and r2.returncode == 0 and rd(d) == rd(c[0]), r2.stderr[-300:])
    for k, m in ((2, "entropy"), (4, "percentile")):
        e = shift_errors(os.path.join(solo[m, False], "model.int8.onnx"), os.path.join(solo[m, True], "model.int8.onnx"), os.path.join(c[k], "model.int8.onnx"),
                         os.path.join(solo["minmax", True], "model.int8.onnx")) if ok else (1, 0, 0, 0)
        check(f"--shared-bias, {m}: the estimated bias shifts are nearer the exact ones than the leader's shifts "
              f"and than no correction ({e[3]} convs; squared distance shared {e[0]:.3g}, leader's {e[1]:.3g}, "
              f"none {e[2]:.3g})", ok and e[3] > 0 and e[0] < 0.5 * e[1] and e[0] < 0.1 * e[2], e)
    # a recording whose sparse tables disagree (bin_count one row short): one line, no model
    bad_rec = os.path.join(a.work, "sb_bad_rec.h5")
    shutil.copy(os.path.join(c[0], "calibration.h5"), bad_rec)
    with h5py.File(bad_rec, "r+") as f:
        counts = f["inputs/bin_count"][()]
        del f["inputs/bin_count"]
        f["inputs/bin_count"] = counts[:-1]
    r2 = subprocess.run([a.qcal, "calibrate", sb_job, "-o", os.path.join(a.work, "sb_bad_rec"), "--method", "entropy",
                         "--shared-bias", "--from-stats", bad_rec], capture_output=True, text=True)
    lines = [x for x in r2.stderr.splitlines() if x.startswith("qcal")]
    check("--shared-bias from a recording with inconsistent /inputs tables: non-zero, one line naming the file, "
          "no model", r2.returncode != 0 and len(lines) == 1 and "sb_bad_rec.h5" in lines[0] and
          not os.path.exists(os.path.join(a.work, "sb_bad_rec", "model.int8.onnx")), r2.stderr)
    # a model with no bias-correctable layer (Flatten -> MatMul -> Softmax): nothing to record
    mm = os.path.join(a.work, "matmul.onnx")
    w = numpy_helper.from_array(np.random.default_rng(0).normal(0, 0.01, (3 * 48 * 192, 2)).astype(np.float32), "W")
    graph = helper.make_graph([helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "W"], ["y"]),
                               helper.make_node("Softmax", ["y"], ["p"])], "matmul",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 48, 192])],
                              [helper.make_tensor_value_info("p", TensorProto.FLOAT, [1, 2])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), mm)
    mm_job = os.path.join(a.work, "matmul.yml")
    open(mm_job, "w").write("".join(f"model: {mm}\n" if ln.startswith("model:") else ln
                                    for ln in open(sb_job).readlines()))
    shutil.rmtree(os.path.join(a.work, "mm_sweep"), ignore_errors=True)
    r = subprocess.run([a.qcal, "sweep", mm_job, "-o", os.path.join(a.work, "mm_sweep"), "--fast", "--calibrate-only",
                        "--threads", "1"], capture_output=True, text=True)
    check("--fast with bias correction on a model without a bias-correctable layer: every configuration written",
          r.returncode == 0 and all(rd(os.path.join(a.work, "mm_sweep", f"c{k:03d}")) for k in range(6)), r.stderr[-300:])
    r = subprocess.run([a.qcal, "sweep", sb_job, "-o", sb, "--calibrate-only"], capture_output=True, text=True)
    lines = [x for x in r.stderr.splitlines() if x.startswith("qcal")]
    check("a --fast sweep's folder resumed without --fast: non-zero, one line naming the manifest",
          r.returncode != 0 and len(lines) == 1 and "manifest.json" in lines[0] and "--fast" in lines[0], r.stderr)
    r = subprocess.run([a.qcal, "calibrate", sb_job, "-o", os.path.join(a.work, "sb_bad"), "--shared-bias",
                        "--from-stats", os.path.join(solo["entropy", True], "calibration.h5")],
                       capture_output=True, text=True)
    lines = [x for x in r.stderr.splitlines() if x.startswith("qcal")]
    check("--shared-bias from a run without --record-inputs: non-zero, one line naming its file",
          r.returncode != 0 and len(lines) == 1 and "calibration.h5" in lines[0] and "--record-inputs" in lines[0] and
          not os.path.exists(os.path.join(a.work, "sb_bad", "model.int8.onnx")), r.stderr)

    # bad input
    bad = os.path.join(a.work, "bad.yml")
    for what, extra, where in (("a value listed twice", "  method: [minmax, minmax]\n", ":"),
                               ("an unknown method in a list", "  method: [minmax, fastest]\n", "fastest"),
                               ("a list where a mapping is expected", "  ignored: [a, b]\n", "ignored")):
        open(bad, "w").write(text[:text.rindex("\ncalibration:\n") + 1] + "calibration:\n" + extra)
        r = subprocess.run([a.qcal, "sweep", bad, "-o", os.path.join(a.work, "bad_out")], capture_output=True, text=True)
        lines = [x for x in r.stderr.splitlines() if x.startswith("qcal")]
        check(f"bad sweep job ({what}): non-zero, one line naming the file and the value",
              r.returncode != 0 and len(lines) == 1 and "bad.yml:" in lines[0] and where in lines[0] and
              not os.path.exists(os.path.join(a.work, "bad_out")), r.stderr)
    r = sweep("--config", "8", ranks=0)
    check("--config beyond the sweep: non-zero, one line", r.returncode != 0 and
          len([x for x in r.stderr.splitlines() if x.startswith("qcal")]) == 1 and "0 to 7" in r.stderr, r.stderr)
    return check.report("sweep checks")


if __name__ == "__main__":
    raise SystemExit(main())
