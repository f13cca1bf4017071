#!/usr/bin/env bash
# Control-plane overhead per collective for W = 2, 4, 8, 16, 32 ranks on this machine (oversubscribed,
# ranks yield when idle): old all-to-all rendezvous vs the O(log W) control plane vs a bare 8-byte
# MPI_Allreduce (timing), then the messages each sends and receives per rank (Open MPI's monitoring
# component: control_plane_count.sh). Usage: experiments/benchmarks/control_plane.sh [W...]   (GANTRY_BUILD_DIR: ./build)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bench=${GANTRY_BUILD_DIR:-$here/build}/control_plane_bench
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
worlds=("$@")
[ ${#worlds[@]} -gt 0 ] || worlds=(2 4 8 16 32)
lscpu | grep 'Model name' | sed 's/^ */machine: /'
echo "cores: $(nproc --all), load average: $(cut -d" " -f1-3 /proc/loadavg)"
for w in "${worlds[@]}"; do
  # Fewer iterations as W grows: oversubscribed, each collective takes about W times longer.
  iters=$(( 4000 / (w * w) + 20 ))
  mpirun --oversubscribe --bind-to none --mca mpi_yield_when_idle 1 -n "$w" "$bench" --iters "$iters" --rounds 9
done
for w in "${worlds[@]}"; do
  "$here/experiments/benchmarks/control_plane_count.sh" "$w" "$bench"
done
