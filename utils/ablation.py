"""The ablation: every separator formulation trained alike and scored on two corpora.

Each variant is a set of config overrides on one base config. Every variant trains its
separator for the same number of optimiser steps (one "epoch" of ``steps`` batches), on
the same data, from the same seed; the diffusion variants share one decoder (the decoder
learns ``x1 -> x0`` from the true music and the schedule only, so it does not depend on
the separator's weights). Each trained variant is then scored on the test split of the
base config's dataset and, optionally, on a second built dataset (cross-corpus), with the
baselines fitted on the base dataset's train split. Sampling-time variants (``K``
samples averaged) reuse the weights of the variant they name.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils.assignment import ASSIGN_MODES
from utils.checkpoints import LEGACY_DEFAULTS
from utils.config import Config, load_config
from utils.evaluation import F1_KEYS, evaluate_split, model_row
from utils.training import train_decoder, train_separator


@dataclass(frozen=True)
class Variant:
    """One row of the ablation.

    Attributes:
        name: the row label.
        overrides: config keys that define the variant (training and network).
        num_samples: diffusion samples averaged at separation time.
        reuse: name of an earlier variant whose trained weights this one samples from.
    """

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    num_samples: int = 1
    reuse: str | None = None


PAPER: dict[str, Any] = LEGACY_DEFAULTS
"""The formulation keys of the paper (what a checkpoint that predates them was trained
with); every variant states all of them, so the base config's own formulation never
leaks into a row."""


def _variant(name: str, num_samples: int = 1, reuse: str | None = None,
             **changes: Any) -> Variant:
    return Variant(name, {**PAPER, **changes}, num_samples, reuse)


VARIANTS: tuple[Variant, ...] = (
    _variant("diffusion (paper)"),
    _variant("diffusion + mixture input", condition_on_mixture=True),
    _variant("diffusion + pitch channel", pitch_channel=True),
    _variant("diffusion + mixture + pitch", condition_on_mixture=True, pitch_channel=True),
    _variant("diffusion + mixture + pitch, K=4", num_samples=4,
             reuse="diffusion + mixture + pitch", condition_on_mixture=True,
             pitch_channel=True),
    _variant("direct, BCE", separator="direct"),
    _variant("direct, softmax", separator="direct", direct_loss="softmax"),
    _variant("direct, BCE + pitch channel", separator="direct", pitch_channel=True),
    _variant("direct, softmax + pitch channel", separator="direct", direct_loss="softmax",
             pitch_channel=True),
)
"""The variants, in table order."""

ABLATION_ASSIGN = "partition"
"""Every model row is scored with one instrument per sounding cell, like the baselines."""

ABLATION_KEYS: tuple[str, ...] = (
    "note_accuracy", "cell_accuracy", "macro_f1", *F1_KEYS, "consistency", "s_per_phrase",
)
"""The columns of the ablation table."""


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def run_ablation(config_path: str | Path, out_dir: str | Path, steps: int,
                 decoder_steps: int, limit: int | None, cross_data: str | Path | None,
                 variants: Sequence[Variant] = VARIANTS, val_batches: int = 20,
                 log: Any = print) -> dict[str, dict[str, dict[str, float]]]:
    """Train and score every variant; return ``{dataset label: {row: {metric: value}}}``.

    Args:
        config_path: the base config (data, network size, optimiser, sampling).
        out_dir: each variant's checkpoints go to ``out_dir/<variant>``.
        steps: separator training steps per variant (batch size from the config).
        decoder_steps: training steps of the shared decoder.
        limit: phrases scored per dataset (spread over the test split); None = all.
        cross_data: a second built dataset scored with the same models, or None.
        variants: the rows.
        val_batches: validation batches per variant (picks nothing: one epoch, one
            checkpoint; the validation loss is logged).
        log: where progress lines go.

    Returns:
        One table per scored dataset; each holds the variants (partition assignment), the
        baselines and the oracle, with :data:`ABLATION_KEYS` and
        ``train_s`` (seconds of separator training).
    """
    out = Path(out_dir)
    common = {"max_epochs": 1, "limit_train_batches": steps, "limit_val_batches": val_batches,
              "decoder_max_epochs": 1, "transunet_model_path": "", "decoder_model_path": ""}
    quiet = {"enable_progress_bar": False, "enable_model_summary": False}
    trained: dict[str, tuple[Config, float]] = {}
    decoder_path: str = ""
    tables: dict[str, dict[str, dict[str, float]]] = {}
    others: dict[str, dict[str, dict[str, float]]] = {}
    datasets: list[tuple[str, str | None]] = [("base", None)]
    if cross_data is not None:
        datasets.append(("cross", str(cross_data)))
    for variant in variants:
        if variant.reuse is not None:
            cfg, train_s = trained[variant.reuse]
            cfg = cfg.replace(num_samples=variant.num_samples)
        else:
            model_dir = out / _slug(variant.name)
            cfg = load_config(config_path, overrides={**common, **variant.overrides,
                                                      "model_dir": str(model_dir),
                                                      "num_samples": variant.num_samples})
            log(f"[ablation] training '{variant.name}' for {steps} steps -> {model_dir}")
            start = time.perf_counter()
            best = train_separator(cfg, **quiet)
            train_s = time.perf_counter() - start
            overrides = {"transunet_model_path": str(best)}
            if cfg.separator == "diffusion":
                if not decoder_path:
                    log(f"[ablation] training the shared decoder for {decoder_steps} steps")
                    dec_cfg = cfg.replace(limit_train_batches=decoder_steps, **overrides)
                    decoder_path = str(train_decoder(dec_cfg, **quiet))
                overrides["decoder_model_path"] = decoder_path
            cfg = cfg.replace(**overrides)
            trained[variant.name] = (cfg, train_s)
        for label, data_dir in datasets:
            log(f"[ablation] scoring '{variant.name}' on {data_dir or cfg.data_dir}")
            evaluation = evaluate_split(cfg, "test", limit, progress=False, data_dir=data_dir)
            rows = tables.setdefault(label, {})
            model = evaluation.rows[model_row(ABLATION_ASSIGN, cfg.separator)]
            rows[variant.name] = {**model, "s_per_phrase": 1.0 / evaluation.phrases_per_s,
                                  "train_s": train_s}
            model_rows = {model_row(mode, cfg.separator) for mode in ASSIGN_MODES}
            for name, metrics in evaluation.rows.items():  # baselines and the oracle
                if name not in model_rows:
                    others.setdefault(label, {}).setdefault(name, dict(metrics))
    # baselines and the oracle after the variants
    return {label: {**rows, **others.get(label, {})} for label, rows in tables.items()}
