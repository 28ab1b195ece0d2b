"""Throughput of the phrase build against pretty_midi's parse time, in one run.

Command::

    python bench/preprocess.py DIR [--workers N] [--repeat R]

Prints, for the MIDI files under DIR: the full build (parse, convert, window, filter,
write) with ``--workers`` processes and with one process, and pretty_midi parsing the same
files on one core (parse only, no conversion). Each figure is the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pretty_midi  # noqa: E402

from data.contract import MIN_BAR_DENSITY  # noqa: E402
from data.errors import InputError  # noqa: E402
from data.midi_files import find_midi_files  # noqa: E402
from data.preprocess import build  # noqa: E402
from utils.core.cli import command  # noqa: E402


def time_build(midi_dir: Path, workers: int, repeat: int,
               min_bar_density: float = MIN_BAR_DENSITY) -> tuple[float, dict]:
    """Best wall time of a fresh build into a temporary folder, and its manifest."""
    best, manifest = float("inf"), {}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            manifest = build(midi_dir, out, workers=workers, progress=False,
                             min_bar_density=min_bar_density)
            best = min(best, time.perf_counter() - start)
    return best, manifest


def time_pretty_midi(midi_dir: Path, files: list[str], repeat: int) -> tuple[float, int]:
    """Best wall time for pretty_midi to parse every file (failures counted, not raised)."""
    best, failed = float("inf"), 0
    for _ in range(repeat):
        failed = 0
        start = time.perf_counter()
        for rel in files:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pretty_midi.PrettyMIDI(str(midi_dir / rel))
            except Exception:  # noqa: BLE001 -- corrupt files are part of a real corpus
                failed += 1
        best = min(best, time.perf_counter() - start)
    return best, failed


@command
def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one line per measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("midi_dir", type=Path)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--min-bar-density", type=float, default=MIN_BAR_DENSITY,
                        help="bar-density threshold of the build (default: the contract's 0.01)")
    args = parser.parse_args(argv)
    if not args.midi_dir.is_dir():
        raise InputError(f"{args.midi_dir} is not a folder")
    files = find_midi_files(args.midi_dir)
    if not files:
        raise InputError(f"no MIDI files under {args.midi_dir}")
    n = len(files)
    print(f"{n} MIDI files under {args.midi_dir}, best of {args.repeat}")
    pm_time, failed = time_pretty_midi(args.midi_dir, files, args.repeat)
    for workers in dict.fromkeys([args.workers, 1]):
        seconds, manifest = time_build(args.midi_dir, workers, args.repeat,
                                       args.min_bar_density)
        phrases = sum(manifest["phrases"].values())
        print(f"build, {workers} worker(s): {seconds:.3f} s = {n / seconds:.1f} files/s, "
              f"{phrases / seconds:.1f} phrases/s ({phrases} phrases, "
              f"{manifest['files_kept']} songs kept); {pm_time / seconds:.1f}x faster than "
              f"pretty_midi parsing alone")
    print(f"pretty_midi parse only, 1 core: {pm_time:.3f} s = {n / pm_time:.1f} files/s"
          f"{f' ({failed} failed to parse)' if failed else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
