"""CycleGAN of models/cyclegan (cyclegan_model.h): the checkpoint's networks 'generator_a2b' (G: A → B),
'generator_b2a' (F: B → A), 'discriminator_a' and 'discriminator_b' (PatchGAN score maps)."""

import torch
from torch import nn

from ._run import Run


def _instance_norm(c):
    return nn.InstanceNorm2d(c, affine=False, track_running_stats=False)


class ResidualBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), _instance_norm(c), nn.ReLU(),
                                  nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), _instance_norm(c))

    def forward(self, x):
        return x + self.body(x)


class Generator(nn.Module):
    """(B, in_channels, H, W) → (B, out_channels, H, W) in [-1, 1]; H and W multiples of 4."""

    def __init__(self, in_channels=3, out_channels=3, width=64, blocks=9):
        super().__init__()
        w = width
        body = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, w, 7), _instance_norm(w), nn.ReLU()]
        for c in (w, 2 * w):
            body += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), _instance_norm(2 * c), nn.ReLU()]
        body += [ResidualBlock(4 * w) for _ in range(blocks)]
        for c in (4 * w, 2 * w):
            body += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1), _instance_norm(c // 2),
                     nn.ReLU()]
        body += [nn.ReflectionPad2d(3), nn.Conv2d(w, out_channels, 7), nn.Tanh()]
        self.body = nn.Sequential(*body)

    def forward(self, x):
        return self.body(x)


class Discriminator(nn.Module):
    """(B, channels, H, W) → (B, 1, h, w) patch scores (no output activation: least-squares GAN)."""

    def __init__(self, channels=3, width=64, layers=3):
        super().__init__()
        body = [nn.Conv2d(channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        c = width
        for i in range(1, layers + 1):
            out = width * min(1 << i, 8)
            body += [nn.Conv2d(c, out, 4, stride=2 if i < layers else 1, padding=1), _instance_norm(out),
                     nn.LeakyReLU(0.2)]
            c = out
        body.append(nn.Conv2d(c, 1, 4, stride=1, padding=1))
        self.body = nn.Sequential(*body)

    def forward(self, x):
        return self.body(x)


class CycleGanRun(Run):
    recipe = "cyclegan"

    @torch.no_grad()
    def a2b(self, x):
        """Images of domain A (B, C_a, H, W) in [-1, 1] translated to domain B."""
        return self.generator_a2b(x.to(self.device))

    @torch.no_grad()
    def b2a(self, x):
        """Images of domain B translated to domain A."""
        return self.generator_b2a(x.to(self.device))


def build(ctx):
    o = ctx.config["cyclegan"]
    ta = ctx.archives.tensors("generator_a2b")
    last = max(int(k.split(".")[1]) for k in ta if k.startswith("body.") and k.split(".")[1].isdigit())
    c_a, c_b = ta["body.1.weight"].shape[1], ta[f"body.{last}.weight"].shape[0]
    blocks = o["residual_blocks"]
    if blocks == 0:  # the reference's rule, from the crop size (or the images' own size)
        crop = o["crop_size"] or (ctx.shape_hint[1] if ctx.shape_hint else None)
        blocks = sum(1 for k in ta if k.endswith(".body.1.weight")) if crop is None else (9 if crop >= 256 else 6)
    nets = {
        "generator_a2b": Generator(c_a, c_b, o["g_width"], blocks),
        "generator_b2a": Generator(c_b, c_a, o["g_width"], blocks),
        "discriminator_a": Discriminator(c_a, o["d_width"], o["d_layers"]),
        "discriminator_b": Discriminator(c_b, o["d_width"], o["d_layers"]),
    }
    for name, net in nets.items():
        ctx.archives.load(net, name)
    crop = o["crop_size"] or (ctx.shape_hint[1] if ctx.shape_hint else None)
    return CycleGanRun(ctx.checkpoint, ctx.manifest, ctx.config, nets, (c_a, crop, crop) if crop else None)
