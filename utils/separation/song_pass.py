"""The learned song pass at separation time: note features, loading, applying.

After the first pass (:class:`utils.separation.first_pass.FirstPass`), a trained
:class:`models.song_pass.SongPassNet` reads the song's pitched notes in time order and
gives each its pitched instrument probabilities again (docs/method.md, "The song pass").
Its weights live in ``song_pass.ckpt`` beside the separator's baselines (the model
folder, or ``pretrained/``); :mod:`utils.song_pass_training` trains it.

The features of a note come from the mixture and the first pass only -- never from the
input file's tracks or programs, which a mixture does not have.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data.contract import N_PITCH, STEPS_PER_BAR
from models.song_pass import N_TIMING, SongPassNet, SongPassSpec, gate_logits, n_continuous
from utils.core.config import ConfigError
from utils.separation.first_pass import FirstPass
from utils.separation.register_prior import song_prior

SONG_PASS_FILE = "song_pass.ckpt"
MAX_SONG_PASS_BYTES = 256 * 2**20
"""Largest ``song_pass.ckpt`` read: the largest network the settings allow
(:data:`models.options.SONG_PASS_BOUNDS`) takes about 150 MB; the shipped one 3.6 MB."""
MAX_WEIGHT = 1e3
"""Largest magnitude of a song pass weight (the shipped network's largest is 4.0)."""
PRIOR_WIDTH = 1.0
"""Smoothing (semitones) of the register prior fed to the network (the width the fixed
second pass was chosen with, :mod:`utils.separation.register_prior`)."""
LOG_FLOOR = 1e-4  # probabilities are floored before the log: a 0 would be -inf
VELOCITY = 4
"""Column of ``SongNoteFeatures.numbers`` that holds velocity / 127 (0 when unused)."""
CLOCKS = (32, 64, 128, 256)
"""Periods (steps: 2, 4, 8 and 16 bars) of the slow clocks a timing network reads each
note's start on: where it falls in a phrase, and how far apart two notes start."""


def timing_numbers(first: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """The :data:`models.song_pass.N_TIMING` timing numbers of a song's notes.

    Args:
        first, stop: int64 ``[n]`` grid steps of the song's notes (stop exclusive, after
            ``first``), any order.

    Returns:
        float32 ``[n, 12]``, per note: log(1 + steps since the previous start of another
        step) and log(1 + steps to the next one) (0 at the song's ends), log(1 + the
        notes started before it and still sounding at its start), log(1 + the starts of
        other steps while it sounds), then sin and cos of ``2 pi first / P`` for each
        period ``P`` of :data:`CLOCKS`.
    """
    first = np.asarray(first, dtype=np.int64)
    stop = np.asarray(stop, dtype=np.int64)
    out = np.zeros((first.size, N_TIMING), dtype=np.float32)
    if not first.size:
        return out
    steps = np.unique(first)  # sorted starts, once each
    at = np.searchsorted(steps, first)
    before = np.where(at > 0, first - steps[np.maximum(at - 1, 0)], 0)
    after = np.where(at + 1 < steps.size, steps[np.minimum(at + 1, steps.size - 1)] - first, 0)
    starts, stops = np.sort(first), np.sort(stop)
    sounding = np.searchsorted(starts, first, "left") - np.searchsorted(stops, first, "right")
    under = np.searchsorted(steps, stop, "left") - at - 1
    out[:, 0] = np.log1p(before)
    out[:, 1] = np.log1p(after)
    out[:, 2] = np.log1p(sounding)  # each note that stopped by then also started before
    out[:, 3] = np.log1p(under)  # ``stop > first``: its own step is below ``stop``
    for k, period in enumerate(CLOCKS):
        angle = 2.0 * np.pi * (first % period) / period
        out[:, 4 + 2 * k] = np.sin(angle)
        out[:, 5 + 2 * k] = np.cos(angle)
    return out


@dataclass
class SongNoteFeatures:
    """The network's inputs for the pitched notes of one song, in sequence order.

    Attributes:
        order: int64 ``[n]`` index of each sequence position into the song's notes.
        rows: int64 ``[n]`` pitch row 0..71.
        beat: int64 ``[n]`` start step within its bar, 0..15.
        numbers: float32 ``[n, N_CONTINUOUS]`` (:data:`models.song_pass.N_CONTINUOUS`).
        log_probs: float32 ``[n, 4]`` the first pass's log probabilities (renormalised
            over the 4 pitched instruments).
    """

    order: np.ndarray
    rows: np.ndarray
    beat: np.ndarray
    numbers: np.ndarray
    log_probs: np.ndarray

    def __len__(self) -> int:
        return int(self.order.size)


def note_features(first_pass: FirstPass, use_velocity: bool, timing: bool = False
                  ) -> SongNoteFeatures:
    """The song pass's inputs for the chosen notes of a song's first pass.

    Args:
        first_pass: the song's first pass (:class:`utils.separation.first_pass.FirstPass`):
            its probabilities (pitched instruments first; NaN reads as uniform), rows (-1:
            none; such notes are left out), steps, velocities, the notes the pass decides
            (``chosen``) and the song's probability sums per row.
        use_velocity: fill the velocity number (else 0).
        timing: add the notes' timing numbers (:func:`timing_numbers`) after the others.

    Returns:
        The :class:`SongNoteFeatures`, sorted by start step, then row.
    """
    probs, rows, first, stop = (first_pass.probs, first_pass.rows, first_pass.first,
                                first_pass.stop)
    velocity, chosen, row_sums = first_pass.velocity, first_pass.chosen, first_pass.row_sums
    rows = np.asarray(rows, dtype=np.int64)
    idx = np.flatnonzero(np.asarray(chosen, dtype=bool) & (rows >= 0))
    first = np.asarray(first, dtype=np.int64)[idx]
    row = rows[idx]
    sort = np.lexsort((row, first))
    idx, first, row = idx[sort], first[sort], row[sort]
    stop = np.asarray(stop, dtype=np.int64)[idx]
    length = np.maximum(stop - first, 1)
    n_pitched = np.shape(probs)[1] - 1  # every class but the drum, the last one
    p = np.nan_to_num(np.asarray(probs, dtype=np.float64)[idx, :n_pitched], nan=1.0)
    p = np.clip(p, 0.0, None)
    total = p.sum(axis=1, keepdims=True)
    p = np.where(total > 0, p / np.maximum(total, 1e-12), 1.0 / n_pitched)
    numbers = np.zeros((idx.size, n_continuous(n_pitched, timing)), dtype=np.float32)
    if idx.size:
        _, group, starts = np.unique(first, return_inverse=True, return_counts=True)
        lowest = np.full(starts.size, N_PITCH, dtype=np.int64)
        highest = np.full(starts.size, -1, dtype=np.int64)
        np.minimum.at(lowest, group, row)
        np.maximum.at(highest, group, row)
        numbers[:, 0] = np.log1p(length)
        numbers[:, 1] = np.log1p(starts[group])
        numbers[:, 2] = row == lowest[group]
        numbers[:, 3] = row == highest[group]
        if use_velocity:
            numbers[:, VELOCITY] = np.asarray(velocity, dtype=np.float64)[idx] / 127.0
        numbers[:, 5:5 + n_pitched] = np.log(song_prior(row_sums, PRIOR_WIDTH)[row] + LOG_FLOOR)
        if timing:
            numbers[:, 5 + n_pitched:] = timing_numbers(first, stop)
    return SongNoteFeatures(order=idx, rows=row, beat=first % STEPS_PER_BAR,
                            numbers=numbers, log_probs=np.log(p + LOG_FLOOR).astype(np.float32))


@dataclass
class SongPass:
    """A trained song pass network, ready to correct songs.

    Attributes:
        net: the network, in eval mode.
        source: where it was read from, in words.
        trained: what its checkpoint says of its training (steps, data, scores).
        register_prior: ``(weight, width)`` of the fixed second pass the config sets,
            which this one replaces (reports record it).
    """

    net: SongPassNet
    source: str = "song pass given in code"
    trained: dict[str, Any] | None = None
    register_prior: tuple[float, float] = (0.0, 1.0)

    @property
    def spec(self) -> SongPassSpec:
        return self.net.spec

    def describe(self) -> str:
        return f"learned song pass ({self.source})"

    def trained_on(self, separator_digest: str) -> bool:
        """Whether it was trained on the separator of this :func:`network_digest`."""
        return (self.trained or {}).get("separator_digest") == separator_digest

    @torch.inference_mode()
    def song_probs(self, feats: SongNoteFeatures) -> tuple[np.ndarray, np.ndarray | None]:
        """The network's view of the notes of ``feats``: float64 ``[n, 4]`` pitched
        probabilities (gated by the presence head when it has one, at the network's
        ``spec.gate``, :func:`models.song_pass.gate_logits`) and bool ``[4]`` the pitched
        instruments the head predicts present, its own answer at probability 0.5 whatever
        the gate (None without the head, or for a song without notes)."""
        if len(feats) == 0:
            return np.zeros((0, self.spec.pitched)), None
        device = next(self.net.parameters()).device
        logits, presence = self.net.song_outputs(
            torch.from_numpy(feats.rows)[None].to(device),
            torch.from_numpy(feats.beat)[None].to(device),
            torch.from_numpy(feats.numbers)[None].to(device),
            torch.from_numpy(feats.log_probs)[None].to(device))
        logits = gate_logits(logits, presence, self.spec.gate)[0]
        present = None if presence is None else (presence[0] >= 0).cpu().numpy()
        return torch.softmax(logits.double(), dim=-1).cpu().numpy(), present

    def pitched_probs(self, feats: SongNoteFeatures) -> np.ndarray:
        """float64 ``[n, 4]`` the network's probabilities for the notes of ``feats``."""
        return self.song_probs(feats)[0]

    def decide(self, first_pass: FirstPass) -> np.ndarray:
        """The first pass's note probabilities with the chosen notes' pitched part replaced
        (:meth:`decide_song`'s first part)."""
        return self.decide_song(first_pass)[0]

    def decide_song(self, first_pass: FirstPass) -> tuple[np.ndarray, np.ndarray | None]:
        """The first pass's note probabilities with the chosen notes' pitched part replaced,
        and the pitched instruments the presence head predicts in the song.

        Returns:
            ``(probs, present)``: float64 ``[K, 5]``: for every chosen note with a row, the
            network's pitched probabilities (an instrument predicted absent at 0) scaled to
            what the first pass's 4 summed to (so the drum column keeps its meaning); every
            other entry as given. bool ``[4]`` or None (no head, or no chosen note).
        """
        out = np.array(first_pass.probs, dtype=np.float64, copy=True)
        feats = note_features(replace(first_pass, probs=out), self.spec.velocity,
                              self.spec.timing)
        if len(feats) == 0:
            return out, None
        n_pitched = out.shape[1] - 1
        total = np.nan_to_num(out[feats.order, :n_pitched], nan=0.0).sum(axis=1, keepdims=True)
        total = np.where(total > 0, total, 1.0)
        probs, present = self.song_probs(feats)
        out[feats.order, :n_pitched] = probs * total
        return out, present

    def settings(self) -> dict[str, object]:
        """What reports record of the second pass: the register prior the config sets
        (which this pass replaces) and this pass's file."""
        return {"song_context": list(self.register_prior), "song_pass": self.source}

    def to(self, device: torch.device) -> SongPass:
        self.net.to(device)
        return self


def network_digest(model: torch.nn.Module) -> str:
    """A digest of a network's weights: which separator a song pass was trained on.

    Exporting a checkpoint (:mod:`utils.pretrained`) keeps the weights, so the digest of
    the shipped separator is that of the trained one.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float64).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def matching_song_pass(paths: list[Path], separator: torch.nn.Module,
                       map_location: str | torch.device = "cpu") -> SongPass | None:
    """The first song pass of ``paths`` that exists and was trained on ``separator``.

    A song pass learnt one separator's probabilities; a file trained on another (a
    retrained separator) is passed over, and when none matches, one ``warning:`` line on
    stderr says how to retrain it and separation falls back to the fixed second pass.

    Raises:
        utils.core.config.ConfigError: a file exists but is not a song pass checkpoint.
    """
    digest = None
    stale = []
    for path in dict.fromkeys(paths):  # in order, each once
        if not path.is_file():
            continue
        song_pass = load_song_pass(path, map_location)
        digest = network_digest(separator) if digest is None else digest
        if song_pass.trained_on(digest):
            return song_pass
        stale.append(path)
    if stale:
        print(f"warning: {stale[0]} was trained on another separator and is not used; "
              "retrain it with python -m utils.song_pass_training", file=sys.stderr)
    return None


def song_pass_state(net: SongPassNet, trained: dict[str, Any]) -> dict[str, Any]:
    """What ``song_pass.ckpt`` holds: the settings, the weights and the training record."""
    return {"song_pass": net.spec.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
            "trained": trained}


def load_song_pass(path: str | Path, map_location: str | torch.device = "cpu") -> SongPass:
    """Read a ``song_pass.ckpt``: checked whole before its network is built.

    The file is at most :data:`MAX_SONG_PASS_BYTES` (checked before it is read); it must be
    a dict whose ``song_pass`` settings are within :data:`models.options.SONG_PASS_BOUNDS`
    (checked before any network exists), whose ``state_dict`` maps names to floating-point
    tensors, every value finite and at most :data:`MAX_WEIGHT` in magnitude (else every
    note would be decided by a broken network without a word), and whose ``trained``
    record is a dict or absent.

    Raises:
        utils.core.config.ConfigError: unreadable, or not a song pass checkpoint; one line naming
            the file and what is wrong.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ConfigError(f"{path}: song pass checkpoint not found") from None
    if size > MAX_SONG_PASS_BYTES:
        raise ConfigError(f"{path}: {size:,} bytes, larger than any song pass checkpoint "
                          f"({MAX_SONG_PASS_BYTES:,} bytes at most); not read")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one error line
        raise ConfigError(f"{path}: not a readable song pass checkpoint "
                          f"({type(exc).__name__})") from None
    spec, weights, trained = _checked_state(path, state)
    try:
        net = SongPassNet(spec)
        net.load_state_dict(weights)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"{path}: not a song pass checkpoint "
                          f"({type(exc).__name__}: {str(exc).strip().splitlines()[0]})") from None
    net.eval()
    return SongPass(net=net, source=str(path), trained=trained)


