"""Sampling speed against quality: separated phrases/s and metrics for several step counts.

    python bench/sample.py --config config.json [--steps 1000 200 50 20 10] [--limit 256]
        [--split test] [--device cuda] [--sampler ddim] [--assign threshold] [--markdown]

Uses the checkpoints named in the config, else the newest ones in ``model_dir``. The
same phrases (an evenly spread subset of ``--limit`` phrases of the split) are separated
once per step count; a step count above ``T - 1`` is clamped to ``T - 1`` (the full
chain). Prints one table: steps, phrases/s, ms per phrase and the headline metrics.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

import numpy as np  # noqa: E402

from data.store import SPLITS, PhraseStore  # noqa: E402
from utils.core.cli import command  # noqa: E402
from utils.core.config import load_config  # noqa: E402
from utils.evaluation.metrics import SUMMARY_KEYS, format_table, markdown_table  # noqa: E402
from utils.evaluation.phrases import (  # noqa: E402
    model_row,
    phrase_batches,
    score_systems,
    subset_indices,
)
from utils.separation.assignment import ASSIGN_MODES  # noqa: E402
from utils.separation.devices import add_device_option  # noqa: E402
from utils.separation.separator import SAMPLERS, Separator  # noqa: E402


def benchmark_steps(separator: Separator,
                    batches: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                    steps: Iterable[int], progress: bool = False
                    ) -> dict[str, dict[str, float]]:
    """Separate the same phrases with several step counts; speed and metrics side by side.

    Each run gets a fresh generator seeded like ``separator`` (same starting noise), and
    one small untimed warm-up batch runs first so one-time costs (CUDA context, kernel
    selection) do not count against the first row.

    Args:
        separator: the loaded separator (its sampler, eta and assignment are kept).
        batches: ``(music, mixture, onsets)`` as
            :func:`utils.evaluation.phrases.phrase_batches` yields them, in memory.
        steps: requested step counts; each is clamped to ``T - 1`` of the checkpoint.
        progress: show a progress bar per run.

    Returns:
        ``{"<steps> steps": {"steps", "phrases_per_s", "ms_per_phrase", <metrics>}}`` in
        the order given (a repeated effective step count is run once).
    """
    total = sum(len(music) for music, *_ in batches)
    if total == 0:
        raise ValueError("benchmark_steps: no phrases to separate")
    warm = separator.with_settings(steps=1)
    warm.separate_phrases(batches[0][1][:1])
    rows: dict[str, dict[str, float]] = {}
    for requested in steps:
        run = separator.with_settings(steps=requested)
        label = f"{run.steps} steps"
        if label in rows:
            continue
        metrics, seconds = score_systems(run, {}, batches, total, progress=progress,
                                         oracle=False)
        rate = total / seconds if seconds > 0 else float("inf")
        rows[label] = {"steps": float(run.steps), "phrases_per_s": rate,
                       "ms_per_phrase": 1000.0 * seconds / total,
                       **metrics[model_row(run.assign, run.kind)]}
    return rows


@command
def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the benchmark, print the table; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config.json", help="config file (config.json)")
    parser.add_argument("--steps", type=int, nargs="+", default=[1000, 200, 50, 20, 10],
                        help="step counts to compare (default: 1000 200 50 20 10)")
    parser.add_argument("--limit", type=int, default=256, help="phrases to separate (256)")
    parser.add_argument("--split", default="test", choices=SPLITS)
    add_device_option(parser)
    parser.add_argument("--sampler", default=None, choices=SAMPLERS,
                        help="override the config's sampler")
    parser.add_argument("--assign", default=None, choices=ASSIGN_MODES,
                        help="override the config's assignment mode")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="override the config's sample_batch_size")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    args = parser.parse_args(argv)
    if args.limit <= 0 or any(s <= 0 for s in args.steps):
        parser.error("--limit and every --steps value must be > 0")
    if args.batch_size is not None and args.batch_size <= 0:
        parser.error(f"--batch-size must be > 0, got {args.batch_size}")

    cfg = load_config(args.config)
    store = PhraseStore(cfg.data_dir, args.split)
    separator = Separator.from_config(cfg, args.device)
    changes = {k: v for k, v in (("sampler", args.sampler), ("assign", args.assign),
                                 ("batch_size", args.batch_size)) if v is not None}
    separator = separator.with_settings(**changes)
    indices = subset_indices(len(store), args.limit)
    batches = list(phrase_batches(store, separator.batch_size, indices))
    rows = benchmark_steps(separator, batches, args.steps, progress=args.progress)
    print(f"{len(indices)} {args.split} phrases on {separator.device}, sampler "
          f"{separator.sampler} (eta {separator.eta}), assign '{separator.assign}', "
          f"batch {separator.batch_size}, T = {separator.max_steps + 1}")
    keys = ("phrases_per_s", "ms_per_phrase", *SUMMARY_KEYS)
    print(markdown_table(rows, keys) if args.markdown else format_table(rows, keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
