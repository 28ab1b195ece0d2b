"""TransUNet: the noise-prediction network of the separator (docs/method.md section 2).

A 2-D U-Net over ``[C, T, P]`` rolls (``T``, ``P`` divisible by 8; the data contract's
64 x 72 becomes 8 x 9 = 72 tokens at the bottleneck) with a relative-attention
Transformer at the bottleneck. The network knows nothing of the diffusion schedule:
``t`` enters only through the sinusoidal time embedding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from data.contract import N_PITCH, PHRASE_STEPS, STEPS_PER_BAR, STEPS_PER_BEAT
from models.attention import RelativeEncoderLayer
from models.options import GROUPS, LATENT_MULTIPLE

DOWNSAMPLE = 8  # three 2x2 poolings
BOTTLENECK_TOKENS = (PHRASE_STEPS // DOWNSAMPLE) * (N_PITCH // DOWNSAMPLE)  # 8 x 9 = 72
LEAK = 0.2  # LeakyReLU slope


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer-style sinusoidal embedding of integer time steps.

    Args:
        t: long or float ``[B]``.
        dim: even embedding size.

    Returns:
        float32 ``[B, dim]``: ``[sin(t w_k), cos(t w_k)]`` with ``w_k = 10000^(-k/(dim/2-1))``.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32)
                      / max(half - 1, 1))
    angles = t.float()[:, None] * freqs[None, :]  # (B, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class TimeEmbedding(nn.Module):
    """sinusoidal(dim) -> Linear(4 dim) -> GELU -> Linear(4 dim)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, 4 * dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """long ``[B]`` -> float ``[B, 4 dim]``."""
        return self.mlp(sinusoidal_embedding(t, self.dim))


