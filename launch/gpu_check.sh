#!/usr/bin/env bash
# The GPU check (issue 10, point 5): on a GPU machine where nothing can be installed (its LibTorch is
# the one inside its PyTorch), build gantry with CUDA, run the CUDA tests, and benchmark DCGAN 64x64
# against the same model in that machine's PyTorch eager — one call, under 10 minutes.
#
#   launch/gpu_check.sh --pack      HERE (Debian 12, the dev packages installed by launch/setup.sh):
#                                   apt-get download the .deb files of every build/runtime dependency
#                                   but LibTorch into .gpu_deps/ (git-ignored; ~25 MiB), for the working
#                                   tree to carry there
#   launch/gpu_check.sh [options]   THERE: unpack .gpu_deps/ with dpkg -x into a private prefix (never
#                                   into /), configure gantry against python3's torch with CUDA
#                                   (sm_90), build with every core, ctest -L cuda, then the benchmarks;
#                                   log and results table into $OUT (or BUILD/gpu_check/)
# Options:
#   --device cpu|cuda   benchmark device (default cuda); --device cpu --quick checks every code path here
#   --quick             tiny benchmark sizes (batch 2 and 4, 2 steps, 512^3 matmul) and no CUDA tests
#   --python PY         the Python whose torch gantry builds against and the eager baseline runs in
#                       (default ${GANTRY_TORCH_PYTHON:-python3})
#   --build-dir DIR     (default build-gpu/)     --prefix DIR   where the .debs go (default /tmp/gantry-deps)
#   --budget S          seconds for the whole call (default 560); each stage gets at most what is left
#   --skip-build        no configure/build: benchmark with the dcgan_step_bench already in --build-dir
# Environment: GANTRY_GPU_CHECK_TARGETS (build only these targets; default all),
#   GANTRY_GPU_CHECK_BUILD_S (the build's time limit, default 330), GANTRY_GPU_CHECK_FORMATS
#   (memory layouts to benchmark, default contiguous; "contiguous channels_last" adds rows).
# Every stage's result is printed and summarized at the end; a failed stage does not stop later stages
# that can run without it (the PyTorch side and the matmul rate need no build). Exit status: 0 if every
# stage passed, 1 otherwise.
#
# Benchmark: dcgan_step_bench (C++, gantry's networks) and dcgan_step.py (PyTorch eager, same model, step,
# autocast regions, warm-up and timing), global batch 128 and 512 on one GPU, fp32 and bf16 (autocast),
# alternating C++ and Python per configuration. MFU = images/s x model FLOPs per image (dcgan_flops.py,
# counted from the architecture) / the bf16 rate of an 8192^3 torch.matmul measured in the same call.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
deps=$repo/.gpu_deps
mode=run device=cuda quick=0 budget=560 skip_build=0
formats=${GANTRY_GPU_CHECK_FORMATS:-contiguous}  # add channels_last for a row per layout
python=${GANTRY_TORCH_PYTHON:-python3}
build=$repo/build-gpu
prefix=/tmp/gantry-deps
while (($#)); do
  case $1 in
    --pack) mode=pack ;;
    --device) device=$2; shift ;;
    --quick) quick=1 ;;
    --python) python=$2; shift ;;
    --build-dir) build=$2; shift ;;
    --prefix) prefix=$2; shift ;;
    --budget) budget=$2; shift ;;
    --skip-build) skip_build=1 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ $device == cpu || $device == cuda ]] || { echo "gpu_check.sh: --device is cpu or cuda" >&2; exit 2; }
sys_ld_path=${LD_LIBRARY_PATH:-}  # the machine's own, for Python (see py below)

# ---------------------------------------------------------------------------------------------------
# --pack (here): the -dev packages gantry builds with, plus every package whose shared library one of
# their programs or libraries (Open MPI's plugins included) needs, found through each ELF file's
# DT_NEEDED entries and dpkg -S; the C/C++ runtime (libc6, libgcc-s1, libstdc++6) is the machine's own.
readonly kSeeds="libhdf5-dev libboost-program-options-dev libboost-program-options1.74-dev libboost1.74-dev
  nlohmann-json3-dev zlib1g-dev libpng-dev libjpeg62-turbo-dev libwebp-dev liblmdb-dev libgtest-dev
  libgmock-dev libopenmpi-dev openmpi-bin openmpi-common pkgconf pkgconf-bin libpkgconf3"
