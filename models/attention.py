"""Relative-position self-attention (Music Transformer style) for the TransUNet bottleneck.

The logits of head ``h`` between tokens ``i`` and ``j`` are
``(q_i . k_j + q_i . E[j - i]) / sqrt(d_head)``, where ``E`` is one learned embedding of
relative distances shared by all heads (docs/method.md section 2). ``q . E`` is computed
for every query against every distance at once and then moved into place with the "skewing" trick
(pad, reshape, slice) instead of a gather. Attention is bidirectional (no causal mask),
so distances run from ``-(L-1)`` to ``L-1``.

The release stored ``E`` as a plain tensor (never trained, never saved); here it is an
``nn.Parameter``, so checkpoints round-trip exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from models.options import HEAD_DIM


def skew(rel_logits: torch.Tensor) -> torch.Tensor:
    """Turn logits indexed by relative distance into logits indexed by key position.

    Args:
        rel_logits: float ``[..., L, 2L-1]``; column ``c`` holds distance ``c - (L-1)``.

    Returns:
        float ``[..., L, L]`` with ``out[..., i, j] = rel_logits[..., i, j - i + L - 1]``.
    """
    *lead, length, width = rel_logits.shape
    if width != 2 * length - 1:
        raise ValueError(f"skew: expected last dim 2L-1 = {2 * length - 1}, got {width}")
    # Pad one column so rows have stride 2L, then shift row i left by (L-1-i):
    # flat index of (i, c) is i*2L + c; dropping L-1 entries and re-reading rows of
    # length 2L-1 puts (i, j) at i*(2L-1) + j  <=>  column j + L-1 - i of row i.
    padded = F.pad(rel_logits, (0, 1))  # (..., L, 2L)
    flat = padded.reshape(*lead, length * 2 * length)
    flat = flat[..., length - 1: length - 1 + length * width]  # (..., L*(2L-1))
    return flat.reshape(*lead, length, width)[..., :length]  # (..., L, L)


class RelativeSelfAttention(nn.Module):
    """Multi-head self-attention with learned relative-position logits.

    Args:
        d_model: token width (a multiple of 64).
        max_len: longest sequence whose distances each get their own embedding row;
            longer sequences clip distances to ``+-(max_len-1)``.
        rate: dropout on the attention weights.
    """

    def __init__(self, d_model: int, max_len: int = 72, rate: float = 0.0) -> None:
        super().__init__()
        if d_model % HEAD_DIM:
            raise ValueError(f"d_model must be a multiple of {HEAD_DIM}, got {d_model}")
        self.num_heads = d_model // HEAD_DIM
        self.max_len = max_len
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(rate)
        # E[c] embeds distance c - (max_len - 1), c = 0 .. 2*max_len - 2.
        self.rel_emb = nn.Parameter(torch.randn(2 * max_len - 1, HEAD_DIM) / math.sqrt(HEAD_DIM))

    def _distances(self, length: int) -> torch.Tensor:
        """Rows of E for distances ``-(L-1) .. L-1``: float ``[2L-1, 64]``."""
        centre = self.max_len - 1
        idx = torch.arange(-(length - 1), length, device=self.rel_emb.device)
        idx = idx.clamp(-centre, centre) + centre
        return self.rel_emb[idx]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend over the tokens.

        Args:
            x: float ``[B, L, d_model]``.

        Returns:
            float ``[B, L, d_model]``.
        """
        length = x.shape[1]
        q, k, v = rearrange(self.qkv(x), "b l (three h d) -> three b h l d",
                            three=3, h=self.num_heads)
        content = q @ k.transpose(-1, -2)  # (B, H, L, L)
        position = skew(q @ self._distances(length).T)  # (B, H, L, 2L-1) -> (B, H, L, L)
        weights = torch.softmax((content + position) / math.sqrt(q.shape[-1]), dim=-1)
        out = self.dropout(weights) @ v  # (B, H, L, d)
        return self.out(rearrange(out, "b h l d -> b l (h d)"))


class RelativeEncoderLayer(nn.Module):
    """Two relative self-attention sublayers and a GELU feed-forward, each post-norm.

    ``x <- LN(x + Attn1(x))``, ``x <- LN(x + Attn2(x))``, ``x <- LN(x + FF(x))`` with
    ``FF: d_model -> d_model/2 -> d_model`` (docs/method.md section 2).
    """

    def __init__(self, d_model: int, max_len: int = 72, rate: float = 0.0) -> None:
        super().__init__()
        self.attn1 = RelativeSelfAttention(d_model, max_len, rate)
        self.attn2 = RelativeSelfAttention(d_model, max_len, rate)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, d_model // 2), nn.GELU(),
                                nn.Linear(d_model // 2, d_model))
        self.dropout = nn.Dropout(rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float ``[B, L, d_model]`` -> float ``[B, L, d_model]``."""
        x = self.norm1(x + self.dropout(self.attn1(x)))
        x = self.norm2(x + self.dropout(self.attn2(x)))
        return self.norm3(x + self.dropout(self.ff(x)))
