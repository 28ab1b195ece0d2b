"""Tests of utils/separation/separator.py: stitching song windows, the Separator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data.contract import N_MUSIC, N_PITCH, PHRASE_STEPS
from models.decoder import Decoder
from models.diffusion import GuidedDiffusion
from models.transunet import TransUNet
from utils.separation.devices import resolve_device
from utils.separation.separator import Separator
from utils.separation.windows import song_prob_chunks


def random_mixture(n_steps: int, seed: int = 0, density: float = 0.1) -> np.ndarray:
    """A random song mixture, bool [T, 72]."""
    return np.random.default_rng(seed).random((n_steps, N_PITCH)) < density


def constant_probs(batch: torch.Tensor) -> torch.Tensor:
    """Window i of each call gets probability i + 1 everywhere (counted across calls)."""
    constant_probs.calls += batch.shape[0]
    first = constant_probs.calls - batch.shape[0]
    values = torch.arange(first + 1, constant_probs.calls + 1, dtype=torch.float32)
    return values.view(-1, 1, 1, 1) * torch.ones(batch.shape[0], N_MUSIC, *batch.shape[2:])


@pytest.mark.parametrize("batch_size", [1, 2, 64])
def test_song_chunks_average_overlapping_windows(batch_size: int) -> None:
    n_steps = 96  # windows at 0, 16, 32
    constant_probs.calls = 0
    chunks = list(song_prob_chunks(constant_probs, random_mixture(n_steps), batch_size))
    avg = np.concatenate([probs for _, probs in chunks])
    assert avg.shape == (n_steps, N_PITCH, N_MUSIC) and avg.dtype == np.float32
    assert np.allclose(avg[:16], 1.0)  # only window 0
    assert np.allclose(avg[16:32], 1.5)  # windows 0, 1
    assert np.allclose(avg[32:64], 2.0)  # windows 0, 1, 2
    assert np.allclose(avg[64:80], 2.5)  # windows 1, 2
    assert np.allclose(avg[80:96], 3.0)  # window 2


def test_song_chunks_validate_and_handle_the_empty_song() -> None:
    with pytest.raises(ValueError, match=r"\[T, 72\]"):
        list(song_prob_chunks(position_probs, np.zeros((10, 60), dtype=bool)))
    with pytest.raises(ValueError, match="batch_size"):
        list(song_prob_chunks(position_probs, random_mixture(10), batch_size=0))
    assert list(song_prob_chunks(position_probs, np.zeros((0, N_PITCH), dtype=bool))) == []


def position_probs(batch: torch.Tensor) -> torch.Tensor:
    """A dummy window model whose probabilities depend on the window content.

    Instrument k's probability at a cell is high where the pitch row falls in zone k,
    perturbed by the number of notes in the window so that overlapping windows disagree.
    """
    b, _, t, p = batch.shape
    rows = torch.arange(p).float()
    centre = torch.linspace(0, p - 1, N_MUSIC)
    logits = -((rows.view(1, 1, 1, p) - centre.view(1, N_MUSIC, 1, 1)) ** 2) / 200.0
    shift = batch.sum(dim=(1, 2, 3)).view(b, 1, 1, 1) % 7 / 10.0
    probs = torch.sigmoid(logits * 4 + 1.5 + shift) * torch.ones(b, N_MUSIC, t, p)
    return probs * batch  # zero outside the mixture, as the sampler guarantees


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="'device'"):
        resolve_device("toaster")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


# ----------------------------------------------------------------------------------
# Separator with real (untrained, tiny) networks
# ----------------------------------------------------------------------------------
def tiny_separator(**settings: object) -> Separator:
    """A Separator around freshly initialised tiny networks on the CPU."""
    torch.manual_seed(0)
    model = TransUNet(in_ch=N_MUSIC, out_ch=N_MUSIC, latent_dim=32, d_model=64, num_layers=1,
                      time_emb_dim=16)
    decoder = Decoder(channels=N_MUSIC, dim=16)
    diffusion = GuidedDiffusion(time_steps=20)
    defaults: dict[str, object] = {"sampler": "ddim", "steps": 3, "batch_size": 2}
    return Separator(model=model, process=diffusion, decoder=decoder,
                     device=torch.device("cpu"), **{**defaults, **settings})


def test_separator_phrases_stay_in_the_mixture() -> None:
    sep = tiny_separator()
    mixture = torch.from_numpy(random_mixture(3 * PHRASE_STEPS, seed=3)).view(3, 1, 64, 72)
    probs = sep.probs(mixture[:2].float())
    assert probs.shape == (2, N_MUSIC, 64, 72) and probs.dtype == torch.float32
    music = sep.separate_phrases(mixture)  # 3 phrases in batches of 2
    assert music.shape == (3, N_MUSIC, 64, 72) and music.dtype == torch.bool
    assert not (music.any(dim=1, keepdim=True) & ~mixture).any()
    part = sep.with_settings(assign="partition").separate_phrases(mixture.numpy()[:, 0])
    assert torch.equal(part.sum(dim=1, keepdim=True), mixture.long())


def test_separator_is_reproducible_and_batch_independent() -> None:
    mixture = torch.from_numpy(random_mixture(4 * PHRASE_STEPS, seed=4)).view(4, 1, 64, 72)
    a = tiny_separator(batch_size=4).separate_phrases(mixture)
    b = tiny_separator(batch_size=4).separate_phrases(mixture)
    assert torch.equal(a, b)


def test_separator_song_probabilities_cover_the_whole_song() -> None:
    sep = tiny_separator()
    mix = random_mixture(90, seed=5)
    chunks = list(song_prob_chunks(sep.probs, mix, sep.batch_size))
    probs = np.concatenate([p for _, p in chunks])
    assert probs.shape == (90, N_PITCH, N_MUSIC)
    assert np.isfinite(probs).all() and probs.min() >= 0 and probs.max() <= 1


def test_separator_settings_are_validated_and_clamped() -> None:
    sep = tiny_separator()
    assert sep.with_settings(steps=1000).steps == 19  # T - 1
    assert sep.with_settings(steps=7).steps == 7 and sep.steps == 3
    with pytest.raises(ValueError, match="sampler"):
        sep.with_settings(sampler="euler")
    with pytest.raises(ValueError, match="assign"):
        tiny_separator(assign="vote")
    with pytest.raises(ValueError, match="unknown sampling setting"):
        sep.with_settings(temperature=1.0)
    with pytest.raises(ValueError, match="mixture must be"):
        sep.separate_phrases(torch.zeros(2, 2, 64, 72))
