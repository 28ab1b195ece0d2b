"""Evaluate the trained separator and the baselines on one split.

    python evaluate.py --config config.json [--split test] [--limit N] [--device cpu]

Uses the checkpoints named in the config (``transunet_model_path``,
``decoder_model_path``), else the newest ones in ``model_dir``; prints the metrics table
and writes ``evaluation_<split>.json`` and ``.md`` into ``model_dir``. Exit status 2 for a
config or input problem (one ``error:`` line, found before any phrase is separated).
"""

from __future__ import annotations

import argparse
import sys

from utils.config import ConfigError, load_config


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, evaluate, print and write the tables; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config.json", help="config file (config.json)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"),
                        help="split to evaluate (test)")
    parser.add_argument("--limit", type=int, default=None,
                        help="evaluate at most N phrases, spread over the split")
    parser.add_argument("--device", default=None,
                        help="auto, cpu, cuda, cuda:N (default: the config's accelerator)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit <= 0:
        parser.error(f"--limit must be > 0, got {args.limit}")

    from utils.evaluation import evaluate_split, write_evaluation

    try:
        cfg = load_config(args.config)
        cfg.require_writable_dir("model_dir")  # the tables go there: fail before computing
        evaluation = evaluate_split(cfg, args.split, args.limit, args.device,
                                    progress=not args.no_progress)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{evaluation.n_phrases} {args.split} phrases, "
          f"{evaluation.phrases_per_s:.2f} phrases/s on {evaluation.settings['device']}")
    print(evaluation.table())
    json_path, md_path = write_evaluation(evaluation, cfg.model_dir)
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
