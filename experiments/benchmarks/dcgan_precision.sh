#!/usr/bin/env bash
# The DCGAN training step in fp32 / bf16 autocast × contiguous / channels-last, in Python PyTorch
# (dcgan_step.py) on each LibTorch the project builds against: Debian's 1.13 (/usr/bin/python3) and PyPI's
# 2.x (the venv). The four variants run round-robin, ROUNDS times, so machine load hits them alike; medians
# and bests, speed relative to fp32 contiguous. The C++ side: dcgan_precision_bench (same variants).
#   dcgan_precision.sh [RESOLUTION BATCH THREADS STEPS ROUNDS]   (default 32 16 1 3 5)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
res=${1:-32} batch=${2:-16} threads=${3:-1} steps=${4:-3} rounds=${5:-5}
venv=${GANTRY_VENV:-/work/cache/venv-test}
ms() { sed -E 's/.*: ([0-9.]+) ms.*/\1/'; }
stats() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {printf "%.1f %.1f", v[int((NR+1)/2)], v[1]}'; }
for py in /usr/bin/python3 "$venv/bin/python"; do
  ver=$(OMP_NUM_THREADS=$threads "$py" -c 'import torch; print(torch.__version__)')
  declare -A t=()
  for r in $(seq "$rounds"); do
    for v in "fp32 contiguous" "fp32 channels_last" "bf16 contiguous" "bf16 channels_last"; do
      t[$v]+="$(OMP_NUM_THREADS=$threads "$py" "$here/dcgan_step.py" "$res" "$batch" "$threads" "$steps" $v | ms) "
    done
  done
  read -r base _ <<<"$(stats ${t[fp32 contiguous]})"
  for v in "fp32 contiguous" "fp32 channels_last" "bf16 contiguous" "bf16 channels_last"; do
    read -r med best <<<"$(stats ${t[$v]})"
    awk -v ver="$ver" -v v="$v" -v m="$med" -v b="$best" -v base="$base" -v cfg="$res $batch $threads" \
      'BEGIN { printf "=> torch %s dcgan %s %-20s median %.1f best %.1f ms/step, speed %.2fx fp32 contiguous\n", ver, cfg, v, m, b, base / m }'
  done
  unset t
done
