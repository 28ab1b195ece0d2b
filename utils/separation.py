"""Separation with a trained separator + decoder: phrases and whole songs (SPEC section 6).

A :class:`Separator` bundles the loaded checkpoints with the sampling settings on one
device. Phrases (``[N, 1, 64, 72]`` mixtures) go straight through the guided sampler.
A whole song of any length is cut into 64-step windows that start every bar (stride 16,
as the training phrases were cut), the last one zero-padded past the end; the windows
are separated in batches and the per-window instrument probabilities are averaged over
all windows that cover a cell. The instruments are assigned once, on the averaged
probabilities times the song's mixture: no note can appear outside the mixture, and in
``"partition"`` mode every mixture cell keeps exactly one instrument, so overlapping
windows neither create nor lose notes. (Drums can only take the drum rows 63..71, the
only rows that render to drum keys.) :func:`separate_midi_file` turns a MIDI file into
separated MIDI, audio and a picture.

Axis orders: song mixture ``bool [T, 72]``; song result ``bool [T, 72, 5]`` (instrument
last, as the storage rolls of ``data/``); model tensors ``float32 [B, C, 64, 72]``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

import numpy as np
import torch

from data.contract import (
    DRUM,
    DRUM_ROW0,
    MAX_SONG_BARS,
    N_MUSIC,
    N_PITCH,
    PHRASE_STEPS,
    PHRASE_STRIDE,
)
from data.midi import describe_time_signatures
from models.diffusion import (
    AssignMode,
    GuidedDiffusion,
    SamplerName,
    assign_instruments,
    check_option,
)
from utils.config import Config
from utils.fileio import atomic_write_many

# Maps mixtures float32 [B, 1, 64, 72] to instrument probabilities float32 [B, 5, 64, 72].
ProbFn = Callable[[torch.Tensor], torch.Tensor]

SAMPLERS: tuple[str, ...] = get_args(SamplerName)
ASSIGN_MODES: tuple[str, ...] = get_args(AssignMode)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA if available, else CPU; any other name is passed to torch.

    Raises:
        ValueError: an unknown device name, or CUDA/MPS asked for where it is unavailable.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"'device' must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") \
            from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"'device' {str(dev)!r}: CUDA is not available on this machine")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"'device' {str(dev)!r}: MPS is not available on this machine")
    return dev


def config_device(cfg: Config) -> torch.device:
    """The sampling device a config asks for through its ``accelerator`` key.

    ``"cpu"`` -> CPU, ``"gpu"``/``"cuda"`` -> CUDA, ``"mps"`` -> MPS, ``"auto"`` -> CUDA if
    available, else CPU (``gpus`` set also means CUDA, as for training).
    """
    if cfg.gpus is not None or cfg.accelerator in ("gpu", "cuda"):
        return resolve_device("cuda")
    if cfg.accelerator in ("cpu", "mps"):
        return resolve_device(cfg.accelerator)
    return resolve_device("auto")


# ----------------------------------------------------------------------------------
# Whole-song windowing (pure functions, numpy/torch)
# ----------------------------------------------------------------------------------
def window_starts(n_steps: int) -> list[int]:
    """First step of every 64-step window of a song of ``n_steps`` steps.

    Windows start every bar (stride 16) from step 0 until the song's last step is
    covered; the last window may run past the end (it is zero-padded). A song shorter
    than one window gets one window. ``n_steps == 0`` gives no window.
    """
    if n_steps <= 0:
        return []
    n_windows = 1 + max(0, math.ceil((n_steps - PHRASE_STEPS) / PHRASE_STRIDE))
    return [i * PHRASE_STRIDE for i in range(n_windows)]


def cut_windows(mixture: np.ndarray) -> np.ndarray:
    """Cut a song mixture into zero-padded windows.

    Args:
        mixture: ``bool [T, 72]`` song mixture.

    Returns:
        ``bool [W, 64, 72]`` windows starting at :func:`window_starts` ``(T)``.
    """
    if mixture.ndim != 2 or mixture.shape[1] != N_PITCH:
        raise ValueError(f"song mixture must have shape [T, {N_PITCH}], got {list(mixture.shape)}")
    starts = window_starts(mixture.shape[0])
    if not starts:
        return np.zeros((0, PHRASE_STEPS, N_PITCH), dtype=bool)
    padded_len = starts[-1] + PHRASE_STEPS
    padded = np.zeros((padded_len, N_PITCH), dtype=bool)
    padded[: mixture.shape[0]] = mixture
    return np.stack([padded[s: s + PHRASE_STEPS] for s in starts])


def stitch_probs(window_probs: np.ndarray, n_steps: int) -> np.ndarray:
    """Average per-window probabilities over the windows that cover each song cell.

    Args:
        window_probs: ``float [W, 5, 64, 72]`` probabilities of the windows from
            :func:`cut_windows` (same order).
        n_steps: song length T.

    Returns:
        ``float32 [T, 72, 5]`` mean probability of each instrument at each cell.
    """
    starts = window_starts(n_steps)
    if window_probs.shape[0] != len(starts):
        raise ValueError(f"expected {len(starts)} windows for {n_steps} steps, "
                         f"got {window_probs.shape[0]}")
    n_inst = window_probs.shape[1]
    padded_len = (starts[-1] + PHRASE_STEPS) if starts else 0
    total = np.zeros((padded_len, N_PITCH, n_inst), dtype=np.float64)
    count = np.zeros((padded_len, 1, 1), dtype=np.float64)
    for start, probs in zip(starts, window_probs):
        total[start: start + PHRASE_STEPS] += np.transpose(probs, (1, 2, 0))  # (64, 72, 5)
        count[start: start + PHRASE_STEPS] += 1.0
    return (total[:n_steps] / np.maximum(count[:n_steps], 1.0)).astype(np.float32)


def separate_song_with(prob_fn: ProbFn, mixture: np.ndarray, mode: str,
                       threshold: float = 0.5, batch_size: int = 64,
                       device: torch.device | None = None) -> np.ndarray:
    """Separate a whole song with any window-probability function.

    Args:
        prob_fn: mixtures ``float32 [B, 1, 64, 72]`` -> probabilities ``float [B, 5, 64, 72]``.
        mixture: ``bool [T, 72]`` song mixture (any T).
        mode: assignment mode, ``"threshold"`` or ``"partition"``.
        threshold: probability needed in ``"threshold"`` mode.
        batch_size: windows passed to ``prob_fn`` at once.
        device: where the mixture tensors are put (default CPU).

    Returns:
        ``bool [T, 72, 5]``, False wherever ``mixture`` is False; drum only in rows
        63..71.
    """
    check_option("assign", mode, ASSIGN_MODES)
    if batch_size <= 0:
        raise ValueError(f"'batch_size' must be > 0, got {batch_size}")
    mixture = np.asarray(mixture, dtype=bool)
    windows = cut_windows(mixture)  # (W, 64, 72)
    n_steps = mixture.shape[0]
    if len(windows) == 0:
        return np.zeros((0, N_PITCH, N_MUSIC), dtype=bool)
    parts = []
    for i in range(0, len(windows), batch_size):
        batch = torch.from_numpy(windows[i: i + batch_size]).float().unsqueeze(1)  # (B,1,64,72)
        if device is not None:
            batch = batch.to(device)
        parts.append(prob_fn(batch).float().cpu().numpy())
    probs = stitch_probs(np.concatenate(parts), n_steps)  # (T, 72, 5)
    # Drums exist only as the 9 components in rows 63..71 (the data contract), and only
    # those rows render to MIDI drum keys: a drum guess below them would be a lost note.
    probs[:, :DRUM_ROW0, DRUM - 1] = 0.0
    # Assign once on the averaged probabilities: (T, 72, 5) -> (1, 5, T, 72).
    probs_t = torch.from_numpy(probs).permute(2, 0, 1).unsqueeze(0)
    mix_t = torch.from_numpy(mixture).unsqueeze(0).unsqueeze(0)
    music = assign_instruments(probs_t, mix_t, mode, threshold)[0]  # (5, T, 72)
    return music.permute(1, 2, 0).numpy().copy()


# ----------------------------------------------------------------------------------
# The separator: checkpoints + sampling settings on a device
# ----------------------------------------------------------------------------------
@dataclass
class Separator:
    """A trained separator and decoder with the sampling settings, on one device.

    Attributes:
        model: the TransUNet (eps-prediction network), in eval mode.
        diffusion: the guided diffusion process holding the schedule and samplers.
        decoder: the independent decoder (x1 -> logits of x0), in eval mode.
        device: where sampling runs.
        sampler: ``"ddim"`` or ``"ddpm"``.
        steps: reverse steps (clamped to ``T - 1`` of the checkpoint's schedule).
        eta: DDIM eta (0 = deterministic).
        assign: ``"threshold"`` or ``"partition"``.
        threshold: decoder probability needed in ``"threshold"`` mode.
        batch_size: phrases/windows sampled at once.
        seed: seeds the sampling noise (one generator per Separator).
    """

    model: torch.nn.Module
    diffusion: GuidedDiffusion
    decoder: torch.nn.Module
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    sampler: str = "ddim"
    steps: int = 999
    eta: float = 0.0
    assign: str = "threshold"
    threshold: float = 0.5
    batch_size: int = 256
    seed: int = 0
    generator: torch.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_option("sampler", self.sampler, SAMPLERS)
        check_option("assign", self.assign, ASSIGN_MODES)
        if self.batch_size <= 0:
            raise ValueError(f"'batch_size' must be > 0, got {self.batch_size}")
        if self.steps <= 0:
            raise ValueError(f"'steps' must be > 0, got {self.steps}")
        self.steps = min(self.steps, self.max_steps)
        self.model.to(self.device).eval()
        self.decoder.to(self.device).eval()
        self.diffusion.to(self.device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(self.seed)

    @property
    def max_steps(self) -> int:
        """The most reverse steps the checkpoint's schedule allows (T - 1)."""
        return int(self.diffusion.num_timesteps) - 1

    @classmethod
    def from_config(cls, cfg: Config, device: str | torch.device | None = None) -> Separator:
        """Load the checkpoints ``cfg`` names (else the newest in ``model_dir``).

        Args:
            cfg: the typed configuration; its sampling keys (``sampler``,
                ``sampling_steps``, ``eta``, ``assign``, ``threshold``,
                ``sample_batch_size``, ``seed``) become the Separator's settings.
            device: ``"auto"``, ``"cpu"``, ``"cuda"``, ... or a torch.device; None takes
                the config's ``accelerator`` (:func:`config_device`).

        Raises:
            utils.config.ConfigError: no checkpoint found, an unreadable one, or one whose
                network or schedule keys differ from ``cfg`` (the key is named).
        """
        from models.checkpoints import find_checkpoint, load_decoder, load_separator

        dev = config_device(cfg) if device is None else resolve_device(device)
        model, diffusion, _ = load_separator(find_checkpoint(cfg, "transunet"), map_location=dev,
                                             cfg=cfg)
        decoder = load_decoder(find_checkpoint(cfg, "decoder"), map_location=dev, cfg=cfg)
        return cls(model=model, diffusion=diffusion, decoder=decoder, device=dev,
                   sampler=cfg.sampler, steps=cfg.sampling_steps, eta=cfg.eta,
                   assign=cfg.assign, threshold=cfg.threshold,
                   batch_size=cfg.sample_batch_size, seed=cfg.seed)

    def with_settings(self, **changes: object) -> Separator:
        """A copy sharing the networks, with other sampling settings and a fresh generator.

        ``steps`` above ``T - 1`` are clamped, as in the constructor.
        """
        clone = copy.copy(self)
        for key, value in changes.items():
            if key not in ("sampler", "steps", "eta", "assign", "threshold", "batch_size",
                           "seed"):
                raise ValueError(f"unknown sampling setting {key!r}")
            setattr(clone, key, value)
        clone.__post_init__()
        return clone

    @torch.inference_mode()
    def probs(self, mixture: torch.Tensor) -> torch.Tensor:
        """Decoder probabilities of every instrument for a batch of mixtures.

        Args:
            mixture: ``float [B, 1, 64, 72]`` (any device; moved to ``self.device``).

        Returns:
            ``float32 [B, 5, 64, 72]`` on ``self.device``; 0 outside the mixture.
        """
        mixture = mixture.to(self.device, dtype=torch.float32)
        return self.diffusion.separate_probs(
            self.model, self.decoder, mixture, sampler=self.sampler, steps=self.steps,
            eta=self.eta, generator=self.generator)

    def separate_phrases(self, mixture: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Separate phrases in batches of ``batch_size``.

        Args:
            mixture: ``[N, 1, 64, 72]`` or ``[N, 64, 72]``, bool or float, numpy or torch.

        Returns:
            ``bool [N, 5, 64, 72]`` on the CPU, False outside the mixture.
        """
        mix = torch.as_tensor(np.asarray(mixture) if isinstance(mixture, np.ndarray) else mixture)
        if mix.ndim == 3:
            mix = mix.unsqueeze(1)  # (N, 1, 64, 72)
        if mix.ndim != 4 or mix.shape[1] != 1:
            raise ValueError(f"mixture must be [N, 1, T, P] or [N, T, P], got {list(mix.shape)}")
        mix = mix.float()
        return assign_instruments(self.phrase_probs(mix), mix, self.assign, self.threshold)

    def phrase_probs(self, mixture: torch.Tensor) -> torch.Tensor:
        """Decoder probabilities for any number of phrases, in batches of ``batch_size``.

        Args:
            mixture: ``float [N, 1, 64, 72]``.

        Returns:
            ``float32 [N, 5, 64, 72]`` on the CPU, 0 outside the mixture.
        """
        out = [self.probs(mixture[i: i + self.batch_size]).cpu()
               for i in range(0, mixture.shape[0], self.batch_size)]
        if not out:
            return torch.zeros((0, N_MUSIC, *mixture.shape[2:]), dtype=torch.float32)
        return torch.cat(out)

    def separate_song(self, mixture: np.ndarray) -> np.ndarray:
        """Separate a whole song of any length (windows stitched, see module docstring).

        Args:
            mixture: ``bool [T, 72]``.

        Returns:
            ``bool [T, 72, 5]``; False wherever the mixture is False.
        """
        return separate_song_with(self.probs, mixture, self.assign, self.threshold,
                                  self.batch_size, self.device)


# ----------------------------------------------------------------------------------
# MIDI file in, MIDI / audio / picture out
# ----------------------------------------------------------------------------------
@dataclass
class SongOutputs:
    """Files written for one separated song, and what was found on the way.

    Attributes:
        midi: ``<name>.separated.mid`` (one track per instrument, the song's tempo map).
        wav: ``<name>.separated.wav``.
        mixture_wav: ``<name>.mixture.wav`` (the mixture as the model hears it, one piano).
        png: ``<name>.png`` (separated roll above the input mixture [and the reference]).
        n_steps: song length in 16th-note steps.
        n_windows: 4-bar windows separated.
        synth: how the audio was made (``"fluidsynth"`` or the fallback's name).
        warnings: one-line warnings (meter other than 4/4, no reference available).
    """

    midi: Path
    wav: Path
    mixture_wav: Path
    png: Path
    n_steps: int
    n_windows: int
    synth: str
    warnings: list[str]


def meter_warning(path: str | Path, time_signatures: list[tuple[int, int, int]]) -> str | None:
    """A one-line warning when a song is not entirely in 4/4 (the model's only meter).

    Args:
        path: the MIDI file (named in the message).
        time_signatures: ``[(tick, numerator, denominator), ...]``; an empty list is 4/4.
    """
    other = [(tick, n, d) for tick, n, d in time_signatures if (n, d) != (4, 4)]
    if not other:
        return None
    found = describe_time_signatures(other)
    return (f"{path}: time signature {found}; the model was trained on 4/4 only, "
            "separating on the 16th-note grid anyway")


def separate_midi_file(separator: Separator, midi_path: str | Path, out_dir: str | Path,
                       reference: bool = False, sample_rate: int = 22050,
                       max_song_bars: int = MAX_SONG_BARS) -> SongOutputs:
    """Separate a whole MIDI file and write MIDI, two WAVs and a picture.

    The file is flattened into a mixture (every pitched and drum note, see
    :func:`data.midi.load_mixture`), separated with :meth:`Separator.separate_song` and
    rendered with the song's tempo map. Every output is first written under a temporary
    name in ``out_dir`` and renamed only when all of them succeeded, so an error leaves
    no partial output.

    Args:
        separator: the loaded separator.
        midi_path: any MIDI file (a file without time signature is read as 4/4).
        out_dir: folder for the outputs (created if missing).
        reference: add the file's own multitrack (track unification of the data
            contract) as a third panel of the picture, when it has one.
        sample_rate: audio sample rate in Hz.
        max_song_bars: longest song accepted, in bars (checked before any roll exists).

    Returns:
        The :class:`SongOutputs`.

    Raises:
        data.midi.MidiError: not MIDI, truncated, no notes, or longer than
            ``max_song_bars`` (one-line message).
    """
    from data.contract import PIANO
    from data.midi import load_mixture, roll_to_midi
    from utils.render import plot_comparison, synthesize, write_wav

    midi_path = Path(midi_path)
    mixture, ref_roll, timing = load_mixture(midi_path, max_song_bars)  # (T, 72), (T, 72, 6)|None
    notes: list[str] = []
    meter = meter_warning(midi_path, timing.time_signatures)
    if meter:
        notes.append(meter)
    music = separator.separate_song(mixture)  # (T, 72, 5)

    mixture_roll = np.zeros_like(music)  # the mixture rendered as one piano: (T, 72, 5)
    mixture_roll[:, :, PIANO - 1] = mixture
    separated_pm = roll_to_midi(music, timing)
    audio, synth = synthesize(separated_pm, sample_rate)
    mixture_audio, _ = synthesize(roll_to_midi(mixture_roll, timing), sample_rate)

    panels: list[tuple[str, np.ndarray, str]] = [
        ("separated", np.moveaxis(music, -1, 0), "model"),  # (5, T, 72)
        ("input mixture", mixture, "mixture"),  # (T, 72)
    ]
    if reference:
        if ref_roll is None:
            notes.append(f"{midi_path}: no reference multitrack (fewer than 2 instrument "
                         "classes after track unification); picture without it")
        else:
            panels.append(("original multitrack", ref_roll, "phrase"))  # (T, 72, 6)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = midi_path.stem
    targets = {"midi": out / f"{name}.separated.mid", "wav": out / f"{name}.separated.wav",
               "mixture_wav": out / f"{name}.mixture.wav", "png": out / f"{name}.png"}
    atomic_write_many({
        targets["midi"]: lambda p: separated_pm.write(str(p)),
        targets["wav"]: lambda p: write_wav(p, audio, sample_rate),
        targets["mixture_wav"]: lambda p: write_wav(p, mixture_audio, sample_rate),
        targets["png"]: lambda p: plot_comparison(panels, p),
    })
    return SongOutputs(midi=targets["midi"], wav=targets["wav"],
                       mixture_wav=targets["mixture_wav"], png=targets["png"],
                       n_steps=int(mixture.shape[0]), n_windows=len(window_starts(len(mixture))),
                       synth=synth, warnings=notes)
