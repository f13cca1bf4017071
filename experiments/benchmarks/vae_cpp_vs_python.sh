#!/usr/bin/env bash
# The C++ VAE training step vs the same model and optimizer in Python PyTorch (Debian's python3-torch,
# the same LibTorch version), same threads and batch. Each side runs three times, alternating, in one
# go; the medians are compared.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bench=${GANTRY_BUILD_DIR:-$here/build}/vae_step_bench
py=/usr/bin/python3
ms() { sed -E 's/.*: ([0-9.]+) ms.*/\1/'; }
median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
for cfg in "mlp 128 1 600" "conv 64 1 150" "mlp 128 2 600"; do
  set -- $cfg
  c=(); p=()
  for i in 1 2 3; do
    c+=("$(OMP_NUM_THREADS=$3 "$bench" "$@" | tee /dev/stderr | ms)")
    p+=("$(OMP_NUM_THREADS=$3 "$py" "$here/experiments/benchmarks/vae_step.py" "$@" | tee /dev/stderr | ms)")
  done
  cm=$(median3 "${c[@]}"); pm=$(median3 "${p[@]}")
  awk -v c="$cm" -v p="$pm" -v cfg="$cfg" 'BEGIN { printf "=> %s: C++ %.3f ms, Python %.3f ms per step (medians of 3): Python/C++ = %.2f (C++ %s)\n", cfg, c, p, p / c, (c <= p ? "not slower" : "SLOWER") }'
done
