"""Ablation, song by song: what the separator sees, trained alike, scored on whole songs.

    python bench/ablation.py --config configs/real_melody_in.json \
        --config-melody-out configs/real.json --steps 250 --decoder-steps 150 \
        [--score slakh=runs/slakh/dataset_melody:val --score openmsx=runs/demo/dataset_melody:test]
        [--limit 60] [--out runs/ablation] [--only NAME ...]

Every variant of :data:`VARIANTS` is a set of config overrides on the base config: it
trains its separator for ``--steps`` batches of the config's batch size, on the same data
(the config's ``train_mix``), from the same seed; the diffusion row trains one decoder for
``--decoder-steps``. The variant that keeps the melody out of the mixture takes its data
keys (``data_dir``, ``train_mix``) from ``--config-melody-out``: the same corpora built
without ``melody_in_mixture``. Each trained variant then separates the songs of every
``--score`` target whole and is scored note by note (:mod:`utils.evaluation.songs`:
note accuracy, pitched note accuracy, macro F1 and per-instrument F1), beside the
baselines fitted on its own training mix. Validation data only: the score targets are
validation splits, or the test split of a corpus that no variant trains on.

Prints one Markdown table per target and writes ``OUT/ablation.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

from data.errors import InputError  # noqa: E402
from data.fileio import atomic_write_json  # noqa: E402
from utils.core.checkpoints import LEGACY_DEFAULTS, process_class  # noqa: E402
from utils.core.cli import command  # noqa: E402
from utils.core.config import Config, load_config  # noqa: E402
from utils.evaluation.metrics import markdown_table  # noqa: E402
from utils.evaluation.phrases import F1_KEYS  # noqa: E402
from utils.evaluation.songs import evaluate_songs, song_model_row  # noqa: E402
from utils.training.runs import train_decoder, train_separator  # noqa: E402

# what a variant leaves unstated takes these: the shipped formulation before this ablation
# (direct, BCE, pitch channel), no new input, no transposition
PLAIN: dict[str, Any] = {**LEGACY_DEFAULTS, "separator": "direct", "pitch_channel": True,
                         "transpose": [0, 0]}
TRANSPOSE = [-5, 6]  # Arranger's range (Dong et al., 2021)
DATA_KEYS = ("data_dir", "train_mix")  # what --config-melody-out supplies
KEYS: tuple[str, ...] = ("notes", "pitched_note_accuracy", "note_accuracy", "macro_f1",
                         *F1_KEYS, "train_s", "separate_s")


@dataclass(frozen=True)
class Variant:
    """One row of the ablation.

    Attributes:
        name: the row label.
        overrides: config keys that define the variant (on top of :data:`PLAIN`).
        melody_out: train on the corpora built without ``melody_in_mixture``.
    """

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    melody_out: bool = False


ALL_INPUTS = {"onset_channel": True, "beat_channel": True, "transpose": TRANSPOSE}
VARIANTS: tuple[Variant, ...] = (
    Variant("direct + pitch (no new input)"),
    Variant("+ onsets", {"onset_channel": True}),
    Variant("+ beat", {"beat_channel": True}),
    Variant("+ transposition", {"transpose": TRANSPOSE}),
    Variant("+ onsets + beat + transposition", ALL_INPUTS),
    Variant("+ onsets + beat + transposition, melody kept out", ALL_INPUTS, melody_out=True),
    Variant("diffusion (paper)", {"separator": "diffusion", "pitch_channel": False}),
)
"""The variants, in table order."""


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def parse_target(text: str) -> tuple[str, str, str]:
    """``"label=DATA_DIR:SPLIT"`` -> ``(label, data_dir, split)``."""
    label, sep, rest = text.partition("=")
    data_dir, colon, split = rest.rpartition(":")
    if not sep or not colon or not label or not data_dir or not split:
        raise InputError(f"--score must be LABEL=DATA_DIR:SPLIT, got {text!r}")
    return label, data_dir, split


@dataclass(frozen=True)
class Budget:
    """How long each variant trains.

    Attributes:
        steps: separator training steps per variant (batch size from the config).
        decoder_steps: training steps of the diffusion row's decoder.
        val_batches: validation batches per variant (one epoch, one checkpoint).
    """

    steps: int
    decoder_steps: int
    val_batches: int = 20


def run_ablation(config_path: str | Path, melody_out_config: str | Path | None,
                 out_dir: str | Path, budget: Budget,
                 targets: Sequence[tuple[str, str, str]], limit: int | None,
                 variants: Sequence[Variant] = VARIANTS,
                 log: Callable[[str], Any] = print) -> dict[str, dict[str, dict[str, float]]]:
    """Train and score every variant; return ``{target label: {row: {metric: value}}}``.

    Args:
        config_path: the base config (data, network size, optimiser, sampling).
        melody_out_config: the config whose data keys the ``melody_out`` variants use.
        out_dir: each variant's checkpoints go to ``out_dir/<variant>``.
        budget: the training steps of each variant (:class:`Budget`).
        targets: ``(label, data_dir, split)`` of each song set scored.
        limit: songs scored per target (the first of each split); None = all.
        variants: the rows.
        log: where progress lines go.

    Returns:
        One table per target: the variants (model rows), then the baselines of the first
        variant's training mix (each variant's own baselines are fitted on the same mix).
    """
    out = Path(out_dir)
    steps, decoder_steps, val_batches = budget.steps, budget.decoder_steps, budget.val_batches
    common = {"max_epochs": 1, "limit_train_batches": steps, "limit_val_batches": val_batches,
              "decoder_max_epochs": 1, "transunet_model_path": "", "decoder_model_path": "",
              "init_from": ""}
    quiet = {"enable_progress_bar": False, "enable_model_summary": False}
    tables: dict[str, dict[str, dict[str, float]]] = {label: {} for label, _, _ in targets}
    baselines: dict[str, dict[str, dict[str, float]]] = {}
    for variant in variants:
        data: dict[str, Any] = {}
        if variant.melody_out:
            if melody_out_config is None:
                raise InputError(f"variant {variant.name!r} needs --config-melody-out")
            other = load_config(melody_out_config)
            data = {key: getattr(other, key) for key in DATA_KEYS}
        model_dir = out / _slug(variant.name)
        cfg: Config = load_config(config_path, overrides={
            **common, **PLAIN, **variant.overrides, **data, "model_dir": str(model_dir)})
        log(f"[ablation] training '{variant.name}' for {steps} steps -> {model_dir}")
        start = time.perf_counter()
        best = train_separator(cfg, **quiet)
        train_s = time.perf_counter() - start
        cfg = cfg.replace(transunet_model_path=str(best))
        if process_class(cfg.separator).needs_decoder:
            log(f"[ablation] training its decoder for {decoder_steps} steps")
            decoder = train_decoder(cfg.replace(limit_train_batches=decoder_steps), **quiet)
            cfg = cfg.replace(decoder_model_path=str(decoder))
        for label, data_dir, split in targets:
            log(f"[ablation] scoring '{variant.name}' on {data_dir} ({split})")
            evaluation = evaluate_songs(cfg, split, limit, progress=False, data_dir=data_dir)
            row = song_model_row(cfg.separator)
            tables[label][variant.name] = {**evaluation.rows[row], "train_s": train_s,
                                           "separate_s": evaluation.seconds}
            for name, metrics in evaluation.rows.items():
                if name != row:
                    baselines.setdefault(label, {}).setdefault(name, dict(metrics))
    return {label: {**rows, **baselines.get(label, {})} for label, rows in tables.items()}


@command
def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the ablation, print the tables; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/real_melody_in.json",
                        help="base config (its corpora built with melody_in_mixture)")
    parser.add_argument("--config-melody-out", default="configs/real.json",
                        help="config naming the corpora built without melody_in_mixture")
    parser.add_argument("--steps", type=int, default=250, help="separator steps per variant")
    parser.add_argument("--decoder-steps", type=int, default=150,
                        help="decoder steps of the diffusion row")
    parser.add_argument("--score", action="append", default=None, metavar="LABEL=DIR:SPLIT",
                        help="a song set to score (repeat; default: the Slakh2100 validation "
                             "songs and the OpenMSX test songs, built with their tunes in)")
    parser.add_argument("--limit", type=int, default=None, help="songs scored per set")
    parser.add_argument("--out", default="runs/ablation", help="checkpoints and JSON")
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME",
                        help="run only these variants (names as in the table)")
    args = parser.parse_args(argv)
    if min(args.steps, args.decoder_steps) <= 0 or (args.limit is not None and args.limit <= 0):
        parser.error("--steps, --decoder-steps and --limit must be > 0")
    variants = VARIANTS
    if args.only:
        names = {v.name for v in VARIANTS}
        unknown = [n for n in args.only if n not in names]
        if unknown:
            parser.error(f"unknown variant {unknown[0]!r}; known: {', '.join(sorted(names))}")
        variants = tuple(v for v in VARIANTS if v.name in args.only)
    targets = [parse_target(t) for t in (args.score or (
        "slakh=runs/slakh/dataset_melody:val", "openmsx=runs/demo/dataset_melody:test"))]
    tables = run_ablation(args.config, args.config_melody_out, args.out,
                          Budget(args.steps, args.decoder_steps), targets, args.limit, variants)
    for label, data_dir, split in targets:
        print(f"\n{label} ({data_dir}, {split} split, "
              f"{'all' if args.limit is None else f'first {args.limit}'} songs): "
              f"{args.steps} separator steps per variant\n")
        print(markdown_table(tables[label], KEYS))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "ablation.json", {
        "config": args.config, "config_melody_out": args.config_melody_out,
        "steps": args.steps, "decoder_steps": args.decoder_steps, "limit": args.limit,
        "targets": targets, "tables": tables})
    print(f"\nwrote {out / 'ablation.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
