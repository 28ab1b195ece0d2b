"""Evaluate a trained separator against the baselines on one split of a built dataset.

The separator samples every phrase of the split (or an evenly spread subset of
``limit`` phrases); the baselines are fitted on the train split and predict the same
phrases; every system goes through one :class:`utils.evaluation.metrics.MetricAccumulator`. The
result is printed as a table and written as ``evaluation_<split>.json`` and
``evaluation_<split>.md`` in the config's ``model_dir``, next to the checkpoints.

Axis orders: phrases from :class:`data.store.PhraseStore` are ``bool [n, 64, 72, 6]``;
everything here works on the model side, ``music bool [n, 5, 64, 72]`` and
``mixture bool [n, 1, 64, 72]``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from tqdm import tqdm

from data.contract import MUSIC_INSTRUMENTS
from data.errors import InputError
from data.fileio import atomic_write_json, atomic_write_text
from data.instruments import set_mismatch
from data.manifest import Manifest
from data.mix import mix_shares
from data.roll import music_and_mixture
from data.store import PhraseStore, unpack, unpack_onsets
from utils.core.config import Config
from utils.evaluation.baselines import (
    FITTED_BASELINES,
    Baseline,
    OracleBaseline,
    load_baselines,
    pitch_counts,
)
from utils.evaluation.metrics import SUMMARY_KEYS, MetricAccumulator, format_table, markdown_table
from utils.separation.assignment import ASSIGN_MODES, assign_instruments
from utils.separation.separator import Separator

ORACLE_NAME = "oracle (partition)"
F1_KEYS: tuple[str, ...] = tuple(f"{inst}_f1" for inst in MUSIC_INSTRUMENTS)


def model_row(assign: str, kind: str = "diffusion") -> str:
    """Name of the model's row for one assignment mode, e.g. ``"diffusion (partition)"``."""
    return f"{kind} ({assign})"


# ----------------------------------------------------------------------------------
# Phrases
# ----------------------------------------------------------------------------------
def subset_indices(n_total: int, limit: int | None) -> np.ndarray:
    """Indices of the phrases evaluated: all, or ``limit`` spread evenly over the split.

    Spreading (instead of taking the first ``limit``) keeps a small evaluation from
    seeing only the first few songs of the split. int64 ``[min(n_total, limit)]``, sorted.
    """
    if limit is not None and limit <= 0:
        raise ValueError(f"'limit' must be > 0, got {limit}")
    if limit is None or limit >= n_total:
        return np.arange(n_total, dtype=np.int64)
    return np.unique(np.linspace(0, n_total - 1, limit).round().astype(np.int64))


