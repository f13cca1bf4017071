#!/usr/bin/env bash
# User-space instructions per training step, counted with callgrind (deterministic: no timing noise, so
# it can run on a busy machine): each side runs N1 and N2 steps; (I(N2) - I(N1)) / (N2 - N1) is the cost
# of one step with start-up, imports and warm-up cancelled out. Python's start-up is made repeatable with
# PYTHONHASHSEED=0 (with random string hashing, the import's count changes from run to run: 5 and 55
# steps once gave 0.5 M instructions per step), and the default N2 makes the steps dominate what is left.
#   bash experiments/benchmarks/step_instructions.sh fgan1d|vae [N1=5] [N2=205] [SIDE...]
# SIDE: a recipe_step_bench binary (C++) or a python interpreter (runs fgan1d_step.py / vae_step.py);
# default: build/recipe_step_bench and /usr/bin/python3.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
model=${1:?fgan1d or vae}
n1=${2:-5}
n2=${3:-205}
shift $(($# < 3 ? $# : 3))
sides=("$@")
((${#sides[@]})) || sides=("${GANTRY_BUILD_DIR:-$here/build}/recipe_step_bench" /usr/bin/python3)
export OMP_NUM_THREADS=1 PYTHONHASHSEED=0
count() {  # side steps -> instructions
  local side=$1 steps=$2 out
  out=$(mktemp)
  local cmd=("$side" "$model" "$steps" 1)
  if [[ $side == *python* ]]; then
    if [[ $model == fgan1d ]]; then cmd=("$side" "$here/experiments/benchmarks/fgan1d_step.py" "$steps" 1)
    else cmd=("$side" "$here/experiments/benchmarks/vae_step.py" mlp 128 1 "$steps"); fi
  fi
  valgrind --tool=callgrind --callgrind-out-file="$out" "${cmd[@]}" >/dev/null 2>&1
  callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }'
  rm -f "$out"
}
for side in "${sides[@]}"; do
  a=$(count "$side" "$n1")
  b=$(count "$side" "$n2")
  # fgan1d_step.py and recipe_step_bench time 5 blocks of STEPS/5 steps (STEPS >= 5)
  awk -v a="$a" -v b="$b" -v n1="$n1" -v n2="$n2" -v side="$side" -v model="$model" \
    'BEGIN { printf "%s %s: %.2f M instructions/step\n", model, side, (b - a) / (n2 - n1) / 1e6 }'
done
