"""The pass/fail bookkeeping shared by the Python test scripts.

    checks = Checks()
    checks("decode vs PIL", diff <= 1, f"max diff {diff}")
    return checks.report()   # prints "N/M checks passed", returns the exit status

and the command line of the end-to-end scripts (e2e_args).
"""
import argparse
import os
import shutil


class Checks:
    def __init__(self):
        self.total = self.failures = 0

    def __call__(self, what, ok, detail=""):
        self.total += 1
        self.failures += not ok
        print(f"{what}: {'ok' if ok else 'FAIL'} {detail}")
        return ok

    def report(self, what="checks"):
        print(f"{self.total - self.failures}/{self.total} {what} passed")
        return 1 if self.failures else 0


def e2e_args(*extra, defaults=None):
    """--qcal --models --jobs --work and the `extra` options, all required, plus optional
    ones with their defaults ({"--option": value}); the work folder starts empty."""
    ap = argparse.ArgumentParser()
    for name in ("--qcal", "--models", "--jobs", "--work", *extra):
        ap.add_argument(name, required=True)
    for name, value in (defaults or {}).items():
        ap.add_argument(name, default=value)
    a = ap.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    return a
