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
step_py=$here/experiments/benchmarks/dcgan_step.py
source "$here/experiments/benchmarks/compare_sides.sh"
check() { sed -E 's/.*\((loss .*)\)/\1/'; }
set_sides "$bench" "$bench2" "$step_py"
for cfg in "64 16 1 6" "64 16 2 6"; do
  set -- $cfg
  compare_sides "dcgan $cfg" "$3" "$@"
done
