"""Separation with a trained separator (+ decoder): phrases, whole songs (docs/method.md section 5).

A :class:`Separator` bundles the loaded checkpoints with the sampling settings on one
device. Phrases (``[N, 1, 64, 72]`` mixtures) go straight through the guided sampler.
A whole song of any length is cut into 64-step windows by the one windowing rule of
:func:`data.roll.window_starts` (a window every bar, the last one zero-padded past the
end); the windows are separated in batches and the per-window instrument probabilities
are averaged over all windows that cover a cell (:func:`song_prob_chunks`, which yields
the averaged probabilities chunk by chunk, so memory does not grow with the song).
Note-level separation of MIDI files builds on it (:mod:`utils.separation.notes`).

Axis orders: song mixture ``bool [T, 72]``; song result ``bool [T, 72, 5]`` (instrument
last, as the storage rolls of ``data/``); model tensors ``float32 [B, C, 64, 72]``.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

import numpy as np
import torch
from tqdm import tqdm

from data.contract import N_MUSIC, N_PITCH, PHRASE_STEPS, PHRASE_STRIDE, check_option
from data.errors import InputError
from data.midi import describe_time_signatures
from data.roll import window_starts
from models.options import Sampler
from models.process import Sampling, SeparationProcess
from utils.core.checkpoints import (
    BASELINES_FILE,
    find_checkpoint,
    load_decoder,
    load_separator,
    model_paths,
)
from utils.core.config import Config
from utils.separation.assignment import ASSIGN_MODES, assign_instruments
from utils.separation.song_pass import SONG_PASS_FILE, SongPass, matching_song_pass

# Maps model inputs float32 [B, 1, 64, 72] (the mixture) or [B, 2, 64, 72] (the mixture and
# its note starts) to instrument probabilities float32 [B, 5, 64, 72].
ProbFn = Callable[[torch.Tensor], torch.Tensor]

SAMPLERS: tuple[str, ...] = get_args(Sampler)


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
        raise InputError(f"'device' must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") \
            from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"'device' {str(dev)!r}: CUDA is not available on this machine")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"'device' {str(dev)!r}: MPS is not available on this machine")
    return dev


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """The ``--device`` option of every command that separates (read by :func:`resolve_device`)."""
    parser.add_argument("--device", default=None,
                        help="auto, cpu, cuda, cuda:N (default: the config's accelerator)")


def config_device(cfg: Config) -> torch.device:
    """The sampling device a config asks for (:meth:`utils.core.config.Config.hardware`).

    ``"cpu"`` -> CPU, ``"gpu"``/``"cuda"`` -> CUDA, ``"mps"`` -> MPS, ``"auto"`` -> CUDA if
    available, else CPU.
    """
    accelerator, _ = cfg.hardware()
    if accelerator in ("gpu", "cuda"):
        return resolve_device("cuda")
    if accelerator in ("cpu", "mps"):
        return resolve_device(accelerator)
    return resolve_device("auto")


# ----------------------------------------------------------------------------------
# Whole-song windowing (pure functions, numpy/torch)
# ----------------------------------------------------------------------------------
def song_prob_chunks(prob_fn: ProbFn, mixture: np.ndarray, batch_size: int = 64,
                     device: torch.device | None = None, progress: bool = False,
                     onsets: np.ndarray | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Stitched instrument probabilities of a whole song, chunk by chunk, in bounded memory.

    The windows of :func:`data.roll.window_starts` are cut and separated ``batch_size``
    at a time; their probabilities are summed into a buffer of ``batch_size * 16 + 64``
    steps. After each batch, the steps that no later window covers are final: they are
    averaged over the windows that cover them, yielded, and dropped from the buffer.
    Memory therefore depends on ``batch_size``, not on the song's length.

    Args:
        prob_fn: model inputs ``float32 [B, F, 64, 72]`` -> probabilities
            ``float [B, C, 64, 72]`` (:data:`ProbFn`).
        mixture: ``bool [T, 72]`` song mixture (any T).
        batch_size: windows passed to ``prob_fn`` at once.
        device: where the mixture tensors are put (default CPU).
        progress: show a tqdm bar in windows/s.
        onsets: ``bool [T, 72]`` the mixture's note starts; when given, ``prob_fn`` gets
            them as a second input channel (``F = 2``), else only the mixture (``F = 1``).

    Yields:
        ``(first step, probs)``: ``probs`` float32 ``[n, 72, C]`` for the steps
        ``first .. first + n - 1``; the chunks follow each other and cover ``0 .. T - 1``.
    """
    if batch_size <= 0:
        raise ValueError(f"'batch_size' must be > 0, got {batch_size}")
    mixture = np.asarray(mixture, dtype=bool)
    if mixture.ndim != 2 or mixture.shape[1] != N_PITCH:
        raise ValueError(f"song mixture must have shape [T, {N_PITCH}], got {list(mixture.shape)}")
    n_steps = mixture.shape[0]
    planes = mixture[:, None, :]  # (T, F, 72)
    if onsets is not None:
        onsets = np.asarray(onsets, dtype=bool)
        if onsets.shape != mixture.shape:
            raise ValueError(f"onsets must have the mixture's shape {list(mixture.shape)}, "
                             f"got {list(onsets.shape)}")
        planes = np.stack([mixture, onsets], axis=1)
    starts = window_starts(n_steps)
    span = batch_size * PHRASE_STRIDE + PHRASE_STEPS  # steps held at once
    total: np.ndarray | None = None  # (span, 72, C) float64 sums, step lo + i at row i
    count = np.zeros((span, 1, 1), dtype=np.float64)  # windows covering each step
    lo = 0
    with tqdm(total=len(starts), unit="window", desc="separating", disable=not progress,
              dynamic_ncols=True) as bar:
        for b in range(0, len(starts), batch_size):
            batch_starts = starts[b: b + batch_size]
            windows = np.zeros((len(batch_starts), PHRASE_STEPS, planes.shape[1], N_PITCH),
                               dtype=bool)
            for i, start in enumerate(batch_starts):
                piece = planes[start: start + PHRASE_STEPS]
                windows[i, : len(piece)] = piece  # the last window is zero-padded
            batch = torch.from_numpy(windows).float().transpose(1, 2)  # (B, F, 64, 72)
            if device is not None:
                batch = batch.to(device)
            probs = prob_fn(batch).float().cpu().numpy()  # (B, C, 64, 72)
            if total is None:
                total = np.zeros((span, N_PITCH, probs.shape[1]), dtype=np.float64)
            for start, window in zip(batch_starts, probs):
                total[start - lo: start - lo + PHRASE_STEPS] += np.transpose(window, (1, 2, 0))
                count[start - lo: start - lo + PHRASE_STEPS] += 1.0
            final = starts[b + batch_size] if b + batch_size < len(starts) else n_steps
            done = min(final, n_steps) - lo  # steps [lo, lo + done) are covered for good
            yield lo, (total[:done] / np.maximum(count[:done], 1.0)).astype(np.float32)
            total[: span - done] = total[done:].copy()  # shift the buffer by `done` steps
            total[span - done:] = 0.0
            count[: span - done] = count[done:].copy()
            count[span - done:] = 0.0
            lo += done
            bar.update(len(batch_starts))


