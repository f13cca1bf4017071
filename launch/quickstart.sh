#!/usr/bin/env bash
# launch/quickstart.sh — the main job on the embedded default: set up, convert Fashion-MNIST (train and
# t10k, from Debian's dataset-fashion-mnist) into HDF5 shards under data/, and show what was written.
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
"$gantry" data verify data/fashion-mnist/train --quiet
"$gantry" data inspect data/fashion-mnist/train
