"""Several song passes of one separator, each alone and averaged, on the validation songs.

    python bench/song_pass_ensemble.py --config configs/real_song_pass.json \
        A/song_pass.ckpt B/song_pass.ckpt C/song_pass.ckpt [--limit 240] \
        [--best 0.519 0.566 0.654 0.684]

Runs the config's separator over the validation songs of each corpus of its
``song_pass_data`` (the first passes read from or written to ``model_dir/song_pass/``, as the
song pass training caches them: with the training's ``--limit``, its cache is read), then
decides every song with each song pass (its own presence gate) and with their note
probabilities averaged, each note taking the instrument of the highest mean. Prints each
one's pitched note accuracy per corpus and the mean over the corpora; with ``--best`` (each
corpus's best baseline, in the order of ``song_pass_data``), the mean margin over them and
the worst. A song pass trained on another separator is refused. Choose on validation
songs only.
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
from utils.separation.separator import Separator  # noqa: E402
from utils.separation.song_pass import SongPass, load_song_pass, network_digest  # noqa: E402
from utils.song_pass_training import (  # noqa: E402
    CACHE_DIR,
    TrainingSong,
    first_pass_split,
    song_pass_corpora,
)
from utils.training.song_augment import SongReading  # noqa: E402
from utils.training.song_pass_fit import IGNORE, Sequences  # noqa: E402


def corpus_accuracy(passes: list[SongPass], songs: list[TrainingSong]) -> list[float]:
    """Pitched note accuracy over ``songs`` of each song pass of ``passes`` alone, then of
    their averaged probabilities (the last entry)."""
    inputs = {(p.spec.velocity, p.spec.timing) for p in passes}  # each set of inputs once
    built = {key: Sequences.of(songs, *key) for key in inputs}
    seqs = [built[p.spec.velocity, p.spec.timing] for p in passes]
    right = np.zeros(len(passes) + 1, dtype=np.int64)
    total = 0
    for i in range(len(seqs[0])):  # every song pass reads the same notes in the same order
        target = seqs[0].targets[i]
        scored = target != IGNORE
        probs = [p.song_probs(s.feats[i])[0] for p, s in zip(passes, seqs)]
        for k, decided in enumerate([*probs, np.mean(probs, axis=0)]):
            right[k] += int((decided.argmax(axis=1)[scored] == target[scored]).sum())
        total += int(scored.sum())
    return (right / max(total, 1)).tolist()


@command
def main(argv: list[str] | None = None) -> int:
    """Parse the command line, score each song pass and their average; returns the exit
    code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("passes", nargs="+", metavar="SONG_PASS_CKPT",
                        help="song pass checkpoints trained on the config's separator")
    parser.add_argument("--config", default="configs/real_song_pass.json",
                        help="the separator's config, with its song_pass_data")
    parser.add_argument("--limit", type=int, default=None,
                        help="first N songs of each validation split (the training's --limit)")
    parser.add_argument("--best", type=float, nargs="+", default=None,
                        help="each corpus's best baseline, in the order of song_pass_data")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    corpora = list(song_pass_corpora(cfg))
    if args.best is not None and len(args.best) != len(corpora):
        raise InputError(f"--best gives {len(args.best)} figures for the "
                         f"{len(corpora)} corpora of {args.config}'s song_pass_data")
    separator = Separator.from_config(cfg, "cpu")
    digest = network_digest(separator.model)
    passes = [load_song_pass(path) for path in args.passes]
    for p in passes:
        if not p.trained_on(digest):
            raise InputError(f"{p.source}: trained on another separator than the one "
                             f"{args.config} names")
    reading = SongReading(cfg.song_pass_songs)
    cache = Path(cfg.model_dir) / CACHE_DIR
    scores = {d: corpus_accuracy(passes, first_pass_split(
        separator, d, "val", cache, not args.no_progress, args.limit, reading))
        for d in corpora}
    names = [f"song pass {k + 1}" for k in range(len(passes))] + ["averaged"]
    table: dict[str, dict[str, float]] = {}
    for k, name in enumerate(names):
        acc = [scores[d][k] for d in corpora]
        table[name] = {**dict(zip(corpora, acc)), "mean": float(np.mean(acc))}
        if args.best:
            margins = [100 * (a - b) for a, b in zip(acc, args.best)]
            table[name].update({"mean margin (points)": float(np.mean(margins)),
                                "worst margin (points)": min(margins)})
    for k, path in enumerate(args.passes):
        print(f"song pass {k + 1}: {path}")
    print(markdown_table(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
