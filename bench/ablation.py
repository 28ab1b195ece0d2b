"""Ablation: the paper's diffusion, its variants and the direct separator, trained alike.

    python bench/ablation.py --config configs/synth.json --steps 600 --decoder-steps 300 \
        [--limit 400] [--cross-data runs/demo/dataset] [--out runs/ablation] [--only NAME ...]

Every variant of :data:`utils.ablation.VARIANTS` trains its separator for ``--steps``
batches of the config's batch size, same data, same seed; the diffusion variants share one
decoder. Each is scored on the config dataset's test split and on ``--cross-data``'s test
split (baselines fitted on the config dataset's train split). Prints one Markdown table per
dataset (note and cell accuracy, macro F1, per-instrument F1, consistency, seconds per
phrase to separate, seconds of training) and writes ``OUT/ablation.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

from data.fileio import atomic_write_json  # noqa: E402
from utils.ablation import ABLATION_KEYS, VARIANTS, run_ablation  # noqa: E402
from utils.config import EXIT_CONFIG, ConfigError  # noqa: E402
from utils.metrics import markdown_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the ablation, print the tables; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/synth.json", help="base config")
    parser.add_argument("--steps", type=int, default=600, help="separator steps per variant")
    parser.add_argument("--decoder-steps", type=int, default=300, help="shared decoder steps")
    parser.add_argument("--limit", type=int, default=400, help="test phrases per dataset")
    parser.add_argument("--cross-data", default=None, help="second built dataset to score")
    parser.add_argument("--out", default="runs/ablation", help="checkpoints and JSON")
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME",
                        help="run only these variants (names as in the table)")
    args = parser.parse_args(argv)
    if min(args.steps, args.decoder_steps, args.limit) <= 0:
        parser.error("--steps, --decoder-steps and --limit must be > 0")
    variants = VARIANTS
    if args.only:
        names = {v.name for v in VARIANTS}
        unknown = [n for n in args.only if n not in names]
        if unknown:
            parser.error(f"unknown variant {unknown[0]!r}; known: {', '.join(sorted(names))}")
        wanted = set(args.only) | {v.reuse for v in VARIANTS if v.name in args.only and v.reuse}
        variants = tuple(v for v in VARIANTS if v.name in wanted)
    try:
        tables = run_ablation(args.config, args.out, args.steps, args.decoder_steps,
                              args.limit, args.cross_data, variants)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    labels = {"base": f"test split of the config's dataset ({args.config})",
              "cross": f"test split of {args.cross_data}"}
    for label, rows in tables.items():
        print(f"\n{labels[label]}: {args.steps} separator steps per variant\n")
        print(markdown_table(rows, (*ABLATION_KEYS, "train_s")))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "ablation.json", {"config": args.config, "steps": args.steps,
                                              "decoder_steps": args.decoder_steps,
                                              "limit": args.limit,
                                              "cross_data": args.cross_data, "tables": tables})
    print(f"\nwrote {out / 'ablation.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
