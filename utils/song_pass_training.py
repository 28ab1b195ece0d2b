"""Train the learned song pass on top of a trained separator.

    python -m utils.song_pass_training --config configs/real.json

1. The separator the config names (or the newest in ``model_dir``) runs its first pass over
   every train song of the datasets ``song_pass_data`` lists (default: ``data_dir``) and
   over the validation songs of the first of them, exactly as the song-level evaluation
   separates songs (:mod:`utils.evaluation.songs`), the windows of consecutive songs in one
   batch (:mod:`utils.separation.many_songs`); each song's notes keep their first-pass
   probabilities and their true instruments. The first passes are cached in
   ``model_dir/song_pass/`` under a key of the separator's and the datasets' files, so a
   second run with other steps does not separate the songs again.
2. :class:`models.song_pass.SongPassNet` trains on crops of ``CROP_NOTES`` notes of
   ``BATCH_SONGS`` train songs per step (cross-entropy over the pitched notes, AdamW,
   one-cycle learning rate), ``song_pass_steps`` steps, seeded by ``seed``.
3. Every ``EVAL_EVERY`` steps it decides the validation songs' pitched notes whole; the
   step with the best pitched note accuracy is kept and written atomically to
   ``model_dir/song_pass.ckpt`` with what it scored against the first pass alone.

Separation then uses it wherever the separator's folder holds it (config key ``song_pass``).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import itertools
import json
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from data.contract import N_PITCH, N_PITCHED
from data.errors import InputError
from data.fileio import atomic_write
from data.manifest import Manifest
from models.song_pass import SongPassNet, SongPassSpec
from utils.core.cli import command
from utils.core.config import Config, load_config
from utils.evaluation.songs import SongTruth, SplitSongs
from utils.separation.devices import add_device_option
from utils.separation.first_pass import FirstPass, MixtureSong
from utils.separation.many_songs import song_note_probabilities
from utils.separation.separator import Separator
from utils.separation.song_pass import (
    SONG_PASS_FILE,
    VELOCITY,
    SongNoteFeatures,
    network_digest,
    note_features,
    song_pass_state,
)

BATCH_SONGS = 8
CROP_NOTES = 512
EVAL_EVERY = 250
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 0.01
VELOCITY_SCALE = (0.6, 1.4)  # per instrument and song, in training
CACHE_DIR = "song_pass"
IGNORE = -100  # target of padding


@dataclass
class TrainingSong:
    """One song's first pass, with its notes' true instruments.

    Attributes:
        first_pass: the song's first pass (:class:`utils.separation.first_pass.FirstPass`),
            its probabilities and row sums float32 (as cached); ``chosen`` are the song's
            pitched, scored notes.
        target: int64 ``[K]`` true class 1..5, -1 where not scored.
    """

    first_pass: FirstPass
    target: np.ndarray

    def features(self, use_velocity: bool) -> tuple[SongNoteFeatures, np.ndarray]:
        """The network's inputs and int64 targets 0..3 of the chosen notes, in order (a
        note whose true class is not a pitched instrument: :data:`IGNORE`, as the pitched
        note accuracy leaves it out)."""
        feats = note_features(self.first_pass, use_velocity)
        target = self.target[feats.order] - 1
        return feats, np.where((target >= 0) & (target < N_PITCHED), target, IGNORE)


FIRST_PASS_FIELDS = tuple(f.name for f in fields(FirstPass))
CACHE_FORMAT = 2  # 2: the first pass as FirstPass records it (with ``pitched``)


def first_pass_songs(separator: Separator, truths: Iterable[SongTruth]
                     ) -> Iterator[TrainingSong]:
    """Separate the songs of a built split as the song-level evaluation does (first pass),
    the windows of consecutive songs batched together
    (:func:`utils.separation.many_songs.song_note_probabilities`)."""
    truths, again = itertools.tee(truths)
    scored = (MixtureSong(t.notes, t.mixture, in_mixture=t.true > 0) for t in again)
    for truth, (song, acc) in zip(truths, song_note_probabilities(
            separator.probs, scored, separator.batch_size)):
        first_pass = FirstPass.of(acc, song)
        compact = replace(first_pass, probs=first_pass.probs.astype(np.float32),
                          row_sums=first_pass.row_sums.astype(np.float32))
        yield TrainingSong(compact, target=truth.true)


def first_pass_key(separator: Separator, data_dir: str, split: str, limit: int | None) -> str:
    """What a cached first pass depends on: the separator's weights and sampling, the
    dataset's manifest, the split and the song limit (16 hex digits)."""
    parts = [network_digest(separator.model), separator.process.describe(separator.sampling),
             Manifest.read(data_dir).digest(), split, limit, CACHE_FORMAT]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def first_pass_split(separator: Separator, data_dir: str, split: str, cache: Path,
                     progress: bool = True, limit: int | None = None) -> list[TrainingSong]:
    """The first pass over every song of a split, read from or written to ``cache``.

    The cache file's name holds :func:`first_pass_key`, so a retrained separator (other
    weights, wherever its file lies) or a rebuilt dataset is separated again. A cache file
    that cannot be read or disagrees with itself or the split is stale: one warning line,
    computed again and replaced (atomically). ``limit`` keeps the split's first songs only.

    Raises:
        utils.core.config.ConfigError, data.errors.InputError: no manifest, no songs.
    """
    songs_of_split = SplitSongs.checked(data_dir, split, limit)  # changed: a stale cache
    key = first_pass_key(separator, data_dir, split, limit)
    folder = Path(data_dir).resolve()
    path = cache / f"first_pass_{folder.parent.name}_{folder.name}_{split}_{key}.npz"
    cached = read_first_pass_cache(path, len(songs_of_split.names)) if path.exists() else None
    if cached is not None:
        return cached
    songs = list(tqdm(first_pass_songs(separator, songs_of_split.truths()),
                      total=len(songs_of_split.names), unit="song",
                      desc=f"first pass {folder.parent.name}/{folder.name} {split}",
                      disable=not progress, dynamic_ncols=True))
    arrays: dict[str, np.ndarray] = {
        f: (np.stack([getattr(s.first_pass, f) for s in songs]) if f == "row_sums" else
            np.concatenate([getattr(s.first_pass, f) for s in songs]))
        for f in FIRST_PASS_FIELDS}
    arrays["target"] = np.concatenate([s.target for s in songs])
    arrays["counts"] = np.array([s.target.shape[0] for s in songs], dtype=np.int64)
    cache.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: np.savez(f, **arrays))
    return songs


