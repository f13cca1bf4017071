#!/usr/bin/env bash
# Loader throughput vs the raw sequential read rate of the same shard files (page cache), in one run,
# and peak RSS for a 20,000 and a 200,000 image dataset (64x64x3, shuffling on).
#   experiments/benchmarks/loader_bench.sh [WORKDIR]      (needs ~2.7 GB of disk; default /tmp/gantry-loader-bench)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
gantry=${GANTRY:-$here/build/gantry}
work=${1:-/tmp/gantry-loader-bench}
mkdir -p "$work"
for n in 20000 200000; do
  [ -f "$work/s$n/manifest.json" ] || "$gantry" data convert --format synthetic --count $n --resolution 64 --out "$work/s$n" --quiet
done
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for n in 20000 200000; do
  for mode in float uint8; do
    for prefetch in 4 8; do
      echo "== $n images, 64x64x3, shuffle on, workers 2, batch 256, prefetch $prefetch, $mode output"
      flag=(); [ "$mode" = uint8 ] && flag=(--uint8)
      "$gantry" data bench "$work/s$n" --raw --workers 2 --prefetch $prefetch --batch 256 --steps 3000 --seconds 30 "${flag[@]}"
    done
  done
done
