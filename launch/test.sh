#!/usr/bin/env bash
# launch/test.sh — set up this machine and run the whole test suite (CTest) on both builds:
#   debian: Debian's LibTorch 1.13, CPU (build/)
#   pypi:   LibTorch 2.x from PyPI's torch wheel, CUDA 13 + NCCL compiled in, run on the CPU (build-pypi/)
# GANTRY_TEST_BUILDS chooses: "debian" (the default: the lean build, about half the time), "pypi", or
# "debian pypi" (what CI runs, .ci/run). Extra arguments go to ctest, e.g.
# launch/test.sh -R Sampler. Both suites run even when the first fails; the exit status is the first failure's.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
status=0
# Both builds must compile warnings-clean: the suite's builds turn warnings into errors.
export GANTRY_CMAKE_ARGS="${GANTRY_CMAKE_ARGS:--DGANTRY_WERROR=ON}"
for build in ${GANTRY_TEST_BUILDS:-debian}; do
  case "$build" in
    debian) dir=${GANTRY_BUILD_DIR:-$here/build}; setup_args=() ;;
    pypi) dir=${GANTRY_PYPI_BUILD_DIR:-$here/build-pypi}; setup_args=(--pypi) ;;
    *) echo "test: unknown build '$build' in GANTRY_TEST_BUILDS (debian, pypi)" >&2; exit 2 ;;
  esac
  echo "== test: $build build ($dir)"
  start=$(date +%s)
  bash "$here/launch/setup.sh" "${setup_args[@]}"
  rc=$?
  if [ "$rc" != 0 ]; then
    echo "== test: $build build: setup failed (exit $rc)" >&2
    [ "$status" = 0 ] && status=$rc
    continue
  fi
  echo "== test: $build build ready in $(( $(date +%s) - start )) s"
  start=$(date +%s)
  (cd "$dir" && ctest --output-on-failure -j "$(nproc)" "$@")
  rc=$?
  echo "== test: $build suite: exit $rc in $(( $(date +%s) - start )) s"
  [ "$status" = 0 ] && status=$rc
done
exit "$status"