def read_first_pass_cache(path: Path, n_songs: int) -> list[TrainingSong] | None:
    """The ``n_songs`` songs a first-pass cache file holds, or None (with one ``warning:``
    line) when it is unreadable -- truncated, not an archive, missing arrays -- or its
    arrays disagree with each other or with ``n_songs``."""
    try:
        with np.load(path) as z:  # each z[key] reads its array again: read each once
            stored = {name: z[name] for name in (*FIRST_PASS_FIELDS, "target", "counts")}
    except Exception as exc:  # noqa: BLE001 - whatever is wrong, it is computed again
        why = f"unreadable ({type(exc).__name__}: {str(exc).strip().splitlines()[0]})" \
            if str(exc).strip() else f"unreadable ({type(exc).__name__})"
    else:
        why = _cache_problem(stored, n_songs)
        if why is None:
            cuts = np.concatenate([[0], np.cumsum(stored["counts"])])
            return [TrainingSong(FirstPass(**{f: stored[f][i] if f == "row_sums" else
                                              stored[f][cuts[i]:cuts[i + 1]]
                                              for f in FIRST_PASS_FIELDS}),
                                 target=stored["target"][cuts[i]:cuts[i + 1]])
                    for i in range(n_songs)]
    print(f"warning: {path}: first-pass cache {why}; computing it again",
          file=sys.stderr)
    return None


def _cache_problem(stored: dict[str, np.ndarray], n_songs: int) -> str | None:
    """Why a first-pass cache's arrays cannot be the first pass of ``n_songs`` songs."""
    counts = stored["counts"]
    if counts.shape != (n_songs,) or not np.issubdtype(counts.dtype, np.integer) \
            or (counts < 0).any():
        return f"holds {counts.shape} song counts, not {n_songs}"
    notes = int(counts.sum())
    expected = {"probs": (notes, 5), "row_sums": (n_songs, N_PITCH, 5)}
    for name in (*FIRST_PASS_FIELDS, "target"):
        shape = expected.get(name, (notes,))
        if stored[name].shape != shape or stored[name].dtype.kind not in "biuf":
            return (f"has {name} {stored[name].dtype} {list(stored[name].shape)}, not "
                    f"{list(shape)}")
    return None


