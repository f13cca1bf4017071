#!/usr/bin/env python3
"""Reads a gantry run directory with TensorBoard's own reader and compares it with the run's files.

    check_tensorboard.py RUN_DIR

TensorBoard's EventAccumulator (every event kept, orphaned data purged as TensorBoard does) must show:
  - every number of metrics.jsonl as a scalar tagged with its key, at the line's step, equal as float32
    (an evaluation line's `time` as `eval_time`), each step once, and no other scalar;
  - one image per samples/step-N.png, at step N, with the file's bytes, width and height;
  - the newest `config` text equal to config.ini.
The same scalars must come out of the reader behind the TensorBoard server's Python loader
(plugin_event_accumulator, which converts every summary to a tensor of its plugin).
Prints one line per difference and exits 1, or prints "check_tensorboard: ok ..." and exits 0.
Run with the Python of launch/test-tools.txt (launch/setup.sh installs it).
"""
import glob
import json
import math
import os
import re
import struct
import sys

import numpy as np
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.backend.event_processing import plugin_event_accumulator as pea
from tensorboard.util import tensor_util


def expected_scalars(run):
    """tag -> {step: value} from metrics.jsonl; a (tag, step) logged twice is an error of the run."""
    out, problems = {}, []
    with open(os.path.join(run, "metrics.jsonl")) as f:
        for line in f:
            rec = json.loads(line)
            evaluation = any(k.startswith("eval_") for k in rec)
            for key, value in rec.items():
                if key == "step" or isinstance(value, (bool, str)):
                    continue
                tag = "eval_time" if evaluation and key == "time" else key
                value = math.nan if value is None else float(value)  # JSON writes NaN as null
                if rec["step"] in out.setdefault(tag, {}):
                    problems.append(f"metrics.jsonl: {tag} twice at step {rec['step']}")
                out[tag][rec["step"]] = value
    return out, problems


def same_float32(a, b):
    a, b = np.float32(a), np.float32(b)
    return a == b or (np.isnan(a) and np.isnan(b))


def png_size(data):
    """(width, height) from a PNG's IHDR chunk."""
    return struct.unpack(">II", data[16:24])


def main(run):
    acc = ea.EventAccumulator(run, size_guidance={ea.SCALARS: 0, ea.IMAGES: 0, ea.TENSORS: 0})
    acc.Reload()
    tags = acc.Tags()
    expected, problems = expected_scalars(run)

    seen = set(tags["scalars"])
    for tag in sorted(set(expected) - seen):
        problems.append(f"scalar {tag}: in metrics.jsonl, not in TensorBoard")
    for tag in sorted(seen - set(expected)):
        problems.append(f"scalar {tag}: in TensorBoard, not in metrics.jsonl")
    n_scalars = 0
    for tag in sorted(set(expected) & seen):
        events = acc.Scalars(tag)
        n_scalars += len(events)
        steps = [e.step for e in events]
        if len(steps) != len(set(steps)):
            dup = sorted({s for s in steps if steps.count(s) > 1})
            problems.append(f"scalar {tag}: steps shown more than once: {dup}")
        got = {e.step: e.value for e in events}
        want = expected[tag]
        if sorted(got) != sorted(want):
            problems.append(f"scalar {tag}: steps {sorted(got)} in TensorBoard, {sorted(want)} in metrics.jsonl")
        for step in sorted(set(got) & set(want)):
            if not same_float32(got[step], want[step]):
                problems.append(f"scalar {tag} at step {step}: {got[step]!r} in TensorBoard, "
                                f"{want[step]!r} in metrics.jsonl")

    plugin = pea.EventAccumulator(run, tensor_size_guidance={"scalars": 0, "images": 0, "text": 0})
    plugin.Reload()
    scalar_tags = set(plugin.PluginTagToContent("scalars"))
    if scalar_tags != set(expected):
        problems.append(f"plugin reader: scalar tags {sorted(scalar_tags)}, metrics.jsonl has {sorted(expected)}")
    for tag in sorted(scalar_tags & set(expected)):
        got = sorted((e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in plugin.Tensors(tag))
        want = sorted(expected[tag].items())
        if [step for step, _ in got] != [step for step, _ in want]:
            problems.append(f"plugin reader: scalar {tag}: steps {[s for s, _ in got]}, metrics.jsonl has "
                            f"{[s for s, _ in want]}")
            continue
        for (step, g), (_, w) in zip(got, want):
            if not same_float32(g, w):
                problems.append(f"plugin reader: scalar {tag} at step {step}: {g!r}, metrics.jsonl has {w!r}")

    pngs = {}
    for path in glob.glob(os.path.join(run, "samples", "step-*.png")):
        m = re.fullmatch(r"step-(\d+)\.png", os.path.basename(path))
        if m:
            with open(path, "rb") as f:
                pngs[int(m.group(1))] = f.read()
    images = acc.Images("samples") if "samples" in tags["images"] else []
    if sorted(e.step for e in images) != sorted(pngs):
        problems.append(f"images: steps {sorted(e.step for e in images)} in TensorBoard, "
                        f"{sorted(pngs)} in samples/")
    for e in images:
        png = pngs.get(e.step)
        if png is None:
            continue
        if e.encoded_image_string != png:
            problems.append(f"image at step {e.step}: not the bytes of samples/step-{e.step:08d}.png")
        if (e.width, e.height) != png_size(png):
            problems.append(f"image at step {e.step}: {e.width}x{e.height}, the PNG is {png_size(png)}")

    texts = acc.Tensors("config") if "config" in tags["tensors"] else []
    with open(os.path.join(run, "config.ini")) as f:
        config = f.read()
    if not texts:
        problems.append("config: no text in TensorBoard")
    elif texts[-1].tensor_proto.string_val[0].decode() != config:
        problems.append("config: the newest text is not config.ini")

    for p in problems:
        print(f"check_tensorboard: {p}")
    if problems:
        return 1
    print(f"check_tensorboard: ok: {n_scalars} scalars in {len(seen)} tags, {len(images)} images, "
          f"config ({len(texts)} sessions)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