readonly kBase="libc6 libgcc-s1 libstdc++6"

pack_closure() {
  local -A seen=() lib_pkg=()
  local queue=($kSeeds) p f lib path q
  for p in $kBase; do seen[$p]=1; done
  while ((${#queue[@]})); do
    p=${queue[0]}; queue=("${queue[@]:1}")
    [[ -n ${seen[$p]:-} ]] && continue
    seen[$p]=1
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
      { echo "gpu_check.sh: $p is not installed here (run launch/setup.sh first)" >&2; return 1; }
    echo "$p"
    while read -r f; do
      if [[ -L $f && $f == *.so* ]]; then  # a -dev package's libX.so → the runtime package's libX.so.N
        q=$(dpkg -S "$(readlink -f "$f")" 2>/dev/null | head -n 1 | cut -d: -f1)
        [[ -n $q && -z ${seen[$q]:-} ]] && queue+=("$q")
        continue
      fi
      [[ -f $f && ! -L $f ]] || continue
      [[ $f == */bin/* || $f == *.so* ]] || continue
      for lib in $(readelf -d "$f" 2>/dev/null | sed -nE 's/.*Shared library: \[(.*)\]/\1/p'); do
        [[ -n ${lib_pkg[$lib]+x} ]] && continue  # each library looked up once
        lib_pkg[$lib]=
        path=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64/ { print $NF; exit }')
        [[ -n $path ]] || path=$(find /usr/lib/x86_64-linux-gnu -name "$lib" -print -quit 2>/dev/null)
        [[ -n $path ]] || { echo "gpu_check.sh: note: $lib (needed by $f) not found here" >&2; continue; }
        q=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -n 1 | cut -d: -f1)
        [[ -n $q ]] || q=$(dpkg -S "$path" 2>/dev/null | head -n 1 | cut -d: -f1)
        [[ -n $q && -z ${seen[$q]:-} ]] && queue+=("$q")
      done
    done < <(dpkg -L "$p")
  done
}

if [[ $mode == pack ]]; then
  set -e
  apt-get update -qq
  mkdir -p "$deps"
  rm -f "$deps"/*.deb
  pkgs=$(pack_closure)
  # The versions installed here, so the headers match the libraries this machine was tested with.
  # The version installed here (the headers match the libraries tested here), else the archive's.
  for p in $pkgs; do
    (cd "$deps" && { apt-get download -qq "$p=$(dpkg-query -W -f='${Version}' "$p")" 2>/dev/null ||
                     apt-get download -qq "$p"; }) || { echo "gpu_check.sh: cannot download $p" >&2; exit 1; }
  done
  printf '%s\n' $pkgs >"$deps/PACKAGES"
  echo "gpu_check.sh: $(ls "$deps"/*.deb | wc -l) packages, $(du -sh "$deps" | cut -f1) in $deps:"
  tr '\n' ' ' <"$deps/PACKAGES"; echo
  exit 0
fi

# ---------------------------------------------------------------------------------------------------
# Run mode. Output: $OUT (the device tool's folder) or BUILD/gpu_check/.
out=${OUT:-$build/gpu_check}
mkdir -p "$out"
log=$out/gpu_check.log
table=$out/gpu_check.md
exec > >(tee "$log") 2>&1
t_start=$(date +%s)
left() { echo $((budget - ($(date +%s) - t_start))); }
declare -a summary=()
# stage NAME CAP_S CMD...: run CMD under a timeout of min(CAP_S, time left), record its result.
stage() {
  local name=$1 cap=$2 rc t0 limit
  shift 2
  limit=$(left); ((limit > cap)) && limit=$cap
  if ((limit < 10)); then
    summary+=("$name: SKIPPED (budget spent)"); echo "=== $name: skipped, budget spent"; return 1
  fi
  echo "=== $name (limit ${limit}s)"
  t0=$(date +%s)
  timeout --kill-after=10 "$limit" bash -o pipefail -c '"$@"' stage "$@"; rc=$?
  local took=$(($(date +%s) - t0))
  if ((rc == 0)); then summary+=("$name: ok (${took}s)")
  elif ((rc == 124 || rc == 137)); then summary+=("$name: TIMED OUT after ${took}s")
  else summary+=("$name: FAILED, exit $rc (${took}s)"); fi
  echo "=== $name: exit $rc after ${took}s"
  return $rc
}

machine() {
  echo "date: $(date -u '+%F %T UTC'); host: $(uname -srm); cores: $(nproc)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
  py -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)'
  for tool in cmake ninja nvcc g++ c++ pkg-config dpkg; do printf '%s: %s\n' "$tool" "$(command -v $tool || echo missing)"; done
}

# Unpack every .deb into $prefix (dpkg -x, or ar + tar where dpkg is missing), then make the tree
# usable from there: absolute symlinks re-pointed inside it, the alternatives Debian's maintainer scripts
# would make (mpicc, mpicxx, mpiexec, mpirun, pkg-config), and .pc files with the prefix written in.
unpack_deps() {
  local deb link target
  ls "$deps"/*.deb >/dev/null 2>&1 || { echo "no .deb files in $deps: run launch/gpu_check.sh --pack first"; return 1; }
  rm -rf "$prefix"; mkdir -p "$prefix"
  for deb in "$deps"/*.deb; do
    if command -v dpkg-deb >/dev/null; then dpkg-deb -x "$deb" "$prefix" || return 1
    else (cd "$prefix" && ar p "$deb" "$(ar t "$deb" | grep '^data\.tar')" | tar -x --xz -f -) || return 1; fi
  done
  while IFS= read -r link; do
    target=$(readlink "$link")
    [[ $target == /* ]] && ln -sfn "$prefix$target" "$link"
  done < <(find "$prefix" -type l)
  local bin=$prefix/usr/bin
  for t in mpicc mpicxx mpic++ mpiexec mpirun; do [[ -e $bin/$t.openmpi ]] && ln -sfn "$t.openmpi" "$bin/$t"; done
  [[ -e $bin/pkgconf && ! -e $bin/pkg-config ]] && ln -sfn pkgconf "$bin/pkg-config"
  find "$prefix" -name '*.pc' -exec sed -i -E "s@(=|-I|-L)/usr(/|\$| )@\1$prefix/usr\2@g" {} +
  echo "unpacked $(ls "$deps"/*.deb | wc -l) packages into $prefix ($(du -sh "$prefix" | cut -f1))"
}

# Python (torch) runs with the machine's own libraries: the prefix's (zlib, OpenSSL, ...) stay out of it.
py() { LD_LIBRARY_PATH=$sys_ld_path "$python" "$@"; }

use_deps() {
  local arch=$prefix/usr/lib/x86_64-linux-gnu
  export PATH=$prefix/usr/bin:$PATH
  export LD_LIBRARY_PATH=$arch:$arch/openmpi/lib:$arch/hdf5/serial:$prefix/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export PKG_CONFIG_PATH=$arch/pkgconfig:$prefix/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
  # Open MPI relocated: its wrappers, plugins (mca_*.so) and help files come from the prefix; PMIx too.
  export OPAL_PREFIX=$prefix/usr
  export PMIX_INSTALL_PREFIX=$arch/pmix2  # Debian's PMIx lives in its own prefix
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  # One node, no ssh there: the launcher's remote agent is never started, but it must exist.
  export OMPI_MCA_plm_rsh_agent=${OMPI_MCA_plm_rsh_agent:-/bin/false}
  export OMPI_MCA_btl_vader_single_copy_mechanism=none
  export OMPI_MCA_rmaps_base_oversubscribe=1
}

configure() {
  local torch_cmake cuda_args=()
  torch_cmake=$(py -c 'import torch; print(torch.utils.cmake_prefix_path)') || return 1
  [[ -d /usr/local/cuda ]] && cuda_args=(-DCUDAToolkit_ROOT=/usr/local/cuda)
  local gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
  # Start clean: a cache from another machine's paths would be reused silently.
  rm -rf "$build/CMakeCache.txt" "$build/CMakeFiles"
  cmake -S "$repo" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$torch_cmake;$prefix/usr" "${cuda_args[@]}" -DTORCH_CUDA_ARCH_LIST=9.0 \
    -DMPI_C_COMPILER="$prefix/usr/bin/mpicc" -DMPI_CXX_COMPILER="$prefix/usr/bin/mpicxx" \
    -DMPIEXEC_EXECUTABLE="$prefix/usr/bin/mpiexec" \
    -DHDF5_C_COMPILER_EXECUTABLE="$prefix/no-h5cc" -DHDF5_NO_FIND_PACKAGE_CONFIG_FILE=ON \
    -DPKG_CONFIG_EXECUTABLE="$(command -v pkg-config)" || return 1
  # Which copy of each dependency CMake took (the prefix, or the machine's own).
  grep -E '^(Torch_DIR|Boost_DIR|GTest_DIR|nlohmann_json_DIR|HDF5_C_INCLUDE_DIR|HDF5_C_LIBRARY_hdf5|HDF5_hdf5_LIBRARY_RELEASE|MPI_C_HEADER_DIR|MPI_mpi_LIBRARY|MPIEXEC_EXECUTABLE|ZLIB_INCLUDE_DIR|PNG_PNG_INCLUDE_DIR|JPEG_INCLUDE_DIR|NCCL_LIBRARY|PKG_CONFIG_EXECUTABLE)[:=]' "$build/CMakeCache.txt"
  grep -E '^(WEBP|LMDB)_(INCLUDEDIR|LIBDIR|LINK_LIBRARIES):' "$build/CMakeCache.txt"
}

build_all() {
  local targets=()
  for t in ${GANTRY_GPU_CHECK_TARGETS:-}; do targets+=(--target "$t"); done
  cmake --build "$build" -j "$(nproc)" "${targets[@]}"
}
build_bench() { cmake --build "$build" -j "$(nproc)" --target dcgan_step_bench; }

# The runtime libraries of the two programs the check runs, and where they come from.
check_libs() {
  local exe missing=0
  for exe in "$build/gantry" "$build/dcgan_step_bench"; do
    [[ -x $exe ]] || continue
    echo "$exe:"
    ldd "$exe" | grep -E 'hdf5|boost|mpi|png|jpeg|webp|lmdb|torch\.|torch_cuda|nccl|not found' | sed 's/^/  /'
    ldd "$exe" | grep -q 'not found' && missing=1
  done
  return $missing
}

# Two ranks through the relocated Open MPI (wrapper compiler, launcher, plugins and help files from the
# prefix): a ten-line MPI program, then gantry doctor where gantry was built.
mpi_doctor() {
  cat >"$build/mpi_hello.c" <<'EOF'
#include <mpi.h>
#include <stdio.h>
int main(int argc, char** argv) {
  int rank, size, sum = 0, one = 1;
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  printf("rank %d of %d: allreduce %d\n", rank, size, sum);
  MPI_Finalize();
  return sum == size ? 0 : 1;
}
EOF
  mpicc "$build/mpi_hello.c" -o "$build/mpi_hello" && mpiexec -n 2 "$build/mpi_hello" || return 1
  [[ ! -x $build/gantry ]] || mpiexec -n 2 "$build/gantry" doctor
}

cuda_tests() {
  (cd "$build" && ctest -L cuda --output-on-failure --timeout 240 -j 2 2>&1 | tee "$out/ctest_cuda.txt"
   exit "${PIPESTATUS[0]}") || return 1
  grep -q "No tests were found" "$out/ctest_cuda.txt" && { echo "no test carries the label cuda"; return 1; }
  return 0
}

# bf16 matrix-product rate of this GPU through torch (8192^3; 512^3 with --quick), TFLOP/s.
matmul_rate() {
  local n=8192; ((quick)) && n=512
  { py - "$device" "$n" <<'EOF'
import sys, time, torch
device, n = sys.argv[1], int(sys.argv[2])
a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
for _ in range(3):
    c = a @ b
sync()
reps = 10 if device == "cuda" else 2
t0 = time.perf_counter()
for _ in range(reps):
    c = a @ b
sync()
s = (time.perf_counter() - t0) / reps
assert torch.isfinite(c).all()
print(f"matmul bf16 {n}^3 on {device}: {s * 1e3:.3f} ms, {2 * n ** 3 / s / 1e12:.6f} TFLOP/s")
EOF
  } >"$out/matmul.txt"
  local rc=$?
  cat "$out/matmul.txt"
  return $rc
}

# Alternating C++ and PyTorch runs per (batch, precision); each prints one line with images/s.
benchmarks() {
  local batches="128 512" steps=50 threads=1 b p f rc=0
  ((quick)) && batches="2 4" steps=2
  [[ $device == cpu ]] && threads=$(nproc)
  : >"$out/bench_lines.txt"
  for b in $batches; do
    for p in fp32 bf16; do
      for f in $formats; do
        if [[ -x $build/dcgan_step_bench ]]; then
          "$build/dcgan_step_bench" 64 "$b" "$threads" "$steps" "$device" "$p" "$f" | tee -a "$out/bench_lines.txt" || rc=1
        else echo "C++    dcgan 64x64 batch $b $device $p $f not built" | tee -a "$out/bench_lines.txt"; rc=1; fi
        py "$repo/experiments/benchmarks/dcgan_step.py" 64 "$b" "$threads" "$steps" "$device" "$p" "$f" |
          tee -a "$out/bench_lines.txt" || rc=1
      done
    done
  done
  return $rc
}

# One markdown table from bench_lines.txt and the matmul line.
write_table() {
  local gflop rate
  gflop=$({ py "$repo/experiments/benchmarks/dcgan_flops.py" 64 || python3 "$repo/experiments/benchmarks/dcgan_flops.py" 64; } | sed -E 's/.*\(([0-9.]+) GFLOP\).*/\1/')
  rate=$(sed -nE 's/^matmul bf16 .*: ([0-9.]+) TFLOP\/s$/\1/p' "$out/matmul.txt" 2>/dev/null | tail -n 1)
  {
    echo "## DCGAN 64x64 on $device: gantry C++ vs PyTorch eager ($(date -u '+%F'))"
    echo
    echo "$machine_line"
    echo
    echo "Model FLOPs per image per step: ${gflop} GFLOP (dcgan_flops.py). bf16 matmul rate measured in this call: ${rate:-n/a} TFLOP/s."
    echo
    echo "| batch | precision (layout) | C++ images/s | PyTorch images/s | C++ / PyTorch | C++ MFU | PyTorch MFU |"
    echo "|---|---|---|---|---|---|---|"
    awk -v gflop="$gflop" -v rate="${rate:-0}" '
      function ips(line) { if (match(line, /[0-9.]+ images\/s/)) return substr(line, RSTART, RLENGTH - 9) + 0; return 0 }
      function mfu(x) { return rate > 0 && x > 0 ? sprintf("%.1f%%", 100 * x * gflop / 1000 / rate) : "n/a" }
      function fmt(x) { return x > 0 ? sprintf("%.1f", x) : "failed" }
      { split($0, w, " "); }
      /^(C\+\+|Python) +dcgan / { key = w[5] " " w[7] (w[8] == "contiguous" ? "" : " " w[8]); if (!(key in seen)) { seen[key] = 1; order[++n] = key } }
      /^C\+\+ +dcgan / { c[key] = ips($0) }
      /^Python +dcgan / { p[key] = ips($0) }
      END { for (i = 1; i <= n; i++) { k = order[i]; split(k, kb, " ");
              if (kb[3] != "") kb[2] = kb[2] " (" kb[3] ")"
              printf "| %s | %s | %s | %s | %s | %s | %s |\n", kb[1], kb[2], fmt(c[k]), fmt(p[k]),
                (c[k] > 0 && p[k] > 0) ? sprintf("%.2f", c[k] / p[k]) : "n/a", mfu(c[k]), mfu(p[k]) } }
    ' "$out/bench_lines.txt"
  } >"$table"
  cat "$table"
}

echo "gantry GPU check: device $device, quick $quick, build $build, prefix $prefix, budget ${budget}s"
machine_line=$(machine 2>&1 | paste -sd ';' | sed 's/;/; /g')
echo "$machine_line"
export repo deps prefix build out python device quick formats sys_ld_path
export -f py mpi_doctor unpack_deps configure build_all build_bench check_libs cuda_tests matmul_rate benchmarks
configured=0 built=0
if ((!skip_build)); then
  stage "unpack dependencies" 90 unpack_deps && use_deps
  stage "configure" 120 configure && configured=1
fi
if ((configured)); then
  stage "build" "${GANTRY_GPU_CHECK_BUILD_S:-330}" build_all && built=1
  ((built)) || stage "build dcgan_step_bench alone" 120 build_bench
  stage "runtime libraries" 20 check_libs
  stage "Open MPI from the prefix: mpicc, mpiexec -n 2 (+ gantry doctor)" 90 mpi_doctor
fi
if ((built && !quick)) && [[ $device == cuda ]]; then
  stage "CUDA tests (ctest -L cuda)" 150 cuda_tests
fi
stage "bf16 matmul rate" 60 matmul_rate
stage "DCGAN benchmarks" 240 benchmarks
write_table
echo
echo "=== summary ($(($(date +%s) - t_start))s)"
printf '  %s\n' "${summary[@]}"
printf '%s\n' "${summary[@]}" | grep -qvE ': ok ' && exit 1
exit 0