@dataclass
class Sequences:
    """Songs ready for the network: features and targets, one entry per song."""

    feats: list[SongNoteFeatures]
    targets: list[np.ndarray]

    @classmethod
    def of(cls, songs: list[TrainingSong], use_velocity: bool) -> Sequences:
        pairs = [s.features(use_velocity) for s in songs]
        keep = [(f, t) for f, t in pairs if len(f)]
        return cls([f for f, _ in keep], [t for _, t in keep])

    def __len__(self) -> int:
        return len(self.feats)

    def batch(self, pick: Sequence[int], crop: int | None = None,
              rng: np.random.Generator | None = None,
              velocity_scale: tuple[float, float] | None = None) -> tuple[torch.Tensor, ...]:
        """``(rows, beat, numbers, log_probs, lengths, targets)`` of the picked songs, padded.

        Each song is cut to a random ``crop`` notes when longer; with ``velocity_scale``
        ``(lo, hi)`` the velocities of each instrument of each song are multiplied by one
        factor drawn from ``U(lo, hi)`` (clipped to 1..127), so the network cannot learn one
        corpus's mixing habits. ``rng`` draws both.
        """
        parts = []
        for i in pick:
            f, t = self.feats[i], self.targets[i]
            lo, hi = 0, len(t)
            if crop is not None and hi > crop:
                assert rng is not None
                lo = int(rng.integers(0, hi - crop + 1))
                hi = lo + crop
            numbers = f.numbers[lo:hi]
            if velocity_scale is not None:
                assert rng is not None
                factor = rng.uniform(*velocity_scale, size=N_PITCHED + 1)  # last: ignored
                scale = factor[np.where(t[lo:hi] == IGNORE, N_PITCHED, t[lo:hi])]
                numbers = numbers.copy()
                velocity = numbers[:, VELOCITY] * 127.0 * scale
                numbers[:, VELOCITY] = np.clip(np.rint(velocity), 1, 127) / 127.0
            parts.append((f.rows[lo:hi], f.beat[lo:hi], numbers, f.log_probs[lo:hi],
                          t[lo:hi]))
        width = max(len(p[0]) for p in parts)

        def pad(j: int, fill: float | int) -> torch.Tensor:
            first = parts[0][j]
            out = np.full((len(parts), width, *first.shape[1:]), fill, dtype=first.dtype)
            for b, p in enumerate(parts):
                out[b, :len(p[j])] = p[j]
            return torch.from_numpy(out)

        lengths = torch.tensor([len(p[0]) for p in parts], dtype=torch.int64)
        return pad(0, 0), pad(1, 0), pad(2, 0.0), pad(3, 0.0), lengths, pad(4, IGNORE)


@torch.inference_mode()
def pitched_accuracy(net: SongPassNet | None, seqs: Sequences) -> float:
    """Pitched note accuracy over whole songs (``net`` None: the first pass alone)."""
    right = total = 0
    for i in range(len(seqs)):
        f, t = seqs.feats[i], seqs.targets[i]
        if net is None:
            pred = f.log_probs.argmax(axis=1)
        else:
            rows, beat, numbers, log_probs, _, _ = seqs.batch([i])
            pred = net(rows, beat, numbers, log_probs)[0].argmax(dim=1).numpy()
        scored = t != IGNORE
        right += int((pred[scored] == t[scored]).sum())
        total += int(scored.sum())
    return right / max(total, 1)


