#!/usr/bin/env python3
"""slurm/sweep.sh end to end on a real single-node Slurm cluster (tests/slurm/cluster.sh):
a 4-configuration sweep of PP-OCR cls (subset [12, 24] x method [minmax, entropy]) submitted
as a statistics job, a job array of 2-task MPI jobs (one configuration each) and a dependent
summary job.

- One array task is cancelled while it runs: the summary still runs (afterany) and reports
  that configuration incomplete; the other configurations complete.
- Submitting the sweep again re-runs only that configuration (the others' tasks print
  "complete, skipped"); afterwards every configuration's model equals an uninterrupted
  `mpirun -np 2 qcal sweep` byte for byte and sweep.h5 lists 4 complete configurations.
"""
import json
import os
import re
import subprocess
import sys
import time

import h5py

from calibrate_e2e import make_images, ppocr_cls_labelled_job, sha
from checks import Checks, e2e_args
from slurm_e2e import MPI_ENV, Cluster

HERE = os.path.dirname(os.path.abspath(__file__))
SWEEP_SH = os.path.join(HERE, "..", "slurm", "sweep.sh")


def state(cluster, jobid):
    r = cluster.run(["squeue", "-h", "-j", jobid, "-o", "%T"])
    s = r.stdout.split()
    return s[0] if s else cluster.job_info(jobid).get("JobState", "")


def wait_done(cluster, jobid, timeout):
    t0 = time.time()
    while time.time() - t0 < timeout:
        s = state(cluster, jobid)
        if s and s not in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING"):
            return s
        time.sleep(0.5)
    cluster.run(["scancel", jobid])
    return "TIMEOUT"


