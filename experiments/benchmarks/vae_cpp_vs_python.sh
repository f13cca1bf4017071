#!/usr/bin/env bash
# The C++ VAE training step vs the same model and optimizer in Python PyTorch (Debian's python3-torch,
# the same LibTorch version), same threads and batch, run alternately in one go; prints the ratio.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bench=${GANTRY_BUILD_DIR:-$here/build}/vae_step_bench
py=/usr/bin/python3
for cfg in "mlp 128 1 400" "conv 64 1 100" "mlp 128 2 400"; do
  set -- $cfg
  c=$(OMP_NUM_THREADS=$3 "$bench" "$@"); p=$(OMP_NUM_THREADS=$3 "$py" "$here/experiments/benchmarks/vae_step.py" "$@")
  echo "$c"; echo "$p"
  cms=$(echo "$c" | sed -E 's/.*: ([0-9.]+) ms.*/\1/'); pms=$(echo "$p" | sed -E 's/.*: ([0-9.]+) ms.*/\1/')
  awk -v c="$cms" -v p="$pms" 'BEGIN { printf "  => Python time / C++ time = %.2f (C++ %s)\n", p / c, (c <= p * 1.02 ? "not slower" : "SLOWER") }'
done
