#!/usr/bin/env bash
# The DCGAN 64x64 training step in C++ (gantry's networks) vs the same model and optimizer in Python
# PyTorch (Debian's python3-torch, the same LibTorch), same threads and batch; three alternating runs a
# side, medians compared.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bench=${GANTRY_BUILD_DIR:-$here/build}/dcgan_step_bench
py=/usr/bin/python3
ms() { sed -E 's/.*: ([0-9.]+) ms.*/\1/'; }
median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
for cfg in "64 16 1 6" "64 16 2 6"; do
  set -- $cfg
  c=(); p=()
  for i in 1 2 3; do
    c+=("$(OMP_NUM_THREADS=$3 "$bench" "$@" | tee /dev/stderr | ms)")
    p+=("$(OMP_NUM_THREADS=$3 "$py" "$here/experiments/benchmarks/dcgan_step.py" "$@" | tee /dev/stderr | ms)")
  done
  cm=$(median3 "${c[@]}"); pm=$(median3 "${p[@]}")
  awk -v c="$cm" -v p="$pm" -v cfg="$cfg" 'BEGIN { printf "=> dcgan %s: C++ %.1f ms, Python %.1f ms per step (medians of 3): Python/C++ = %.2f (C++ %s)\n", cfg, c, p, p / c, (c <= p ? "not slower" : "SLOWER") }'
done
