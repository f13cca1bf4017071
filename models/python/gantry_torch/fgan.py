"""f-GAN of models/fgan (fgan_model.h): the checkpoint's networks 'generator' and 'variational' (V), for
fgan.model = mlp (the paper's MNIST pair), dcgan (models/dcgan's networks) or gaussian (the 1-D model)."""

import math

import torch
from torch import nn

from ._checkpoint import flat_shape
from ._layers import BatchNorm
from .dcgan import Discriminator, GanRun, Generator, generator_shape


class MlpGenerator(nn.Module):
    """z (B, z_dim) → (B, out) in (0, 1)."""

    def __init__(self, z_dim=100, hidden=1200, out=784):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(z_dim, hidden), BatchNorm(hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                  BatchNorm(hidden), nn.ReLU(), nn.Linear(hidden, out), nn.Sigmoid())

    def forward(self, z):
        return self.body(z)


class MlpVariational(nn.Module):
    """(B, in) → (B): V, no output activation."""

    def __init__(self, inputs=784, hidden=240, layers=2, activation="elu"):
        super().__init__()
        body, n = [], inputs
        for _ in range(layers):
            body += [nn.Linear(n, hidden), nn.ELU() if activation == "elu" else nn.Tanh()]
            n = hidden
        body.append(nn.Linear(n, 1))
        self.body = nn.Sequential(*body)

    def forward(self, x):
        return self.body(x).view(-1)


class GaussianGenerator(nn.Module):
    """(B, 1) standard normal → μ + σ z."""

    def __init__(self, mu=0.0, sigma=1.0):
        super().__init__()
        self.mu = nn.Parameter(torch.full((1,), float(mu)))
        self.log_sigma = nn.Parameter(torch.full((1,), math.log(sigma)))

    def forward(self, z):
        return self.mu + torch.exp(self.log_sigma) * z


class FganRun(GanRun):
    recipe = "fgan"

    def latent(self, n, seed=0):
        """U(-1, 1)^z_dim for the image generators, N(0, 1) for the 1-D model (as gantry draws them)."""
        gen = self._rng(seed)
        if self.option("fgan.model") == "gaussian":
            return torch.randn(n, 1, generator=gen)
        return torch.rand(n, self.option("fgan.z_dim"), generator=gen) * 2 - 1

    def images(self, x):
        """The MLP generator's (n, D) in (0, 1) as (n, C, H, W) in [-1, 1]; the DCGAN one's as they are; the
        1-D model's (n, 1) samples unchanged."""
        if self.option("fgan.model") == "mlp":
            return (x * 2 - 1).view(x.size(0), *self.shape)
        return x


def build(ctx):
    o = ctx.config["fgan"]
    model = o["model"]
    gt = ctx.archives.tensors("generator")
    if model == "gaussian":
        g, v, shape = GaussianGenerator(), MlpVariational(1, o["v_hidden"], activation="tanh"), None
    elif model == "mlp":
        shape = flat_shape(gt["body.6.weight"].shape[0], ctx.shape_hint, ctx.archives.path("generator"))
        d = shape[0] * shape[1] * shape[2]
        g, v = MlpGenerator(o["z_dim"], o["g_hidden"], d), MlpVariational(d, o["v_hidden"], activation="elu")
    else:
        shape = generator_shape(gt)
        g = Generator(shape[1], shape[0], o["z_dim"], o["g_width"])
        v = Discriminator(shape[1], shape[0], o["d_width"])
    nets = {"generator": ctx.archives.load(g, "generator"), "variational": ctx.archives.load(v, "variational")}
    run = FganRun(ctx.checkpoint, ctx.manifest, ctx.config, nets, shape)
    run.sampler = nets["generator"]
    return run
