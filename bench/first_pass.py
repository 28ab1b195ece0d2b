"""The separator's first pass over many songs: one song at a time against songs batched.

    python bench/first_pass.py [--data runs/slakh/dataset_melody:train] [--limit 40]
        [--config configs/real.json] [--repeat 2] [--device cpu]

Reads the first ``--limit`` songs of a built split as the learned song pass's training
does (the scored notes' mixture and note starts), then runs the config's separator's
first pass over all of them two ways, side by side in one run, ``--repeat`` times each,
alternating (the best time of each is printed):

* one song at a time: :func:`utils.separation.first_pass.note_probabilities`, each song's
  windows in batches of ``sample_batch_size``, silent windows separated too;
* batched: :func:`utils.separation.many_songs.song_note_probabilities`, the windows of
  consecutive songs filling each batch, silent windows skipped.

Prints songs/s, windows/s, the speed-up, the largest difference of a note's first-pass
probabilities, and whether every note gets the same instrument (first pass alone, and
with the separator's second pass). Without a trained model in the config's ``model_dir``
the shipped one in ``pretrained/`` is used.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

from data.roll import window_starts  # noqa: E402
from utils.core.cli import command  # noqa: E402
from utils.core.config import load_config  # noqa: E402
from utils.evaluation.songs import SplitSongs  # noqa: E402
from utils.separation.first_pass import (  # noqa: E402
    MixtureSong,
    NoteProbAccumulator,
    first_pass_probs,
    note_probabilities,
)
from utils.separation.many_songs import song_note_probabilities  # noqa: E402
from utils.separation.notes import assign_notes  # noqa: E402
from utils.separation.separator import Separator  # noqa: E402


def one_at_a_time(separator: Separator, songs: list[MixtureSong]) -> list[NoteProbAccumulator]:
    return [note_probabilities(separator.probs, s, separator.batch_size) for s in songs]


def batched(separator: Separator, songs: list[MixtureSong]) -> list[NoteProbAccumulator]:
    return [acc for _, acc in song_note_probabilities(separator.probs, songs,
                                                      separator.batch_size)]


def compare(separator: Separator, songs: list[MixtureSong], a: list[NoteProbAccumulator],
            b: list[NoteProbAccumulator]) -> tuple[float, int, int]:
    """Largest probability difference, notes decided otherwise by the first pass alone and
    with the separator's second pass."""
    diff, first, second = 0.0, 0, 0
    for song, x, y in zip(songs, a, b):
        px, py = first_pass_probs(x, song.notes), first_pass_probs(y, song.notes)
        finite = np.isfinite(px)
        diff = max(diff, float(np.abs(px[finite] - py[finite]).max(initial=0.0)))
        first += int((np.nanargmax(np.nan_to_num(px, nan=-1), 1)
                      != np.nanargmax(np.nan_to_num(py, nan=-1), 1)).sum())
        second += int((assign_notes(x, song, separator.second_pass).instrument
                       != assign_notes(y, song, separator.second_pass).instrument).sum())
    return diff, first, second


@command
def main(argv: list[str] | None = None) -> int:
    """Parse the command line, time both paths, print the table; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/real.json", help="the model's config")
    parser.add_argument("--data", default="runs/slakh/dataset_melody:train",
                        help="DATA_DIR:SPLIT of the songs")
    parser.add_argument("--limit", type=int, default=40, help="first N songs of the split")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each path")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    args = parser.parse_args(argv)
    data_dir, _, split = args.data.rpartition(":")
    separator = Separator.from_config(load_config(args.config), args.device)
    songs = [MixtureSong(t.notes, t.mixture, in_mixture=t.true > 0)
             for t in SplitSongs.checked(data_dir, split, args.limit).truths()]
    windows = sum(len(window_starts(len(s.mixture))) for s in songs)
    best: dict[str, float] = {}
    results: dict[str, list[NoteProbAccumulator]] = {}
    for _ in range(args.repeat):
        for name, run in (("one song at a time", one_at_a_time), ("batched", batched)):
            started = time.perf_counter()
            results[name] = run(separator, songs)
            best[name] = min(best.get(name, np.inf), time.perf_counter() - started)
    diff, first, second = compare(separator, songs, *results.values())
    print(f"{len(songs)} songs ({windows} windows, {sum(len(s.notes) for s in songs)} notes) "
          f"of {args.data}; {separator.describe()}; batch {separator.batch_size}, "
          f"{torch.get_num_threads()} threads, best of {args.repeat}\n")
    print("| path | seconds | songs/s | windows/s | speed-up |")
    print("| --- | ---: | ---: | ---: | ---: |")
    base = best["one song at a time"]
    for name, seconds in best.items():
        print(f"| {name} | {seconds:.1f} | {len(songs) / seconds:.2f} | "
              f"{windows / seconds:.0f} | {base / seconds:.2f}x |")
    print(f"\nlargest difference of a note's probability: {diff:.2e}; notes decided otherwise: "
          f"{first} by the first pass alone, {second} with the second pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