def phrase_batches(store: PhraseStore, batch_size: int,
                   indices: np.ndarray | None = None
                   ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Model-side batches of a split.

    Args:
        store: one split of a built dataset.
        batch_size: phrases per batch.
        indices: phrases to read (sorted); None = all.

    Yields:
        ``(music bool [b, 5, 64, 72], mixture bool [b, 1, 64, 72], onsets bool
        [b, 1, 64, 72])``: the mixture's note starts are the OR of the instruments'.
    """
    if batch_size <= 0:
        raise ValueError(f"'batch_size' must be > 0, got {batch_size}")
    if indices is None:
        indices = np.arange(len(store), dtype=np.int64)
    for i in range(0, len(indices), batch_size):
        rows = indices[i: i + batch_size]
        packed = store.rows(rows)
        music, mixture = music_and_mixture(unpack(packed))
        onsets, _ = music_and_mixture(unpack_onsets(packed))
        yield music, mixture, onsets.any(axis=1, keepdims=True)


def fit_train_baselines(data: str | Path | dict[str, float],
                        batch_size: int = 1024) -> dict[str, Baseline]:
    """The baselines of :mod:`utils.evaluation.baselines`, fitted in one pass over training music.

    Args:
        data: a dataset folder (its train split), or ``{folder: weight}`` -- the training
            mix (config key ``train_mix``): each train split's pitch statistics count in
            proportion to its share of the training phrases, as the model saw them.
        batch_size: phrases read at once.

    Returns:
        ``{name: fitted baseline}`` in table order (most_common, zone, pitch_row).
    """
    mix = {str(data): 1.0} if isinstance(data, (str, Path)) else data
    shares = dict(zip(mix, mix_shares(list(mix.values()))))  # the sampler's shares
    stores = {folder: PhraseStore(folder, "train") for folder in mix}
    n_total = sum(len(store) for store in stores.values())
    names = Manifest.read(next(iter(mix))).instruments.music
    counts = None
    for folder, store in stores.items():
        part = pitch_counts((music for music, _, _ in phrase_batches(store, batch_size)),
                            len(names))
        # the phrases this dataset gives an epoch of n_total phrases, per phrase it holds
        scale = shares[folder] * n_total / max(len(store), 1)
        part = np.rint(part * scale).astype(np.int64) if len(mix) > 1 else part
        counts = part if counts is None else counts + part
    return {name: cls().fit_counts(counts, names) for name, cls in FITTED_BASELINES.items()}


# ----------------------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------------------
def sampling_words(settings: dict[str, Any]) -> str:
    """How a report's model separated, in words (from :meth:`Separator.settings`)."""
    words = str(settings.get("sampling", settings.get("separator")))
    context = settings.get("song_context") or (0.0, 0.0)
    if settings.get("song_pass"):
        words += f", learned song pass ({settings['song_pass']})"
    elif context[0] > 0:
        words += (f", song-level second pass (weight {context[0]:g}, width "
                  f"{context[1]:g} semitones)")
    return words


class Report:
    """What every evaluation report shares: its tables and its files.

    Subclasses are dataclasses with ``split``, ``rows`` and ``settings`` fields and a
    ``markdown()`` method; they name their table columns and their file suffix.
    """

    summary_keys: ClassVar[tuple[str, ...]] = SUMMARY_KEYS
    file_suffix: ClassVar[str] = ""
    split: str
    rows: dict[str, dict[str, float]]

    @property
    def f1_keys(self) -> tuple[str, ...]:
        """The per-instrument F1 columns: ``<inst>_f1`` of the rows' classes, in order
        (:data:`F1_KEYS` for the paper's set)."""
        first = next(iter(self.rows.values()), {})
        return tuple(k for k in first if k.endswith("_f1") and k != "macro_f1") or F1_KEYS

    def table(self) -> str:
        """Plain-text tables: headline metrics, then per-instrument F1."""
        return "\n\n".join([format_table(self.rows, self.summary_keys),
                            format_table(self.rows, self.f1_keys)])

    f1_over: ClassVar[str] = "cells"

    def title(self) -> str:
        """The report's heading."""
        raise NotImplementedError

    def intro(self) -> str:
        """The paragraph above the tables: what was scored, how, with which model."""
        raise NotImplementedError

    def appendix(self) -> list[str]:
        """Lines below the tables (none by default)."""
        return []

    def markdown(self) -> str:
        """A Markdown report: heading, intro, both tables, appendix."""
        return "\n".join([
            f"# {self.title()}", "", self.intro(), "",
            markdown_table(self.rows, self.summary_keys), "",
            f"Per-instrument F1 over {self.f1_over}:", "",
            markdown_table(self.rows, self.f1_keys), "",
            *self.appendix(),
        ])


@dataclass
class Evaluation(Report):
    """Metrics of every system on one split.

    Attributes:
        split: "train", "val" or "test".
        n_phrases: phrases evaluated.
        rows: ``{system: {metric: value}}``, the model first (keys of
            :data:`utils.evaluation.metrics.METRIC_KEYS`).
        phrases_per_s: separated phrases per second of the model (sampling only).
        seconds: wall-clock seconds the model spent sampling.
        settings: sampler settings, device and checkpoints used.
    """

    split: str
    n_phrases: int
    rows: dict[str, dict[str, float]]
    phrases_per_s: float
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)


    def title(self) -> str:
        return f"Evaluation on the {self.split} split of {self.settings.get('data_dir')}"

    def intro(self) -> str:
        s = self.settings
        return (f"{self.n_phrases} phrases; {s.get('model')}: {sampling_words(s)}, assign "
                f"'{s.get('assign')}', on {s.get('device')} at {self.phrases_per_s:.2f} "
                f"phrases/s. Baselines: {s.get('baselines')}. Lower is better for "
                "consistency and diversity, higher for the rest.")


def score_systems(separator: Separator | None, baselines: dict[str, Baseline],
                  batches: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], total: int,
                  progress: bool = True, oracle: bool = True
                  ) -> tuple[dict[str, dict[str, float]], float]:
    """Run the model and the baselines over batches and accumulate every metric.

    Args:
        separator: the model, or None to score only the baselines.
        baselines: ``{name: fitted baseline}``.
        batches: ``(music, mixture, onsets)`` as :func:`phrase_batches` yields.
        total: phrases in ``batches`` (for the progress bar).
        progress: show a tqdm bar with phrases/s.
        oracle: also score the partition-mode oracle (true instruments, one per cell).

    Returns:
        ``(rows, seconds)``: ``{system: metrics}`` (the model under the configured
        assignment, then under the other one -- same probabilities --, then the baselines, then
        the oracle) and the wall-clock seconds spent separating with the model.
    """
    accs: dict[str, MetricAccumulator] = {}
    # the configured assignment first, then the other one on the same probabilities
    modes = [] if separator is None else [separator.assign, *(m for m in ASSIGN_MODES
                                                                if m != separator.assign)]
    kind = "" if separator is None else separator.kind
    names = MUSIC_INSTRUMENTS if separator is None else separator.instruments.music
    for mode in modes:
        accs[model_row(mode, kind)] = MetricAccumulator(names=names)
    for name in baselines:
        accs[name] = MetricAccumulator(names=names)
    if oracle:
        accs[ORACLE_NAME] = MetricAccumulator(names=names)
    oracle_model = OracleBaseline()
    seconds = 0.0
    with tqdm(total=total, unit="phrase", desc="separating", disable=not progress,
              dynamic_ncols=True) as bar:
        for music, mixture, onsets in batches:
            if separator is not None:
                start = time.perf_counter()
                mix = torch.as_tensor(mixture).float()
                inputs = torch.cat([mix, torch.as_tensor(onsets).float()], dim=1)
                probs = separator.phrase_probs(inputs)  # (b, C, 64, 72)
                seconds += time.perf_counter() - start
                for mode in modes:
                    pred = assign_instruments(probs, mix, mode, separator.threshold)
                    accs[model_row(mode, kind)].update(pred.numpy(), music, mixture)
            for name, baseline in baselines.items():
                accs[name].update(baseline.predict(mixture), music, mixture)
            if oracle:
                accs[ORACLE_NAME].update(oracle_model.predict(mixture, music), music,
                                                  mixture)
            bar.update(len(music))
    return {name: acc.compute() for name, acc in accs.items()}, seconds


