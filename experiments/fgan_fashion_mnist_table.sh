#!/usr/bin/env bash
# The f-GAN paper's MNIST table redone on Fashion-MNIST (models/fgan/README.md, "Scores"): for each
# divergence, experiments/fgan_fashion_mnist.ini trained for its 3000 steps, then its last checkpoint scored
# by gantry eval — FID / KID in a classifier run's features and the Parzen-window log-likelihood of the
# test split under 10,000 samples — and one Markdown table of them all.
#   bash experiments/fgan_fashion_mnist_table.sh [NRANKS] [DIVERGENCE ...]     (default: 2, all eight)
# Needs data/fashion-mnist/{train,t10k} (launch/quickstart.sh converts them) and a classifier run,
# $GANTRY_FEATURES (default runs/classifier_fashion_mnist: experiments/classifier_fashion_mnist.ini).
# Runs land in $GANTRY_OUT/<divergence> (default runs/fgan_fm); runs and scores already there are reused
# (--resume auto; a score is recomputed only when its JSON is missing), so the script can be rerun after an
# interruption. The table is also written to $GANTRY_OUT/table.md, the grids side by side to samples.png.
# Each run is 19-28 min alone on 2 cores.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
n=${1:-2}
shift || true
divergences=("$@")
[ ${#divergences[@]} -gt 0 ] || divergences=(kl reverse_kl pearson neyman hellinger js gan jeffrey)
out=${GANTRY_OUT:-runs/fgan_fm}
features=${GANTRY_FEATURES:-runs/classifier_fashion_mnist}
gantry="${GANTRY_BUILD_DIR:-$here/build}/gantry"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
[ -d "$features" ] || { echo "fgan_fashion_mnist_table: $features: no classifier run (set GANTRY_FEATURES)" >&2; exit 2; }
mkdir -p "$out"
for d in "${divergences[@]}"; do
  score=$out/$d/eval/step-00003000.json
  [ -f "$score" ] && { echo "== $d: scored ($score)"; continue; }
  echo "== $d"
  bash "$here/launch/mpirun.sh" "$n" --config "$here/experiments/fgan_fashion_mnist.ini" \
    --run-dir "$out/$d" --resume auto --fgan.divergence "$d" >>"$out/$d.log" 2>&1 ||
    { echo "fgan_fashion_mnist_table: training $d failed, see $out/$d.log" >&2; exit 1; }
  mpirun --oversubscribe --bind-to none -n "$n" "$gantry" eval --checkpoint "$out/$d/checkpoints/step-00003000" \
    --eval.features "$features" --eval.parzen true --data.eval_path data/fashion-mnist/t10k >>"$out/$d.log" 2>&1 ||
    { echo "fgan_fashion_mnist_table: scoring $d failed, see $out/$d.log" >&2; exit 1; }
done
/usr/bin/python3 - "$out" "${divergences[@]}" <<'PY' | tee "$out/table.md"
import json, os, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image  # Debian's matplotlib depends on python3-pil
out, divergences = sys.argv[1], sys.argv[2:]
print("| divergence | step | FID (classifier features) | KID (± std over subsets) | Parzen log-likelihood, nats (± s.e.; σ) |")
print("|---|---|---|---|---|")
for d in divergences:
    with open(os.path.join(out, d, "eval", "step-00003000.json")) as f:
        r = json.load(f)
    v = r["values"]
    print(f"| {d} | {r['step']} | {v['fid']:.1f} | {v['kid']:.1f} ± {v['kid_std']:.1f} "
          f"| {v['parzen_ll']:.1f} ± {v['parzen_ll_se']:.1f} ({v['parzen_sigma']:.3f}) |")
print()
print("features:", r["features"])

# Each divergence's grid at step 3000 side by side, titled, in $GANTRY_OUT/samples.png.
cols = min(4, len(divergences))
rows = (len(divergences) + cols - 1) // cols
fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.8 * rows), squeeze=False)
for ax in axes.flat:
    ax.axis("off")
for ax, d in zip(axes.flat, divergences):
    ax.imshow(plt.imread(os.path.join(out, d, "samples", "step-00003000.png")), cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_title(d, fontsize=10)
fig.tight_layout()
fig.canvas.draw()  # then to 8-bit grey: a third of matplotlib's RGBA PNG
Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).convert("L").save(os.path.join(out, "samples.png"), optimize=True)
PY
