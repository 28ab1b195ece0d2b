"""How much deciding each source track as a whole would give a song pass: a ceiling.

    python bench/track_oracle.py --config configs/real_song_pass.json \
        [--song-pass pretrained/song_pass.ckpt] [--limit 240] [--classifier]

Runs the config's separator over the validation songs of each corpus of its
``song_pass_data`` (the first passes read from or written to ``model_dir/song_pass/``, as the
song pass training caches them) and decides every song with the song pass. Then each song's
scored notes are grouped by the file's track they came from -- what the mixture does not
say: an oracle -- and each group takes one instrument, by the majority of its notes'
decisions or by the sum of their log probabilities (the first pass's too). For
comparison, the notes are also grouped by what the mixture does say, their velocity
(equal velocities, summed). With ``--classifier``, a small network is trained on the
tracks of the corpora's train songs (the first ``--limit`` of each; each track's numbers:
its size, register, durations, chords, beats, velocities, rank among the song's tracks and
mean first-pass log probabilities) and decides each validation track as a whole. Prints per
corpus the pitched note accuracy of each, and the song pass's confusion (each true
instrument's notes, by the instrument decided).

What it measures: a note model that grouped the notes into their tracks perfectly would
reach the grouped figures with the song pass's evidence, or the classifier's figure with
the tracks' own numbers; what is left below 1 is choosing the wrong instrument for a whole
track. A diagnostic for choosing what to build next; it chooses nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

import numpy as np  # noqa: E402
import torch  # noqa: E402

from data.contract import N_PITCH  # noqa: E402
from data.errors import InputError  # noqa: E402
from utils.core.cli import command  # noqa: E402
from utils.core.config import load_config  # noqa: E402
from utils.evaluation.metrics import markdown_table  # noqa: E402
from utils.evaluation.songs import SongTruth, SplitSongs  # noqa: E402
from utils.separation.notes import instruments_of  # noqa: E402
from utils.separation.separator import Separator  # noqa: E402
from utils.separation.song_pass import (  # noqa: E402
    SongNoteFeatures,
    SongPass,
    load_song_pass,
    network_digest,
)
from utils.song_pass_training import (  # noqa: E402
    CACHE_DIR,
    TrainingSong,
    first_pass_split,
    song_pass_corpora,
)
from utils.training.song_augment import SongReading  # noqa: E402
from utils.training.song_pass_fit import IGNORE  # noqa: E402

SYSTEMS = ("first pass", "song pass", "tracks by majority", "tracks by summed log probability",
           "first pass: tracks by summed log probability",
           "equal velocities by summed log probability")
CLASSIFIER = "tracks by a track classifier"
CLASSIFIER_STEPS = 1000


def track_decisions(probs: np.ndarray, tracks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One instrument per track: each note takes its track's majority decision (ties: the
    lower index), and its track's highest summed log probability.

    Args:
        probs: float ``[K, P]`` the notes' instrument probabilities.
        tracks: int ``[K]`` the track of each note.

    Returns:
        int64 ``[K]`` twice: by majority, by summed log probability.
    """
    decided = probs.argmax(axis=1)
    log_probs = np.log(np.clip(probs, 1e-6, None))
    _, group = np.unique(tracks, return_inverse=True)
    n_groups, n_classes = int(group.max(initial=-1)) + 1, probs.shape[1]
    votes = np.zeros((n_groups, n_classes), dtype=np.int64)
    np.add.at(votes, (group, decided), 1)
    sums = np.zeros((n_groups, n_classes))
    np.add.at(sums, group, log_probs)
    return votes.argmax(axis=1)[group], sums.argmax(axis=1)[group]


