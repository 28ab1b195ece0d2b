"""Independent decoder: logits of x0 from the t = 0 noisy sample x1 (docs/method.md section 4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.options import GROUPS
from models.transunet import LEAK


class PlainResBlock(nn.Module):
    """Two [3x3 conv, GroupNorm(8), LeakyReLU(0.2)] layers + identity shortcut (no time input)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        # no conv biases before GroupNorm: it removes any per-channel constant
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(GROUPS, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(GROUPS, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float ``[B, C, T, P]`` -> same shape."""
        h = F.leaky_relu(self.norm1(self.conv1(x)), LEAK)
        h = F.leaky_relu(self.norm2(self.conv2(h)), LEAK)
        return x + h


class Decoder(nn.Module):
    """7x7 conv -> two residual blocks -> 3x3 conv.

    Args:
        channels: instruments (input and output channels), 5.
        dim: hidden width (a multiple of 8).
    """

    def __init__(self, channels: int = 5, dim: int = 64) -> None:
        super().__init__()
        if dim % GROUPS:
            raise ValueError(f"Decoder: dim must be a multiple of {GROUPS}, got {dim}")
        self.stem = nn.Conv2d(channels, dim, 7, padding=3)
        self.blocks = nn.Sequential(PlainResBlock(dim), PlainResBlock(dim))
        self.head = nn.Conv2d(dim, channels, 3, padding=1)

    def forward(self, x1: torch.Tensor) -> torch.Tensor:
        """float ``[B, channels, T, P]`` x1 -> float logits of x0, same shape."""
        return self.head(self.blocks(self.stem(x1)))
