#!/usr/bin/env bash
# Builds qcal and runs its test suite: the README's test command and what CI runs.
#   scripts/test.sh            everything (about 10 minutes on 2 cores)
#   scripts/test.sh -L unit    a label subset: unit, op, kernel, e2e, badinput
#   QCAL_SANITIZE="address;undefined" scripts/test.sh   under ASan + UBSan (build-asan/)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/install-deps.sh
build=build
extra=()
if [ -n "${QCAL_SANITIZE:-}" ]; then
  build=build-asan
  extra=(-DQCAL_SANITIZE="$QCAL_SANITIZE")
  # slow unwinding reaches through Open MPI's plugins so tests/lsan.supp can name them
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:fast_unwind_on_malloc=0}
  export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$top/tests/lsan.supp:fast_unwind_on_malloc=0}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fi
cmake -S . -B "$build" "${extra[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
cd "$build"
ctest --output-on-failure -j2 --timeout 900 "$@"