def main():
    a = e2e_args("--ort")
    qcal = os.path.abspath(a.qcal)
    check = Checks()
    t0 = time.time()
    work = a.work
    sets = make_images(work)
    job, _ = ppocr_cls_labelled_job(work, a.jobs, a.ort, sets)
    open(job, "a").write("calibration:\n  subset: [12, 24]\n  method: [minmax, entropy]\n")
    qopts = ["--bench-time", "0.2"]

    ref = os.path.join(work, "ref")
    r = subprocess.run(["mpirun", "--oversubscribe", "-np", "2", qcal, "sweep", job, "-o", ref, "--threads", "1",
                        *qopts], capture_output=True, text=True, env=MPI_ENV, timeout=300)
    if not check("reference: mpirun -np 2 qcal sweep (4 configurations)", r.returncode == 0, r.stderr[-300:]):
        return check.report("slurm sweep checks")
    want = [sha(os.path.join(ref, f"c{k:03d}", "model.int8.onnx")) for k in range(4)]

    cluster = Cluster()
    try:
        ok, err = cluster.start()
        if not check("Slurm cluster up", ok, err):
            return check.report("slurm sweep checks")
        env = dict(cluster.env, QCAL=qcal)
        out = os.path.join(work, "slurm_sweep")

        def submit():
            r = cluster.run([SWEEP_SH, job, out, "--ntasks=2", "--cpus-per-task=1", "--time=5", "--", *qopts],
                            env=env, cwd=work, timeout=60)
            ids = r.stdout.split()
            return (ids if r.returncode == 0 and len(ids) == 3 else None), r.stderr

        ids, err = submit()
        if not check("slurm/sweep.sh submits a statistics job, a 4-task array and a summary job", ids is not None,
                     err):
            return check.report("slurm sweep checks")
        stats, array, summary = ids
        # cancel array task 1 while it runs
        task = f"{array}_1"
        deadline, cancelled = time.time() + 180, False
        while time.time() < deadline:
            s = state(cluster, task)
            if s == "RUNNING":
                time.sleep(1.0)
                cluster.run(["scancel", task])
                cancelled = True
                break
            if s and s not in ("PENDING", "CONFIGURING"):
                break
            time.sleep(0.2)
        check(f"array task {task} cancelled while running", cancelled, state(cluster, task))
        end = wait_done(cluster, summary, 300)
        info = cluster.job_info(f"{array}_0")
        check("array tasks are 2-task MPI jobs", info.get("NumTasks") == "2", info.get("NumTasks"))
        done = [os.path.exists(os.path.join(out, f"c{k:03d}", "report.h5")) for k in range(4)]
        check("first submission: the summary ran after the array (afterany); configuration 1 incomplete, the "
              "others complete", end == "COMPLETED" and done == [True, False, True, True], (end, done))
        text = open(os.path.join(work, f"qcal-sweep-summary-{summary}.out"), errors="replace").read() \
            if os.path.exists(os.path.join(work, f"qcal-sweep-summary-{summary}.out")) else ""
        check("the summary lists configuration 1 as not complete", re.search(r"^c001 .*not complete", text, re.M)
              is not None and "3 of 4 configurations complete" in text, text[-600:])

        ids, err = submit()
        if not check("second submission", ids is not None, err):
            return check.report("slurm sweep checks")
        end = wait_done(cluster, ids[2], 300)
        outs = {k: open(os.path.join(work, f"qcal-sweep-{ids[1]}_{k}.out"), errors="replace").read()
                if os.path.exists(os.path.join(work, f"qcal-sweep-{ids[1]}_{k}.out")) else "" for k in range(4)}
        check("second submission: only configuration 1 runs again",
              all("complete, skipped" in outs[k] for k in (0, 2, 3)) and "c001: evaluate" in outs[1], outs[1][-300:])
        got = [sha(os.path.join(out, f"c{k:03d}", "model.int8.onnx")) if os.path.exists(
            os.path.join(out, f"c{k:03d}", "model.int8.onnx")) else None for k in range(4)]
        check("every configuration's model = the uninterrupted mpirun sweep's, byte for byte", got == want)
        ok = False
        if os.path.exists(os.path.join(out, "sweep.h5")):
            with h5py.File(os.path.join(out, "sweep.h5"), "r") as f:
                ok = end == "COMPLETED" and list(f["configurations"]["complete"]) == [1, 1, 1, 1]
        check("sweep.h5: 4 complete configurations", ok, end)

        # --fast through sweep.sh: the statistics job records the inputs, the array tasks
        # estimate their bias correction from them; the models = an mpirun --fast sweep's
        fref = os.path.join(work, "ref_fast")
        r = subprocess.run(["mpirun", "--oversubscribe", "-np", "2", qcal, "sweep", job, "-o", fref, "--threads", "1",
                            "--fast", "--calibrate-only"], capture_output=True, text=True, env=MPI_ENV, timeout=300)
        fout = os.path.join(work, "slurm_fast")
        r2 = cluster.run([SWEEP_SH, job, fout, "--ntasks=2", "--cpus-per-task=1", "--time=5", "--", *qopts, "--fast"],
                         env=env, cwd=work, timeout=60)
        ids = r2.stdout.split()
        end = wait_done(cluster, ids[2], 300) if r2.returncode == 0 and len(ids) == 3 else r2.stderr
        got = [sha(os.path.join(fout, f"c{k:03d}", "model.int8.onnx")) for k in range(4)]
        want = [sha(os.path.join(fref, f"c{k:03d}", "model.int8.onnx")) for k in range(4)]
        check("slurm/sweep.sh -- --fast: complete, the manifest in fast mode, every model = an mpirun --fast "
              "sweep's, byte for byte",
              r.returncode == 0 and end == "COMPLETED" and None not in got and got == want and
              all(os.path.exists(os.path.join(fout, f"c{k:03d}", "report.h5")) for k in range(4)) and
              json.load(open(os.path.join(fout, "manifest.json")))["mode"] == "fast",
              (end, r.stderr[-300:], got, want))
    finally:
        cluster.stop()
    print(f"runtime {time.time() - t0:.1f} s")
    return check.report("slurm sweep checks")


if __name__ == "__main__":
    sys.exit(main())
