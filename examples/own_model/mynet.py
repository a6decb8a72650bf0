"""A small image classifier of the kind people write themselves.

It has the structures a compression tool must follow through the graph: a residual
add, a depthwise-separable block, a two-branch concatenation and an upsample skip.
``mynet(num_classes=..., in_channels=..., width=...)`` builds it; autocompress passes
``num_classes`` and ``in_channels`` from the data and ``width`` from ``--model-arg``.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_bn(c_in: int, c_out: int, k: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class Residual(nn.Module):
    """Two 3x3 convs with an identity shortcut (a residual add)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(c, c), nn.Conv2d(c, c, 3, 1, 1, bias=False))
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.bn(self.body(x)))


class DepthwiseSeparable(nn.Module):
    """A 3x3 depthwise conv followed by a 1x1 pointwise conv."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = conv_bn(c_in, c_in, 3, stride, groups=c_in)
        self.pointwise = conv_bn(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class TwoBranch(nn.Module):
    """A 1x1 and a 3x3 branch, concatenated along channels."""

    def __init__(self, c_in: int, c_each: int) -> None:
        super().__init__()
        self.a = conv_bn(c_in, c_each, 1)
        self.b = conv_bn(c_in, c_each, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.a(x), self.b(x)], dim=1)


class MyNet(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 16) -> None:
        super().__init__()
        w = width
        self.stem = conv_bn(in_channels, w)
        self.res = Residual(w)
        self.down = DepthwiseSeparable(w, 2 * w, stride=2)
        self.branches = TwoBranch(2 * w, w)  # 2w channels out
        self.lateral = conv_bn(w, 2 * w, 1)  # the skip from the full-resolution features
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.mix = conv_bn(2 * w, 2 * w, 3, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        full = self.res(self.stem(x))
        low = self.branches(self.down(full))
        merged = self.up(low) + self.lateral(full)  # the upsample skip
        return self.fc(torch.flatten(self.pool(self.mix(merged)), 1))


def mynet(num_classes: int = 10, in_channels: int = 3, width: int = 16) -> nn.Module:
    """The function autocompress calls (``--model mynet.py:mynet``)."""
    return MyNet(num_classes=num_classes, in_channels=in_channels, width=width)
