#!/usr/bin/env bash
# The DCGAN 64x64 training step in C++ (gantry's networks) vs the same model and optimizer in Python
# PyTorch (Debian's python3-torch, the same LibTorch), same threads and batch; five alternating runs a
# side, medians and bests compared (2-thread runs on the 2-vCPU VM are bimodal, ~620 or ~880 ms, on
# both sides alike: the best is the undisturbed figure).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bench=${GANTRY_BUILD_DIR:-$here/build}/dcgan_step_bench
py=/usr/bin/python3
ms() { sed -E 's/.*: ([0-9.]+) ms.*/\1/'; }
median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }
best() { printf '%s\n' "$@" | sort -g | head -n 1; }
for cfg in "64 16 1 6" "64 16 2 6"; do
  set -- $cfg
  c=(); p=()
  for i in 1 2 3 4 5; do
    c+=("$(OMP_NUM_THREADS=$3 "$bench" "$@" | tee /dev/stderr | ms)")
    p+=("$(OMP_NUM_THREADS=$3 "$py" "$here/experiments/benchmarks/dcgan_step.py" "$@" | tee /dev/stderr | ms)")
  done
  cm=$(median "${c[@]}"); pm=$(median "${p[@]}"); cb=$(best "${c[@]}"); pb=$(best "${p[@]}")
  awk -v c="$cm" -v p="$pm" -v cb="$cb" -v pb="$pb" -v cfg="$cfg" 'BEGIN { printf "=> dcgan %s: medians of 5: C++ %.1f, Python %.1f ms/step, Python/C++ = %.2f; best: C++ %.1f, Python %.1f, Python/C++ = %.2f\n", cfg, c, p, p / c, cb, pb, pb / cb }'
done
