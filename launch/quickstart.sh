#!/usr/bin/env bash
# launch/quickstart.sh — the main job on the embedded default: set up, convert Fashion-MNIST (train and
# t10k, from Debian's dataset-fashion-mnist) into HDF5 shards under data/, and train the VAE on 2 ranks
# (experiments/vae_fashion_mnist.ini, 10 epochs). Re-running resumes or finds the run complete.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$here/launch/setup.sh"
gantry="${GANTRY_BUILD_DIR:-$here/build}/gantry"
src=/usr/share/datasets/fashion-mnist
cd "$here"
"$gantry" doctor
for split in train t10k; do
  if [ ! -f "data/fashion-mnist/$split/manifest.json" ]; then
    "$gantry" data convert --format idx --images "$src/$split-images-idx3-ubyte.gz" \
      --labels "$src/$split-labels-idx1-ubyte.gz" --out "data/fashion-mnist/$split"
  fi
done
"$gantry" data inspect data/fashion-mnist/train
bash "$here/launch/mpirun.sh" 2 --config experiments/vae_fashion_mnist.ini --run-dir runs/vae_fashion_mnist
/usr/bin/python3 "$here/launch/plot.py" runs/vae_fashion_mnist > /dev/null
cat <<TXT

Run directory: runs/vae_fashion_mnist
  samples/step-*.png         sample grids; samples/recon-step-*.png originals and reconstructions
  metrics.jsonl              one JSON object per logged step (loss, recon, kl, images/s) and the held-out ELBO
  curves.png                 those curves (launch/plot.py RUN_DIR redraws them)
  checkpoints/step-*/        networks and optimizer (torch.jit.load-able), RNG states, manifest; LATEST names the newest
  logs/rank-*.log            per-rank events (resume, checkpoints, stalls)
TXT
