#!/usr/bin/env bash
# launch/test.sh — set up this machine (packages + build) and run the whole test suite (CTest).
# Extra arguments go to ctest, e.g. launch/test.sh -R Sampler
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$here/launch/setup.sh"
cd "${GANTRY_BUILD_DIR:-$here/build}"
ctest --output-on-failure -j "$(nproc)" "$@"
