"""Separation with a trained separator (+ decoder): phrases, whole songs (docs/method.md section 5).

A :class:`Separator` bundles the loaded checkpoints with the sampling settings on one
device. Phrases (``[N, 1, 64, 72]`` mixtures) go straight through the guided sampler.
A whole song is cut into windows and stitched (:mod:`utils.separation.windows`) and
separated note by note (:meth:`Separator.separate_notes`, :mod:`utils.separation.notes`),
with the separator's second pass (:mod:`utils.separation.second_pass`).

Axis orders: song mixture ``bool [T, 72]``; song result ``bool [T, 72, 5]`` (instrument
last, as the storage rolls of ``data/``); model tensors ``float32 [B, C, 64, 72]``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

import numpy as np
import torch

from data.contract import check_option
from data.instruments import PAPER, InstrumentSet
from models.options import Sampler
from models.process import Sampling, SeparationProcess
from utils.core.checkpoints import (
    BASELINES_FILE,
    find_checkpoint,
    load_decoder,
    load_separator,
    model_paths,
)
from utils.core.config import Config, ConfigError
from utils.separation.assignment import ASSIGN_MODES, assign_instruments
from utils.separation.devices import config_device, resolve_device
from utils.separation.first_pass import MixtureSong
from utils.separation.notes import NO_SECOND_PASS, NoteAssignment, NoteSeparator
from utils.separation.second_pass import SecondPass, second_pass_from_config

SAMPLERS: tuple[str, ...] = get_args(Sampler)


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
        second_pass: the song-level second pass over whole songs' notes, one of the kinds
            of :mod:`utils.separation.second_pass` (none by default).
        source: which model this is, in words (printed by the scripts).
        folder: the folder of the model's files (its saved baselines live there).
        instruments: the classes the model separates (its checkpoint's
            ``instrument_set``; the paper's five by default).
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
    second_pass: SecondPass = NO_SECOND_PASS
    source: str = "model given in code"
    folder: Path | None = None
    instruments: InstrumentSet = PAPER
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
        self.second_pass = self.second_pass.to(self.device)
        self.generator = torch.Generator(device=self.device)
        self.reseed()

    def reseed(self) -> None:
        """Restart the sampling noise from ``seed``, as a new Separator would."""
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
        second = self.second_pass.describe()
        second = f", {second}" if second else ""
        return (f"{self.source} ({self.process.describe(self.sampling)}, assign "
                f"'{self.assign}'{second})")

    def settings(self) -> dict[str, object]:
        """The model and its sampling settings, as evaluation reports record them."""
        return {"separator": self.kind, "model": self.source,
                "sampling": self.process.describe(self.sampling), "sampler": self.sampler,
                "steps": self.steps, "eta": self.eta, "num_samples": self.num_samples,
                "assign": self.assign, "threshold": self.threshold,
                **self.second_pass.settings(),
                "device": str(self.device), "seed": self.seed,
                **({} if self.instruments.same_classes(PAPER)
                   else {"instrument_set": self.instruments.record()})}

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
        if not stored.instruments.same_classes(cfg.instruments):  # the shipped model's
            raise ConfigError(f"{cfg._source}: 'instrument_set' is "
                              f"{cfg.instruments.describe()} but the {paths.describe()} "
                              f"separates {stored.instruments.describe()}")
        decoder = None
        if process.needs_decoder:
            decoder_path = paths.decoder if paths.decoder is not None else \
                find_checkpoint(cfg, "decoder")
            decoder = load_decoder(decoder_path, map_location=dev, cfg=check)
        folders = [Path(cfg.model_dir)] + ([paths.folder] if paths.folder else [])
        return cls(model=model, process=process, decoder=decoder, device=dev,
                   sampler=cfg.sampler, steps=cfg.sampling_steps, eta=cfg.eta,
                   assign=cfg.assign, threshold=cfg.threshold,
                   batch_size=cfg.sample_batch_size, seed=cfg.seed,
                   num_samples=cfg.num_samples,
                   second_pass=second_pass_from_config(cfg, folders, model, dev),
                   source=paths.describe(),
                   folder=paths.folder, instruments=stored.instruments)

    def with_settings(self, **changes: object) -> Separator:
        """A copy sharing the networks, with other sampling settings and a fresh generator.

        ``steps`` above ``T - 1`` are clamped, as in the constructor.
        """
        clone = copy.copy(self)
        for key, value in changes.items():
            if key not in ("sampler", "steps", "eta", "assign", "threshold", "batch_size",
                           "seed", "num_samples", "second_pass"):
                raise ValueError(f"unknown sampling setting {key!r}")
            setattr(clone, key, value)
        clone.__post_init__()
        return clone

    def separate_notes(self, song: MixtureSong, *, drums_by_model: bool = False,
                       skip_silent: bool = False, progress: bool = False) -> NoteAssignment:
        """Separate a whole song note by note, its second pass included
        (:func:`utils.separation.notes.separate_notes`).

        Args:
            song: the song's notes and mixture.
            drums_by_model: let the model choose for drum-channel notes too.
            skip_silent: never run the model on a silent window (the MIDI file job's way;
                a sampler then draws its noise for fewer windows).
            progress: show a progress bar in windows/s.
        """
        notes = NoteSeparator(self.probs, self.second_pass, self.batch_size, self.device,
                              self.instruments)
        return notes.separate_notes(song, drums_by_model=drums_by_model,
                                    skip_silent=skip_silent, progress=progress)

    def separate_songs(self, songs: Iterable[MixtureSong]) -> Iterator[NoteAssignment]:
        """Separate many songs note by note, one :class:`NoteAssignment` per song in order.

        A process that does not sample batches the windows of consecutive songs together
        (:func:`utils.separation.notes.separate_songs`: :meth:`separate_notes`'s
        probabilities up to float rounding, silent windows skipped); one that samples
        separates one song at a time, so its noise falls on the windows as before.
        """
        if self.max_steps > 1:  # it samples
            return (self.separate_notes(song) for song in songs)
        notes = NoteSeparator(self.probs, self.second_pass, self.batch_size, self.device,
                              self.instruments)
        return notes.separate_songs(songs)

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
            return torch.zeros((0, self.instruments.n_music, *mixture.shape[2:]),
                               dtype=torch.float32)
        return torch.cat(out)


def _phrase_plane(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    """``[N, 1, T, P]`` or ``[N, T, P]`` (bool or float, numpy or torch) -> ``[N, 1, T, P]``."""
    plane = torch.as_tensor(np.asarray(x) if isinstance(x, np.ndarray) else x)
    if plane.ndim == 3:
        plane = plane.unsqueeze(1)  # (N, 1, 64, 72)
    if plane.ndim != 4 or plane.shape[1] != 1:
        raise ValueError(f"{name} must be [N, 1, T, P] or [N, T, P], got {list(plane.shape)}")
    return plane.float()
