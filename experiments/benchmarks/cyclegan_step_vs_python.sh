#!/usr/bin/env bash
# CycleGAN's training step in C++ (cyclegan_step_bench: gantry's recipe, StepContext, GradSync, FusedAdam,
# world of one) vs the same model, losses, pools and optimizers in Python PyTorch (cyclegan_step.py), same
# threads and batch: C++ and Python on LibTorch 1.13 and, where built, 2.x (compare_sides.sh). ROUNDS
# alternating rounds (default 3); median and best ms/step per side. Every run checks its last losses are
# finite; C++ 1.13 and Python 1.13 must print the same first-step losses (same networks, initialisation and
# losses), which this script checks.
#   bash experiments/benchmarks/cyclegan_step_vs_python.sh [RESOLUTION=256 BATCH=1 THREADS=1 STEPS=5 WIDTH=64]
# The defaults are the paper's horse2zebra step (256x256, batch 1, 9 residual blocks, 64 channels).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bench=${GANTRY_BUILD_DIR:-$here/build}/cyclegan_step_bench
bench2=${GANTRY_PYPI_BUILD_DIR:-$here/build-pypi}/cyclegan_step_bench
step_py=$here/experiments/benchmarks/cyclegan_step.py
args=("${1:-256}" "${2:-1}" "${3:-1}" "${4:-5}" "${5:-64}")
[[ -x $bench ]] || { echo "cyclegan_step_vs_python: $bench missing (cmake --build build --target cyclegan_step_bench)" >&2; exit 2; }
source "$here/experiments/benchmarks/compare_sides.sh"
check() { sed -E 's/.*\((first loss [^)]*)\).*/\1/'; }
set_sides "$bench" "$bench2" "$step_py"
ROUNDS=${ROUNDS:-3} compare_sides "cyclegan ${args[*]} (resolution batch threads steps width)" "${args[2]}" "${args[@]}"
