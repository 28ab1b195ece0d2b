"""Train the learned song pass on top of a trained separator.

    python -m utils.song_pass_training --config configs/real.json

1. The separator the config names (or the newest in ``model_dir``) runs its first pass over
   every train and validation song of the datasets ``song_pass_data`` names (default:
   ``data_dir``), exactly as the song-level evaluation separates songs
   (:mod:`utils.evaluation.song_modes`), the windows of consecutive songs in one batch
   (:mod:`utils.separation.many_songs`; ``song_pass_songs``: "unified", the build's tracks,
   or "whole", every track of the file with the tune in); each song's notes keep their
   first-pass probabilities and their true instruments. With ``song_pass_augment`` each
   train song also gets that many changed copies, transposed and with one or two pitched
   instruments taken out of the mixture, separated again
   (:mod:`utils.training.song_augment`). The first passes are cached in
   ``model_dir/song_pass/`` under a key of the separator's and the datasets' files and of
   how the songs are read, so a second run with other steps does not separate them again.
2. :class:`models.song_pass.SongPassNet` (with a presence head when
   ``song_pass_presence``) trains ``song_pass_steps`` steps, seeded by ``seed``, on batches
   of songs drawn from the corpora by the weights of ``song_pass_data``
   (:mod:`utils.training.song_pass_fit`).
3. Every ``EVAL_EVERY`` steps it decides the validation songs of every corpus whole; the
   step with the best mean over the corpora of the pitched note accuracy is kept (with the
   presence head, together with the best of the presence gates ``song_pass_gates``) and
   written atomically to ``model_dir/song_pass.ckpt`` with what it scored, per corpus,
   against the first pass alone.

Separation then uses it wherever the separator's folder holds it (config key ``song_pass``).
"""

from __future__ import annotations

import argparse
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
from tqdm import tqdm

from data.contract import N_MUSIC, N_PITCH
from data.errors import InputError
from data.fileio import atomic_write
from data.manifest import Manifest
from models.song_pass import SongPassSpec
from utils.core.cli import command
from utils.core.config import Config, load_config
from utils.evaluation.phrases import check_model_data
from utils.evaluation.songs import SongTruth, SplitSongs
from utils.separation.devices import add_device_option
from utils.separation.first_pass import FirstPass, MixtureSong
from utils.separation.many_songs import song_note_probabilities
from utils.separation.notes import instruments_of
from utils.separation.separator import Separator
from utils.separation.song_pass import (
    SONG_PASS_FILE,
    SongNoteFeatures,
    network_digest,
    note_features,
    song_pass_state,
)
from utils.training.song_augment import SongAugment, SongReading
from utils.training.song_pass_fit import (
    IGNORE,
    FitOptions,
    Sequences,
    presence_words,
    train_network,
)

__all__ = ["IGNORE", "Sequences", "TrainingSong", "first_pass_split", "main", "train_song_pass"]

CACHE_DIR = "song_pass"
UNIFIED = SongReading()  # the build's tracks, no copies: the default


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

    def features(self, use_velocity: bool, timing: bool = False
                 ) -> tuple[SongNoteFeatures, np.ndarray]:
        """The network's inputs and int64 targets 0..3 of the chosen notes, in order (a
        note whose true class is not a pitched instrument: :data:`IGNORE`, as the pitched
        note accuracy leaves it out); ``timing``: with the timing numbers."""
        feats = note_features(self.first_pass, use_velocity, timing)
        target = self.target[feats.order] - 1
        n_pitched = self.first_pass.probs.shape[1] - 1  # the drum is the last class
        return feats, np.where((target >= 0) & (target < n_pitched), target, IGNORE)


FIRST_PASS_FIELDS = tuple(f.name for f in fields(FirstPass))
CACHE_FORMAT = 2  # 2: the first pass as FirstPass records it (with ``pitched``)


def first_pass_songs(separator: Separator, truths: Iterable[SongTruth]
                     ) -> Iterator[TrainingSong]:
    """Separate songs of a built split as the song-level evaluation does (first pass): each
    song's fed notes make the mixture and are decided (``song.fed``; None: the scored ones);
    the windows of consecutive songs are batched together
    (:func:`utils.separation.many_songs.song_note_probabilities`)."""
    truths, again = itertools.tee(truths)
    fed = (MixtureSong(t.notes, t.mixture, in_mixture=t.true > 0 if t.fed is None else t.fed)
           for t in again)
    for truth, (song, acc) in zip(truths, song_note_probabilities(
            separator.probs, fed, separator.batch_size, n_music=instruments_of(separator).n_music)):
        first_pass = FirstPass.of(acc, song)
        compact = replace(first_pass, probs=first_pass.probs.astype(np.float32),
                          row_sums=first_pass.row_sums.astype(np.float32))
        yield TrainingSong(compact, target=truth.true)


