"""Layers gantry's networks share: its BatchNorm (framework/dist/batch_norm.h: LibTorch's BatchNorm under
the same parameter and buffer names, for (N, C) and (N, C, H, W) inputs alike) and a way to run a network
with batch statistics without touching its running statistics, as gantry samples its GAN generators."""

import contextlib

import torch
import torch.nn.functional as F
from torch import nn


class BatchNorm(nn.Module):
    """Batch normalisation over dim 1 of an (N, C, ...) input; eps 1e-5, momentum 0.1 as gantry's."""

    def __init__(self, features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(features))
        self.bias = nn.Parameter(torch.zeros(features))
        self.register_buffer("running_mean", torch.zeros(features))
        self.register_buffer("running_var", torch.ones(features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        self.batch_statistics = False  # normalise with the batch's statistics, leaving the running ones

    def forward(self, x):
        if self.training:
            self.num_batches_tracked += 1
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, True, self.momentum,
                                self.eps)
        if self.batch_statistics:
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


@contextlib.contextmanager
def batch_statistics(*modules):
    """Within the block, every BatchNorm of `modules` in eval mode normalises with the statistics of the
    batch it is given (gantry's sampling of DCGAN and f-GAN generators); running statistics unchanged."""
    layers = [m for module in modules for m in module.modules() if isinstance(m, BatchNorm)]
    for layer in layers:
        layer.batch_statistics = True
    try:
        yield
    finally:
        for layer in layers:
            layer.batch_statistics = False
