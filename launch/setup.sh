#!/usr/bin/env bash
# launch/setup.sh — make a fresh Debian 12 machine ready for gantry and build it.
#
#   launch/setup.sh            install missing system packages, select OpenBLAS (OpenMP), configure, build
#   launch/setup.sh --deps     packages and BLAS only
#
# Idempotent: packages already installed are not touched, an existing build/ is reused.
# Runs as root, or through sudo when it is available.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${GANTRY_BUILD_DIR:-$here/build}
build_type=${GANTRY_BUILD_TYPE:-Release}

packages=(
  build-essential cmake pkg-config git
  libtorch-dev                     # LibTorch 1.13 (CPU)
  python3-torch python3-h5py python3-numpy   # Python baselines for benchmarks; h5py reads shards
  python3-matplotlib               # launch/plot.py: loss curves from metrics.jsonl
  libopenmpi-dev openmpi-bin       # MPI launch, rank discovery, CPU all-reduce
  libhdf5-dev                      # shards
  libboost-program-options-dev     # CLI and INI configs
  googletest libgtest-dev          # tests
  liblmdb-dev                      # LSUN databases
  libpng-dev libjpeg-dev libwebp-dev zlib1g-dev   # image codecs, gzip idx files
  nlohmann-json3-dev               # manifests, metrics.jsonl
  libopenblas0-openmp              # optimised BLAS built for the same OpenMP runtime as LibTorch
  dataset-fashion-mnist            # the embedded default dataset
  iproute2 util-linux              # tests/multihost: hosts as network namespaces (ip netns, unshare --uts)
)

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "setup: need root or sudo to run: $*" >&2; exit 2; fi
}

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# LibTorch calls BLAS through the libblas.so.3 / liblapack.so.3 alternatives. The reference BLAS is
# about 10x slower; OpenBLAS's pthread build fights LibTorch's OpenMP threads, so pick the OpenMP one.
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
for lib in libblas.so.3 liblapack.so.3; do
  target=/usr/lib/$arch/openblas-openmp/$lib
  if [ -e "$target" ] && [ "$(readlink -f /etc/alternatives/$lib-$arch 2>/dev/null)" != "$(readlink -f "$target")" ]; then
    as_root update-alternatives --quiet --set "$lib-$arch" "$target"
  fi
done

[ "${1:-}" = "--deps" ] && exit 0

cmake -S "$here" -B "$build_dir" -DCMAKE_BUILD_TYPE="$build_type" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
