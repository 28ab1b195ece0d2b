"""Choose the song-level second pass on validation songs: one first pass, many settings.

    python bench/song_context.py --config configs/real.json \
        [--data runs/slakh/dataset_melody:val] [--limit 60] \
        [--weights 0 0.5 1 2 4] [--widths 2 4 8]

Separates each song of the split once with the config's model (the network's stitched
probabilities, averaged over each note's cells), then decides every note again under each
``(weight, width)`` of the second pass (:mod:`utils.separation.register_prior`) and scores the notes
like ``evaluate.py --songs``. Prints pitched note accuracy, note accuracy and macro F1 for
every setting; the first row (weight 0) is the first pass alone. Choose on a validation
split only.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

from tqdm import tqdm  # noqa: E402

from utils.core.cli import command  # noqa: E402
from utils.core.config import load_config  # noqa: E402
from utils.evaluation.metrics import markdown_table  # noqa: E402
from utils.evaluation.songs import NoteConfusion, SplitSongs  # noqa: E402
from utils.separation.first_pass import MixtureSong, note_probabilities  # noqa: E402
from utils.separation.notes import assign_notes  # noqa: E402
from utils.separation.register_prior import RegisterPrior  # noqa: E402
from utils.separation.separator import Separator  # noqa: E402


@command
def main(argv: list[str] | None = None) -> int:
    """Parse the command line, score every setting, print the table; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/real.json", help="the model's config")
    parser.add_argument("--data", default="runs/slakh/dataset_melody:val",
                        help="DATA_DIR:SPLIT of the songs (a validation split)")
    parser.add_argument("--limit", type=int, default=None, help="first N songs of the split")
    parser.add_argument("--weights", type=float, nargs="+", default=[0, 0.5, 1, 2, 4])
    parser.add_argument("--widths", type=float, nargs="+", default=[2, 4, 8])
    args = parser.parse_args(argv)
    data_dir, _, split = args.data.rpartition(":")
    cfg = load_config(args.config)
    separator = Separator.from_config(cfg, "cpu")
    songs = SplitSongs.checked(data_dir, split, args.limit)
    settings = [(0.0, args.widths[0])] + [(w, s) for w, s in itertools.product(
        args.weights, args.widths) if w > 0]
    confusion = {setting: NoteConfusion() for setting in settings}
    start = time.perf_counter()
    for song in tqdm(songs.truths(), total=len(songs.names), unit="song", desc="songs"):
        scored = song.true > 0
        mixture_song = MixtureSong(song.notes, song.mixture, scored)
        acc = note_probabilities(separator.probs, mixture_song, separator.batch_size)
        for setting in settings:
            result = assign_notes(acc, mixture_song, RegisterPrior(*setting))
            confusion[setting].update(song.true[scored], result.instrument[scored])
    rows = {("first pass" if w == 0 else f"weight {w:g}, width {s:g}"): c.compute()
            for (w, s), c in confusion.items()}
    print(f"\n{len(songs.names)} {split} songs of {data_dir}, {separator.describe()}, "
          f"{time.perf_counter() - start:.0f} s\n")
    print(markdown_table(rows, ("pitched_note_accuracy", "note_accuracy", "macro_f1")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
