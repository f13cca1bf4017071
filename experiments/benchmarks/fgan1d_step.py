"""f-GAN's 1-D Gaussian-mixture step in Python PyTorch — the same model, update and optimizers as the
gantry recipe (experiments/fgan_gauss_mixture.ini; recipe_step_bench fgan1d): generator mu + sigma z,
V 1-64-64-1 tanh, KL divergence, single-step update with the saddle objective (a gradient reversal on
the generated batch), two Adams (1e-3, betas 0.5/0.999), batch 1024, fresh N(0,1) noise each step.
   python fgan1d_step.py STEPS [THREADS=1]
Prints ms/step (median of 5 blocks of STEPS/5 after 20 warm-up steps), user and system CPU seconds."""
import resource, sys, time
import torch
from torch import nn

steps, threads = int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 1
torch.set_num_threads(threads)
torch.manual_seed(0)
batch = 1024


class ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return (None if ctx.scale == 0.0 else grad * ctx.scale), None


class Gaussian(nn.Module):
    def __init__(self):
        super().__init__()
        self.mu = nn.Parameter(torch.zeros(1))
        self.log_sigma = nn.Parameter(torch.zeros(1))

    def forward(self, z):
        return self.mu + torch.exp(self.log_sigma) * z


G = Gaussian()
V = nn.Sequential(nn.Linear(1, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))
opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
opt_v = torch.optim.Adam(V.parameters(), lr=1e-3, betas=(0.5, 0.999))
# P = 0.33 N(-1, 0.065) + 0.67 N(2, 2), one fixed batch (as recipe_step_bench)
u, z0 = torch.rand(batch, dtype=torch.float64), torch.randn(batch, dtype=torch.float64)
real = torch.where(u < 0.33, z0 * 0.065 ** 0.5 - 1, z0 * 2 ** 0.5 + 2).float().reshape(-1, 1)
gen = torch.Generator()


def step(position):
    gen.manual_seed(position)
    z = torch.randn(batch, 1, generator=gen)
    opt_v.zero_grad()
    opt_g.zero_grad()
    fake_in = ScaleGradient.apply(G(z), -1.0)
    v_real, v_fake = V(real).view(-1), V(fake_in).view(-1)
    real_t = v_real.clone().mean()
    fake_conj_t = torch.exp(v_fake - 1.0).mean()
    F = real_t - fake_conj_t
    (-F).backward()
    opt_v.step()
    opt_g.step()
    return [F.detach(), real_t.detach(), fake_conj_t.detach(), G.mu.detach().reshape(()),
            G.log_sigma.detach().exp().reshape(())]


position = 0
for _ in range(20):
    step(position)
    position += batch
ms, block = [], max(1, steps // 5)
r0 = resource.getrusage(resource.RUSAGE_SELF)
for _ in range(5):
    t0 = time.perf_counter()
    for _ in range(block):
        out = step(position)
        position += batch
    ms.append(1e3 * (time.perf_counter() - t0) / block)
r1 = resource.getrusage(resource.RUSAGE_SELF)
ms.sort()
print(f"Python fgan1d batch {batch} threads {torch.get_num_threads()}: {ms[2]:.4f} ms/step "
      f"(blocks {ms[0]:.4f}..{ms[-1]:.4f}), user {r1.ru_utime - r0.ru_utime:.2f} s, "
      f"sys {r1.ru_stime - r0.ru_stime:.2f} s, {(r1.ru_minflt - r0.ru_minflt) / (5 * block):.1f} page faults/step, F {out[0].item():.4f} (torch {torch.__version__})")
