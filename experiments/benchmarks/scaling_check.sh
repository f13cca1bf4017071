#!/usr/bin/env bash
# Measurements that check scaling_model.py on this machine (Open MPI over shared memory, W = 1, 2, 4):
#   allreduce  raw MPI_Allreduce time per message size, 8 B .. 16 MiB, at W = 2 and 4 (alpha, beta fit)
#   ctrl       control_plane_bench at W = CTRL_WORLDS (default 2 4 8 16 32) (per-collective rendezvous cost; optional: needs a
#              build of branch ctrl, CTRL_BENCH=path/to/control_plane_bench)
#   step       whole DCGAN training steps (gantry train, dcgan recipe, Fashion-MNIST 2000 images at 32x32,
#              g_width = d_width = 32, 16 images per rank, 1 LibTorch thread and 1 loader thread per rank)
# Each repeated REPS times, alternating the worlds, so drift hits all alike; scaling_model.py --check
# takes the medians. Prints "KEY value" lines; the load average before each block.
# Usage: experiments/benchmarks/scaling_check.sh [REPS]   (GANTRY: gantry binary, default ./build/gantry)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
gantry=${GANTRY:-$here/build/gantry}
reps=${1:-3}
steps=${STEPS:-150}
work=$(mktemp -d /tmp/scaling_check.XXXXXX)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
mpi=(mpirun --oversubscribe --bind-to none --mca mpi_yield_when_idle 1)
mpicc -O2 -o "$work/allreduce_alpha_beta" "$here/experiments/benchmarks/allreduce_alpha_beta.c"
"$gantry" data convert --quiet --format idx --limit 2000 --resolution 32 \
  --images /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz --out "$work/fm32"
echo "cores $(nproc --all)"
step_time() {  # W → mean ms per step over the logged intervals after the first (global batch / images_per_s)
  local w=$1 run=$work/run-$1
  rm -rf "$run"
  "${mpi[@]}" -n "$w" "$gantry" train --config "$here/experiments/dcgan_fashion_mnist.ini" --run-dir "$run" \
    --resume none --data.path "$work/fm32" --data.workers 1 --train.threads 1 --train.steps "$steps" \
    --train.batch_size $((16 * w)) --train.log_every 25 --train.sample_every 100000 \
    --train.checkpoint_every 100000 --dcgan.g_width 32 --dcgan.d_width 32 >/dev/null 2>&1
  python3 - "$run/metrics.jsonl" $((16 * w)) <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"images_per_s"' in l]
rates = [r["images_per_s"] for r in rows[1:]]
print(f"{1000 * int(sys.argv[2]) / (sum(rates) / len(rates)):.2f}")
EOF
}
for rep in $(seq "$reps"); do
  echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
  for w in 1 2 4; do echo "step W=$w rep=$rep ms $(step_time "$w")"; done
  for w in 2 4; do "${mpi[@]}" -n "$w" "$work/allreduce_alpha_beta" 5 | sed "s/^/allreduce rep=$rep /"; done
  if [ -n "${CTRL_BENCH:-}" ]; then
    for w in ${CTRL_WORLDS:-2 4 8 16 32}; do "${mpi[@]}" -n "$w" "$CTRL_BENCH" --iters $((4000 / (w * w) + 20)) --rounds 9 | sed "s/^/ctrl rep=$rep /"; done
  fi
done
rm -rf "$work"
