#!/usr/bin/env bash
# The DCGAN 64x64 training step in C++ (gantry's networks) vs the same model and optimizer in Python
# PyTorch, same threads and batch: C++ on the 1.13 build (build/), Python 1.13 (Debian's python3-torch,
# the same LibTorch), Python 2.x (PyPI's torch wheel in the venv of build-pypi/) and, where the second
# build exists, C++ on it (build-pypi/). Five alternating rounds, one run of each side per round;
# medians and bests compared (2-thread runs on the 2-vCPU VM are bimodal, ~620 or ~880 ms, on every
# side alike: the best is the undisturbed figure). Each run checks its losses are finite; same-LibTorch
# pairs (C++ 1.13 / Python 1.13) must also print the same losses, which this script checks.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bench=${GANTRY_BUILD_DIR:-$here/build}/dcgan_step_bench
bench2=${GANTRY_PYPI_BUILD_DIR:-$here/build-pypi}/dcgan_step_bench
py1=/usr/bin/python3
py2=${GANTRY_PYPI_PYTHON:-$here/build-pypi/venv/bin/python}
step_py=$here/experiments/benchmarks/dcgan_step.py
rounds=${ROUNDS:-5}
ms() { sed -E 's/.*: ([0-9.]+) ms.*/\1/'; }
losses() { sed -E 's/.*\((loss .*)\)/\1/'; }
median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }
best() { printf '%s\n' "$@" | sort -g | head -n 1; }
sides=("C++ 1.13|$bench" "Python 1.13|$py1 $step_py")
[[ -x $py2 ]] && sides+=("Python $("$py2" -c 'import torch; print(torch.__version__.split("+")[0])')|$py2 $step_py")
[[ -x $bench2 ]] && sides+=("C++ 2.x|$bench2")
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%F %T UTC')"
for cfg in "64 16 1 6" "64 16 2 6"; do
  set -- $cfg
  declare -A t=()
  for ((r = 1; r <= rounds; r++)); do
    for s in "${!sides[@]}"; do
      cmd=${sides[$s]#*|}
      line=$(OMP_NUM_THREADS=$3 $cmd "$@")
      echo "$line" >&2
      t[$s]+=" $(ms <<<"$line")"
      [[ $s == 0 ]] && l0=$(losses <<<"$line")
      if [[ $s == 1 && $(losses <<<"$line") != "$l0" ]]; then
        echo "dcgan_cpp_vs_python.sh: C++ 1.13 and Python 1.13 differ ($l0 vs $(losses <<<"$line"))" >&2
        exit 1
      fi
    done
  done
  c_med=$(median ${t[0]}); c_best=$(best ${t[0]})
  row="=> dcgan $cfg (ms/step, median / best of $rounds):"
  for s in "${!sides[@]}"; do
    m=$(median ${t[$s]}); b=$(best ${t[$s]})
    row+=$(awk -v n="${sides[$s]%%|*}" -v m="$m" -v b="$b" -v cm="$c_med" -v cb="$c_best" \
      'BEGIN { printf " %s %.1f / %.1f (x%.2f / x%.2f of C++ 1.13);", n, m, b, m / cm, b / cb }')
  done
  echo "$row"
  unset t
done
