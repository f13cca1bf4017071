"""DCGAN of models/dcgan (dcgan_model.h): the checkpoint's networks 'generator', 'discriminator' and,
with dcgan.ema > 0, 'generator_ema' (an exponential moving average of the generator)."""

import torch
from torch import nn

from ._checkpoint import GantryLoadError
from ._layers import BatchNorm, batch_statistics
from ._run import Run, conv_layers


def _upsamplings(resolution):
    if resolution not in (32, 64):
        raise ValueError(f"DCGAN needs 32x32 or 64x64 images, got {resolution}")
    return 4 if resolution == 64 else 3


class Generator(nn.Module):
    """z (B, z_dim) → (B, C, R, R) in [-1, 1]."""

    def __init__(self, resolution=64, channels=3, z_dim=100, g_width=128):
        super().__init__()
        k = _upsamplings(resolution)
        self.c0 = g_width << (k - 1)
        self.project = nn.Linear(z_dim, self.c0 * 16, bias=False)
        self.project_bn = BatchNorm(self.c0)
        body, c = [], self.c0
        for i in range(k):
            last = i + 1 == k
            out = channels if last else c // 2
            body.append(nn.ConvTranspose2d(c, out, 4, stride=2, padding=1, bias=last))
            if not last:
                body += [BatchNorm(out), nn.ReLU()]
            c = out
        body.append(nn.Tanh())
        self.body = nn.Sequential(*body)

    def forward(self, z):
        h = self.project(z).view(z.size(0), self.c0, 4, 4)
        return self.body(torch.relu(self.project_bn(h)))


class Discriminator(nn.Module):
    """(B, C, R, R) → (B) logits."""

    def __init__(self, resolution=64, channels=3, d_width=128):
        super().__init__()
        k = _upsamplings(resolution)
        body, c, out = [], channels, d_width
        for i in range(k):
            body.append(nn.Conv2d(c, out, 4, stride=2, padding=1, bias=i == 0))
            if i > 0:
                body.append(BatchNorm(out))
            body.append(nn.LeakyReLU(0.2))
            c, out = out, out * 2
        body.append(nn.Conv2d(c, 1, 4, stride=1, padding=0))
        self.body = nn.Sequential(*body)

    def forward(self, x):
        return self.body(x).view(-1)


def generator_shape(tensors):
    """(C, R, R) of the images a DCGAN generator archive makes: its last transposed convolution's outputs,
    4·2^k for its k transposed convolutions."""
    convs = conv_layers(tensors, "body")
    size = 4 << len(convs)
    return (tensors[f"body.{convs[-1]}.weight"].shape[1], size, size)


class GanRun(Run):
    """Sampling shared by the GAN recipes: a latent batch through the sampling generator, BatchNorm with the
    batch's statistics as gantry samples (or the running statistics)."""

    sampler = None  # the generator sample() uses

    def latent(self, n, seed=0):
        raise NotImplementedError

    def images(self, x):
        return x

    @torch.no_grad()
    def sample(self, n, seed=0, batch_stats=True):
        """n images (n, C, H, W) in [-1, 1] from latents drawn with `seed`. batch_stats: BatchNorm normalises
        with the statistics of these n samples (gantry's samples; n > 1) rather than the running averages."""
        z = self.latent(n, seed).to(self.device)
        if batch_stats:
            with batch_statistics(self.sampler):
                return self.images(self.sampler(z))
        return self.images(self.sampler(z))


class DcganRun(GanRun):
    recipe = "dcgan"

    def latent(self, n, seed=0):
        gen, z_dim = self._rng(seed), self.option("dcgan.z_dim")
        if self.option("dcgan.z") == "uniform":
            return torch.rand(n, z_dim, generator=gen) * 2 - 1
        return torch.randn(n, z_dim, generator=gen)


def build(ctx):
    o = ctx.config["dcgan"]
    shape = generator_shape(ctx.archives.tensors("generator"))
    nets = {
        "generator": ctx.archives.load(Generator(shape[1], shape[0], o["z_dim"], o["g_width"]), "generator"),
        "discriminator": ctx.archives.load(Discriminator(shape[1], shape[0], o["d_width"]), "discriminator"),
    }
    if ctx.archives.has("generator_ema"):
        nets["generator_ema"] = ctx.archives.load(Generator(shape[1], shape[0], o["z_dim"], o["g_width"]),
                                                  "generator_ema")
    elif ctx.ema:
        raise GantryLoadError(f"{ctx.checkpoint}: no generator_ema.pt (the run trained with dcgan.ema = 0)")
    run = DcganRun(ctx.checkpoint, ctx.manifest, ctx.config, nets, shape)
    use_ema = "generator_ema" in nets if ctx.ema is None else ctx.ema
    run.sampler = nets["generator_ema"] if use_ema else nets["generator"]
    return run
