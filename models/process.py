"""What every separator process offers, and the registry that names them.

A *process* is how a TransUNet is trained to separate and how it separates: the paper's
explicitly guided diffusion (:class:`models.diffusion.GuidedDiffusion`) or the one-pass
direct separator (:class:`models.direct.DirectSeparation`). The network does not know which
process holds it; callers never ask which kind they hold either -- they use this interface:

* :meth:`SeparationProcess.build` makes a fresh network and its process from the network
  keys of a config (:class:`SeparatorSpec`);
* :meth:`SeparationProcess.step`: the training / validation loss of a batch, and any extra
  metric to log;
* :meth:`SeparationProcess.probs`: instrument probabilities of every cell of a batch;
* :attr:`SeparationProcess.needs_decoder`, :attr:`SeparationProcess.monitor` (the metric
  that picks its checkpoint), :meth:`SeparationProcess.max_steps` and
  :meth:`SeparationProcess.describe` (its sampling settings in words).

Adding a process means one new subclass decorated with :func:`register` (and its name in
``models.options.SeparatorKind``, which the config validator reads).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import torch
from torch import nn

from models.options import SEPARATOR_KINDS, BetaSchedule, DirectLoss, SeparatorKind
from models.transunet import TransUNet

Batch = dict[str, torch.Tensor]


@dataclass(frozen=True)
class SeparatorSpec:
    """The config keys that fix a separator's weights' shapes or meaning.

    :meth:`SeparationProcess.build` builds from exactly these; a checkpoint loaded with a
    config must agree with it on every one (dropout ``rate`` is not among them).
    """

    separator: SeparatorKind
    in_ch: int
    out_ch: int
    latent_dim: int
    d_model: int
    num_layers: int
    time_emb_dim: int
    time_steps: int
    beta_schedule: BetaSchedule
    beta_start: float
    beta_end: float
    pitch_channel: bool
    condition_on_mixture: bool
    direct_loss: DirectLoss
    onset_channel: bool
    beat_channel: bool

    @classmethod
    def of(cls, cfg: object) -> SeparatorSpec:
        """The spec of a config (any object with these attributes, e.g.
        ``utils.core.config.Config``)."""
        return cls(**{f.name: getattr(cfg, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class Sampling:
    """Separation-time choices of a process that samples (ignored by one that does not).

    Attributes:
        sampler: ``"ddim"`` or ``"ddpm"``.
        steps: reverse steps.
        eta: DDIM eta (0 = deterministic).
        num_samples: probabilities averaged over this many samples.
    """

    sampler: str = "ddim"
    steps: int = 999
    eta: float = 0.0
    num_samples: int = 1


DEFAULT_SAMPLING = Sampling()


class SeparationProcess(nn.Module):
    """Base class of the separator processes (module docstring).

    Attributes:
        kind: the config's ``separator`` value that selects it.
        needs_decoder: whether separating needs the independent decoder (trained after).
        monitor: ``(metric, mode)`` that picks the best checkpoint of a training run.
    """

    kind: ClassVar[str]
    needs_decoder: ClassVar[bool] = False
    monitor: ClassVar[tuple[str, str]] = ("val_loss", "min")

    @classmethod
    def from_spec(cls, spec: SeparatorSpec) -> SeparationProcess:
        """The process of a spec, without a network."""
        raise NotImplementedError

    @classmethod
    def network(cls, spec: SeparatorSpec, rate: float = 0.0) -> TransUNet:
        """A fresh network of the shapes this process needs for ``spec``."""
        raise NotImplementedError

    @classmethod
    def build(cls, spec: SeparatorSpec, rate: float = 0.0) -> tuple[TransUNet, SeparationProcess]:
        """A fresh network and its process."""
        return cls.network(spec, rate), cls.from_spec(spec)

    def step(self, model: nn.Module, batch: Batch, stage: str, batch_idx: int = 0,
             seed: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss of one batch and the extra metrics to log (``{name: scalar}``).

        Args:
            model: the network.
            batch: ``{"music", "mixture"[, "onsets"]}`` float tensors.
            stage: ``"train"``, ``"val"`` or ``"test"``.
            batch_idx: the batch's index (seeds what a validation batch draws).
            seed: the run's seed.
        """
        raise NotImplementedError

    def probs(self, model: nn.Module, mixture: torch.Tensor,
              onsets: torch.Tensor | None = None, *, decoder: nn.Module | None = None,
              sampling: Sampling = DEFAULT_SAMPLING,
              generator: torch.Generator | None = None) -> torch.Tensor:
        """Instrument probabilities of every cell, 0 outside the mixture.

        Args:
            model: the trained network (eval mode).
            mixture: float ``[B, 1, T, P]``.
            onsets: float ``[B, 1, T, P]`` the mixture's note starts (None: read from the
                cells where the process uses them).
            decoder: the independent decoder, for a process that needs one.
            sampling: sampler settings, for a process that samples.
            generator: seeds the sampling noise.

        Returns:
            float ``[B, C, T, P]`` in [0, 1].
        """
        raise NotImplementedError

    def max_steps(self) -> int:
        """The most reverse steps ``probs`` can take (1 for a process that does not sample)."""
        return 1

    def describe(self, sampling: Sampling) -> str:
        """How this process separates with ``sampling``, in words (reports, logs)."""
        raise NotImplementedError


PROCESSES: dict[str, type[SeparationProcess]] = {}
"""Every process by its config name (``separator``)."""


def register(cls: type[SeparationProcess]) -> type[SeparationProcess]:
    """Class decorator: make a process selectable by its :attr:`kind`."""
    if cls.kind not in SEPARATOR_KINDS:
        raise ValueError(f"process kind {cls.kind!r} is not one of models.options."
                         f"SeparatorKind {SEPARATOR_KINDS}")
    PROCESSES[cls.kind] = cls
    return cls


def process_class(kind: str) -> type[SeparationProcess]:
    """The process class a config's ``separator`` names.

    Raises:
        ValueError: an unknown name, naming the allowed ones.
    """
    if kind not in PROCESSES:
        raise ValueError(f"separator must be one of {', '.join(map(repr, PROCESSES))}, "
                         f"got {kind!r}")
    return PROCESSES[kind]