def train_network(train: Sequences, val: Sequences, spec: SongPassSpec, steps: int, seed: int,
                  progress: bool = True) -> tuple[SongPassNet, dict[str, Any]]:
    """Train a song pass network; returns the best step's network and its record."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = SongPassNet(spec)
    opt = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LEARNING_RATE, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss(ignore_index=IGNORE)
    first_pass = pitched_accuracy(None, val)
    best = {"step": 0, "val_pitched_note_accuracy": first_pass, "state": None}
    history = []
    bar = tqdm(range(1, steps + 1), unit="step", desc="song pass", disable=not progress,
               dynamic_ncols=True)
    for step in bar:
        net.train()
        *inputs, lengths, target = train.batch(
            rng.integers(0, len(train), BATCH_SONGS), CROP_NOTES, rng,
            VELOCITY_SCALE if spec.velocity else None)
        logits = net(*inputs, lengths)
        loss = loss_fn(logits.reshape(-1, N_PITCHED), target.reshape(-1))
        if not torch.isfinite(loss):
            raise RuntimeError(f"non-finite song pass loss at step {step}")
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        schedule.step()
        if step % EVAL_EVERY == 0 or step == steps:
            net.eval()
            acc = pitched_accuracy(net, val)
            history.append({"step": step, "loss": round(loss.item(), 4),
                            "val_pitched_note_accuracy": round(acc, 4)})
            bar.write(f"step {step}: loss {loss.item():.4f}, validation pitched note "
                      f"accuracy {acc:.4f} (first pass {first_pass:.4f})")
            if acc > best["val_pitched_note_accuracy"]:
                best = {"step": step, "val_pitched_note_accuracy": acc,
                        "state": copy.deepcopy(net.state_dict())}
    if best["state"] is not None:
        net.load_state_dict(best["state"])
    net.eval()
    record = {"steps": steps, "best_step": best["step"],
              "val_pitched_note_accuracy": round(best["val_pitched_note_accuracy"], 4),
              "first_pass_val_pitched_note_accuracy": round(first_pass, 4),
              "history": history}
    return net, record


def train_song_pass(cfg: Config, device: str | None = None, progress: bool = True,
                    limit: int | None = None) -> tuple[Path, dict[str, Any]]:
    """Steps 1-3 of the module docstring; returns the checkpoint written and its record.

    ``limit`` keeps the first songs of each split only (a quick try).

    Raises:
        utils.core.config.ConfigError: no trained separator; data.errors.InputError: a dataset
            without songs in the split needed.
    """
    started = time.perf_counter()
    cfg.require_writable_dir("model_dir")
    separator = Separator.from_config(cfg, device)  # its first pass only
    data_dirs = list(cfg.song_pass_data) or [cfg.data_dir]
    cache = Path(cfg.model_dir) / CACHE_DIR
    train_songs = [s for d in data_dirs
                   for s in first_pass_split(separator, d, "train", cache, progress, limit)]
    val_songs = first_pass_split(separator, data_dirs[0], "val", cache, progress, limit)
    spec = SongPassSpec(velocity=cfg.song_pass_velocity)
    train = Sequences.of(train_songs, spec.velocity)
    val = Sequences.of(val_songs, spec.velocity)
    if not len(train) or not len(val):
        raise InputError(f"{cfg._source}: 'song_pass_data' gives no pitched notes to train or "
                         f"validate the song pass on ({', '.join(data_dirs)})")
    net, record = train_network(train, val, spec, cfg.song_pass_steps, cfg.seed, progress)
    record.update({"separator": separator.source,
                   "separator_digest": network_digest(separator.model), "data": data_dirs,
                   "validation": f"{data_dirs[0]} val", "seed": cfg.seed,
                   "train_songs": len(train), "val_songs": len(val),
                   "seconds": round(time.perf_counter() - started, 1)})
    path = Path(cfg.model_dir) / SONG_PASS_FILE
    atomic_write(path, lambda f: torch.save(song_pass_state(net, record), f))
    return path, record


@command
def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m utils.song_pass_training",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config.json", help="config of the trained separator")
    add_device_option(parser)
    parser.add_argument("--limit", type=int, default=None,
                        help="the first N songs of each split only (a quick try)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit <= 0:
        parser.error(f"--limit must be > 0, got {args.limit}")
    path, record = train_song_pass(load_config(args.config), args.device,
                                   progress=not args.no_progress, limit=args.limit)
    print(f"wrote {path}: validation pitched note accuracy "
          f"{record['val_pitched_note_accuracy']:.4f} at step {record['best_step']} "
          f"(first pass alone {record['first_pass_val_pitched_note_accuracy']:.4f}), "
          f"{record['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
