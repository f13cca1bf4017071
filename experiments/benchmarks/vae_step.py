"""The VAE training step in Python PyTorch — the same model and optimizer as vae_step_bench.cpp.
   python3 vae_step.py ARCH(mlp|conv) BATCH THREADS STEPS"""
import math, resource, sys, time
import torch
from torch import nn
import torch.nn.functional as F

arch, batch, threads, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)


class Vae(nn.Module):
    def __init__(self, arch, c=1, hw=28, hidden=400, latent=20):
        super().__init__()
        self.arch, self.c, self.hw = arch, c, hw
        if arch == "mlp":
            d = c * hw * hw
            self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.ReLU())
            self.to_mu, self.to_logvar = nn.Linear(hidden, latent), nn.Linear(hidden, latent)
            self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, d))
        else:
            layers = 3 if hw == 32 else 4
            enc, ch, width = [], c, hidden
            for i in range(layers):
                enc += [nn.Conv2d(ch, width, 4, 2, 1), nn.ReLU()]
                ch = width
                if i + 1 < layers:
                    width *= 2
            self.encoder = nn.Sequential(*enc, nn.Flatten())
            self.feat = ch
            self.to_mu, self.to_logvar = nn.Linear(ch * 16, latent), nn.Linear(ch * 16, latent)
            self.from_z = nn.Linear(latent, ch * 16)
            dec = []
            for i in range(layers):
                out = ch // 2 if i + 1 < layers else c
                dec.append(nn.ConvTranspose2d(ch, out, 4, 2, 1))
                if i + 1 < layers:
                    dec.append(nn.ReLU())
                ch = out
            self.decoder = nn.Sequential(*dec)

    def forward(self, x):
        h = self.encoder(x)
        mu, logvar = self.to_mu(h), self.to_logvar(h)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        if self.arch == "mlp":
            recon = self.decoder(z).view(-1, self.c, self.hw, self.hw)
        else:
            recon = self.decoder(F.relu(self.from_z(z)).view(-1, self.feat, 4, 4))
        return recon, mu, logvar


hw, hidden = (28, 400) if arch == "mlp" else (32, 32)
model = Vae(arch, hw=hw, hidden=hidden)
adam = torch.optim.Adam(model.parameters(), lr=1e-3)
x = torch.rand(batch, 1, hw, hw) * 2 - 1


def step():
    adam.zero_grad()
    recon, mu, logvar = model(x)
    nll = F.binary_cross_entropy_with_logits(recon, (x + 1) * 0.5, reduction="sum") / batch
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / batch
    loss = nll + kl
    loss.backward()
    adam.step()
    return loss.item()


for _ in range(20):
    step()
r0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.perf_counter()
for _ in range(steps):
    loss = step()
s = time.perf_counter() - t0
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(f"Python {arch} batch {batch} threads {torch.get_num_threads()}: {1e3 * s / steps:.3f} ms/step, "
      f"{batch * steps / s:.0f} images/s, user {r1.ru_utime - r0.ru_utime:.2f} s, sys {r1.ru_stime - r0.ru_stime:.2f} s, "
      f"{(r1.ru_minflt - r0.ru_minflt) / steps:.1f} page faults/step "
      f"(loss {loss:.1f}, torch {torch.__version__})")
