"""The DCGAN training step in Python PyTorch — the same networks, init and optimizer as
dcgan_step_bench.cpp (gantry's models/dcgan).
  python3 dcgan_step.py RESOLUTION BATCH THREADS STEPS [fp32|bf16] [contiguous|channels_last]
The optional precision runs the forward passes under CPU autocast (loss and backward outside it, as
gantry's StepContext does); the memory format applies to the weights and the real images."""
import contextlib, sys, time
import torch
from torch import nn
import torch.nn.functional as F

res, batch, threads, steps = (int(a) for a in sys.argv[1:5])
precision = sys.argv[5] if len(sys.argv) > 5 else "fp32"
fmt = torch.channels_last if len(sys.argv) > 6 and sys.argv[6] == "channels_last" else torch.contiguous_format


def forward():
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype=torch.bfloat16)
torch.set_num_threads(threads)
torch.manual_seed(0)
k = 4 if res == 64 else 3


class G(nn.Module):
    def __init__(self, gw=128, c=3):
        super().__init__()
        self.c0 = gw << (k - 1)
        self.project = nn.Linear(100, self.c0 * 16, bias=False)
        self.project_bn = nn.BatchNorm2d(self.c0)
        layers, ch = [], self.c0
        for i in range(k):
            last = i + 1 == k
            out = c if last else ch // 2
            layers.append(nn.ConvTranspose2d(ch, out, 4, 2, 1, bias=last))
            if not last:
                layers += [nn.BatchNorm2d(out), nn.ReLU()]
            ch = out
        self.body = nn.Sequential(*layers, nn.Tanh())

    def forward(self, z):
        return self.body(F.relu(self.project_bn(self.project(z).view(-1, self.c0, 4, 4))))


class D(nn.Module):
    def __init__(self, dw=64, c=3):
        super().__init__()
        layers, ch, out = [], c, dw
        for i in range(k):
            layers.append(nn.Conv2d(ch, out, 4, 2, 1, bias=(i == 0)))
            if i > 0:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.LeakyReLU(0.2))
            ch, out = out, out * 2
        layers.append(nn.Conv2d(ch, 1, 4, 1, 0))
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x).view(-1)


def init(m):
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            nn.init.normal_(mod.weight, 1.0, 0.02); nn.init.zeros_(mod.bias)
        elif isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(mod.weight, 0.0, 0.02)
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)


g, d = G(), D()
init(g); init(d)
g, d = g.to(memory_format=fmt), d.to(memory_format=fmt)
opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
real = (torch.rand(batch, 3, res, res) * 2 - 1).contiguous(memory_format=fmt)


def step():
    z = torch.rand(batch, 100) * 2 - 1
    opt_d.zero_grad()
    with forward():
        fake = g(z)
        lr, lf = d(real), d(fake.detach())
    loss_d = F.binary_cross_entropy_with_logits(lr, torch.ones_like(lr)) + \
        F.binary_cross_entropy_with_logits(lf, torch.zeros_like(lf))
    loss_d.backward()
    opt_d.step()
    opt_g.zero_grad()
    with forward():
        lg = d(fake)
    loss_g = F.binary_cross_entropy_with_logits(lg, torch.ones_like(lg))
    loss_g.backward()
    opt_g.step()
    return loss_g.item()


for _ in range(3):
    step()
t0 = time.perf_counter()
for _ in range(steps):
    step()
s = time.perf_counter() - t0
print(f"Python dcgan {res}x{res} batch {batch} threads {torch.get_num_threads()} {precision} {sys.argv[6] if len(sys.argv) > 6 else 'contiguous'}: {1e3 * s / steps:.1f} ms/step, "
      f"{batch * steps / s:.1f} images/s")
