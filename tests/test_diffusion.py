"""Guided diffusion: schedule, guided loss, samplers (analytic dummy models), assignment."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models.decoder import Decoder
from models.diffusion import DDIMSampler, DDPMSampler, GuidedDiffusion, extract
from models.process import Sampling
from models.transunet import TransUNet
from utils.separation.assignment import assign_instruments


class ScaledInput(nn.Module):
    """Analytic noise predictor: eps_hat = 0.5 x_t + 0.01 t (no weights)."""

    in_ch = 5

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return 0.5 * x + 0.01 * t.float()[:, None, None, None]


def mixture(batch: int = 2, steps: int = 16, pitches: int = 24, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 1, steps, pitches, generator=gen) < 0.2).float()


def test_schedule_buffers_are_float32_from_float64() -> None:
    diff = GuidedDiffusion(1000)
    assert {n for n, _ in diff.named_buffers()} >= {"betas", "alphas_cumprod"}
    assert diff.betas.dtype == torch.float32
    assert diff.betas[0].item() == pytest.approx(1e-4) and diff.betas[-1].item() == pytest.approx(
        0.02)
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
    assert torch.equal(diff.alphas_cumprod, abar.float())
    assert diff.to(torch.float64).betas.dtype == torch.float64  # buffers follow the module


def test_unknown_option_names_the_option() -> None:
    with pytest.raises(ValueError, match="beta_schedule must be one of 'linear', got 'cosine'"):
        GuidedDiffusion(10, "cosine")
    with pytest.raises(ValueError, match="sampler must be one of"):
        GuidedDiffusion(10).make_sampler("euler")
    with pytest.raises(ValueError, match="assign must be one of 'threshold', 'partition'"):
        assign_instruments(torch.rand(1, 5, 8, 8), torch.ones(1, 1, 8, 8), "vote")


def test_extract_broadcasts() -> None:
    a = torch.arange(10.0)
    out = extract(a, torch.tensor([3, 7]), (2, 5, 4, 4))
    assert out.shape == (2, 1, 1, 1) and out.flatten().tolist() == [3.0, 7.0]


def test_q_sample_matches_formula() -> None:
    diff = GuidedDiffusion(100)
    x0, noise = torch.rand(2, 5, 8, 8), torch.randn(2, 5, 8, 8)
    t = torch.tensor([0, 99])
    got = diff.q_sample(x0, t, noise)
    abar = diff.alphas_cumprod[t].reshape(2, 1, 1, 1)
    torch.testing.assert_close(got, abar.sqrt() * x0 + (1 - abar).sqrt() * noise)


def test_guided_loss_ignores_cells_outside_the_mixture() -> None:
    torch.manual_seed(0)
    net = TransUNet(5, 5, 32, 64, 1, 16)
    diff = GuidedDiffusion(100)
    m = mixture(2, 16, 24)
    x0 = torch.rand(2, 5, 16, 24).round() * m
    t, noise = torch.tensor([10, 80]), torch.randn(2, 5, 16, 24)
    base = diff.training_loss(net, x0, m, t, noise)
    changed = x0 + (1 - m) * torch.rand_like(x0) * 5  # different music outside the mixture
    assert torch.equal(diff.training_loss(net, changed, m, t, noise), base)
    inside = x0 + m * 0.5
    assert not torch.equal(diff.training_loss(net, inside, m, t, noise), base)
    # x1 for the decoder is zero outside the mixture as well
    assert (diff.make_x1(changed, m, noise) * (1 - m)).abs().sum() == 0


@pytest.mark.parametrize("sampler,eta", [("ddpm", 0.0), ("ddim", 0.0), ("ddim", 1.0)])
@pytest.mark.parametrize("steps", [99, 7])
def test_samplers_keep_outside_mixture_cells_zero(sampler: str, eta: float, steps: int) -> None:
    diff = GuidedDiffusion(100)
    m = mixture()
    gen = torch.Generator().manual_seed(0)
    x1 = diff.sample_x1(ScaledInput(), m, sampler, steps, eta, gen)
    assert x1.shape == (2, 5, 16, 24)
    assert torch.equal(x1 * (1 - m), torch.zeros_like(x1))
    assert (x1 * m).abs().sum() > 0


def test_set_timesteps_walks_from_t_minus_1_to_0() -> None:
    diff = GuidedDiffusion(1000)
    sched = DDIMSampler(diff)
    sched.set_timesteps(999)
    assert sched.timesteps.tolist() == list(range(999, -1, -1))
    sched.set_timesteps(20)
    ts = sched.timesteps.tolist()
    assert len(ts) == 21 and ts[0] == 999 and ts[-1] == 0 and ts == sorted(set(ts), reverse=True)
    for bad in (0, 1000):
        with pytest.raises(ValueError, match="sampling steps must be in 1..999"):
            sched.set_timesteps(bad)


def test_strided_ddim_with_all_steps_equals_full_ddim() -> None:
    """Reference: the full deterministic DDIM chain written out with alphas per index."""
    T = 50
    diff = GuidedDiffusion(T)
    model, m = ScaledInput(), mixture(seed=1)
    got = diff.sample_x1(model, m, "ddim", T - 1, 0.0, torch.Generator().manual_seed(5))

    x = torch.randn((2, 5, 16, 24), generator=torch.Generator().manual_seed(5)) * m
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, T, dtype=torch.float64), 0)
    for t in range(T - 1, 0, -1):
        eps = model(x, torch.full((2,), t))
        a_t, a_p = abar[t].item(), abar[t - 1].item()
        x0 = (x - (1 - a_t) ** 0.5 * eps) / a_t ** 0.5
        x = (a_p ** 0.5 * x0 + (1 - a_p) ** 0.5 * eps) * m
    torch.testing.assert_close(got, x, rtol=0, atol=1e-6)


def test_ddpm_step_on_consecutive_indices_is_the_ddpm_posterior() -> None:
    diff = GuidedDiffusion(100)
    sched = DDPMSampler(diff)
    x_t, eps = torch.randn(1, 5, 8, 8), torch.randn(1, 5, 8, 8)
    t = 40
    gen_a, gen_b = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    x_prev, x0 = sched.step(eps, t, t - 1, x_t, generator=gen_a)
    beta = diff.betas[t].double()
    abar, abar_p = diff.alphas_cumprod64[t], diff.alphas_cumprod64[t - 1]
    mean = (x_t.double() - beta / (1 - abar).sqrt() * eps.double()) / (1 - beta).sqrt()
    var = beta * (1 - abar_p) / (1 - abar)
    expect = mean + var.sqrt() * torch.randn(x_t.shape, generator=gen_b).double()
    torch.testing.assert_close(x_prev.double(), expect, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(x0, (x_t - (1 - abar.float()).sqrt() * eps) / abar.float().sqrt())


def test_ddim_eta_zero_is_deterministic_and_generator_reproduces_ddpm() -> None:
    diff = GuidedDiffusion(60)
    m = mixture()
    a = diff.sample_x1(ScaledInput(), m, "ddpm", 10, generator=torch.Generator().manual_seed(9))
    b = diff.sample_x1(ScaledInput(), m, "ddpm", 10, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, b)
    sched = DDIMSampler(diff, eta=0.0)
    x, eps = torch.randn(1, 5, 8, 8), torch.randn(1, 5, 8, 8)
    assert torch.equal(sched.step(eps, 30, 20, x)[0], sched.step(eps, 30, 20, x)[0])


def test_diffusion_process_probs_and_partition_give_consistency_zero() -> None:
    torch.manual_seed(0)
    diff = GuidedDiffusion(20)
    net = TransUNet(5, 5, 32, 64, 1, 16).eval()
    dec = Decoder(5, 16).eval()
    m = mixture(3, 16, 24)
    probs = diff.probs(net, m, decoder=dec, sampling=Sampling("ddim", 4),
                       generator=torch.Generator().manual_seed(0))
    assert probs.shape == (3, 5, 16, 24) and probs.min() >= 0 and probs.max() <= 1
    assert probs.is_inference()

    part = assign_instruments(probs, m, "partition")
    assert part.dtype == torch.bool
    union = part.any(dim=1, keepdim=True)
    consistency = (union ^ m.bool()).float().mean()
    assert consistency.item() == 0.0
    assert (part.sum(dim=1) <= 1).all()  # exactly one instrument per sounding cell


def test_assign_threshold_and_partition_on_hand_made_probs() -> None:
    probs = torch.tensor([0.6, 0.7, 0.1, 0.2, 0.3]).reshape(1, 5, 1, 1).repeat(1, 1, 1, 2)
    m = torch.tensor([1.0, 0.0]).reshape(1, 1, 1, 2)
    thr = assign_instruments(probs, m, "threshold", 0.5)
    assert thr[0, :, 0, 0].tolist() == [True, True, False, False, False]
    assert not thr[..., 1].any()
    part = assign_instruments(probs, m, "partition")
    assert part[0, :, 0, 0].tolist() == [False, True, False, False, False]
    assert not part[..., 1].any()
    none = assign_instruments(probs, m, "threshold", 0.9)
    assert not none.any()  # a cell left unassigned is what consistency measures


def test_samplers_are_a_registry_like_the_processes() -> None:
    from typing import get_args

    from models.diffusion import SAMPLER_CLASSES, sampler_class
    from models.options import Sampler

    assert set(SAMPLER_CLASSES) == set(get_args(Sampler))
    diff = GuidedDiffusion(10)
    assert isinstance(diff.make_sampler("ddpm"), DDPMSampler)
    ddim = diff.make_sampler("ddim", eta=0.5)
    assert isinstance(ddim, DDIMSampler) and ddim.eta == 0.5
    assert sampler_class("ddim") is DDIMSampler
    with pytest.raises(ValueError, match="sampler must be one of 'ddpm', 'ddim'"):
        sampler_class("euler")
