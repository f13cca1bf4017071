"""gantry_torch: a trained gantry run's networks in PyTorch.

    import gantry_torch
    run = gantry_torch.load("runs/dcgan_fashion_mnist")   # a run directory or a checkpoint directory
    images = run.sample(64, seed=0)                         # (64, C, H, W) in [-1, 1]
    gantry_torch.save_grid(images, "grid.png")

load() reads the checkpoint's manifest (its resolved configuration), rebuilds the recipe's networks as
torch.nn.Modules whose parameter names are those of gantry's C++ networks, and loads every archive
strictly. models/python/README.md lists each recipe's networks and helpers.
"""

import os
import struct
import zlib

import torch

from . import classifier, cyclegan, dcgan, fgan, pixelcnn, vae
from ._checkpoint import GantryLoadError, dataset_shape, find_checkpoint, parse_config, read_manifest
from ._layers import BatchNorm, batch_statistics
from ._run import Archives, Run

__all__ = ["load", "save_grid", "make_grid", "uint8_to_float", "Run", "GantryLoadError", "BatchNorm",
           "batch_statistics", "RECIPES"]

RECIPES = {m.__name__.rsplit(".", 1)[1]: m for m in (vae, dcgan, fgan, pixelcnn, cyclegan, classifier)}


class _Context:
    def __init__(self, checkpoint, manifest, config, archives, shape_hint, ema):
        self.checkpoint, self.manifest, self.config = checkpoint, manifest, config
        self.archives, self.shape_hint, self.ema = archives, shape_hint, ema


def load(path, device="cpu", ema=None, shape=None, verify=True):
    """The networks of a gantry checkpoint, weights and BatchNorm statistics loaded, in eval mode.

    path:   a run directory (its checkpoints/LATEST) or a checkpoint directory (checkpoints/step-N).
    device: where the networks go ("cpu", "cuda", ...).
    ema:    DCGAN runs trained with dcgan.ema > 0 keep an averaged generator (generator_ema). None: sample
            from it when the run has it (as gantry does); True: require it; False: the trained generator.
    shape:  (C, H, W) of the training images where the networks do not fix it, for checkpoints older
            than stop 15 (which record it) whose dataset is not found (an MLP's flat input that is not
            square, PixelCNN's image size for sampling).
    verify: check each archive's size and crc32 against the manifest first.

    Raises GantryLoadError naming the file (and the key) when a checkpoint does not fit.
    """
    checkpoint = find_checkpoint(path)
    manifest = read_manifest(checkpoint)
    config = parse_config(manifest["config"])
    recipe = manifest.get("recipe") or config.get("run", {}).get("recipe")
    if recipe not in RECIPES:
        raise GantryLoadError(f"{checkpoint}: recipe '{recipe}' has no Python networks here "
                              f"(known: {', '.join(RECIPES)})")
    if ema and recipe != "dcgan":
        raise GantryLoadError(f"{checkpoint}: ema: only DCGAN runs keep an averaged generator")
    hint = tuple(shape) if shape is not None else dataset_shape(config, checkpoint, manifest)
    ctx = _Context(checkpoint, manifest, config, Archives(checkpoint, manifest, verify), hint, ema)
    return RECIPES[recipe].build(ctx).to(device)


def uint8_to_float(images):
    """Stored images (B, H, W, C) uint8 → (B, C, H, W) float32 in [-1, 1], as gantry's loader makes them."""
    return images.permute(0, 3, 1, 2).float().mul_(2.0 / 255.0).sub_(1.0)


def make_grid(images, cols=0, pad=2):
    """(N, C, H, W) in [-1, 1] → one (rows·(H+pad)+pad, cols·(W+pad)+pad, C) uint8 tile image."""
    images = images.detach().float().cpu().clamp(-1, 1)
    n, c, h, w = images.shape
    cols = cols or max(1, int(n ** 0.5 + 0.999999))
    rows = (n + cols - 1) // cols
    grid = torch.zeros(rows * (h + pad) + pad, cols * (w + pad) + pad, c, dtype=torch.uint8)
    pixels = ((images + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
    for i in range(n):
        y, x = pad + (i // cols) * (h + pad), pad + (i % cols) * (w + pad)
        grid[y:y + h, x:x + w] = pixels[i]
    return grid


def save_grid(images, path, cols=0, pad=2):
    """Writes images (N, C, H, W) in [-1, 1] (C = 1 or 3) as one PNG grid; no dependency beyond torch."""
    grid = make_grid(images, cols, pad)
    h, w, c = grid.shape
    if c not in (1, 3):
        raise ValueError(f"save_grid: {c} channels (1 or 3 can be written)")
    raw = b"".join(b"\x00" + bytes(grid[y].contiguous().view(-1).tolist()) for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 0 if c == 1 else 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(png)
    os.replace(tmp, path)
