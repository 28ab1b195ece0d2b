"""Speed of the synthetic corpus: generating songs with MMA, then building their phrases.

Command::

    python bench/synthesize.py [--songs N] [--workers W] [--seed S] [--repeat R]
        [--min-bar-density F]

Generates N songs (default 100) into a temporary folder with :func:`data.synthesize.
synthesize`, builds them split by folder with :func:`data.preprocess.build`, and prints
both rates side by side: songs/s of generation, files/s and phrases/s of the build. Each
time is the best of ``--repeat`` fresh runs (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.preprocess import build  # noqa: E402
from data.synthesize import synthesize  # noqa: E402
from utils.core.cli import command  # noqa: E402


@command
def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=100)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--min-bar-density", type=float, default=0.005,
                        help="bar-density threshold of the build (default 0.005, as "
                             "configs/synth.json)")
    args = parser.parse_args(argv)
    gen_s = build_s = float("inf")
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            midi, dataset = Path(tmp) / "midi", Path(tmp) / "dataset"
            start = time.perf_counter()
            made = synthesize(midi, args.songs, seed=args.seed, workers=args.workers,
                              progress=False)
            gen_s = min(gen_s, time.perf_counter() - start)
            start = time.perf_counter()
            built = build(midi, dataset, workers=args.workers, seed=args.seed,
                          fractions=(0.8, 0.1, 0.1), progress=False,
                          min_bar_density=args.min_bar_density, split_by="folder")
            build_s = min(build_s, time.perf_counter() - start)
    phrases = sum(built["phrases"].values())
    print(f"{args.songs} songs, seed {args.seed}, {args.workers} workers, MMA "
          f"{made['settings']['mma_version']}, min_bar_density {args.min_bar_density}, "
          f"best of {args.repeat}")
    print(f"{'step':<12} {'time':>8} {'songs/s':>8} {'files/s':>8} {'phrases/s':>10}  result")
    print(f"{'synthesize':<12} {gen_s:>7.2f}s {args.songs / gen_s:>8.1f} {'':>8} {'':>10}  "
          f"{made['songs_written']} written, {made['songs_failed']} failed "
          f"{made['failures']}")
    print(f"{'build':<12} {build_s:>7.2f}s {'':>8} {built['files_seen'] / build_s:>8.1f} "
          f"{phrases / build_s:>10,.0f}  {built['files_kept']} songs kept, {phrases:,} phrases, "
          f"skipped {built['skipped']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
