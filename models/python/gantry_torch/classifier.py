"""The classifier of models/classifier (classifier_model.h) whose embedding is gantry's FID / KID feature
space; the checkpoint's network 'classifier'."""

import math

import torch
from torch import nn

from ._run import Run


class Classifier(nn.Module):
    def __init__(self, channels=1, height=28, width=28, classes=10, features=128, dropout=0.5):
        super().__init__()
        if height % 4 or width % 4:
            raise ValueError(f"images of {height}x{width} (the two 2x2 poolings need sides divisible by 4)")

        def conv(i, o):
            return nn.Conv2d(i, o, 3, padding=1)

        self.body = nn.Sequential(conv(channels, 32), nn.ReLU(), conv(32, 32), nn.ReLU(), nn.MaxPool2d(2), conv(32, 64),
                                  nn.ReLU(), conv(64, 64), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.embed = nn.Linear(64 * (height // 4) * (width // 4), features)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(features, classes)

    def features(self, x):
        """(B, C, H, W) in [-1, 1] → (B, features): the embedding, after its ReLU."""
        return torch.relu(self.embed(self.body(x)))

    def forward(self, x):
        """→ (B, classes) logits."""
        return self.head(self.dropout(self.features(x)))


class ClassifierRun(Run):
    recipe = "classifier"

    @torch.no_grad()
    def features(self, x):
        """The embedding gantry eval measures FID / KID in (dropout off)."""
        return self.classifier.features(x.to(self.device))

    @torch.no_grad()
    def predict(self, x):
        """Class probabilities (B, classes)."""
        return torch.softmax(self.classifier(x.to(self.device)), 1)


def build(ctx):
    o = ctx.config["classifier"]
    t = ctx.archives.tensors("classifier")
    channels, cells = t["body.0.weight"].shape[1], t["embed.weight"].shape[1] // 64
    hint = ctx.shape_hint
    if hint is not None and hint[0] == channels and (hint[1] // 4) * (hint[2] // 4) == cells:
        shape = tuple(hint)
    else:
        side = 4 * math.isqrt(cells)
        shape = (channels, side, side)
    net = Classifier(*shape, classes=o["classes"], features=o["features"], dropout=o["dropout"])
    return ClassifierRun(ctx.checkpoint, ctx.manifest, ctx.config, {"classifier": ctx.archives.load(net, "classifier")},
                         shape)