def first_pass_key(separator: Separator, data_dir: str, split: str, limit: int | None,
                   reading: SongReading = UNIFIED) -> str:
    """What a cached first pass depends on: the separator's weights and sampling, the
    dataset's manifest, the split, the song limit and how the songs are read (16 hex
    digits)."""
    parts = [network_digest(separator.model), separator.process.describe(separator.sampling),
             Manifest.read(data_dir).digest(), split, limit, CACHE_FORMAT, *reading.key()]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def first_pass_split(separator: Separator, data_dir: str, split: str, cache: Path,
                     progress: bool = True, limit: int | None = None,
                     reading: SongReading = UNIFIED) -> list[TrainingSong]:
    """The first pass over every song of a split (read as ``reading`` says, changed copies
    included), read from or written to ``cache``.

    The cache file's name holds :func:`first_pass_key`, so a retrained separator (other
    weights, wherever its file lies) or a rebuilt dataset is separated again. A cache file
    that cannot be read or disagrees with itself or the split is stale: one warning line,
    computed again and replaced (atomically). ``limit`` keeps the split's first songs only.

    Raises:
        utils.core.config.ConfigError, data.errors.InputError: no manifest, no songs.
    """
    songs_of_split = SplitSongs.checked(data_dir, split, limit)  # changed: a stale cache
    key = first_pass_key(separator, data_dir, split, limit, reading)
    folder = Path(data_dir).resolve()
    path = cache / f"first_pass_{folder.parent.name}_{folder.name}_{split}_{key}.npz"
    n_songs = reading.count(len(songs_of_split.names))
    cached = read_first_pass_cache(path, n_songs, instruments_of(separator).n_music) \
        if path.exists() else None
    if cached is not None:
        return cached
    songs = list(tqdm(first_pass_songs(separator, reading.truths(songs_of_split)),
                      total=n_songs, unit="song",
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


def read_first_pass_cache(path: Path, n_songs: int, n_music: int = N_MUSIC
                          ) -> list[TrainingSong] | None:
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
        why = _cache_problem(stored, n_songs, n_music)
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


def _cache_problem(stored: dict[str, np.ndarray], n_songs: int, n_music: int = N_MUSIC
                   ) -> str | None:
    """Why a first-pass cache's arrays cannot be the first pass of ``n_songs`` songs."""
    counts = stored["counts"]
    if counts.shape != (n_songs,) or not np.issubdtype(counts.dtype, np.integer) \
            or (counts < 0).any():
        return f"holds {counts.shape} song counts, not {n_songs}"
    notes = int(counts.sum())
    expected = {"probs": (notes, n_music), "row_sums": (n_songs, N_PITCH, n_music)}
    for name in (*FIRST_PASS_FIELDS, "target"):
        shape = expected.get(name, (notes,))
        if stored[name].shape != shape or stored[name].dtype.kind not in "biuf":
            return (f"has {name} {stored[name].dtype} {list(stored[name].shape)}, not "
                    f"{list(shape)}")
    return None


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
    corpora = song_pass_corpora(cfg)
    for data_dir in corpora:  # built with the separator's classes, before any work
        check_model_data(separator, data_dir)
    cache = Path(cfg.model_dir) / CACHE_DIR
    augment = SongAugment(cfg.song_pass_augment, cfg.seed,
                          n_pitched=separator.instruments.n_pitched) \
        if cfg.song_pass_augment else None
    reading = SongReading(cfg.song_pass_songs)
    spec = SongPassSpec(velocity=cfg.song_pass_velocity, presence=cfg.song_pass_presence,
                        pitched=separator.instruments.n_pitched, dropout=cfg.song_pass_dropout,
                        residual=cfg.song_pass_residual, timing=cfg.song_pass_timing,
                        **cfg.song_pass_network)
    readings = {"train": replace(reading, augment=augment), "val": reading}
    to_pass = [(d, split) for d in corpora for split in readings]  # the songs to pass ...
    passed = {(d, split): first_pass_split(separator, d, split, cache, progress, limit,
                                           readings[split])
              for d, split in to_pass}  # ... then their first passes
    train = {d: (Sequences.of(passed[d, "train"], spec.velocity, spec.timing), w)
             for d, w in corpora.items()}
    val = {d: Sequences.of(passed[d, "val"], spec.velocity, spec.timing) for d in corpora}
    for d in corpora:
        if not len(train[d][0]) or not len(val[d]):
            raise InputError(f"{cfg._source}: 'song_pass_data' dataset {d} gives no pitched "
                             f"notes to train or validate the song pass on")
    net, record = train_network(train, val, spec, cfg.song_pass_steps, cfg.seed, progress,
                                FitOptions(cfg.song_pass_ema, cfg.song_pass_gates,
                                           cfg.song_pass_crop))
    record.update({"separator": separator.source,
                   "separator_digest": network_digest(separator.model),
                   "data": list(corpora), "weights": list(corpora.values()),
                   "songs": cfg.song_pass_songs, "augment": cfg.song_pass_augment,
                   "validation": ", ".join(f"{d} val" for d in corpora), "seed": cfg.seed,
                   "train_songs": sum(len(s) for s, _ in train.values()),
                   "val_songs": sum(len(s) for s in val.values()),
                   "seconds": round(time.perf_counter() - started, 1)})
    path = Path(cfg.model_dir) / SONG_PASS_FILE
    atomic_write(path, lambda f: torch.save(song_pass_state(net, record), f))
    return path, record


def song_pass_corpora(cfg: Config) -> dict[str, float]:
    """``{dataset folder: weight}`` of the config's ``song_pass_data`` (a list: equal
    weights; empty: ``data_dir`` alone)."""
    data = cfg.song_pass_data or [cfg.data_dir]
    return dict(data) if isinstance(data, dict) else dict.fromkeys(data, 1.0)


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
    gate = f", presence gate {record['gate']:g}" if len(record["gates"]) > 1 else ""
    print(f"wrote {path}: validation pitched note accuracy "
          f"{record['val_pitched_note_accuracy']:.4f} at step {record['best_step']}{gate} "
          f"(first pass alone {record['first_pass_val_pitched_note_accuracy']:.4f}; mean "
          f"over {len(record['val_corpora'])} corpora"
          f"{presence_words(record['val_corpora'])}), {record['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