# ----------------------------------------------------------------------------------
# The separator: checkpoints + sampling settings on a device
# ----------------------------------------------------------------------------------
@dataclass
class Separator:
    """A trained separator (and decoder) with the sampling settings, on one device.

    Attributes:
        model: the TransUNet, in eval mode.
        process: the process the network was trained with (:mod:`models.process`); it
            separates, and says whether it needs the decoder and how many steps it can take.
        decoder: the independent decoder (x1 -> logits of x0), in eval mode, for a process
            that needs one; else None.
        device: where sampling runs.
        sampler: ``"ddim"`` or ``"ddpm"`` (a process that samples).
        steps: reverse steps (clamped to the process's :meth:`max_steps`).
        eta: DDIM eta (0 = deterministic).
        assign: ``"threshold"`` or ``"partition"``.
        threshold: decoder probability needed in ``"threshold"`` mode.
        batch_size: phrases/windows sampled at once.
        seed: seeds the sampling noise (one generator per Separator).
        num_samples: probabilities averaged over this many samples (a process that samples).
        song_context: ``(weight, width)`` of the fixed song-level second pass over whole
            songs' notes (:mod:`utils.separation.register_prior`; weight 0 = off).
        song_pass: the learned song pass trained on this separator's first pass
            (:mod:`utils.separation.song_pass`), used instead of ``song_context`` when present.
        source: which model this is, in words (printed by the scripts).
        folder: the folder of the model's files (its saved baselines live there).
    """

    model: torch.nn.Module
    process: SeparationProcess
    decoder: torch.nn.Module | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    sampler: str = "ddim"
    steps: int = 999
    eta: float = 0.0
    assign: str = "threshold"
    threshold: float = 0.5
    batch_size: int = 256
    seed: int = 0
    num_samples: int = 1
    song_context: tuple[float, float] = (0.0, 3.0)
    song_pass: SongPass | None = None
    source: str = "model given in code"
    folder: Path | None = None
    generator: torch.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_option("sampler", self.sampler, SAMPLERS)
        check_option("assign", self.assign, ASSIGN_MODES)
        if self.batch_size <= 0:
            raise ValueError(f"'batch_size' must be > 0, got {self.batch_size}")
        if self.steps <= 0:
            raise ValueError(f"'steps' must be > 0, got {self.steps}")
        if self.num_samples <= 0:
            raise ValueError(f"'num_samples' must be > 0, got {self.num_samples}")
        if self.process.needs_decoder and self.decoder is None:
            raise ValueError(f"a {self.process.kind} separator needs its decoder")
        self.steps = min(self.steps, self.max_steps)
        self.model.to(self.device).eval()
        if self.decoder is not None:
            self.decoder.to(self.device).eval()
        self.process.to(self.device)
        if self.song_pass is not None:
            self.song_pass.to(self.device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(self.seed)

    @property
    def kind(self) -> str:
        """The process's name (the config's ``separator`` value)."""
        return self.process.kind

    @property
    def max_steps(self) -> int:
        """The most reverse steps the process can take (1 for one that does not sample)."""
        return self.process.max_steps()

    @property
    def sampling(self) -> Sampling:
        """The sampling settings handed to the process."""
        return Sampling(self.sampler, self.steps, self.eta, self.num_samples)

    def describe(self) -> str:
        """The model and its sampling settings in one line."""
        second = f", {self.song_pass.describe()}" if self.song_pass is not None else ""
        return (f"{self.source} ({self.process.describe(self.sampling)}, assign "
                f"'{self.assign}'{second})")

    def settings(self) -> dict[str, object]:
        """The model and its sampling settings, as evaluation reports record them."""
        return {"separator": self.kind, "model": self.source,
                "sampling": self.process.describe(self.sampling), "sampler": self.sampler,
                "steps": self.steps, "eta": self.eta, "num_samples": self.num_samples,
                "assign": self.assign, "threshold": self.threshold,
                "song_context": list(self.song_context),
                "song_pass": None if self.song_pass is None else self.song_pass.source,
                "device": str(self.device), "seed": self.seed}

    def baselines_path(self) -> Path | None:
        """The baselines saved with the model (fitted on its training data), if any."""
        if self.folder is None:
            return None
        path = self.folder / BASELINES_FILE
        return path if path.is_file() else None

    @classmethod
    def from_config(cls, cfg: Config, device: str | torch.device | None = None) -> Separator:
        """Load the model ``cfg`` names, else the newest in ``model_dir``, else the shipped one.

        The checkpoints a config names (or the newest in its ``model_dir``) must match the
        config's network and schedule keys (a mismatch is an error naming the key). When
        neither exists, the shipped model in ``pretrained/`` is used with its own stored
        network settings (the config's sampling keys still apply).

        Args:
            cfg: the typed configuration; its sampling keys (``sampler``,
                ``sampling_steps``, ``eta``, ``assign``, ``threshold``, ``num_samples``,
                ``sample_batch_size``, ``seed``) become the Separator's settings.
            device: ``"auto"``, ``"cpu"``, ``"cuda"``, ... or a torch.device; None takes
                the config's ``accelerator`` (:func:`config_device`).

        Raises:
            utils.core.config.ConfigError: no checkpoint found and no shipped model, an
                unreadable one, or one whose network or schedule keys differ from ``cfg``
                (the key is named).
        """
        dev = config_device(cfg) if device is None else resolve_device(device)
        paths = model_paths(cfg)
        check = None if paths.shipped else cfg
        model, process, stored = load_separator(paths.separator, map_location=dev, cfg=check)
        decoder = None
        if process.needs_decoder:
            decoder_path = paths.decoder if paths.decoder is not None else \
                find_checkpoint(cfg, "decoder")
            decoder = load_decoder(decoder_path, map_location=dev, cfg=check)
        song_pass = None
        if cfg.song_pass:  # trained with this config, or shipped beside the separator
            folders = [Path(cfg.model_dir)] + ([paths.folder] if paths.folder else [])
            song_pass = matching_song_pass([f / SONG_PASS_FILE for f in folders], model, dev)
        return cls(model=model, process=process, decoder=decoder, device=dev,
                   sampler=cfg.sampler, steps=cfg.sampling_steps, eta=cfg.eta,
                   assign=cfg.assign, threshold=cfg.threshold,
                   batch_size=cfg.sample_batch_size, seed=cfg.seed,
                   num_samples=cfg.num_samples,
                   song_context=(cfg.song_context_weight, cfg.song_context_width),
                   song_pass=song_pass,
                   source=paths.describe(),
                   folder=paths.folder)

    def with_settings(self, **changes: object) -> Separator:
        """A copy sharing the networks, with other sampling settings and a fresh generator.

        ``steps`` above ``T - 1`` are clamped, as in the constructor.
        """
        clone = copy.copy(self)
        for key, value in changes.items():
            if key not in ("sampler", "steps", "eta", "assign", "threshold", "batch_size",
                           "seed", "num_samples", "song_context", "song_pass"):
                raise ValueError(f"unknown sampling setting {key!r}")
            setattr(clone, key, value)
        clone.__post_init__()
        return clone

    @torch.inference_mode()
    def probs(self, inputs: torch.Tensor) -> torch.Tensor:
        """Decoder probabilities of every instrument for a batch of mixtures.

        Args:
            inputs: ``float [B, 1, 64, 72]`` mixtures, or ``[B, 2, 64, 72]`` mixtures and
                their note starts (any device; moved to ``self.device``). A model that
                reads note starts and gets none reads them from the cells
                (:func:`models.inputs.run_onsets`).

        Returns:
            ``float32 [B, 5, 64, 72]`` on ``self.device``; 0 outside the mixture.
        """
        inputs = inputs.to(self.device, dtype=torch.float32)
        mixture = inputs[:, :1]
        onsets = inputs[:, 1:2] if inputs.shape[1] > 1 else None
        return self.process.probs(self.model, mixture, onsets, decoder=self.decoder,
                                  sampling=self.sampling, generator=self.generator)

    def separate_phrases(self, mixture: torch.Tensor | np.ndarray,
                         onsets: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """Separate phrases in batches of ``batch_size``.

        Args:
            mixture: ``[N, 1, 64, 72]`` or ``[N, 64, 72]``, bool or float, numpy or torch.
            onsets: the mixture's note starts, same shape (None: read from the cells).

        Returns:
            ``bool [N, 5, 64, 72]`` on the CPU, False outside the mixture.
        """
        planes = [_phrase_plane(mixture, "mixture")]
        if onsets is not None:
            planes.append(_phrase_plane(onsets, "onsets"))
            if planes[1].shape != planes[0].shape:
                raise ValueError(f"onsets must have the mixture's shape "
                                 f"{list(planes[0].shape)}, got {list(planes[1].shape)}")
        probs = self.phrase_probs(torch.cat(planes, dim=1))
        return assign_instruments(probs, planes[0], self.assign, self.threshold)

    def phrase_probs(self, mixture: torch.Tensor) -> torch.Tensor:
        """Decoder probabilities for any number of phrases, in batches of ``batch_size``.

        Args:
            mixture: ``float [N, 1, 64, 72]`` mixtures, or ``[N, 2, 64, 72]`` mixtures and
                their note starts (:meth:`probs`).

        Returns:
            ``float32 [N, 5, 64, 72]`` on the CPU, 0 outside the mixture.
        """
        out = [self.probs(mixture[i: i + self.batch_size]).cpu()
               for i in range(0, mixture.shape[0], self.batch_size)]
        if not out:
            return torch.zeros((0, N_MUSIC, *mixture.shape[2:]), dtype=torch.float32)
        return torch.cat(out)


def _phrase_plane(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    """``[N, 1, T, P]`` or ``[N, T, P]`` (bool or float, numpy or torch) -> ``[N, 1, T, P]``."""
    plane = torch.as_tensor(np.asarray(x) if isinstance(x, np.ndarray) else x)
    if plane.ndim == 3:
        plane = plane.unsqueeze(1)  # (N, 1, 64, 72)
    if plane.ndim != 4 or plane.shape[1] != 1:
        raise ValueError(f"{name} must be [N, 1, T, P] or [N, T, P], got {list(plane.shape)}")
    return plane.float()


# ----------------------------------------------------------------------------------
# Warnings about the input
# ----------------------------------------------------------------------------------
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
