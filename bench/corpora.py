"""The corpora in figures: songs, phrases and notes per instrument of built datasets.

    python bench/corpora.py runs/slakh/dataset_melody runs/debian/dataset_melody \
        runs/synth/dataset_melody runs/demo/dataset_melody [--markdown]

For each built dataset: kept songs and phrases per split (from its manifest), and the notes
of each instrument over its kept songs -- every note of the tracks that track unification
keeps, counted as its class, read again from the MIDI files. The melody track counts as
melody, and also as the class its program names when the build put the melody in the
mixture.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

import numpy as np  # noqa: E402

from data.contract import INSTRUMENTS, N_INSTRUMENTS  # noqa: E402
from data.manifest import Manifest  # noqa: E402
from data.melody import load_melody_json, melody_program_for  # noqa: E402
from data.midi import read_notes  # noqa: E402
from data.song_roll import choose_tracks  # noqa: E402
from data.store import SPLITS  # noqa: E402
from utils.core.cli import command  # noqa: E402
from utils.evaluation.metrics import format_table, markdown_table  # noqa: E402


def corpus_figures(data_dir: str | Path) -> dict[str, float]:
    """Songs and phrases per split and notes per instrument of one built dataset."""
    manifest = Manifest.read(data_dir)
    midi_dir, joined = manifest.midi_dir, manifest.melody_in_mixture
    table = load_melody_json(manifest.melody_json) if manifest.melody_json else {}
    notes = np.zeros(N_INSTRUMENTS, dtype=np.int64)
    for split in SPLITS:
        for name in manifest.songs_of(split):
            song = read_notes(midi_dir / name)
            tracks = song.track_notes()
            program = melody_program_for(table, name) if table else None
            chosen = choose_tracks(tracks, song.tpq, program, joined)
            for cls, indices in chosen.items():  # a joined melody counts in both columns
                notes[cls] += sum(len(tracks[index]) for index in indices)
    row: dict[str, float] = {}
    for split in SPLITS:
        row[f"{split} songs"] = manifest.count("songs", split)
        row[f"{split} phrases"] = manifest.count("phrases", split)
    for cls, name in enumerate(INSTRUMENTS):
        row[f"{name} notes"] = int(notes[cls])
    return row


@command
def main(argv: list[str] | None = None) -> int:
    """Print the table; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dirs", nargs="+", help="built dataset folders")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    rows = {str(d): corpus_figures(d) for d in args.data_dirs}
    print(markdown_table(rows) if args.markdown else format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
