"""The CycleGAN training step in Python PyTorch: the same networks, initialisation, losses, image pools,
optimizers, update order, warm-up and timing as cyclegan_step_bench.cpp (gantry's models/cyclegan), written
as the authors' reference (junyanz/pytorch-CycleGAN-and-pix2pix) runs a step: both generators with the
discriminators frozen, one Adam step; then both discriminators on pooled fakes, one Adam step.
  python3 cyclegan_step.py RESOLUTION BATCH THREADS STEPS [WIDTH=64]"""
import math, random, sys, time
import torch
from torch import nn


def norm(c):
    return nn.InstanceNorm2d(c, affine=False, track_running_stats=False)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), norm(c), nn.ReLU(),
                                  nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), norm(c))

    def forward(self, x):
        return x + self.body(x)


def generator(w, blocks, cin=3, cout=3):
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(cin, w, 7), norm(w), nn.ReLU()]
    for c in (w, 2 * w):
        layers += [nn.Conv2d(c, 2 * c, 3, 2, 1), norm(2 * c), nn.ReLU()]
    layers += [Block(4 * w) for _ in range(blocks)]
    for c in (4 * w, 2 * w):
        layers += [nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1), norm(c // 2), nn.ReLU()]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(w, cout, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def discriminator(w, layers=3, c=3):
    seq, ch = [nn.Conv2d(c, w, 4, 2, 1), nn.LeakyReLU(0.2)], w
    for i in range(1, layers + 1):
        out = w * min(2 ** i, 8)
        seq += [nn.Conv2d(ch, out, 4, 2 if i < layers else 1, 1), norm(out), nn.LeakyReLU(0.2)]
        ch = out
    return nn.Sequential(*seq, nn.Conv2d(ch, 1, 4, 1, 1))


def init(m):
    for mod in m.modules():
        if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(mod.weight, 0.0, 0.02)
            nn.init.zeros_(mod.bias)


class ImagePool:  # the reference's util/image_pool.py
    def __init__(self, size):
        self.size, self.images = size, []

    def query(self, images):
        out = []
        for image in images:
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif random.uniform(0, 1) > 0.5:
                k = random.randint(0, self.size - 1)
                out.append(self.images[k].clone())
                self.images[k] = image
            else:
                out.append(image)
        return torch.cat(out)


def lsgan(scores, real):
    return ((scores - 1) ** 2).mean() if real else (scores ** 2).mean()


def make_step(res, batch, width):
    blocks = 9 if res >= 256 else 6
    g, f = generator(width, blocks), generator(width, blocks)  # G: A → B, F: B → A
    d_a, d_b = discriminator(width), discriminator(width)
    for m in (g, f, d_a, d_b):
        init(m)
    opt_g = torch.optim.Adam(list(g.parameters()) + list(f.parameters()), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(list(d_a.parameters()) + list(d_b.parameters()), lr=2e-4, betas=(0.5, 0.999))
    a = torch.rand(batch, 3, res, res) * 2 - 1  # (B, 3, R, R)
    b = torch.rand(batch, 3, res, res) * 2 - 1
    pool_a, pool_b = ImagePool(50), ImagePool(50)
    l1 = lambda x, y, w: (x - y).abs().mean() * w

    def step():
        for p in list(d_a.parameters()) + list(d_b.parameters()):
            p.requires_grad_(False)
        opt_g.zero_grad()
        fake_b, fake_a = g(a), f(b)
        loss_g = lsgan(d_b(fake_b), True) + lsgan(d_a(fake_a), True) + l1(f(fake_b), a, 10) + l1(g(fake_a), b, 10)
        loss_g = loss_g + l1(f(a), a, 5) + l1(g(b), b, 5)
        loss_g.backward()
        opt_g.step()
        for p in list(d_a.parameters()) + list(d_b.parameters()):
            p.requires_grad_(True)
        opt_d.zero_grad()
        pooled_b, pooled_a = pool_b.query(fake_b.detach()), pool_a.query(fake_a.detach())
        loss_a = (lsgan(d_a(a), True) + lsgan(d_a(pooled_a), False)) * 0.5
        loss_b = (lsgan(d_b(b), True) + lsgan(d_b(pooled_b), False)) * 0.5
        loss_d = loss_a + loss_b
        loss_d.backward()
        opt_d.step()
        return loss_d.detach(), loss_g.detach()

    return step


def main(argv):
    if not 5 <= len(argv) <= 6:
        sys.exit("usage: cyclegan_step.py RESOLUTION BATCH THREADS STEPS [WIDTH=64]")
    res, batch, threads, steps = (int(x) for x in argv[1:5])
    width = int(argv[5]) if len(argv) == 6 else 64
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    random.seed(0)
    step = make_step(res, batch, width)
    first = step()
    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss_d, loss_g = step()
    s = time.perf_counter() - t0
    ld, lg = loss_d.item(), loss_g.item()
    if not (math.isfinite(ld) and math.isfinite(lg)):
        sys.exit(f"cyclegan_step.py: losses not finite (D {ld}, G {lg})")
    print(f"Python cyclegan {res}x{res} batch {batch} width {width} threads {torch.get_num_threads()}: "
          f"{1e3 * s / steps:.1f} ms/step, {batch * steps / s:.2f} images/s "
          f"(first loss D {first[0].item():.5f} G {first[1].item():.5f}) (last loss D {ld:.4f} G {lg:.4f})")


if __name__ == "__main__":
    main(sys.argv)
