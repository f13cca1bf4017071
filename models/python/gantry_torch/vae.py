"""The VAE of models/vae (vae_model.h): arch mlp or conv, decoder likelihood logistic, categorical,
bernoulli or gaussian; the checkpoint's network 'vae'."""

import torch
import torch.nn.functional as F
from torch import nn

from ._checkpoint import flat_shape
from ._run import Run, conv_layers

LEVELS = 256  # values of an 8-bit sub-pixel


def outputs_per_subpixel(likelihood):
    return {"logistic": 2, "categorical": LEVELS}.get(likelihood, 1)


class Vae(nn.Module):
    def __init__(self, arch="mlp", likelihood="logistic", channels=1, height=28, width=28, hidden=400, latent=20):
        super().__init__()
        self.arch, self.likelihood = arch, likelihood
        self.channels, self.height, self.width, self.latent = channels, height, width, latent
        d, k = channels * height * width, outputs_per_subpixel(likelihood)
        if arch == "mlp":
            self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.ReLU())
            self.to_mu = nn.Linear(hidden, latent)
            self.to_logvar = nn.Linear(hidden, latent)
            self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, d * k))
        else:
            if height != width or height not in (32, 64):
                raise ValueError(f"vae.arch = conv needs 32x32 or 64x64 images, got {height}x{width}")
            layers = 3 if height == 32 else 4
            enc, c, w = [], channels, hidden
            for i in range(layers):
                enc += [nn.Conv2d(c, w, 4, stride=2, padding=1), nn.ReLU()]
                c = w
                if i + 1 < layers:
                    w *= 2
            enc.append(nn.Flatten())
            self.feat_c = c
            self.encoder = nn.Sequential(*enc)
            self.to_mu = nn.Linear(c * 16, latent)
            self.to_logvar = nn.Linear(c * 16, latent)
            self.from_z = nn.Linear(latent, c * 16)
            dec = []
            for i in range(layers):
                out = c // 2 if i + 1 < layers else channels * k
                dec.append(nn.ConvTranspose2d(c, out, 4, stride=2, padding=1))
                if i + 1 < layers:
                    dec.append(nn.ReLU())
                c = out
            self.decoder = nn.Sequential(*dec)
        if likelihood == "gaussian":
            self.log_sigma2 = nn.Parameter(torch.zeros(channels))

    def encode(self, x):
        """(B, C, H, W) in [-1, 1] → (mu, logvar), each (B, latent)."""
        h = self.encoder(x)
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z):
        """(N, latent) → decoder output (N, C·K, H, W), K outputs per sub-pixel, grouped per channel."""
        k = outputs_per_subpixel(self.likelihood)
        if self.arch == "mlp":
            return self.decoder(z).view(z.size(0), self.channels * k, self.height, self.width)
        return self.decoder(torch.relu(self.from_z(z)).view(z.size(0), self.feat_c, 4, 4))

    def forward(self, x, eps=None):
        """(decoder output, mu, logvar) for x, z = mu + exp(logvar / 2) · eps (eps drawn when None)."""
        mu, logvar = self.encode(x)
        noise = eps if eps is not None else torch.randn_like(mu)
        return self.decode(mu + torch.exp(0.5 * logvar) * noise), mu, logvar

    def mean_image(self, out):
        """Decoder output → the image it predicts, in [-1, 1] (B, C, H, W)."""
        if self.likelihood == "bernoulli":
            return torch.sigmoid(out) * 2 - 1
        per = out.view(out.size(0), self.channels, -1, self.height, self.width)
        if self.likelihood == "logistic":
            return per.select(2, 0).clamp(-1, 1)
        if self.likelihood == "categorical":
            p = F.softmax(per.float(), 2)
            levels = torch.arange(LEVELS, dtype=p.dtype, device=p.device).view(1, 1, -1, 1, 1) * (2.0 / 255.0) - 1
            return (p * levels).sum(2)
        return out.clamp(-1, 1)


class VaeRun(Run):
    recipe = "vae"

    @torch.no_grad()
    def sample(self, n, seed=0):
        """n images (n, C, H, W) in [-1, 1]: the decoder's mean image for z ~ N(0, I), as gantry samples."""
        z = torch.randn(n, self.vae.latent, generator=self._rng(seed)).to(self.device)
        return self.vae.mean_image(self.vae.decode(z))

    @torch.no_grad()
    def reconstruct(self, x, seed=None):
        """The mean image decoded from z ~ q(z|x) (seeded), or from z = mu when seed is None."""
        x = x.to(self.device)
        mu, logvar = self.vae.encode(x)
        z = mu
        if seed is not None:
            eps = torch.randn(mu.shape, generator=self._rng(seed)).to(self.device)
            z = mu + torch.exp(0.5 * logvar) * eps
        return self.vae.mean_image(self.vae.decode(z))


def build(ctx):
    o = ctx.config["vae"]
    t = ctx.archives.tensors("vae")
    if o["arch"] == "conv":
        convs = conv_layers(t, "encoder")
        c = t[f"encoder.{convs[0]}.weight"].shape[1]
        size = 32 if len(convs) == 3 else 64
        shape = (c, size, size)
    else:
        shape = flat_shape(t["encoder.1.weight"].shape[1], ctx.shape_hint, ctx.archives.path("vae"))
    vae = Vae(o["arch"], o["likelihood"], *shape, hidden=o["hidden"], latent=o["latent"])
    return VaeRun(ctx.checkpoint, ctx.manifest, ctx.config, {"vae": ctx.archives.load(vae, "vae")}, shape)
