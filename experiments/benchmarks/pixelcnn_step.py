"""The PixelCNN training step and sampler in Python PyTorch: the same networks as models/pixelcnn/ (built
in the same order, so the same seed gives the same weights), Adam, the same uint8 batch and the same
windowed sampler as pixelcnn_step_bench.cpp.
   python3 pixelcnn_step.py ARCH C HW LAYERS HIDDEN OUT_HIDDEN BATCH STEPS THREADS SAMPLES"""
import math, resource, sys, time
import torch
from torch import nn
import torch.nn.functional as F

arch, c, hw, layers, hidden, out_hidden, batch, steps, threads, samples = sys.argv[1], *map(int, sys.argv[2:])
torch.set_num_threads(threads)
LEVELS = 256


def colour_groups(count, colours, repeats=1):
    block = count // repeats
    return [(i % block) * colours // block for i in range(count)]


def causal_mask(out_g, in_g, kh, kw, centre, mask_a):
    cy, cx = centre
    m = torch.zeros(len(out_g), len(in_g), kh, kw)
    m[:, :, :cy, :] = 1
    m[:, :, cy, :cx] = 1
    go, gi = torch.tensor(out_g)[:, None], torch.tensor(in_g)[None, :]
    m[:, :, cy, cx] = ((gi < go) if mask_a else (gi <= go)).float()
    return m


class MaskedConv(nn.Conv2d):
    def __init__(self, cin, cout, kh, kw, centre, mask_a, in_g, out_g):
        super().__init__(cin, cout, (kh, kw))
        self.register_buffer("mask", causal_mask(out_g, in_g, kh, kw, centre, mask_a), persistent=False)
        top, left = centre
        bottom, right = kh - 1 - top, kw - 1 - left
        self.same = (top, left) if (top == bottom and left == right) else None
        self.pad = (left, right, top, bottom)

    def forward(self, x):
        if self.same is None:
            return F.conv2d(F.pad(x, self.pad), self.weight * self.mask, self.bias)
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.same)