def check_model_data(separator: Separator, data_dir: str | Path) -> None:
    """Refuse a built dataset whose instrument set is not the model's.

    Raises:
        InputError: one line naming the model, the folder and both sets.
    """
    mismatch = set_mismatch(separator.instruments, Manifest.read(data_dir).instruments,
                            f"the {separator.source}", repr(str(data_dir)))
    if mismatch:
        raise InputError(mismatch)


def model_baselines(separator: Separator, cfg: Config) -> tuple[dict[str, Baseline], str]:
    """The baselines to score beside a model, and where they come from.

    The baselines saved with the model (fitted on its own training data when it was
    trained) when they exist; else they are fitted now on the train split of the config's
    ``data_dir`` (a model trained before baselines were saved).

    Returns:
        ``({name: fitted baseline}, description of their source)``.
    """
    saved = separator.baselines_path()
    if saved is not None:
        return load_baselines(saved), str(saved)
    train = cfg.train_mix or cfg.data_dir
    return fit_train_baselines(train), f"fitted on {train} (train split)"


def evaluate_split(cfg: Config, split: str = "test", limit: int | None = None,
                   device: str | None = None, progress: bool = True,
                   data_dir: str | Path | None = None) -> Evaluation:
    """Separate a split with the configured model and score it against the baselines.

    Args:
        cfg: the typed config (``data_dir``, ``model_dir``, checkpoints, sampling keys).
        split: "train", "val" or "test".
        limit: evaluate at most this many phrases, spread evenly over the split.
        device: sampling device; None = the config's ``accelerator``.
        progress: show progress bars.
        data_dir: the built dataset to score (default: the config's ``data_dir``); for
            example a model trained on the synthetic corpus scored on the OpenMSX songs.
            The baselines always come from the model's training data.

    Returns:
        The :class:`Evaluation` (not yet written; see :func:`write_evaluation`).

    Raises:
        utils.core.config.ConfigError: no checkpoint; FileNotFoundError: split not built;
        ValueError: empty split.
    """
    data_dir = cfg.data_dir if data_dir is None else data_dir
    store = PhraseStore(data_dir, split)
    if len(store) == 0:
        raise InputError(f"{data_dir}: the {split} split holds no phrases")
    separator = Separator.from_config(cfg, device)
    check_model_data(separator, data_dir)
    baselines, baseline_source = model_baselines(separator, cfg)
    indices = subset_indices(len(store), limit)
    rows, seconds = score_systems(separator, baselines,
                                  phrase_batches(store, separator.batch_size, indices),
                                  total=len(indices), progress=progress)
    settings = {**separator.settings(), "data_dir": str(data_dir),
                "baselines": baseline_source}
    rate = len(indices) / seconds if seconds > 0 else float("inf")
    return Evaluation(split=split, n_phrases=int(len(indices)), rows=rows,
                      phrases_per_s=rate, seconds=seconds, settings=settings)


def write_evaluation(evaluation: Report, out_dir: str | Path,
                     tag: str = "") -> tuple[Path, Path]:
    """Write ``evaluation_[<tag>_]<split><suffix>.json`` and ``.md`` into ``out_dir``.

    Args:
        evaluation: a phrase (:func:`evaluate_split`) or song
            (:func:`utils.evaluation.songs.evaluate_songs`) evaluation; the song one
            has the suffix ``_songs``.
        out_dir: target folder (created).
        tag: names the scored dataset when it is not the config's own (cross-corpus).

    Returns:
        ``(json_path, markdown_path)``; non-finite numbers are written as null.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"evaluation_{tag + '_' if tag else ''}{evaluation.split}{evaluation.file_suffix}"
    json_path = out / f"{stem}.json"
    md_path = out / f"{stem}.md"
    data = {key: None if isinstance(value, float) and not np.isfinite(value) else value
            for key, value in asdict(evaluation).items()}
    atomic_write_json(json_path, data)
    atomic_write_text(md_path, evaluation.markdown())
    return json_path, md_path
