#!/bin/bash
# Submits a whole qcal sweep to Slurm, from the qcal checkout (or with QCAL=path/to/qcal):
#
#   slurm/sweep.sh JOB.yml DIR [sbatch options, e.g. --ntasks=4 --cpus-per-task=8] [-- qcal sweep options]
#
# 1. one job computing each subset's statistics (qcal sweep --stats-only),
# 2. after it succeeds, a job array with one task per configuration (qcal sweep --config K),
# 3. after the array ends, however it ends, qcal sweep --summarize DIR.
# Prints the three job ids. Submitting again after a failure or a cancelled task re-runs only
# what is missing: complete configurations are skipped.
set -euo pipefail
job=${1:?usage: slurm/sweep.sh JOB.yml DIR [sbatch options]}
dir=${2:?usage: slurm/sweep.sh JOB.yml DIR [sbatch options]}
shift 2
sbatch_opts=() qcal_opts=()
while [ $# -gt 0 ]; do
  if [ "$1" = -- ]; then shift; qcal_opts=("$@"); break; fi
  sbatch_opts+=("$1"); shift
done
here=$(cd "$(dirname "$0")" && pwd)
qcal=${QCAL:-$(pwd)/build/qcal}
export QCAL=$qcal
n=$("$qcal" sweep "$job" -o "$dir" --list "${qcal_opts[@]}" | sed -n 's/^\([0-9][0-9]*\) configurations.*/\1/p')
[ -n "$n" ] || { echo "qcal: sweep.sh: cannot list the configurations of $job" >&2; exit 1; }
stats=$(sbatch --parsable --output=qcal-sweep-stats-%j.out "${sbatch_opts[@]}" "$here/sweep.sbatch" "$job" "$dir" \
  --stats-only "${qcal_opts[@]}")
array=$(sbatch --parsable --dependency="afterok:${stats%%;*}" --array="0-$((n - 1))" "${sbatch_opts[@]}" \
  "$here/sweep.sbatch" "$job" "$dir" "${qcal_opts[@]}")
summary=$(sbatch --parsable --dependency="afterany:${array%%;*}" "$here/summarize.sbatch" "$dir")
echo "${stats%%;*} ${array%%;*} ${summary%%;*}"
