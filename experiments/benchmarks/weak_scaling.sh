#!/usr/bin/env bash
# Weak scaling on this machine: conv VAE on 32x32 Fashion-MNIST, the same per-rank batch, 1 thread per
# rank: 2 ranks vs 1 rank, run one after the other; per-rank throughput ratio (target >= 90%).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
gantry=${GANTRY_BUILD_DIR:-$here/build}/gantry
work=${1:-/tmp/gantry-weak-scaling}
mkdir -p "$work"
[ -f "$work/fm32/manifest.json" ] || "$gantry" data convert --quiet --format idx --resolution 32 \
  --images /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz --out "$work/fm32"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
per_rank=64
common="--config $here/experiments/vae_fashion_mnist.ini --data.path $work/fm32 --data.eval_path= --vae.arch conv --vae.likelihood bernoulli
  --vae.hidden 32 --train.threads 1 --data.workers 1 --train.steps 400 --train.log_every 50 --train.sample_every 0
  --train.checkpoint_every 100000 --resume none"
rate() {  # mean images/s over the logged intervals after the first (warm-up)
  tail -n +2 "$1/metrics.jsonl" | grep images_per_s | sed -E 's/.*"images_per_s":([0-9.e+]+).*/\1/' |
    awk '{s += $1; n++} END {printf "%.1f", s / n}'
}
rm -rf "$work/r1" "$work/r2"
"$gantry" train $common --train.batch_size $per_rank --run-dir "$work/r1" > /dev/null
mpirun --oversubscribe --bind-to none -n 2 "$gantry" train $common --train.batch_size $((2 * per_rank)) --run-dir "$work/r2" > /dev/null
one=$(rate "$work/r1"); two=$(rate "$work/r2")
echo "1 rank x 1 thread:  $one images/s"
echo "2 ranks x 1 thread: $two images/s ($(awk -v t="$two" 'BEGIN{printf "%.1f", t / 2}') per rank)"
awk -v o="$one" -v t="$two" 'BEGIN { printf "per-rank throughput, 2 ranks vs 1: %.1f%%\n", 100 * t / 2 / o }'