def track_numbers(song: TrainingSong, truth: SongTruth,
                  features: tuple[SongNoteFeatures, np.ndarray] | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each track's numbers, read from the song's scored pitched notes and its first pass
    (``features``: the song's :meth:`TrainingSong.features`, when already built; the
    numbers read only their order, rows and first-pass log probabilities).

    Returns:
        float32 ``[G, F]`` the numbers of each track, int64 ``[G, P]`` its scored notes per
        true instrument, and int64 ``[K]`` the track (0..G-1) of each scored note in the
        order of the song's note features.
    """
    feats, target = song.features(False) if features is None else features
    scored = target != IGNORE
    idx, true = feats.order[scored], target[scored]
    row, log_p = feats.rows[scored].astype(np.float64) / N_PITCH, feats.log_probs[scored]
    fp = song.first_pass
    first = fp.first[idx]
    duration = np.log1p(np.maximum(fp.stop[idx] - first, 1))
    velocity = fp.velocity[idx] / 127
    ids, group = np.unique(truth.notes.track[idx], return_inverse=True)
    means = np.array([row[group == g].mean() for g in range(ids.size)])
    rank = means.argsort().argsort() / max(ids.size - 1, 1)
    numbers, counts = [], np.zeros((ids.size, log_p.shape[1]), dtype=np.int64)
    np.add.at(counts, (group, true), 1)
    for g in range(ids.size):
        mine = group == g
        r, starts = row[mine], first[mine]
        _, per_start = np.unique(starts, return_counts=True)
        numbers.append([np.log(mine.sum()), mine.mean(), r.mean(), r.std(), r.min(), r.max(),
                        r.mean() - row.mean(), duration[mine].mean(), duration[mine].std(),
                        per_start.mean(), (per_start > 1).mean(), (starts % 4 == 0).mean(),
                        (starts % 16 == 0).mean(), velocity[mine].mean(),
                        velocity[mine].std(), rank[g], ids.size / 10,
                        per_start.size / (starts.max() - starts.min() + 1),
                        *log_p[mine].mean(axis=0)])
    return np.asarray(numbers, dtype=np.float32), counts, group


def corpus_tracks(songs: list[TrainingSong], truths: list[SongTruth]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Every track of the songs with scored notes: numbers ``[G, F]`` and counts ``[G, P]``
    (:func:`track_numbers`)."""
    rows = [track_numbers(s, t)[:2] for s, t in zip(songs, truths)]
    rows = [r for r in rows if r[0].size]
    return np.concatenate([r[0] for r in rows]), np.concatenate([r[1] for r in rows])


def fit_track_classifier(numbers: np.ndarray, counts: np.ndarray, seed: int
                         ) -> torch.nn.Module:
    """A two-layer network deciding a track's instrument from its numbers, trained on the
    tracks' majority instrument (each track weighted by the log of its notes), full batch,
    seeded; its inputs standardised by the training tracks' means and deviations."""
    torch.manual_seed(seed)
    x = torch.as_tensor(numbers)
    mean, std = x.mean(dim=0), x.std(dim=0) + 1e-6
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 128), torch.nn.GELU(),
                              torch.nn.Linear(128, 128), torch.nn.GELU(),
                              torch.nn.Linear(128, counts.shape[1]))
    weight = torch.log1p(torch.as_tensor(counts.sum(axis=1), dtype=torch.float32))
    target = torch.as_tensor(counts.argmax(axis=1))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-2)
    for _ in range(CLASSIFIER_STEPS):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net((x - mean) / std), target,
                                                 reduction="none")
        (loss * weight).mean().backward()
        opt.step()
    return torch.nn.Sequential(Standardise(mean, std), net).eval()


