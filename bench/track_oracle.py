"""How much deciding each source track as a whole would give a song pass: a ceiling.

    python bench/track_oracle.py --config configs/real_song_pass.json \
        [--song-pass pretrained/song_pass.ckpt] [--limit 240]

Runs the config's separator over the validation songs of each corpus of its
``song_pass_data`` (the first passes read from or written to ``model_dir/song_pass/``, as the
song pass training caches them) and decides every song with the song pass. Then each song's
scored notes are grouped by the file's track they came from -- what the mixture does not
say: an oracle -- and each group takes one instrument, by the majority of its notes'
decisions or by the sum of their log probabilities. Prints per corpus the pitched note
accuracy of the first pass, the song pass and the two groupings, and the song pass's
confusion (each true instrument's notes, by the instrument decided).

What it measures: a note model that grouped the notes into their tracks perfectly would
reach the grouped figures with the song pass's evidence; what is left below 1 is choosing
the wrong instrument for a whole track. A diagnostic for choosing what to build next; it
chooses nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

import numpy as np  # noqa: E402

from data.errors import InputError  # noqa: E402
from utils.core.cli import command  # noqa: E402
from utils.core.config import load_config  # noqa: E402
from utils.evaluation.metrics import markdown_table  # noqa: E402
from utils.evaluation.songs import SplitSongs  # noqa: E402
from utils.separation.notes import instruments_of  # noqa: E402
from utils.separation.separator import Separator  # noqa: E402
from utils.separation.song_pass import load_song_pass, network_digest  # noqa: E402
from utils.song_pass_training import (  # noqa: E402
    CACHE_DIR,
    first_pass_split,
    song_pass_corpora,
)
from utils.training.song_augment import SongReading  # noqa: E402
from utils.training.song_pass_fit import IGNORE  # noqa: E402

SYSTEMS = ("first pass", "song pass", "tracks by majority", "tracks by summed log probability")


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


def corpus_figures(pass_, songs, truths, n_pitched: int
                   ) -> tuple[dict[str, float], np.ndarray]:
    """Pitched note accuracy of each of :data:`SYSTEMS` over the songs, and the song pass's
    confusion counts ``[P, P]`` (true instrument, decided instrument)."""
    right = np.zeros(len(SYSTEMS), dtype=np.int64)
    confusion = np.zeros((n_pitched, n_pitched), dtype=np.int64)
    total = 0
    for song, truth in zip(songs, truths):
        feats, target = song.features(pass_.spec.velocity, pass_.spec.timing)
        scored = target != IGNORE
        probs = pass_.song_probs(feats)[0][scored]
        tracks = truth.notes.track[feats.order][scored]
        decisions = (feats.log_probs[scored].argmax(axis=1), probs.argmax(axis=1),
                     *track_decisions(probs, tracks))
        true = target[scored]
        right += [int((d == true).sum()) for d in decisions]
        np.add.at(confusion, (true, decisions[1]), 1)
        total += int(scored.sum())
    return dict(zip(SYSTEMS, (right / max(total, 1)).tolist())) | {"notes": total}, confusion


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
    table: dict[str, dict[str, float]] = {}
    confusions: dict[str, dict[str, float]] = {}
    for data_dir in song_pass_corpora(cfg):
        songs = first_pass_split(separator, data_dir, "val", cache, not args.no_progress,
                                 args.limit, reading)
        truths = reading.truths(SplitSongs.checked(data_dir, "val", args.limit))
        table[data_dir], confusion = corpus_figures(pass_, songs, truths, len(names))
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
