#!/usr/bin/python3
"""Loss curves of a run: RUN_DIR/metrics.jsonl → RUN_DIR/curves.png (or --out FILE).

One panel per logged quantity (the recipe's losses, images/s, lr) against the step; held-out
evaluations (keys starting with eval_) share a panel per key, drawn as markers.
    launch/plot.py runs/vae_fashion_mnist [--out curves.png]
"""
import argparse, json, math, os, sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("--out", help="PNG to write (default RUN_DIR/curves.png)")
    args = ap.parse_args()
    path = os.path.join(args.run_dir, "metrics.jsonl")
    try:
        with open(path) as f:
            records = [json.loads(line) for line in f if line.strip()]
    except (OSError, json.JSONDecodeError) as e:
        print(f"plot: error: {path}: {e}", file=sys.stderr)
        return 3
    series = {}
    for r in records:
        for k, v in r.items():
            if k in ("step", "epoch", "time") or not isinstance(v, (int, float)):
                continue
            series.setdefault(k, ([], []))
            series[k][0].append(r["step"])
            series[k][1].append(v)
    if not series:
        print(f"plot: error: {path}: no logged values", file=sys.stderr)
        return 3
    keys = sorted(series, key=lambda k: (k.startswith("eval_"), k in ("images_per_s", "lr"), k))
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        xs, ys = series[key]
        ax.plot(xs, ys, "o-" if key.startswith("eval_") else "-", linewidth=1.2, markersize=3)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle(os.path.basename(os.path.normpath(args.run_dir)), fontsize=11)
    fig.tight_layout()
    out = args.out or os.path.join(args.run_dir, "curves.png")
    fig.savefig(out, dpi=90)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
