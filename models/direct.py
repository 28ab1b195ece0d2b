"""Direct separation: the mixture in, per-cell instrument probabilities out, in one pass.

The same TransUNet as the diffusion separator, trained as a plain segmentation network:
its input is the mixture ``m`` (``[B, 1, T, P]``, plus the optional pitch channel the
network adds itself), its time input is fixed at 0, and its ``C`` output channels are
logits of the instruments of every cell. Only cells the mixture plays are scored: a
silent cell has no instrument to find, and the prediction is multiplied by ``m`` anyway.

Losses (``direct_loss``):

* ``"bce"``: binary cross-entropy of each instrument on every sounding cell (a cell may
  hold several instruments); probabilities are ``sigmoid(logits)``.
* ``"softmax"``: cross-entropy of a softmax over the instruments against the cell's true
  instruments, normalised to sum to 1 (a cell held by two instruments is a 50/50 target);
  probabilities are ``softmax(logits)`` over the instrument axis.

Like :class:`models.diffusion.GuidedDiffusion`, this module is a process that takes the
network as an argument; the network does not know which process trains it.
"""

from __future__ import annotations

from typing import get_args

import torch
import torch.nn.functional as F
from torch import nn

from data.contract import check_option
from models.inputs import run_onsets
from models.options import DirectLoss
from models.process import (
    DEFAULT_SAMPLING,
    Batch,
    Sampling,
    SeparationProcess,
    SeparatorSpec,
    register,
)
from models.transunet import InputPlanes, TransUNet


@register
class DirectSeparation(SeparationProcess):
    """Loss and prediction of the one-pass separator.

    Args:
        loss: ``"bce"`` or ``"softmax"`` (see the module docstring).
    """

    kind = "direct"
    # its validation loss rises while its accuracy still improves (confident mistakes on
    # unseen songs cost BCE more than they cost accuracy), so it is checkpointed on the
    # fraction of sounding validation cells whose most probable instrument is a true one
    monitor = ("val_accuracy", "max")

    def __init__(self, loss: str = "bce", onset_channel: bool = False) -> None:
        super().__init__()
        self.loss = check_option("direct_loss", loss, get_args(DirectLoss))
        self.onset_channel = onset_channel

    @classmethod
    def from_spec(cls, spec: SeparatorSpec) -> DirectSeparation:
        """The loss and inputs of a spec (``direct_loss``, ``onset_channel``)."""
        return cls(spec.direct_loss, onset_channel=spec.onset_channel)

    @classmethod
    def network(cls, spec: SeparatorSpec, rate: float = 0.0) -> TransUNet:
        """The segmentation network: the mixture in (one channel, plus the note starts as
        conditioning), ``out_ch`` instrument logits out."""
        return TransUNet(1, spec.out_ch, spec.latent_dim, spec.d_model, spec.num_layers,
                         spec.time_emb_dim, rate, InputPlanes(
                             cond_ch=int(spec.onset_channel), pitch_channel=spec.pitch_channel,
                             beat_channel=spec.beat_channel))

    def step(self, model: nn.Module, batch: Batch, stage: str, batch_idx: int = 0,
             seed: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss of a batch; outside training also ``accuracy`` (:meth:`hit_rate`)."""
        logits = self.logits(model, batch["mixture"], batch.get("onsets"))
        loss = self.loss_from_logits(logits, batch["music"], batch["mixture"])
        if stage == "train":
            return loss, {}
        return loss, {"accuracy": self.hit_rate(logits, batch["music"], batch["mixture"])}

    def describe(self, sampling: Sampling) -> str:
        """``"direct, one pass"`` (nothing is sampled)."""
        return "direct, one pass"

    def logits(self, model: nn.Module, mixture: torch.Tensor,
               onsets: torch.Tensor | None = None) -> torch.Tensor:
        """float ``[B, 1, T, P]`` mixture -> float ``[B, C, T, P]`` logits (t fixed at 0).

        With ``onset_channel`` the mixture's note starts ``onsets`` (float ``[B, 1, T, P]``;
        None: every run of cells counts as one note, :func:`run_onsets`) are the
        network's conditioning input.
        """
        t = torch.zeros(mixture.shape[0], dtype=torch.long, device=mixture.device)
        if not self.onset_channel:
            return model(mixture, t)
        return model(mixture, t, cond=run_onsets(mixture) if onsets is None else onsets)

    def training_loss(self, model: nn.Module, music: torch.Tensor,
                      mixture: torch.Tensor, onsets: torch.Tensor | None = None
                      ) -> torch.Tensor:
        """Mean loss over the sounding cells of the batch.

        Args:
            model: network ``(mixture [B, 1, T, P], t [B]) -> [B, C, T, P]``.
            music: float ``[B, C, T, P]`` (0/1) true instruments.
            mixture: float ``[B, 1, T, P]`` (0/1), the OR of ``music`` over ``C``.

        Returns:
            float scalar (0 for a batch without a sounding cell).
        """
        return self.loss_from_logits(self.logits(model, mixture, onsets), music, mixture)

    def loss_from_logits(self, logits: torch.Tensor, music: torch.Tensor,
                         mixture: torch.Tensor) -> torch.Tensor:
        """The loss of :meth:`training_loss` from precomputed logits ``[B, C, T, P]``."""
        on = mixture  # (B, 1, T, P)
        cells = on.sum().clamp(min=1.0)
        if self.loss == "bce":
            per = F.binary_cross_entropy_with_logits(logits, music, reduction="none")
            return (per * on).sum() / (cells * music.shape[1])
        target = music / music.sum(dim=1, keepdim=True).clamp(min=1.0)  # (B, C, T, P)
        per_cell = -(target * F.log_softmax(logits, dim=1)).sum(dim=1, keepdim=True)
        return (per_cell * on).sum() / cells

    @staticmethod
    def hit_rate(logits: torch.Tensor, music: torch.Tensor, mixture: torch.Tensor) -> torch.Tensor:
        """Fraction of sounding cells whose most probable instrument is a true one.

        Args:
            logits: float ``[B, C, T, P]``; music: float ``[B, C, T, P]`` (0/1);
            mixture: float ``[B, 1, T, P]`` (0/1).

        Returns:
            float scalar in [0, 1] (1 for a batch without a sounding cell).
        """
        if not mixture.any():
            return torch.ones((), device=logits.device)
        best = logits.argmax(dim=1, keepdim=True)  # (B, 1, T, P)
        return (music.gather(1, best) * mixture).sum() / mixture.sum()

    @torch.inference_mode()
    def probs(self, model: nn.Module, mixture: torch.Tensor,
              onsets: torch.Tensor | None = None, *, decoder: nn.Module | None = None,
              sampling: Sampling = DEFAULT_SAMPLING,
              generator: torch.Generator | None = None) -> torch.Tensor:
        """Instrument probabilities of every cell, 0 outside the mixture: one pass, no
        decoder and nothing sampled (those arguments are ignored).

        Args:
            model: the trained network (in eval mode).
            mixture: float ``[B, 1, T, P]``.
            onsets: float ``[B, 1, T, P]`` note starts (used with ``onset_channel``).

        Returns:
            float ``[B, C, T, P]`` in [0, 1].
        """
        logits = self.logits(model, mixture, onsets)
        probs = torch.sigmoid(logits) if self.loss == "bce" else torch.softmax(logits, dim=1)
        return probs * mixture
