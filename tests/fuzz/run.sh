#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, AddressSanitizer + UndefinedBehaviorSanitizer) and
# runs each one for a while on a corpus seeded from tests/fuzz/seeds/<target>/.
#
#   tests/fuzz/run.sh [--seconds N] [--replay] [TARGET...]
#
# TARGET: jpeg job voc coco mask (default: all). --seconds: per target (default 600).
# --replay: only run the seeds and the saved corpus once (a quick regression check).
# Crashes are written to build-fuzz/crashes/<target>/ and make the script fail.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${QCAL_FUZZ_DIR:-$root/build-fuzz}
seconds=600
replay=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --replay) replay=1; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(jpeg job voc coco mask)

cc=${CC_FUZZ:-clang}
flags=(-std=c11 -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
       -fopenmp -D_GNU_SOURCE -I"$root/include" $(pkg-config --cflags libcjson libturbojpeg libpng yaml-0.1 expat))
libs=($(pkg-config --libs libcjson libturbojpeg libpng yaml-0.1 expat) -lm)
mkdir -p "$out/obj"
objs=()
for src in "$root"/src/core/*.c "$root"/src/data/*.c "$root"/src/job/*.c; do
  obj="$out/obj/$(basename "$(dirname "$src")")_$(basename "$src" .c).o"
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find "$root/include" -newer "$obj" -name '*.h' | head -1)" ]; then
    "$cc" "${flags[@]}" -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
  fi
  objs+=("$obj")
done

status=0
for t in "${targets[@]}"; do
  "$cc" "${flags[@]}" -fsanitize=fuzzer "$root/tests/fuzz/fuzz_$t.c" "${objs[@]}" "${libs[@]}" -o "$out/fuzz_$t"
  corpus="$out/corpus/$t"
  crashes="$out/crashes/$t"
  mkdir -p "$corpus" "$crashes"
  if [ "$replay" = 1 ]; then
    args=(-runs=0 "$corpus" "$root/tests/fuzz/seeds/$t")
  else
    args=(-max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -timeout=10 "$corpus" "$root/tests/fuzz/seeds/$t")
  fi
  echo "fuzz $t: ${args[*]}"
  if ! ASAN_OPTIONS=detect_leaks=1 "$out/fuzz_$t" -artifact_prefix="$crashes/" "${args[@]}" 2> "$out/fuzz_$t.log"; then
    echo "fuzz $t: FAILED (see $out/fuzz_$t.log and $crashes/)"
    tail -40 "$out/fuzz_$t.log"
    status=1
  else
    echo "fuzz $t: ok ($(grep -E '^#[0-9]+' "$out/fuzz_$t.log" | tail -1))"
  fi
done
exit $status
