"""Tests of utils/separation.py: windowing, stitching, assignment, the Separator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data.contract import DRUM_ROW0, N_MUSIC, N_PITCH, PHRASE_STEPS, PHRASE_STRIDE
from models.decoder import Decoder
from models.diffusion import GuidedDiffusion
from models.transunet import TransUNet
from utils.separation import (
    Separator,
    cut_windows,
    resolve_device,
    separate_song_with,
    stitch_probs,
    window_starts,
)


def random_mixture(n_steps: int, seed: int = 0, density: float = 0.1) -> np.ndarray:
    """A random song mixture, bool [T, 72]."""
    return np.random.default_rng(seed).random((n_steps, N_PITCH)) < density


def test_window_starts_cover_every_step() -> None:
    assert window_starts(0) == []
    assert window_starts(1) == [0]
    assert window_starts(64) == [0]
    assert window_starts(65) == [0, 16]
    assert window_starts(80) == [0, 16]
    assert window_starts(81) == [0, 16, 32]
    for n in (1, 17, 63, 64, 100, 129, 300):
        starts = window_starts(n)
        covered = np.zeros(n, dtype=bool)
        for s in starts:
            covered[s: s + PHRASE_STEPS] = True
        assert covered.all()
        assert all(b - a == PHRASE_STRIDE for a, b in zip(starts, starts[1:]))
        assert starts[-1] < n  # no window lies entirely in the padding


def test_cut_windows_zero_pads_the_end() -> None:
    mix = random_mixture(70)
    windows = cut_windows(mix)
    assert windows.shape == (2, PHRASE_STEPS, N_PITCH) and windows.dtype == bool
    np.testing.assert_array_equal(windows[0], mix[:64])
    np.testing.assert_array_equal(windows[1][:54], mix[16:70])
    assert not windows[1][54:].any()


def test_cut_windows_rejects_bad_shape() -> None:
    with pytest.raises(ValueError, match=r"\[T, 72\]"):
        cut_windows(np.zeros((10, 60), dtype=bool))


def test_stitch_probs_averages_overlaps() -> None:
    n_steps = 96  # windows at 0, 16, 32
    w = len(window_starts(n_steps))
    window_probs = np.stack([np.full((N_MUSIC, PHRASE_STEPS, N_PITCH), float(i + 1))
                             for i in range(w)])
    avg = stitch_probs(window_probs, n_steps)
    assert avg.shape == (n_steps, N_PITCH, N_MUSIC) and avg.dtype == np.float32
    assert np.allclose(avg[:16], 1.0)  # only window 0
    assert np.allclose(avg[16:32], 1.5)  # windows 0, 1
    assert np.allclose(avg[32:64], 2.0)  # windows 0, 1, 2
    assert np.allclose(avg[64:80], 2.5)  # windows 1, 2
    assert np.allclose(avg[80:96], 3.0)  # window 2


def test_stitch_probs_checks_window_count() -> None:
    with pytest.raises(ValueError, match="windows"):
        stitch_probs(np.zeros((1, N_MUSIC, PHRASE_STEPS, N_PITCH)), 100)


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


@pytest.mark.parametrize("n_steps", [5, 64, 100, 257])
def test_separate_song_partition_keeps_exactly_the_mixture(n_steps: int) -> None:
    mix = random_mixture(n_steps, seed=n_steps)
    music = separate_song_with(position_probs, mix, "partition", batch_size=3)
    assert music.shape == (n_steps, N_PITCH, N_MUSIC) and music.dtype == bool
    np.testing.assert_array_equal(music.sum(axis=-1), mix.astype(int))  # one instrument each


@pytest.mark.parametrize("threshold", [0.5, 0.9])
def test_separate_song_threshold_never_leaves_the_mixture(threshold: float) -> None:
    mix = random_mixture(150, seed=1)
    music = separate_song_with(position_probs, mix, "threshold", threshold, batch_size=4)
    assert not (music.any(axis=-1) & ~mix).any()


def test_separate_song_batch_size_does_not_matter() -> None:
    mix = random_mixture(200, seed=2)
    a = separate_song_with(position_probs, mix, "threshold", 0.8, batch_size=1)
    b = separate_song_with(position_probs, mix, "threshold", 0.8, batch_size=64)
    np.testing.assert_array_equal(a, b)


def test_separate_song_stitches_on_averaged_probabilities() -> None:
    """A cell that one window calls piano and another bass goes to the average winner."""
    calls = {"n": 0}

    def alternating(batch: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(batch.shape[0], N_MUSIC, *batch.shape[2:])
        for i in range(batch.shape[0]):
            k = calls["n"]
            calls["n"] += 1
            out[i, 0] = 0.9 if k == 0 else 0.2  # window 0 says piano strongly
            out[i, 2] = 0.4  # both windows say bass weakly
        return out * batch

    mix = np.zeros((80, N_PITCH), dtype=bool)  # windows at 0 and 16
    mix[20, 30] = True  # covered by both windows
    mix[5, 30] = True  # covered by window 0 only
    music = separate_song_with(alternating, mix, "partition", batch_size=1)
    assert music[5, 30].tolist() == [True, False, False, False, False]
    # mean piano (0.9 + 0.2) / 2 = 0.55 > mean bass 0.4
    assert music[20, 30].tolist() == [True, False, False, False, False]
    calls["n"] = 0
    thr = separate_song_with(alternating, mix, "threshold", 0.5, batch_size=2)
    assert thr[20, 30].tolist() == [True, False, False, False, False]


def test_separate_song_keeps_drums_in_the_drum_rows() -> None:
    def drum_everywhere(batch: torch.Tensor) -> torch.Tensor:
        probs = torch.full((batch.shape[0], N_MUSIC, *batch.shape[2:]), 0.3)
        probs[:, N_MUSIC - 1] = 0.9  # drum is the most probable everywhere
        return probs * batch

    mix = np.ones((20, N_PITCH), dtype=bool)
    music = separate_song_with(drum_everywhere, mix, "partition")
    assert music[:, DRUM_ROW0:, N_MUSIC - 1].all()
    assert not music[:, :DRUM_ROW0, N_MUSIC - 1].any()
    np.testing.assert_array_equal(music.sum(axis=-1), 1)  # nothing lost below row 63


def test_separate_song_validates_options() -> None:
    mix = random_mixture(10)
    with pytest.raises(ValueError, match="assign"):
        separate_song_with(position_probs, mix, "vote")
    with pytest.raises(ValueError, match="batch_size"):
        separate_song_with(position_probs, mix, "partition", batch_size=0)


def test_separate_song_empty_song() -> None:
    music = separate_song_with(position_probs, np.zeros((0, N_PITCH), dtype=bool), "partition")
    assert music.shape == (0, N_PITCH, N_MUSIC)


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
    return Separator(model=model, diffusion=diffusion, decoder=decoder,
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


def test_separator_song_partition_keeps_every_note() -> None:
    sep = tiny_separator(assign="partition")
    mix = random_mixture(90, seed=5)
    music = sep.separate_song(mix)
    assert music.shape == (90, N_PITCH, N_MUSIC) and music.dtype == bool
    np.testing.assert_array_equal(music.sum(axis=-1), mix.astype(int))


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