class AdaGN(nn.Module):
    """Time-conditioned affine map of normalised features: ``scale * h + shift``."""

    def __init__(self, emb_dim: int, channels: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.LeakyReLU(LEAK), nn.Linear(emb_dim, 2 * channels))

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """h float ``[B, C, T, P]``, emb float ``[B, E]`` -> float ``[B, C, T, P]``."""
        scale, shift = self.proj(emb)[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
        return scale * h + shift


class ResBlock(nn.Module):
    """Two [3x3 conv, GroupNorm(8), AdaGN, LeakyReLU(0.2)] layers + 1x1 shortcut, dropout."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, rate: float = 0.0) -> None:
        super().__init__()
        # no conv biases before GroupNorm: it removes any per-channel constant
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(GROUPS, out_ch)
        self.ada1 = AdaGN(emb_dim, out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(GROUPS, out_ch)
        self.ada2 = AdaGN(emb_dim, out_ch)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1)
        self.dropout = nn.Dropout(rate)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """x float ``[B, in_ch, T, P]``, emb ``[B, E]`` -> float ``[B, out_ch, T, P]``."""
        h = F.leaky_relu(self.ada1(self.norm1(self.conv1(x)), emb), LEAK)
        h = F.leaky_relu(self.ada2(self.norm2(self.conv2(h)), emb), LEAK)
        return self.dropout(h + self.shortcut(x))


class Bottleneck(nn.Module):
    """Tokens of the 1/8 feature map -> Linear(d_model) -> encoder layers -> Linear(latent)."""

    def __init__(self, latent_dim: int, d_model: int, num_layers: int, rate: float) -> None:
        super().__init__()
        self.proj_in = nn.Linear(latent_dim, d_model)
        self.layers = nn.ModuleList(
            RelativeEncoderLayer(d_model, max_len=BOTTLENECK_TOKENS, rate=rate)
            for _ in range(num_layers))
        self.proj_out = nn.Linear(d_model, latent_dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """float ``[B, latent, T/8, P/8]`` -> same shape."""
        rows, cols = h.shape[-2:]
        tokens = self.proj_in(rearrange(h, "b c t p -> b (t p) c"))  # (B, L, d_model)
        for layer in self.layers:
            tokens = layer(tokens)
        return rearrange(self.proj_out(tokens), "b (t p) c -> b c t p", t=rows, p=cols)


BEAT_PLANES = 4  # sin/cos of the phase in the bar, sin/cos of the phase in the beat


def beat_planes(steps: int, pitches: int, device: torch.device | None = None,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Where each step sits in its bar and beat, as fixed coordinate channels.

    Step ``k`` of a window (windows start on a bar line, 16 steps a bar, 4 a beat) gets
    ``sin, cos(2 pi k / 16)`` and ``sin, cos(2 pi k / 4)``, the same on every pitch row.

    Returns:
        float ``[4, steps, pitches]``.
    """
    k = torch.arange(steps, device=device, dtype=torch.float64)
    bar = 2 * math.pi * (k % STEPS_PER_BAR) / STEPS_PER_BAR
    beat = 2 * math.pi * (k % STEPS_PER_BEAT) / STEPS_PER_BEAT
    planes = torch.stack([bar.sin(), bar.cos(), beat.sin(), beat.cos()]).to(dtype)  # (4, T)
    return planes[:, :, None].expand(BEAT_PLANES, steps, pitches)


@dataclass(frozen=True)
class InputPlanes:
    """What the network reads beside ``x_t``.

    Attributes:
        cond_ch: channels of an optional conditioning input concatenated to ``x`` (0 =
            none, the paper; 1 = the mixture given as an extra channel).
        pitch_channel: append a fixed absolute-pitch coordinate channel (-1 at the lowest
            row, +1 at the highest) to the input, so the network knows where it is on the
            pitch axis (convolutions and relative attention alone do not).
        beat_channel: append four fixed channels giving each step's position in its bar
            and in its beat (:func:`beat_planes`); windows start on a bar line.
    """

    cond_ch: int = 0
    pitch_channel: bool = False
    beat_channel: bool = False


class TransUNet(nn.Module):
    """U-Net with a relative-attention Transformer bottleneck (docs/method.md section 2).

    Args:
        in_ch: channels of ``x_t`` (5 instruments).
        out_ch: channels of the output (predicted noise).
        latent_dim: widest width (multiple of 32); stem width is ``latent_dim // 4``.
        d_model: Transformer width (multiple of 64; heads = d_model / 64).
        num_layers: Transformer encoder layers.
        time_emb_dim: sinusoidal time-embedding size (even).
        rate: dropout rate.
        planes: the inputs beside ``x_t`` (:class:`InputPlanes`; default none).
    """

    def __init__(self, in_ch: int, out_ch: int, latent_dim: int, d_model: int, num_layers: int,
                 time_emb_dim: int, rate: float = 0.0, planes: InputPlanes | None = None
                 ) -> None:
        super().__init__()
        planes = InputPlanes() if planes is None else planes
        cond_ch, pitch_channel, beat_channel = (planes.cond_ch, planes.pitch_channel,
                                                planes.beat_channel)
        if latent_dim % LATENT_MULTIPLE:
            raise ValueError(f"latent_dim must be a multiple of {LATENT_MULTIPLE}, "
                             f"got {latent_dim}")
        quarter, half = latent_dim // 4, latent_dim // 2
        emb = 4 * time_emb_dim
        self.in_ch, self.out_ch, self.cond_ch = in_ch, out_ch, cond_ch
        self.pitch_channel = pitch_channel
        self.beat_channel = beat_channel
        self.time_embedding = TimeEmbedding(time_emb_dim)
        extra = int(pitch_channel) + BEAT_PLANES * int(beat_channel)
        self.stem = nn.Conv2d(in_ch + cond_ch + extra, quarter, 7, padding=3)
        self.down1 = ResBlock(quarter, half, emb, rate)
        self.down2 = ResBlock(half, latent_dim, emb, rate)
        self.down3 = ResBlock(latent_dim, latent_dim, emb, rate)
        self.bottleneck = Bottleneck(latent_dim, d_model, num_layers, rate)
        self.up1 = ResBlock(2 * latent_dim, half, emb, rate)
        self.up2 = ResBlock(latent_dim, quarter, emb, rate)
        self.up3 = ResBlock(half, quarter, emb, rate)
        self.head = nn.Conv2d(quarter, out_ch, 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor,
                cond: torch.Tensor | None = None) -> torch.Tensor:
        """Map ``x`` (and the conditioning) to ``out_ch`` channels.

        Args:
            x: float ``[B, in_ch, T, P]`` with ``T`` and ``P`` divisible by 8.
            t: long ``[B]`` time indices.
            cond: float ``[B, cond_ch, T, P]``; required when ``cond_ch > 0``.

        Returns:
            float ``[B, out_ch, T, P]``.
        """
        if x.shape[-2] % DOWNSAMPLE or x.shape[-1] % DOWNSAMPLE:
            raise ValueError(f"TransUNet: time and pitch sizes must be divisible by {DOWNSAMPLE}, "
                             f"got {tuple(x.shape[-2:])}")
        if (cond is None) != (self.cond_ch == 0):
            raise ValueError(f"TransUNet: built with cond_ch={self.cond_ch}, "
                             f"got cond={'None' if cond is None else list(cond.shape)}")
        parts = [x] if cond is None else [x, cond.to(x.dtype)]
        if self.pitch_channel:
            rows = torch.linspace(-1.0, 1.0, x.shape[-1], device=x.device, dtype=x.dtype)
            parts.append(rows.expand(x.shape[0], 1, x.shape[-2], x.shape[-1]))  # (B, 1, T, P)
        if self.beat_channel:
            planes = beat_planes(x.shape[-2], x.shape[-1], x.device, x.dtype)  # (4, T, P)
            parts.append(planes.expand(x.shape[0], *planes.shape))  # (B, 4, T, P)
        emb = self.time_embedding(t)  # (B, 4 time_emb_dim)
        h0 = self.stem(torch.cat(parts, dim=1) if len(parts) > 1 else x)  # (B, L/4, T, P)
        h1 = self.down1(F.max_pool2d(h0, 2), emb)  # (B, L/2, T/2, P/2)
        h2 = self.down2(F.max_pool2d(h1, 2), emb)  # (B, L, T/4, P/4)
        h3 = self.down3(F.max_pool2d(h2, 2), emb)  # (B, L, T/8, P/8)
        h = self.bottleneck(h3)  # (B, L, T/8, P/8)
        h = self.up1(torch.cat([F.interpolate(h, scale_factor=2.0, mode="nearest"), h2], 1), emb)
        h = self.up2(torch.cat([F.interpolate(h, scale_factor=2.0, mode="nearest"), h1], 1), emb)
        h = self.up3(torch.cat([F.interpolate(h, scale_factor=2.0, mode="nearest"), h0], 1), emb)
        return self.head(h)  # (B, out_ch, T, P)
