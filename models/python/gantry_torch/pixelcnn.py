"""PixelCNN of models/pixelcnn (pixelcnn_model.h, masked_conv.h): arch residual or gated, a 256-way
softmax per sub-pixel; the checkpoint's network 'pixelcnn'."""

import torch
import torch.nn.functional as F
from torch import nn

from ._run import Run

LEVELS = 256


def colour_groups(count, colours, repeats=1):
    """The colour group of each of `count` features: `repeats` blocks, each split into `colours` contiguous
    groups (feature i of a block of n is in group i·colours // n)."""
    if colours < 1 or repeats < 1 or count % repeats or count // repeats < colours:
        raise ValueError(f"{count} features do not split into {repeats} x {colours} colour groups")
    block = count // repeats
    return [(i % block) * colours // block for i in range(count)]


def causal_mask(out_groups, in_groups, kh, kw, centre, mask_a):
    """The 0/1 mask (out, in, kh, kw): rows above the centre and taps left of it open; at the centre an
    output of group g sees inputs of groups < g (mask A) or ≤ g (mask B)."""
    cy, cx = centre
    mask = torch.zeros(len(out_groups), len(in_groups), kh, kw)
    mask[:, :, :cy, :] = 1
    mask[:, :, cy, :cx] = 1
    go = torch.tensor(out_groups).view(-1, 1)
    gi = torch.tensor(in_groups).view(1, -1)
    mask[:, :, cy, cx] = (gi < go if mask_a else gi <= go).float()
    return mask


class MaskedConv2d(nn.Module):
    """A stride-1 convolution, output the input's size, weights multiplied by a fixed causal mask (not
    checkpointed: rebuilt from the options)."""

    def __init__(self, inputs, out, kh, kw, centre, mask_a, in_groups, out_groups):
        super().__init__()
        self.conv = nn.Conv2d(inputs, out, (kh, kw))
        self.register_buffer("mask", causal_mask(out_groups, in_groups, kh, kw, centre, mask_a), persistent=False)
        top, left = centre
        bottom, right = kh - 1 - top, kw - 1 - left
        self.same = (top, left) if (top == bottom and left == right) else None
        self.pad = None if self.same else (left, right, top, bottom)

    def forward(self, x):
        if self.pad:
            return F.conv2d(F.pad(x, self.pad), self.conv.weight * self.mask, self.conv.bias)
        return F.conv2d(x, self.conv.weight * self.mask, self.conv.bias, padding=self.same)


def square(inputs, out, k, mask_a, colours):
    return MaskedConv2d(inputs, out, k, k, (k // 2, k // 2), mask_a, colour_groups(inputs, colours),
                        colour_groups(out, colours))


class ResidualBlock(nn.Module):
    def __init__(self, h, k, colours):
        super().__init__()
        self.reduce = square(2 * h, h, 1, False, colours)
        self.conv = square(h, h, k, False, colours)
        self.expand = square(h, 2 * h, 1, False, colours)

    def forward(self, x):
        y = self.conv(torch.relu(self.reduce(torch.relu(x))))
        return x + self.expand(torch.relu(y))


def _gate(a):
    p = a.size(1) // 2
    return torch.tanh(a[:, :p]) * torch.sigmoid(a[:, p:])


def _shift_down(x):
    return F.pad(x, (0, 0, 1, 0))[:, :, :x.size(2)]


class PixelCnn(nn.Module):
    def __init__(self, arch="residual", channels=1, layers=15, hidden=128, first_kernel=7, kernel=3, out_hidden=1024):
        super().__init__()
        self.arch, self.channels, self.first_kernel, self.kernel, self.layers = (arch, channels, first_kernel, kernel,
                                                                                 layers)
        colours = channels
        if arch == "residual":
            features = 2 * hidden
            self.first = square(colours, features, first_kernel, True, colours)
            self.blocks = nn.ModuleList([ResidualBlock(hidden, kernel, colours) for _ in range(layers)])
        else:
            p = features = hidden
            self.vertical, self.link, self.horizontal, self.h_out = (nn.ModuleList() for _ in range(4))
            for i in range(layers):
                kl, n = (first_kernel, colours) if i == 0 else (kernel, p)
                self.vertical.append(nn.Conv2d(n, 2 * p, (kl // 2 + 1, kl)))
                self.link.append(nn.Conv2d(2 * p, 2 * p, 1))
                self.horizontal.append(MaskedConv2d(n, 2 * p, 1, kl // 2 + 1, (0, kl // 2), i == 0,
                                                    colour_groups(n, colours), colour_groups(2 * p, colours, 2)))
                self.h_out.append(square(p, p, 1, False, colours))
        self.head1 = square(features, out_hidden, 1, False, colours)
        self.head2 = square(out_hidden, LEVELS * colours, 1, False, colours)

    def body(self, x):
        if self.arch == "residual":
            h = self.first(x)
            for block in self.blocks:
                h = block(h)
            return h
        v = h = x
        for i in range(len(self.vertical)):
            half = (self.first_kernel if i == 0 else self.kernel) // 2
            v_pre = self.vertical[i](F.pad(v, (half, half, half, 0)))
            h_pre = self.horizontal[i](h) + self.link[i](_shift_down(v_pre))
            v = _gate(v_pre)
            h_new = self.h_out[i](_gate(h_pre))
            h = h_new if i == 0 else h + h_new
        return h

    def head(self, features):
        return self.head2(torch.relu(self.head1(torch.relu(features))))

    def forward(self, x):
        """x (B, C, H, W) in [-1, 1] → logits (B, 256, C, H, W): logits[b, :, c, i, j] is the distribution of
        sub-pixel (i, j, c) given the sub-pixels before it (raster order, then colours)."""
        logits = self.head(self.body(x))
        return logits.view(x.size(0), self.channels, LEVELS, x.size(2), x.size(3)).permute(0, 2, 1, 3, 4)

    def reach(self):
        """Rows above (and columns to either side) of a pixel its logits depend on."""
        if self.arch == "residual":
            return self.first_kernel // 2 + self.layers * (self.kernel // 2)
        return 1 + self.first_kernel // 2 + (self.layers - 1) * (self.kernel // 2)


class PixelCnnRun(Run):
    recipe = "pixelcnn"

    @torch.no_grad()
    def sample(self, n, seed=0, size=None):
        """n images (n, C, H, W) in [-1, 1] drawn sub-pixel by sub-pixel (H·W·C network passes on the window
        that reaches each pixel, as gantry's sampler). size: (H, W), default the training images'."""
        net = self.pixelcnn
        if size is None:
            if self.shape is None:
                raise ValueError("the training images' size is unknown here (the run's dataset was not found): "
                                 "pass size=(H, W)")
            size = self.shape[1:]
        height, width, c_all = size[0], size[1], net.channels
        img = torch.zeros(n, height, width, c_all, dtype=torch.uint8, device=self.device)
        u = torch.rand(height * width * c_all, n, 1, generator=self._rng(seed)).to(self.device)
        r, t = net.reach(), 0
        for i in range(height):
            top = max(0, i - r)
            for j in range(width):
                left, right = max(0, j - r), min(width, j + r + 1)
                for c in range(c_all):
                    window = img[:, top:i + 1, left:right].permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1
                    f = net.body(window)[:, :, i - top, j - left][:, :, None, None]
                    logits = net.head(f).view(n, c_all, LEVELS)[:, c].float()
                    cdf = torch.softmax(logits, 1).cumsum(1)
                    img[:, i, j, c] = (cdf < u[t]).sum(1).clamp_max(LEVELS - 1).to(torch.uint8)
                    t += 1
        return img.permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1


def build(ctx):
    o = ctx.config["pixelcnn"]
    t = ctx.archives.tensors("pixelcnn")
    channels = (t["first.conv.weight"] if o["arch"] == "residual" else t["vertical.0.weight"]).shape[1]
    net = PixelCnn(o["arch"], channels, o["layers"], o["hidden"], o["first_kernel"], o["kernel"], o["out_hidden"])
    hint = ctx.shape_hint
    shape = (channels, hint[1], hint[2]) if hint is not None and hint[0] == channels else None
    return PixelCnnRun(ctx.checkpoint, ctx.manifest, ctx.config, {"pixelcnn": ctx.archives.load(net, "pixelcnn")},
                       shape)
