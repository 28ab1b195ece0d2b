"""Audio synthesis both ways, atomic WAV/PNG writing, roll colours and bar lines."""

from __future__ import annotations

import sys
import wave

import numpy as np
import pretty_midi
import pytest
import torch
from matplotlib.colors import to_rgb

import utils.rendering.audio as render
from data.contract import PITCH_LOW
from utils.rendering.audio import fluidsynth_missing, midi_to_audio, write_wav
from utils.rendering.pictures import COLORS, excerpt_steps, parse_bars, plot_comparison, roll_image

FS = 8000


@pytest.fixture
def short_midi() -> pretty_midi.PrettyMIDI:
    """Half a second of piano and bass."""
    pm = pretty_midi.PrettyMIDI()
    for program, pitch in [(0, 60), (33, 36)]:
        inst = pretty_midi.Instrument(program)
        inst.notes += [pretty_midi.Note(80, pitch + k, 0.1 * k, 0.1 * k + 0.1) for k in range(5)]
        pm.instruments.append(inst)
    return pm


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))


def test_sine_synthesis(short_midi):
    audio, used = midi_to_audio(short_midi, FS, method="sine")
    assert used == "sine" and audio.dtype == np.float32 and audio.ndim == 1
    assert audio.size >= int(0.5 * FS)
    assert _rms(audio) > 1e-2 and np.abs(audio).max() == pytest.approx(0.9)


@pytest.mark.skipif(fluidsynth_missing() is not None, reason="FluidSynth not installed")
def test_fluidsynth_synthesis(short_midi):
    audio, used = midi_to_audio(short_midi, FS, method="fluidsynth")
    assert used == "fluidsynth" and audio.dtype == np.float32
    assert _rms(audio) > 1e-2
    auto, used_auto = midi_to_audio(short_midi, FS)
    assert used_auto == "fluidsynth" and auto.shape == audio.shape


def test_auto_falls_back_to_sine_with_a_warning(short_midi, monkeypatch):
    monkeypatch.setattr(render, "fluidsynth_missing", lambda: "libfluidsynth3 not found")
    with pytest.warns(UserWarning, match="libfluidsynth3 not found"):
        audio, used = midi_to_audio(short_midi, FS)
    assert used == "sine" and _rms(audio) > 1e-2
    with pytest.raises(RuntimeError, match="libfluidsynth3 not found"):
        midi_to_audio(short_midi, FS, method="fluidsynth")


def test_synthesize_options_and_empty_midi():
    with pytest.raises(ValueError, match="method"):
        midi_to_audio(pretty_midi.PrettyMIDI(), FS, method="organ")
    audio, _ = midi_to_audio(pretty_midi.PrettyMIDI(), FS, method="sine")
    assert audio.size >= 1 and not audio.any()


def test_write_wav_16bit_pcm(tmp_path):
    audio = np.array([0.0, 0.5, -0.5, 1.5, -1.5], dtype=np.float32)
    path = tmp_path / "a.wav"
    write_wav(path, audio, FS)
    with wave.open(str(path), "rb") as fh:
        assert (fh.getnchannels(), fh.getsampwidth(), fh.getframerate()) == (1, 2, FS)
        pcm = np.frombuffer(fh.readframes(fh.getnframes()), dtype="<i2")
    assert pcm.tolist() == [0, 16384, -16384, 32767, -32767]  # clipped, rounded
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]  # no temp file left
    with pytest.raises(ValueError, match="audio"):
        write_wav(path, np.zeros((2, 3)), FS)


def test_roll_image_colours_and_orders():
    model = np.zeros((5, 4, 3), dtype=bool)
    model[0, 1, 2] = True  # piano at t=1, row 2
    model[2, 3, 0] = True  # bass at t=3, row 0
    model[0, 3, 0] = True  # ... shared with piano
    rgb, names = roll_image(torch.from_numpy(model), order="model")
    assert rgb.shape == (3, 4, 3) and names[0] == "piano"
    np.testing.assert_allclose(rgb[2, 1], to_rgb(COLORS["piano"]))
    blend = (np.array(to_rgb(COLORS["piano"])) + to_rgb(COLORS["bass"])) / 2
    np.testing.assert_allclose(rgb[0, 3], blend)
    np.testing.assert_allclose(rgb[1, 1], 1.0)  # silent cells are white
    phrase = np.zeros((4, 3, 6), dtype=bool)
    phrase[:, :, 1:] = np.moveaxis(model, 0, -1)  # same music in storage order
    np.testing.assert_allclose(roll_image(phrase, order="phrase")[0], rgb)
    mix, names = roll_image(model.any(axis=0), order="mixture")
    assert names == ("mixture",)
    with pytest.raises(ValueError, match="order"):
        roll_image(model, order="tpi")
    with pytest.raises(ValueError, match="roll"):
        roll_image(model, order="phrase")


def test_plot_comparison_writes_png(tmp_path):
    rng = np.random.default_rng(0)
    pred = rng.random((5, 64, 72)) < 0.02
    mixture = pred.any(axis=0, keepdims=True)
    path = tmp_path / "cmp.png"
    fig = plot_comparison([("prediction", pred), ("truth", pred),
                           ("mixture", mixture[0], "mixture")], path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["cmp.png"]
    axes = fig.get_axes()
    assert len(axes) == 3 and axes[0].get_title(loc="left") == "prediction"
    assert len(axes[0].get_lines()) == 5  # bar lines at steps 0, 16, 32, 48, 64
    assert axes[0].get_ylim() == (PITCH_LOW - 0.5, PITCH_LOW + 71.5)
    legend = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert legend == ["piano", "guitar", "bass", "string", "drum"]


def test_missing_binding_is_detected_and_named(short_midi, monkeypatch):
    monkeypatch.setitem(sys.modules, "fluidsynth", None)  # makes `import fluidsynth` fail
    assert "pyfluidsynth" in fluidsynth_missing()
    with pytest.warns(UserWarning, match="pyfluidsynth"):
        _, used = midi_to_audio(short_midi, FS)
    assert used == "sine"


def test_parse_bars():
    assert parse_bars("3:7") == (3, 7) and parse_bars("2:2") == (2, 2)
    for bad in ("3", "0:2", "5:4", "a:b", "1:2:3", ""):
        with pytest.raises(ValueError, match="A:B"):
            parse_bars(bad)


def test_excerpt_steps_default_and_chosen_bars():
    mixture = np.zeros((40 * 16 + 5, 72), dtype=bool)  # 41 bars, the last one partial
    mixture[3 * 16 + 9, 10] = True  # the first note is in bar 4
    assert excerpt_steps(mixture) == (3 * 16, 19 * 16)  # bars 4..19
    assert excerpt_steps(mixture, (2, 3)) == (16, 48)
    assert excerpt_steps(mixture, (40, 99)) == (39 * 16, 41 * 16)  # cut at the last bar
    with pytest.raises(ValueError, match="41 bars"):
        excerpt_steps(mixture, (42, 43))


def test_plot_comparison_excerpt_width_and_bar_numbers():
    roll = np.zeros((5, 256, 72), dtype=bool)
    fig = plot_comparison([("separated", roll)], first_bar=9, step_px=6.0)
    width_px = fig.get_size_inches()[0] * 100
    assert width_px >= 256 * 6  # every 16th-note step at least 6 pixels wide
    labels = [t.get_text() for t in fig.get_axes()[0].get_xticklabels()]
    assert labels[0] == "9" and labels[-1] == "24"
