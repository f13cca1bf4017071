#!/usr/bin/env bash
# gantry's training step (recipe_step_bench: the recipe, StepContext, GradSync, FusedAdam, world of one)
# against the same model in Python PyTorch, one thread, side by side in one run: the f-GAN 1-D step
# (fgan1d_step.py, batch 1024) and the MLP VAE step (vae_step.py, batch 128). Columns:
#   C++ 1.13   build/recipe_step_bench            Debian's LibTorch 1.13
#   Py 1.13    /usr/bin/python3                   Debian's python3-torch 1.13 (the same LibTorch)
#   C++ 2.x    build-pypi/recipe_step_bench       LibTorch from the PyPI wheel (skipped if not built)
#   Py 2.x     ${GANTRY_PYPI_PYTHON:-build-pypi/venv/bin/python}   that wheel's Python torch
# ROUNDS rounds (default 5), the order of the sides rotating each round; per side the median ms/step
# over rounds, the spread (min..max), and user / system CPU ms per step (from getrusage).
#   bash experiments/benchmarks/recipe_step_vs_python.sh [ROUNDS] [FGAN_STEPS] [VAE_STEPS]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
rounds=${1:-5}
fgan_steps=${2:-2000}
vae_steps=${3:-500}
cpp113=${GANTRY_BUILD_DIR:-$here/build}/recipe_step_bench
cpp2=${GANTRY_PYPI_BUILD_DIR:-$here/build-pypi}/recipe_step_bench
py113=/usr/bin/python3
py2=${GANTRY_PYPI_PYTHON:-$here/build-pypi/venv/bin/python}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
[[ -x $cpp113 ]] || { echo "recipe_step_vs_python: $cpp113 missing (cmake --build build --target recipe_step_bench)" >&2; exit 2; }
sides=("C++ 1.13" "Py 1.13")
[[ -x $py2 ]] && sides+=("Py 2.x")
[[ -x $cpp2 ]] && sides+=("C++ 2.x")

run_side() {  # side model steps -> one result line
  local side=$1 model=$2 steps=$3
  case "$side" in
    "C++ 1.13") "$cpp113" "$model" "$steps" 1 ;;
    "C++ 2.x") "$cpp2" "$model" "$steps" 1 ;;
    "Py 1.13" | "Py 2.x")
      local py=$py113
      [[ $side == "Py 2.x" ]] && py=$py2
      if [[ $model == fgan1d ]]; then
        "$py" "$here/experiments/benchmarks/fgan1d_step.py" "$steps" 1
      else
        "$py" "$here/experiments/benchmarks/vae_step.py" mlp 128 1 "$steps"
      fi ;;
  esac
}

for cfg in "fgan1d $fgan_steps" "vae $vae_steps"; do
  set -- $cfg
  model=$1 steps=$2
  out=$(mktemp)
  for ((r = 0; r < rounds; r++)); do
    n=${#sides[@]}
    for ((k = 0; k < n; k++)); do
      side=${sides[$(((k + r) % n))]}
      line=$(run_side "$side" "$model" "$steps")
      echo "  [$side] $line" >&2
      # ms/step, user s, sys s
      echo "$side|$(sed -E 's/.*: ([0-9.]+) ms\/step.*user ([0-9.]+) s, sys ([0-9.]+) s.*/\1 \2 \3/' <<<"$line")" >>"$out"
    done
  done
  echo "== $model, $rounds rounds x $steps steps, 1 thread (median ms/step [min..max]; CPU ms/step user+sys)"
  for side in "${sides[@]}"; do
    grep -F "$side|" "$out" | cut -d'|' -f2 | sort -g | awk -v side="$side" -v steps="$steps" '
      { ms[NR] = $1; u += $2; s += $3 }
      END { m = (NR % 2) ? ms[(NR + 1) / 2] : (ms[NR / 2] + ms[NR / 2 + 1]) / 2
            printf "%-9s %8.3f ms/step [%.3f..%.3f]   user %.3f + sys %.3f ms/step\n", side, m, ms[1], ms[NR],
                   1e3 * u / NR / steps, 1e3 * s / NR / steps }'
  done | tee "$out.table"
  awk '{ t[$1" "$2] = $3 } END {
         if (t["Py 1.13"] && t["C++ 1.13"]) printf "   Python 1.13 / C++ 1.13 = %.2f\n", t["Py 1.13"] / t["C++ 1.13"]
         if (t["Py 2.x"] && t["C++ 1.13"]) printf "   Python 2.x / C++ 1.13 = %.2f\n", t["Py 2.x"] / t["C++ 1.13"]
         if (t["Py 2.x"] && t["C++ 2.x"]) printf "   Python 2.x / C++ 2.x = %.2f\n", t["Py 2.x"] / t["C++ 2.x"] }' "$out.table"
  rm -f "$out" "$out.table"
done
