"""Explicitly guided diffusion: schedule, guided loss, samplers (docs/method.md sections 3, 5).

The process is its own module; it takes the networks as arguments. Time indices run
``0 .. T-1``; index 0 is the least noisy sample, called ``x1`` (the decoder's input).
"Guided" means the diffusion lives only on the cells the mixture ``m`` plays: ``x_t`` and
the noise are multiplied by ``m`` everywhere.

Samplers look like schedulers: ``set_timesteps(num_steps)`` picks a descending schedule
``T-1 = tau_S > ... > tau_0 = 0`` and ``step(eps, t, t_prev, x_t)`` returns
``(x_prev, x0_pred)``; the loop lives in :meth:`GuidedDiffusion.sample_x1`.
"""

from __future__ import annotations

from typing import ClassVar, get_args

import torch
import torch.nn.functional as F
from torch import nn

from data.contract import check_option
from models.inputs import run_onsets
from models.options import BetaSchedule, Sampler
from models.process import (
    DEFAULT_SAMPLING,
    Batch,
    Sampling,
    SeparationProcess,
    SeparatorSpec,
    register,
)
from models.transunet import InputPlanes, TransUNet


def extract(a: torch.Tensor, t: torch.Tensor, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """Gather schedule values at time indices and shape them for broadcasting.

    Args:
        a: float ``[T]`` schedule constant.
        t: long ``[B]`` time indices.
        shape: shape of the tensor the result multiplies, ``(B, ...)``.

    Returns:
        float ``[B, 1, ..., 1]`` with ``len(shape)`` dims.
    """
    return a.gather(0, t.to(a.device)).reshape(t.shape[0], *([1] * (len(shape) - 1)))


def draw_noise(batch: Batch, stage: str, time_steps: int, seed: int, batch_idx: int
               ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(t, noise)`` for one batch: given in the batch, random (training; None lets the
    loss draw them) or, for validation and test, drawn from a generator seeded by ``seed``
    and the batch index, so every epoch's validation loss is measured on the same noise."""
    music = batch["music"]
    t, noise = batch.get("t"), batch.get("noise")
    if stage == "train" or (t is not None and noise is not None):
        return t, noise
    gen = torch.Generator(device=music.device).manual_seed(seed * 100_003 + batch_idx)
    if t is None:
        t = torch.randint(0, time_steps, (music.shape[0],), generator=gen, device=music.device)
    if noise is None:
        noise = torch.randn(music.shape, generator=gen, device=music.device, dtype=music.dtype)
    return t, noise


@register
class GuidedDiffusion(SeparationProcess):
    """DDPM schedule and guided loss. Constants are float64-computed float32 buffers.

    Args:
        time_steps: T.
        beta_schedule: ``"linear"``: betas evenly spaced from beta_start to beta_end.
        beta_start: beta at t = 0.
        beta_end: beta at t = T-1.
        channels: instrument channels of ``x_t`` (5).
        condition_on_mixture: also hand the mixture to the network as its conditioning
            input (``model(x_t, t, cond=m)``), as image-colourisation diffusion models get
            the grey image; the paper's process gives it only through the guidance mask.
        onset_channel: also hand the mixture's note starts to the network as a
            conditioning channel (after the mixture when both are given).
    """

    kind = "diffusion"
    needs_decoder = True

    def __init__(self, time_steps: int = 1000, beta_schedule: str = "linear",
                 beta_start: float = 1e-4, beta_end: float = 0.02, channels: int = 5,
                 condition_on_mixture: bool = False, onset_channel: bool = False) -> None:
        super().__init__()
        check_option("beta_schedule", beta_schedule, get_args(BetaSchedule))
        if time_steps < 2:
            raise ValueError(f"time_steps must be >= 2, got {time_steps}")
        self.time_steps = time_steps
        self.channels = channels
        self.condition_on_mixture = condition_on_mixture
        self.onset_channel = onset_channel
        betas = torch.linspace(beta_start, beta_end, time_steps, dtype=torch.float64)
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)  # abar_t
        for name, value in {
            "betas": betas,
            "alphas_cumprod": alphas_cumprod,
            "sqrt_alphas_cumprod": alphas_cumprod.sqrt(),
            "sqrt_one_minus_alphas_cumprod": (1.0 - alphas_cumprod).sqrt(),
        }.items():
            self.register_buffer(name, value.float())
        self.alphas_cumprod64 = alphas_cumprod  # exact values the samplers derive from

    @classmethod
    def from_spec(cls, spec: SeparatorSpec) -> GuidedDiffusion:
        """The schedule and guidance of a spec (``condition_on_mixture``, ``onset_channel``)."""
        return cls(spec.time_steps, spec.beta_schedule, spec.beta_start, spec.beta_end,
                   channels=spec.in_ch, condition_on_mixture=spec.condition_on_mixture,
                   onset_channel=spec.onset_channel)

    @classmethod
    def network(cls, spec: SeparatorSpec, rate: float = 0.0) -> TransUNet:
        """The noise-prediction network: ``x_t`` in (``in_ch`` channels), conditioned on the
        mixture and the note starts when configured."""
        return TransUNet(spec.in_ch, spec.out_ch, spec.latent_dim, spec.d_model,
                         spec.num_layers, spec.time_emb_dim, rate, InputPlanes(
                             cond_ch=int(spec.condition_on_mixture) + int(spec.onset_channel),
                             pitch_channel=spec.pitch_channel,
                             beat_channel=spec.beat_channel))

    def step(self, model: nn.Module, batch: Batch, stage: str, batch_idx: int = 0,
             seed: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The guided loss of a batch (:meth:`training_loss`); no extra metric."""
        t, noise = draw_noise(batch, stage, self.time_steps, seed, batch_idx)
        return self.training_loss(model, batch["music"], batch["mixture"], t, noise,
                                  batch.get("onsets")), {}

    @torch.inference_mode()
    def probs(self, model: nn.Module, mixture: torch.Tensor,
              onsets: torch.Tensor | None = None, *, decoder: nn.Module | None = None,
              sampling: Sampling = DEFAULT_SAMPLING,
              generator: torch.Generator | None = None) -> torch.Tensor:
        """``sigmoid(decoder(x1))`` averaged over ``sampling.num_samples`` samples of x1.

        Args: see :meth:`models.process.SeparationProcess.probs`; ``decoder`` is required
        and ``sampling.steps`` is clamped to :meth:`max_steps`.
        """
        if decoder is None:
            raise ValueError("a diffusion separator needs its decoder")
        if sampling.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {sampling.num_samples}")
        steps = min(sampling.steps, self.max_steps())
        total = torch.zeros((mixture.shape[0], self.channels, *mixture.shape[-2:]),
                            device=mixture.device, dtype=mixture.dtype)
        for _ in range(sampling.num_samples):
            x1 = self.sample_x1(model, mixture, sampling.sampler, steps, sampling.eta,
                                generator, onsets)
            total += torch.sigmoid(decoder(x1))
        return total / sampling.num_samples

    def max_steps(self) -> int:
        """T - 1: the reverse chain from index T-1 down to 0."""
        return self.time_steps - 1

    def describe(self, sampling: Sampling) -> str:
        """E.g. ``"diffusion, ddim 20 steps"``."""
        steps = min(sampling.steps, self.max_steps())
        many = f", {sampling.num_samples} samples averaged" if sampling.num_samples > 1 else ""
        return f"diffusion, {sampling.sampler} {steps} steps (eta {sampling.eta:g}){many}"

    def predict_eps(self, model: nn.Module, x_t: torch.Tensor, t: torch.Tensor,
                    mixture: torch.Tensor, onsets: torch.Tensor | None = None) -> torch.Tensor:
        """The network's noise prediction, conditioned on the mixture and the note starts
        when configured.

        Args:
            model: network ``(x [B, C, T, P], t [B][, cond]) -> [B, C, T, P]``.
            x_t: float ``[B, C, T, P]``; t: long ``[B]``; mixture: float ``[B, 1, T, P]``;
            onsets: float ``[B, 1, T, P]`` (None: :func:`models.inputs.run_onsets`).
        """
        cond = []
        if self.condition_on_mixture:
            cond.append(mixture)
        if self.onset_channel:
            cond.append(run_onsets(mixture) if onsets is None else onsets)
        if not cond:
            return model(x_t, t)
        return model(x_t, t, cond=torch.cat(cond, dim=1) if len(cond) > 1 else cond[0])

    # ---------------------------------------------------------------- forward process
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps.

        Args:
            x0: float ``[B, C, T, P]``; t: long ``[B]``; noise: float like ``x0``.

        Returns:
            float ``[B, C, T, P]`` (not masked).
        """
        return (extract(self.sqrt_alphas_cumprod, t, x0.shape) * x0
                + extract(self.sqrt_one_minus_alphas_cumprod, t, x0.shape) * noise)

    def training_loss(self, model: nn.Module, x0: torch.Tensor, mixture: torch.Tensor,
                      t: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                      onsets: torch.Tensor | None = None) -> torch.Tensor:
        """Guided denoising loss: Huber between ``eps * m`` and ``model(x_t * m, t)``.

        Args:
            model: network ``(x [B, C, T, P], t [B]) -> [B, C, T, P]``.
            x0: float ``[B, C, T, P]`` music.
            mixture: float ``[B, 1, T, P]`` (0/1).
            t: long ``[B]``; drawn uniformly from ``0..T-1`` when None.
            noise: float like ``x0``; standard normal when None.
            onsets: float ``[B, 1, T, P]`` note starts (with ``onset_channel``).

        Returns:
            float scalar.
        """
        if t is None:
            t = torch.randint(0, self.time_steps, (x0.shape[0],), device=x0.device)
        if noise is None:
            noise = torch.randn_like(x0)
        x_t = self.q_sample(x0, t, noise) * mixture  # step 3: guide x_t ...
        target = noise * mixture  # ... and eps
        return F.smooth_l1_loss(self.predict_eps(model, x_t, t, mixture, onsets), target)

    def make_x1(self, x0: torch.Tensor, mixture: torch.Tensor,
                noise: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder's input: ``(sqrt(abar_0) x0 + sqrt(1 - abar_0) eps) * m``.

        Args:
            x0: float ``[B, C, T, P]``; mixture: float ``[B, 1, T, P]``; noise like ``x0``.

        Returns:
            float ``[B, C, T, P]``.
        """
        if noise is None:
            noise = torch.randn_like(x0)
        t = torch.zeros(x0.shape[0], dtype=torch.long, device=x0.device)
        return self.q_sample(x0, t, noise) * mixture

    # ---------------------------------------------------------------- reverse process
    def make_sampler(self, sampler: str, eta: float = 0.0) -> _Sampler:
        """A sampler by validated name (``"ddpm"`` or ``"ddim"``, :data:`SAMPLER_CLASSES`)."""
        return sampler_class(sampler).build(self, eta)

    def sample_x1(self, model: nn.Module, mixture: torch.Tensor, sampler: str, steps: int,
                  eta: float = 0.0, generator: torch.Generator | None = None,
                  onsets: torch.Tensor | None = None) -> torch.Tensor:
        """Walk from ``x_{T-1} = N(0, I) * m`` down to ``x1`` (index 0) in ``steps`` steps.

        Args:
            model: noise-prediction network.
            mixture: float ``[B, 1, T, P]`` (0/1); ``T`` and ``P`` divisible by 8.
            sampler: ``"ddpm"`` or ``"ddim"``.
            steps: reverse steps, ``1 .. time_steps - 1`` (``time_steps - 1`` = every index).
            eta: DDIM stochasticity (0 = deterministic); ignored by DDPM.
            generator: torch generator on ``mixture.device`` for reproducible noise.
            onsets: float ``[B, 1, T, P]`` note starts (with ``onset_channel``).

        Returns:
            float ``[B, C, T, P]`` x1, zero outside the mixture.
        """
        schedule = self.make_sampler(sampler, eta)
        schedule.set_timesteps(steps)
        shape = (mixture.shape[0], self.channels, *mixture.shape[-2:])
        x = torch.randn(shape, generator=generator, device=mixture.device,
                        dtype=mixture.dtype) * mixture
        times = schedule.timesteps.tolist()
        for t, t_prev in zip(times[:-1], times[1:]):
            t_batch = torch.full((shape[0],), t, dtype=torch.long, device=mixture.device)
            eps = self.predict_eps(model, x, t_batch, mixture, onsets)
            x, _ = schedule.step(eps, t, t_prev, x, generator=generator)
            x = x * mixture  # keep x_t zero outside the mixture at every step
        return x


class _Sampler:
    """Shared schedule logic: strided time indices and the float64 abar table."""

    name: ClassVar[str]  # the config's sampler value

    @classmethod
    def build(cls, diffusion: GuidedDiffusion, eta: float = 0.0) -> _Sampler:
        """The sampler of ``diffusion`` (``eta``: read by the samplers that add noise)."""
        return cls(diffusion)

    def __init__(self, diffusion: GuidedDiffusion) -> None:
        self.time_steps = diffusion.time_steps
        self.alphas_cumprod = diffusion.alphas_cumprod64  # float64 [T]
        self.timesteps = torch.arange(self.time_steps - 1, -1, -1)

    def set_timesteps(self, num_steps: int) -> None:
        """Choose ``num_steps + 1`` descending indices from ``T-1`` to 0 (evenly strided).

        ``num_steps == T-1`` gives every index, i.e. the full chain.
        """
        top = self.time_steps - 1
        if not 1 <= num_steps <= top:
            raise ValueError(f"sampling steps must be in 1..{top}, got {num_steps}")
        # Spacing >= 1, so rounding keeps the indices distinct.
        grid = torch.linspace(top, 0, num_steps + 1, dtype=torch.float64).round().long()
        self.timesteps = grid

    def _abar(self, t: int, t_prev: int) -> tuple[float, float]:
        if not 0 <= t_prev < t < self.time_steps:
            raise ValueError(f"step: need 0 <= t_prev < t < {self.time_steps}, got {t_prev}, {t}")
        return float(self.alphas_cumprod[t]), float(self.alphas_cumprod[t_prev])

    @staticmethod
    def _noise(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


SAMPLER_CLASSES: dict[str, type[_Sampler]] = {}
"""Every sampler by its config name (``sampler``), as :data:`models.process.PROCESSES`."""


def register_sampler(cls: type[_Sampler]) -> type[_Sampler]:
    """Class decorator: make a sampler selectable by its :attr:`~_Sampler.name`."""
    check_option("sampler", cls.name, get_args(Sampler))
    SAMPLER_CLASSES[cls.name] = cls
    return cls


def sampler_class(name: str) -> type[_Sampler]:
    """The sampler class a config's ``sampler`` names.

    Raises:
        ValueError: an unknown name, naming the allowed ones.
    """
    return SAMPLER_CLASSES[check_option("sampler", name, tuple(SAMPLER_CLASSES))]


@register_sampler
class DDPMSampler(_Sampler):
    """Ancestral DDPM steps; on a strided schedule the step uses the effective beta
    ``1 - abar_t / abar_prev`` (Nichol & Dhariwal's respacing)."""

    name = "ddpm"

    def step(self, eps: torch.Tensor, t: int, t_prev: int, x_t: torch.Tensor,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One reverse step ``x_t -> x_{t_prev}``.

        Args:
            eps: float ``[B, C, T, P]`` predicted noise; t, t_prev: indices, ``t_prev < t``;
            x_t: float like ``eps``; generator: for the added noise.

        Returns:
            ``(x_prev, x0_pred)``, both float like ``x_t``.
        """
        abar, abar_prev = self._abar(t, t_prev)
        beta = 1.0 - abar / abar_prev
        # (1) x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)
        x0_pred = (x_t - (1.0 - abar) ** 0.5 * eps) / abar ** 0.5
        # (2) posterior mean  mu = c0 x0 + ct x_t   (DDPM eq. 7)
        c0 = abar_prev ** 0.5 * beta / (1.0 - abar)
        ct = (1.0 - beta) ** 0.5 * (1.0 - abar_prev) / (1.0 - abar)
        # (3) posterior variance  beta~ = beta (1 - abar_prev) / (1 - abar_t)
        sigma = (beta * (1.0 - abar_prev) / (1.0 - abar)) ** 0.5
        x_prev = c0 * x0_pred + ct * x_t + sigma * self._noise(x_t, generator)
        return x_prev, x0_pred


@register_sampler
class DDIMSampler(_Sampler):
    """DDIM steps (Song et al. eq. 12); ``eta = 0`` is deterministic, ``eta = 1`` DDPM-like."""

    name = "ddim"

    @classmethod
    def build(cls, diffusion: GuidedDiffusion, eta: float = 0.0) -> DDIMSampler:
        return cls(diffusion, eta)

    def __init__(self, diffusion: GuidedDiffusion, eta: float = 0.0) -> None:
        super().__init__(diffusion)
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        self.eta = eta

    def step(self, eps: torch.Tensor, t: int, t_prev: int, x_t: torch.Tensor,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One reverse step ``x_t -> x_{t_prev}``.

        Args:
            eps: float ``[B, C, T, P]`` predicted noise; t, t_prev: indices, ``t_prev < t``;
            x_t: float like ``eps``; generator: for the added noise when ``eta > 0``.

        Returns:
            ``(x_prev, x0_pred)``, both float like ``x_t``.
        """
        abar, abar_prev = self._abar(t, t_prev)
        # (1) x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)
        x0_pred = (x_t - (1.0 - abar) ** 0.5 * eps) / abar ** 0.5
        # (2) sigma = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev)
        sigma = self.eta * ((1.0 - abar_prev) / (1.0 - abar) * (1.0 - abar / abar_prev)) ** 0.5
        # (3) x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - sigma^2) eps + sigma z
        x_prev = abar_prev ** 0.5 * x0_pred + (1.0 - abar_prev - sigma ** 2) ** 0.5 * eps
        if sigma > 0:
            x_prev = x_prev + sigma * self._noise(x_t, generator)
        return x_prev, x0_pred
