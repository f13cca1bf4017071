#!/usr/bin/env bash
# Messages per rank per collective of the MPI control plane, counted by Open MPI's monitoring component
# (pml_monitoring_enable 2: point-to-point and collective-internal messages, per sender and receiver):
# control_plane_bench --only VARIANT run for 0 and N iterations, the difference divided by N.
# Prints, per variant, the most any rank sent and received per collective; the control plane alone is
# the variant minus bare. Exits 1 if the new control plane sends or receives more than
# 2 ceil(log2 W) + 2 messages on any rank (the O(log W) claim; the old all-to-all: W - 1 each way).
#   experiments/benchmarks/control_plane_count.sh W [BENCH]        (ctest: control_plane_messages.npW)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
w=${1:?usage: control_plane_count.sh NRANKS [control_plane_bench]}
bench=${2:-${GANTRY_BUILD_DIR:-$here/build}/control_plane_bench}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
n=100
# "max_sent max_received" over ranks, for one run
count() {
  mpirun --oversubscribe --bind-to none --mca mpi_yield_when_idle 1 --mca pml_monitoring_enable 2 \
    --mca pml_monitoring_enable_output 1 -n "$w" "$bench" --only "$1" --iters "$2" 2>&1 |
    awk -F'\t' '/^[EI]\t/ { split($5, m, " "); sent[$2] += m[1]; recv[$3] += m[1] }
      END { s = 0; r = 0; for (k in sent) if (sent[k] > s) s = sent[k]; for (k in recv) if (recv[k] > r) r = recv[k];
            print s, r }'
}
declare -A per
for v in bare old new; do
  read -r s0 r0 < <(count "$v" 0)
  read -r s1 r1 < <(count "$v" "$n")
  per[$v]=$(awk -v a="$s0" -v b="$s1" -v c="$r0" -v d="$r1" -v n="$n" 'BEGIN { printf "%.2f %.2f", (b - a) / n, (d - c) / n }')
done
read -r bs br <<< "${per[bare]}"; read -r os or <<< "${per[old]}"; read -r ns nr <<< "${per[new]}"
bound=$(awk -v w="$w" 'BEGIN { l = log(w) / log(2); c = int(l); if (c < l) c++; print 2 * c + 2 }')
awk -v w="$w" -v bs="$bs" -v br="$br" -v os="$os" -v or="$or" -v ns="$ns" -v nr="$nr" -v bound="$bound" 'BEGIN {
  printf "W=%-3d messages per collective, most on one rank (sent/received): bare allreduce %.1f/%.1f | old + allreduce %.1f/%.1f | new + allreduce %.1f/%.1f\n", w, bs, br, os, or, ns, nr
  printf "      control plane alone: old %.1f/%.1f (W-1 = %d) | new %.1f/%.1f (bound 2 ceil(log2 W) + 2 = %d)\n", os - bs, or - br, w - 1, ns - bs, nr - br, bound
  exit !((ns - bs) <= bound && (nr - br) <= bound && ns > bs)
}'
