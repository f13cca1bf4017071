#!/usr/bin/env bash
# The PixelCNN training step and sampler in C++ (pixelcnn_step_bench: the recipe, StepContext, GradSync,
# FusedAdam, world of one) vs the same networks, optimizer, batch and windowed sampler in Python PyTorch
# (pixelcnn_step.py), same threads. Sides: C++ 1.13 (build/), Python 1.13 (/usr/bin/python3, Debian's
# python3-torch: the same LibTorch), Python 2.x (the venv of build-pypi/) and C++ 2.x (build-pypi/) where
# they exist. ROUNDS rounds (default 5), the order of the sides rotating each round; per side the median
# and best ms/step and the median sampling seconds per image. Same-LibTorch pairs (C++ 1.13 / Python
# 1.13) start from the same weights and batch: their losses must agree (checked, to 1e-3 bits/dim).
#   bash experiments/benchmarks/pixelcnn_step_vs_python.sh
#   CONFIGS="residual 1 8 2 8 16 8 10 1 2" ROUNDS=1 bash ...   # one tiny configuration, once
# A configuration is "ARCH C HW LAYERS HIDDEN OUT_HIDDEN BATCH STEPS THREADS SAMPLES" (pixelcnn_step.py).
# The defaults: experiments/pixelcnn_fashion_mnist.ini's residual net at one rank's batch, its gated
# variant, and a colour 32x32 net of the CIFAR INI's shape at a fifth of its width (the full one is a
# GPU model: minutes per step on this CPU).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bench=${GANTRY_BUILD_DIR:-$here/build}/pixelcnn_step_bench
bench2=${GANTRY_PYPI_BUILD_DIR:-$here/build-pypi}/pixelcnn_step_bench
py1=/usr/bin/python3
py2=${GANTRY_PYPI_PYTHON:-$here/build-pypi/venv/bin/python}
step_py=$here/experiments/benchmarks/pixelcnn_step.py
rounds=${ROUNDS:-5}
[[ -x $bench ]] || { echo "pixelcnn_step_vs_python: $bench missing (cmake --build build --target pixelcnn_step_bench)" >&2; exit 2; }
if [[ -n ${CONFIGS:-} ]]; then
  mapfile -t configs <<<"$CONFIGS"
else
  configs=("residual 1 28 5 32 128 32 20 1 4" "gated 1 28 5 32 128 32 20 1 4" "residual 3 32 15 24 192 16 5 1 1")
fi
field() { sed -E "s/.*$1 ([0-9.]+).*/\1/"; }  # the number after a word
median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }
best() { printf '%s\n' "$@" | sort -g | head -n 1; }
sides=("C++ 1.13|$bench" "Python 1.13|$py1 $step_py")
[[ -x $py2 ]] && sides+=("Python $("$py2" -c 'import torch; print(torch.__version__.split("+")[0])')|$py2 $step_py")
[[ -x $bench2 ]] && sides+=("C++ 2.x|$bench2")
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%F %T UTC')"
for cfg in "${configs[@]}"; do
  set -- $cfg
  threads=${9}
  declare -A t=() s=()
  n=${#sides[@]}
  for ((r = 0; r < rounds; r++)); do
    for ((k = 0; k < n; k++)); do
      i=$(((k + r) % n))
      line=$(OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads ${sides[$i]#*|} "$@")
      echo "  [${sides[$i]%%|*}] $line" >&2
      grep -q 'loss [0-9]' <<<"$line" || { echo "pixelcnn_step_vs_python: no finite loss: $line" >&2; exit 1; }
      t[$i]+=" $(sed -E 's/.*: ([0-9.]+) ms\/step.*/\1/' <<<"$line")"
      s[$i]+=" $(field sampling <<<"$line")"
      loss[$i]=$(sed -E 's/.*\(loss ([0-9.]+)\)/\1/' <<<"$line")
    done
    if ! awk -v a="${loss[0]}" -v b="${loss[1]}" 'BEGIN { d = a - b; exit !(d < 1e-3 && d > -1e-3) }'; then
      echo "pixelcnn_step_vs_python: C++ 1.13 and Python 1.13 losses differ (${loss[0]} vs ${loss[1]})" >&2
      exit 1
    fi
  done
  row="=> pixelcnn $cfg (ms/step median / best of $rounds; sampling s/image):"
  c_med=$(median ${t[0]})
  for ((i = 0; i < n; i++)); do
    row+=$(awk -v name="${sides[$i]%%|*}" -v m="$(median ${t[$i]})" -v b="$(best ${t[$i]})" -v cm="$c_med" \
      -v smp="$(median ${s[$i]})" 'BEGIN { printf " %s %.1f / %.1f (x%.2f of C++ 1.13), %.3f s/image;", name, m, b, m / cm, smp }')
  done
  echo "$row"
  unset t s loss
done
