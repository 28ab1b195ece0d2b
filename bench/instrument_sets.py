"""Models of different instrument sets side by side, on the same songs and notes.

    python bench/instrument_sets.py --config configs/real_dense.json \
        --config configs/real_wide.json [--split val] [--limit N] [--out FILE.md]

Scores each config's model and its baselines on whole songs of every corpus the configs'
``panel`` keys share, keeping the songs in the split of every build of it, on the notes of
the paper's five classes (a wider set folded back;
:mod:`utils.evaluation.set_comparison`). Prints one table, each model's margin over the
best baseline of any config per corpus and its mean margin; ``--out`` also writes it as
Markdown with the JSON beside it.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

from data.fileio import atomic_write_json, atomic_write_text  # noqa: E402
from utils.core.cli import command  # noqa: E402
from utils.core.config import load_config  # noqa: E402
from utils.evaluation.set_comparison import compare_sets  # noqa: E402


@command
def main(argv: list[str] | None = None) -> int:
    """Parse the command line, score the models, print the table; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", required=True,
                        help="a model's config (give two or more)")
    parser.add_argument("--split", default="val", choices=("train", "val", "test"))
    parser.add_argument("--limit", type=int, default=None, help="first N common songs")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: config)")
    parser.add_argument("--out", default=None, help="write the table here (.md, and .json)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if len(args.config) < 2:
        parser.error("give --config at least twice")
    if args.limit is not None and args.limit <= 0:
        parser.error(f"--limit must be > 0, got {args.limit}")
    cfgs = [load_config(path) for path in args.config]
    labels = [Path(path).stem for path in args.config]
    if len(set(labels)) < len(labels):
        labels = [f"{i + 1}:{label}" for i, label in enumerate(labels)]
    report = compare_sets(cfgs, labels, args.split, args.limit, args.device,
                          not args.no_progress)
    table = report.markdown()
    print(table)
    if args.out:
        out = Path(args.out)
        atomic_write_text(out, f"# Instrument sets side by side\n\n"
                          f"{', '.join(f'{k}: {v}' for k, v in report.models.items())}\n\n"
                          f"{table}\n")
        atomic_write_json(out.with_suffix(".json"), asdict(report))
        print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