def _checked_state(path: Path, state: object
                   ) -> tuple[SongPassSpec, dict[str, torch.Tensor], dict[str, Any] | None]:
    """The settings, weights and record of a loaded ``song_pass.ckpt``, each checked
    (:func:`load_song_pass`); ConfigError naming the file otherwise."""
    def refuse(why: str) -> ConfigError:
        return ConfigError(f"{path}: not a song pass checkpoint ({why})")

    if not isinstance(state, dict):
        raise refuse(f"it holds a {type(state).__name__}, not a dict")
    settings, weights, trained = (state.get(k) for k in ("song_pass", "state_dict", "trained"))
    if not isinstance(settings, dict) or not all(isinstance(k, str) for k in settings):
        raise refuse("no 'song_pass' settings")
    try:
        spec = SongPassSpec(**settings)
    except (TypeError, ValueError) as exc:
        raise refuse(str(exc).strip().splitlines()[0]) from None
    if not isinstance(weights, dict):
        raise refuse(f"'state_dict' is a {type(weights).__name__}, not a dict of tensors")
    for name, tensor in weights.items():
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            kind = tensor.dtype if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise refuse(f"weight {name!r} is {str(kind).removeprefix('torch.')}, not "
                         f"floating point")
        if tensor.numel() and not bool(torch.isfinite(tensor).all()):
            raise refuse(f"weight {name!r} is not finite")
        top = float(tensor.abs().max()) if tensor.numel() else 0.0
        if top > MAX_WEIGHT:
            raise refuse(f"weight {name!r} reaches {top:.3g}, over {MAX_WEIGHT:g}: not a "
                         f"trained network")
    if trained is not None and not isinstance(trained, dict):
        raise refuse(f"'trained' is a {type(trained).__name__}, not a dict")
    return spec, weights, trained
