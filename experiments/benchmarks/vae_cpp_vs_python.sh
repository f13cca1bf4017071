#!/usr/bin/env bash
# The VAE training step in C++ (vae_step_bench: gantry's networks, torch::optim::Adam) vs the same model
# and optimizer in Python PyTorch (vae_step.py), same threads and batch: C++ on the 1.13 build (build/),
# Python 1.13 (Debian's python3-torch, the same LibTorch), Python 2.x (PyPI's torch wheel in the venv of
# build-pypi/) and, where the second build exists, C++ on it (build-pypi/). ROUNDS alternating rounds
# (default 3), one run of each side per round; per side the median ms/step and its ratio to C++ 1.13.
# (The whole recipe step — StepContext, GradSync, FusedAdam — against Python is recipe_step_vs_python.sh.)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bench=${GANTRY_BUILD_DIR:-$here/build}/vae_step_bench
bench2=${GANTRY_PYPI_BUILD_DIR:-$here/build-pypi}/vae_step_bench
py1=/usr/bin/python3
py2=${GANTRY_PYPI_PYTHON:-$here/build-pypi/venv/bin/python}
step_py=$here/experiments/benchmarks/vae_step.py
rounds=${ROUNDS:-3}
ms() { sed -E 's/.*: ([0-9.]+) ms.*/\1/'; }
median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }
sides=("C++ 1.13|$bench" "Python 1.13|$py1 $step_py")
[[ -x $py2 ]] && sides+=("Python $("$py2" -c 'import torch; print(torch.__version__.split("+")[0])')|$py2 $step_py")
[[ -x $bench2 ]] && sides+=("C++ 2.x|$bench2")
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%F %T UTC')"
for cfg in "mlp 128 1 600" "conv 64 1 150" "mlp 128 2 600"; do
  set -- $cfg
  declare -A t=()
  for ((r = 1; r <= rounds; r++)); do
    for s in "${!sides[@]}"; do
      line=$(OMP_NUM_THREADS=$3 ${sides[$s]#*|} "$@")
      echo "$line" >&2
      t[$s]+=" $(ms <<<"$line")"
    done
  done
  c=$(median ${t[0]})
  row="=> vae $cfg (ms/step, median of $rounds):"
  for s in "${!sides[@]}"; do
    row+=$(awk -v n="${sides[$s]%%|*}" -v m="$(median ${t[$s]})" -v c="$c" \
      'BEGIN { printf " %s %.3f (x%.2f of C++ 1.13);", n, m, m / c }')
  done
  echo "$row"
  unset t
done