def square(cin, cout, k, mask_a, colours):
    return MaskedConv(cin, cout, k, k, (k // 2, k // 2), mask_a, colour_groups(cin, colours), colour_groups(cout, colours))


class ResidualBlock(nn.Module):
    def __init__(self, h, k, colours):
        super().__init__()
        self.reduce = square(2 * h, h, 1, False, colours)
        self.conv = square(h, h, k, False, colours)
        self.expand = square(h, 2 * h, 1, False, colours)

    def forward(self, x):
        return x + self.expand(F.relu(self.conv(F.relu(self.reduce(F.relu(x))))))


def gate(a):
    p = a.shape[1] // 2
    return torch.tanh(a[:, :p]) * torch.sigmoid(a[:, p:])


class PixelCnn(nn.Module):
    def __init__(self, arch, colours, layers, hidden, out_hidden, k0=7, k=3):
        super().__init__()
        self.arch, self.colours, self.k0, self.k, self.layers = arch, colours, k0, k, layers
        if arch == "residual":
            feats = 2 * hidden
            self.first = square(colours, feats, k0, True, colours)
            self.blocks = nn.ModuleList([ResidualBlock(hidden, k, colours) for _ in range(layers)])
        else:
            p = feats = hidden
            self.vertical, self.link, self.horizontal, self.h_out = (nn.ModuleList() for _ in range(4))
            for l in range(layers):
                kl, cin = (k0, colours) if l == 0 else (k, p)
                self.vertical.append(nn.Conv2d(cin, 2 * p, (kl // 2 + 1, kl)))
                self.link.append(nn.Conv2d(2 * p, 2 * p, 1))
                self.horizontal.append(MaskedConv(cin, 2 * p, 1, kl // 2 + 1, (0, kl // 2), l == 0,
                                                  colour_groups(cin, colours), colour_groups(2 * p, colours, 2)))
                self.h_out.append(square(p, p, 1, False, colours))
        self.head1 = square(feats, out_hidden, 1, False, colours)
        self.head2 = square(out_hidden, LEVELS * colours, 1, False, colours)

    def body(self, x):
        if self.arch == "residual":
            h = self.first(x)
            for b in self.blocks:
                h = b(h)
            return h
        v = h = x
        for l in range(len(self.vertical)):
            kh, kw = self.vertical[l].kernel_size
            v_pre = self.vertical[l](F.pad(v, (kw // 2, kw // 2, kh - 1, 0)))
            shifted = F.pad(v_pre, (0, 0, 1, 0))[:, :, : v_pre.shape[2]]
            h_pre = self.horizontal[l](h) + self.link[l](shifted)
            v = gate(v_pre)
            h_new = self.h_out[l](gate(h_pre))
            h = h_new if l == 0 else h + h_new
        return h

    def head(self, f):
        return self.head2(F.relu(self.head1(F.relu(f))))

    def forward(self, x):
        out = self.head(self.body(x))
        return out.view(x.shape[0], self.colours, LEVELS, x.shape[2], x.shape[3]).permute(0, 2, 1, 3, 4)

    def reach(self):
        if self.arch == "residual":
            return self.k0 // 2 + self.layers * (self.k // 2)
        return 1 + self.k0 // 2 + (self.layers - 1) * (self.k // 2)


def to_float(u8):  # (B, H, W, C) uint8 -> (B, C, H, W) in [-1, 1], as gantry's uint8_to_float
    return u8.permute(0, 3, 1, 2).float().mul_(2.0 / 255.0).sub_(1.0)


@torch.no_grad()
def sample(model, n, gen):
    img = torch.zeros(n, hw, hw, c, dtype=torch.uint8)
    u = torch.rand(hw * hw * c, n, 1, generator=gen)
    r, t = model.reach(), 0
    for i in range(hw):
        top = max(0, i - r)
        for j in range(hw):
            left, right = max(0, j - r), min(hw, j + r + 1)
            for ch in range(c):
                f = model.body(to_float(img[:, top : i + 1, left:right]))[:, :, i - top, j - left, None, None]
                logits = model.head(f).view(n, c, LEVELS)[:, ch]
                img[:, i, j, ch] = (torch.softmax(logits, 1).cumsum(1) < u[t]).sum(1).clamp_max(LEVELS - 1)
                t += 1
    return img


torch.manual_seed(0)
model = PixelCnn(arch, c, layers, hidden, out_hidden)
adam = torch.optim.Adam(model.parameters(), lr=1e-3)
images = torch.randint(0, 256, (batch, hw, hw, c)).to(torch.uint8)
x, target = to_float(images), images.permute(0, 3, 1, 2).long()


def step():
    adam.zero_grad()
    loss = F.cross_entropy(model(x), target) / math.log(2.0)
    loss.backward()
    adam.step()
    return loss.item()


for _ in range(5):
    step()
block, ms = max(1, steps // 5), []
r0 = resource.getrusage(resource.RUSAGE_SELF)
for _ in range(5):
    t0 = time.perf_counter()
    for _ in range(block):
        loss = step()
    ms.append(1e3 * (time.perf_counter() - t0) / block)
r1 = resource.getrusage(resource.RUSAGE_SELF)
ms.sort()
per_image = 0.0
if samples > 0:
    t0 = time.perf_counter()
    sample(model, samples, torch.Generator().manual_seed(1))
    per_image = (time.perf_counter() - t0) / samples
print(f"Python pixelcnn {arch} {c}x{hw}x{hw} batch {batch} threads {torch.get_num_threads()}: {ms[2]:.3f} ms/step "
      f"(blocks {ms[0]:.3f}..{ms[-1]:.3f}), user {r1.ru_utime - r0.ru_utime:.2f} s, sys {r1.ru_stime - r0.ru_stime:.2f} s, "
      f"sampling {per_image:.4f} s/image ({samples} at once) (loss {loss:.4f})")