class Standardise(torch.nn.Module):
    """``(x - mean) / std``, fixed."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def corpus_figures(pass_: SongPass, songs: list[TrainingSong], truths: list[SongTruth],
                   n_pitched: int, classifier: torch.nn.Module | None = None
                   ) -> tuple[dict[str, float], np.ndarray]:
    """Pitched note accuracy of each of :data:`SYSTEMS` (and of ``classifier``, when given)
    over the songs, and the song pass's confusion counts ``[P, P]`` (true instrument,
    decided instrument)."""
    right = np.zeros(len(SYSTEMS) + 1, dtype=np.int64)
    confusion = np.zeros((n_pitched, n_pitched), dtype=np.int64)
    total = 0
    for song, truth in zip(songs, truths):
        feats, target = song.features(pass_.spec.velocity, pass_.spec.timing)
        scored = target != IGNORE
        probs = pass_.song_probs(feats)[0][scored]
        tracks = truth.notes.track[feats.order][scored]
        velocity = song.first_pass.velocity[feats.order][scored]
        first = np.exp(feats.log_probs[scored])
        decisions = (first.argmax(axis=1), probs.argmax(axis=1), *track_decisions(probs, tracks),
                     track_decisions(first, tracks)[1], track_decisions(probs, velocity)[1])
        true = target[scored]
        right[:-1] += [int((d == true).sum()) for d in decisions]
        np.add.at(confusion, (true, decisions[1]), 1)
        total += int(scored.sum())
        if classifier is not None and scored.any():
            numbers, counts, _ = track_numbers(song, truth, (feats, target))
            with torch.no_grad():
                chosen = classifier(torch.as_tensor(numbers)).argmax(dim=1).numpy()
            right[-1] += int(counts[np.arange(chosen.size), chosen].sum())
    names = (*SYSTEMS, CLASSIFIER) if classifier is not None else SYSTEMS
    figures = dict(zip(names, (right / max(total, 1)).tolist()))
    return figures | {"notes": total}, confusion


@command
def main(argv: list[str] | None = None) -> int:
    """Parse the command line, score the song pass and its track groupings; returns the
    exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/real_song_pass.json",
                        help="the separator's config, with its song_pass_data")
    parser.add_argument("--song-pass", default="pretrained/song_pass.ckpt",
                        help="a song pass checkpoint trained on the config's separator")
    parser.add_argument("--limit", type=int, default=None,
                        help="first N songs of each validation split (the training's --limit)")
    parser.add_argument("--classifier", action="store_true",
                        help="also train a track classifier on the train songs' tracks")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    separator = Separator.from_config(cfg, "cpu")
    pass_ = load_song_pass(args.song_pass)
    if not pass_.trained_on(network_digest(separator.model)):
        raise InputError(f"{pass_.source}: trained on another separator than the one "
                         f"{args.config} names")
    names = instruments_of(separator).pitched
    reading = SongReading(cfg.song_pass_songs)
    cache = Path(cfg.model_dir) / CACHE_DIR
    corpora = list(song_pass_corpora(cfg))

    def split_songs(data_dir: str, split: str) -> tuple[list[TrainingSong], list[SongTruth]]:
        songs = first_pass_split(separator, data_dir, split, cache, not args.no_progress,
                                 args.limit, reading)
        return songs, list(reading.truths(SplitSongs.checked(data_dir, split, args.limit)))

    classifier = None
    if args.classifier:
        numbers, counts = zip(*(corpus_tracks(*split_songs(d, "train")) for d in corpora))
        classifier = fit_track_classifier(np.concatenate(numbers), np.concatenate(counts),
                                          cfg.seed)
    table: dict[str, dict[str, float]] = {}
    confusions: dict[str, dict[str, float]] = {}
    for data_dir in corpora:
        table[data_dir], confusion = corpus_figures(pass_, *split_songs(data_dir, "val"),
                                                    len(names), classifier)
        shares = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
        for k, name in enumerate(names):
            confusions[f"{data_dir}: {name}"] = dict(zip(names, shares[k].tolist()))
    print(f"song pass: {args.song_pass}; validation songs, pitched note accuracy "
          "(the track groupings know each note's track: an oracle)")
    print(markdown_table(table))
    print("\nthe song pass's confusion: each true instrument's notes (rows), by the "
          "instrument decided (columns)")
    print(markdown_table(confusions))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
