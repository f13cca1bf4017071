#!/usr/bin/env bash
# launch/setup.sh — make a fresh Debian 12 machine ready for gantry and build it.
#
#   launch/setup.sh            install missing system packages, select OpenBLAS (OpenMP), configure, build
#                              against Debian's LibTorch 1.13 (CPU) in build/
#   launch/setup.sh --pypi     the same, then the second build: LibTorch 2.x from PyPI's torch wheel (CUDA 13
#                              + NCCL, pinned in launch/torch-pypi.txt) in build-pypi/, its Python in
#                              build-pypi/venv; needs the CUDA toolkit (CUDAToolkit_ROOT, default /usr/local/cuda)
#   launch/setup.sh --deps     packages and BLAS only
#
# Each build gets the Python tools its tests run (launch/test-tools.txt: TensorBoard's event reader): the debian
# build in build/tools-venv (over Debian's python3, seeing its numpy), the pypi build in build-pypi/venv.
#
# Idempotent: packages already installed are not touched, existing builds and venv are reused.
# Runs as root, or through sudo when it is available.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${GANTRY_BUILD_DIR:-$here/build}
build_type=${GANTRY_BUILD_TYPE:-Release}
mode=${1:-}
case "$mode" in
  ""|--deps|--pypi) ;;
  *) echo "setup: unknown argument '$mode' (expected --deps or --pypi)" >&2; exit 2 ;;
esac

packages=(
  build-essential cmake pkg-config git
  libtorch-dev                     # LibTorch 1.13 (CPU)
  python3-torch python3-h5py python3-numpy   # Python baselines for benchmarks; h5py reads shards
  python3-scipy                    # tests/eval: the Fréchet distance against scipy.linalg.sqrtm
  python3-matplotlib               # launch/plot.py: loss curves from metrics.jsonl
  libopenmpi-dev openmpi-bin       # MPI launch, rank discovery, CPU all-reduce
  libhdf5-dev                      # shards
  libboost-program-options-dev     # CLI and INI configs
  googletest libgtest-dev          # tests
  liblmdb-dev                      # LSUN databases
  libpng-dev libjpeg-dev libwebp-dev zlib1g-dev   # image codecs, gzip idx files
  nlohmann-json3-dev               # manifests, metrics.jsonl
  libprotobuf-dev protobuf-compiler   # TensorBoard event files (their records are protobuf messages)
  python3-venv                     # the test tools' venv (launch/test-tools.txt: TensorBoard's reader)
  libopenblas0-openmp              # optimised BLAS built for the same OpenMP runtime as LibTorch
  dataset-fashion-mnist            # the embedded default dataset
  chromium                         # tests/report: gantry report's page opened headless (screenshot, DOM)
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

[ "$mode" = "--deps" ] && exit 0

# launch/test-tools.txt into the venv $1, again only when the list has changed since.
install_test_tools() {
  local venv=$1 stamp=$1/.gantry-test-tools
  cmp -s "$here/launch/test-tools.txt" "$stamp" && return 0
  echo "setup: installing launch/test-tools.txt into $venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$here/launch/test-tools.txt"
  cp "$here/launch/test-tools.txt" "$stamp"
}

# Extra CMake arguments: GANTRY_CMAKE_ARGS (launch/test.sh turns warnings into errors with it); ccache
# when it is installed, so a rebuild after a pull compiles only what changed. The build precompiles
# LibTorch's header (GANTRY_PCH): ccache caches its users only with these sloppiness settings.
read -r -a cmake_args <<< "${GANTRY_CMAKE_ARGS:-}"
command -v ccache >/dev/null &&
  cmake_args+=("-DCMAKE_CXX_COMPILER_LAUNCHER=env;CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime;ccache")

if [ "$mode" != "--pypi" ]; then
  tools_venv=$build_dir/tools-venv  # CMake's GANTRY_TOOLS_PYTHON default for this build
  if [ ! -x "$tools_venv/bin/python" ]; then
    mkdir -p "$build_dir"
    /usr/bin/python3 -m venv --system-site-packages "$tools_venv"
  fi
  install_test_tools "$tools_venv"
  cmake -S "$here" -B "$build_dir" -DCMAKE_BUILD_TYPE="$build_type" "${cmake_args[@]}" >/dev/null
  cmake --build "$build_dir" -j "$(nproc)"
  exit 0
fi

# The second build. Its venv lives inside the build folder, so deleting build-pypi/ removes all of it.
pypi_dir=${GANTRY_PYPI_BUILD_DIR:-$here/build-pypi}
cuda_root=${CUDAToolkit_ROOT:-/usr/local/cuda}
[ -x "$cuda_root/bin/nvcc" ] || { echo "setup: --pypi needs the CUDA toolkit: no nvcc under $cuda_root (set CUDAToolkit_ROOT)" >&2; exit 5; }
venv=$pypi_dir/venv
python=${GANTRY_PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  mkdir -p "$pypi_dir"
  if ! "$python" -m venv "$venv" 2>/dev/null; then
    # Debian's python3 makes venvs only with python3-venv.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    rm -rf "$venv"; /usr/bin/python3 -m venv "$venv"
  fi
fi
stamp=$venv/.gantry-requirements
if ! cmp -s "$here/launch/torch-pypi.txt" "$stamp"; then
  echo "setup: installing launch/torch-pypi.txt into $venv (about 1.1 GB to download, 2.1 GB on disk)"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps -r "$here/launch/torch-pypi.txt"
  cp "$here/launch/torch-pypi.txt" "$stamp"
fi
install_test_tools "$venv"
torch_cmake=$("$venv/bin/python" -c 'import torch; print(torch.utils.cmake_prefix_path)')
# TORCH_CUDA_ARCH_LIST only quiets LibTorch's GPU autodetection: gantry compiles no CUDA kernels.
cmake -S "$here" -B "$pypi_dir" -DCMAKE_BUILD_TYPE="$build_type" -DCMAKE_PREFIX_PATH="$torch_cmake" \
  -DCUDAToolkit_ROOT="$cuda_root" -DTORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" "${cmake_args[@]}" >/dev/null
cmake --build "$pypi_dir" -j "$(nproc)"
