"""The DCGAN training step in Python PyTorch — the same networks, init, optimizer, step, autocast
regions, warm-up and timing as dcgan_step_bench.cpp (gantry's models/dcgan).
  python3 dcgan_step.py RESOLUTION BATCH THREADS STEPS [fp32|bf16] [contiguous|channels_last] [cpu|cuda]
The optional words may come in any order (each names its setting). bf16 runs the forward passes under
autocast (losses and backward outside it, as gantry's StepContext does); the memory format applies to
the weights and the real images. dcgan_flops.py imports make_step to count the step's FLOPs."""
import math, sys, time
import torch
from torch import nn
import torch.nn.functional as F


class G(nn.Module):
    def __init__(self, k, gw=128, c=3):
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
    def __init__(self, k, dw=128, c=3):
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


def make_step(res, batch, device="cpu", precision="fp32", fmt=torch.contiguous_format):
    """The networks on `device` and one training step; step() returns (loss_d, loss_g) as tensors."""
    k = 4 if res == 64 else 3
    g, d = G(k), D(k)
    init(g); init(d)
    g.to(device=device, memory_format=fmt); d.to(device=device, memory_format=fmt)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = (torch.rand(batch, 3, res, res, device=device) * 2 - 1).contiguous(memory_format=fmt)  # (B, 3, R, R)

    def autocast():
        return torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16")

    def step():
        z = torch.rand(batch, 100, device=device) * 2 - 1  # (B, z_dim)
        opt_d.zero_grad()
        with autocast():
            fake = g(z)
            lr, lf = d(real), d(fake.detach())
        loss_d = F.binary_cross_entropy_with_logits(lr.float(), torch.ones_like(lr, dtype=torch.float)) + \
            F.binary_cross_entropy_with_logits(lf.float(), torch.zeros_like(lf, dtype=torch.float))
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad()
        with autocast():
            lg = d(fake)
        loss_g = F.binary_cross_entropy_with_logits(lg.float(), torch.ones_like(lg, dtype=torch.float))
        loss_g.backward()
        opt_g.step()
        return loss_d, loss_g

    return step


def main(argv):
    usage = "usage: dcgan_step.py RESOLUTION BATCH THREADS STEPS [fp32|bf16] [contiguous|channels_last] [cpu|cuda]"
    if not 5 <= len(argv) <= 8:
        sys.exit(usage)
    res, batch, threads, steps = (int(a) for a in argv[1:5])
    settings = {"precision": "fp32", "format": "contiguous", "device": "cpu"}
    kinds = {"fp32": "precision", "bf16": "precision", "contiguous": "format", "channels_last": "format",
             "cpu": "device", "cuda": "device"}
    for word in argv[5:]:
        if word not in kinds:
            sys.exit(f"dcgan_step.py: unknown setting {word}; {usage}")
        settings[kinds[word]] = word
    precision, device = settings["precision"], settings["device"]
    fmt = torch.channels_last if settings["format"] == "channels_last" else torch.contiguous_format
    if batch < 1 or steps < 1:
        sys.exit("dcgan_step.py: batch and steps must be positive")
    if device == "cuda" and not torch.cuda.is_available():
        print("dcgan_step.py: cuda asked for, but this torch sees no GPU", file=sys.stderr)
        sys.exit(77)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    step = make_step(res, batch, device, precision, fmt)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(10 if device == "cuda" else 3):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss_d, loss_g = step()
    sync()
    s = time.perf_counter() - t0
    ld, lg = loss_d.item(), loss_g.item()
    if not (math.isfinite(ld) and math.isfinite(lg)):
        sys.exit(f"dcgan_step.py: losses not finite (D {ld}, G {lg})")
    print(f"Python dcgan {res}x{res} batch {batch} {device} {precision} {settings['format']} threads {torch.get_num_threads()}: "
          f"{1e3 * s / steps:.2f} ms/step, {batch * steps / s:.1f} images/s (loss D {ld:.4f} G {lg:.4f})")


if __name__ == "__main__":
    main(sys.argv)
