"""Separation metrics, the release's and those of published work (docs/method.md section 10).

Axis order (model side): ``pred`` and ``true`` are binary ``[N, C, T, P]`` (instrument
channels in the instrument set's order, :attr:`data.instruments.InstrumentSet.music`; the
paper's C = 5: piano, guitar, bass, string, drum), ``mixture`` is binary ``[N, 1, T, P]``.
Inputs may be numpy arrays or torch tensors, bool or numeric 0/1; they are converted to
numpy ``bool`` once, at the boundary.

Every metric is computed one way, by :class:`MetricAccumulator`; each is a ratio of
integer counts, so accumulating batch by batch equals one update with their
concatenation exactly:

* ``consistency`` = mean over all ``N*T*P`` cells of XOR(mixture, OR over instruments of
  pred): how often a sounding cell is left unassigned or a silent cell is filled. Lower
  is better; 0 in partition mode.
* ``diversity`` = mean over all ``N*5*T*P`` cells of XOR(true, pred AND mixture): the
  fraction of instrument cells got wrong. Lower is better.
* ``cell_accuracy`` = over sounding mixture cells, the fraction whose predicted
  instrument set equals the true set.
* ``note_accuracy`` = over true notes (a run of on-cells along time at one pitch in one
  instrument of one phrase), the fraction with more than half of their cells predicted
  for that instrument.
* ``<inst>_precision / _recall / _f1`` per instrument over cells, and ``macro_f1``.

Empty denominators: nothing to count means nothing could be got wrong -- an error rate
(consistency, diversity) of an empty input is 0.0, and an accuracy with no sounding cell,
no true note, or an instrument neither present nor predicted is 1.0 -- so
every value is a finite float and JSON-safe. ``macro_f1`` averages only the instruments
that occur in the truth or the prediction (1.0 when none does).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from data.contract import MUSIC_INSTRUMENTS, N_MUSIC
from data.roll import runs, time_rows, to_bool_array

SUMMARY_KEYS: tuple[str, ...] = (
    "consistency", "diversity", "cell_accuracy", "note_accuracy", "macro_f1",
)
"""The headline metrics, in table order."""

def metric_keys(names: tuple[str, ...] = MUSIC_INSTRUMENTS) -> tuple[str, ...]:
    """Every key of :meth:`MetricAccumulator.compute` for the classes ``names``, in table
    order."""
    return ("consistency", "diversity", "cell_accuracy", "note_accuracy",
            *(f"{inst}_{kind}" for inst in names for kind in ("precision", "recall", "f1")),
            "macro_f1")


METRIC_KEYS: tuple[str, ...] = metric_keys()
"""Every key of :meth:`MetricAccumulator.compute` for the paper's set, in table order."""

def _check_inputs(pred: Any, true: Any, mixture: Any, n_music: int = N_MUSIC
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Convert and shape-check ``pred [N,C,T,P]``, ``true [N,C,T,P]``, ``mixture [N,1,T,P]``."""
    p = to_bool_array(pred, "pred")
    if p.ndim != 4 or p.shape[1] != n_music:
        raise ValueError(f"pred: expected shape [N, {n_music}, T, P], got {list(p.shape)}")
    t = to_bool_array(true, "true")
    if t.shape != p.shape:
        raise ValueError(f"true: expected shape {list(p.shape)} like pred, got {list(t.shape)}")
    m = to_bool_array(mixture, "mixture")
    want = (p.shape[0], 1, p.shape[2], p.shape[3])
    if m.shape != want:
        raise ValueError(f"mixture: expected shape {list(want)}, got {list(m.shape)}")
    return p, t, m


def ratio(num: int, den: int) -> float:
    """``num / den`` with an empty denominator read as 'nothing got wrong' (1.0)."""
    return 1.0 if den == 0 else num / den


def prf(tp: int, fp: int, fn: int, empty: float = 0.0) -> tuple[float, float, float]:
    """Precision, recall and F1 of one class from its counts -- the one place they are
    computed (cells here, notes in :mod:`utils.evaluation.songs`).

    A class neither true nor predicted scores 1.0 on all three. Otherwise an empty
    denominator (nothing predicted, for precision; nothing true, for recall) reads
    ``empty``: 0.0 for cells (an instrument never predicted has found none of its cells'
    worth), 1.0 for notes ("nothing got wrong", as :func:`ratio`).
    """
    if tp + fp + fn == 0:
        return 1.0, 1.0, 1.0
    precision = tp / (tp + fp) if tp + fp else empty
    recall = tp / (tp + fn) if tp + fn else empty
    return precision, recall, 2 * tp / (2 * tp + fp + fn)


def _error_rate(num: int, den: int) -> float:
    """``num / den`` for an error rate; nothing to count means no error (0.0)."""
    return 0.0 if den == 0 else num / den


def note_counts(pred: np.ndarray, true: np.ndarray) -> tuple[int, int]:
    """Count true notes and the notes predicted right.

    A note is a maximal run of on-cells along time at one pitch of one instrument of one
    phrase; it is right when strictly more than half of its cells are on in ``pred`` for
    the same instrument.

    Args:
        pred: bool ``[..., T, P]`` prediction.
        true: bool ``[..., T, P]`` ground truth, same shape.

    Returns:
        ``(n_notes, n_correct)`` as Python ints.
    """
    rows_true = time_rows(true)  # (R, T), R = ...*P
    rows_hit = time_rows(true & pred)  # (R, T)
    row, start, end = runs(rows_true)
    if row.size == 0:
        return 0, 0
    cum = np.zeros((rows_hit.shape[0], rows_hit.shape[1] + 1), dtype=np.int32)
    np.cumsum(rows_hit, axis=1, out=cum[:, 1:])  # cum[r, k] = hits in [0, k)
    hits = cum[row, end] - cum[row, start]
    return int(row.size), int(np.count_nonzero(2 * hits > end - start))


@dataclass
class MetricAccumulator:
    """Streaming metric counts; :meth:`compute` after several :meth:`update` calls equals
    it after one update with the concatenation of their batches.

    Example::

        acc = MetricAccumulator()
        for pred, true, mixture in batches:
            acc.update(pred, true, mixture)
        table = acc.compute()
    """

    mixture_cells: int = 0  # N*T*P seen
    inconsistent: int = 0  # cells where mixture XOR OR(pred)
    music_cells: int = 0  # N*5*T*P seen
    wrong_cells: int = 0  # instrument cells where true XOR (pred AND mixture)
    sounding: int = 0  # sounding mixture cells
    sets_right: int = 0  # sounding cells whose predicted instrument set is the true set
    notes: int = 0  # true notes
    notes_right: int = 0  # true notes with more than half their cells predicted
    names: tuple[str, ...] = MUSIC_INSTRUMENTS  # the classes, in channel order
    tp: np.ndarray = field(init=False)  # per class
    fp: np.ndarray = field(init=False)
    fn: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.tp, self.fp, self.fn = (np.zeros(len(self.names), dtype=np.int64)
                                     for _ in range(3))

    def update(self, pred: Any, true: Any, mixture: Any) -> None:
        """Add one batch.

        Args:
            pred: binary ``[N, C, T, P]`` prediction (numpy or torch), C = ``len(names)``.
            true: binary ``[N, C, T, P]`` ground truth.
            mixture: binary ``[N, 1, T, P]`` mixture.
        """
        p, t, m = _check_inputs(pred, true, mixture, len(self.names))
        self.mixture_cells += m.size
        self.inconsistent += int(np.count_nonzero(m ^ p.any(axis=1, keepdims=True)))
        self.music_cells += t.size
        self.wrong_cells += int(np.count_nonzero(t ^ (p & m)))
        m0 = m[:, 0]  # (N, T, P)
        self.sounding += int(np.count_nonzero(m0))
        self.sets_right += int(np.count_nonzero(m0 & (p == t).all(axis=1)))
        n, right = note_counts(p, t)
        self.notes += n
        self.notes_right += right
        self.tp += np.count_nonzero(p & t, axis=(0, 2, 3))
        self.fp += np.count_nonzero(p & ~t, axis=(0, 2, 3))
        self.fn += np.count_nonzero(~p & t, axis=(0, 2, 3))

    def instrument_prf(self) -> dict[str, dict[str, float]]:
        """Per-instrument cell precision, recall, F1 and support (true cells).

        Returns:
            ``{inst: {"precision", "recall", "f1", "support"}}`` for every instrument of
            :attr:`names`; an instrument neither true nor predicted anywhere
            scores 1.0 on all three (see the module docstring).
        """
        out: dict[str, dict[str, float]] = {}
        for i, inst in enumerate(self.names):
            tp, fp, fn = int(self.tp[i]), int(self.fp[i]), int(self.fn[i])
            prec, rec, f1 = prf(tp, fp, fn, empty=0.0)
            out[inst] = {"precision": prec, "recall": rec, "f1": f1, "support": float(tp + fn)}
        return out

    def compute(self) -> dict[str, float]:
        """All metrics as a flat dict with the keys of :func:`metric_keys` of :attr:`names`."""
        res = {
            "consistency": _error_rate(self.inconsistent, self.mixture_cells),
            "diversity": _error_rate(self.wrong_cells, self.music_cells),
            "cell_accuracy": ratio(self.sets_right, self.sounding),
            "note_accuracy": ratio(self.notes_right, self.notes),
        }
        active = []
        for inst, prf in self.instrument_prf().items():
            for kind in ("precision", "recall", "f1"):
                res[f"{inst}_{kind}"] = prf[kind]
            i = self.names.index(inst)
            if self.tp[i] + self.fp[i] + self.fn[i] > 0:
                active.append(prf["f1"])
        res["macro_f1"] = float(np.mean(active)) if active else 1.0
        return res


@dataclass
class NoteConfusion:
    """Counts of notes by true and predicted instrument; every note metric derives from it.

    Attributes:
        names: the classes, in channel order (the paper's five by default; the drum last).
        counts: int64 ``[C, C]``, ``counts[t, p]`` = notes of true instrument ``t`` given
            instrument ``p`` (``names`` order).
    """

    names: tuple[str, ...] = MUSIC_INSTRUMENTS
    counts: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.counts = np.zeros((len(self.names), len(self.names)), dtype=np.int64)

    def update(self, true: np.ndarray, pred: np.ndarray) -> None:
        """Add notes: ``true`` and ``pred`` int ``[K]`` contract classes 1..C."""
        np.add.at(self.counts, (np.asarray(true) - 1, np.asarray(pred) - 1), 1)

    def compute(self) -> dict[str, float]:
        """The note metrics of the module docstring, and ``notes``, the notes counted."""
        return note_metrics(self.counts, self.names)

    def folded(self, names: Sequence[str]) -> dict[str, float]:
        """The note metrics over the classes ``names`` alone (some of :attr:`names`, the drum
        last): the notes of the other classes are left out, and another class given to a note
        of one of ``names`` counts as an error. A wider set's figures folded back onto a
        narrower one (the paper's five), so two sets compare on the same notes.

        Raises:
            ValueError: a name that is not one of this confusion's classes.
        """
        missing = [n for n in names if n not in self.names]
        if missing:
            raise ValueError(f"cannot fold onto {', '.join(missing)}: not among "
                             f"{', '.join(self.names)}")
        kept = [self.names.index(n) for n in names]
        rows = self.counts[kept]
        square = rows[:, kept]
        other = rows.sum(axis=1) - square.sum(axis=1)  # given a class outside ``names``
        return note_metrics(np.concatenate([square, other[:, None]], axis=1), tuple(names))


def note_metrics(counts: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """The note metrics of ``counts`` (int ``[C, C]`` true x predicted, ``names`` order, the
    drum last; a last extra column, if any, counts notes given a class outside ``names``)."""
    c = counts
    n_classes = len(names)
    n = int(c.sum())
    n_pitched = n_classes - 1  # every class but the drum, the last one
    pitched = c[:n_pitched]  # rows of the true pitched instruments
    out: dict[str, float] = {
        "notes": n,
        "note_accuracy": ratio(int(np.trace(c[:, :n_classes])), n),
        "pitched_note_accuracy": ratio(int(np.trace(pitched[:, :n_pitched])),
                                        int(pitched.sum())),
    }
    f1s = []
    for i, inst in enumerate(names):
        tp, n_pred, n_true = int(c[i, i]), int(c[:, i].sum()), int(c[i].sum())
        precision, recall, f1 = prf(tp, n_pred - tp, n_true - tp, empty=1.0)
        out.update({f"{inst}_precision": precision, f"{inst}_recall": recall,
                    f"{inst}_f1": f1})
        if n_pred + n_true:
            f1s.append(f1)
    out["macro_f1"] = float(np.mean(f1s)) if f1s else 1.0
    return out


def _cell(value: Any) -> str:
    """Format one table value: floats with 4 decimals, anything else as str."""
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def _grid(
    rows: dict[str, dict[str, float]], keys: list[str] | tuple[str, ...] | None, transpose: bool
) -> tuple[list[str], list[list[str]]]:
    """Header and body cells of a table of ``rows`` (system -> metric -> value)."""
    if keys is None:
        keys = list(dict.fromkeys(k for metrics in rows.values() for k in metrics))
    keys = list(keys)
    if transpose:
        header = ["metric", *rows]
        body = [[k, *(_cell(rows[name].get(k, float("nan"))) for name in rows)] for k in keys]
    else:
        header = ["system", *keys]
        body = [[name, *(_cell(rows[name].get(k, float("nan"))) for k in keys)] for name in rows]
    return header, body


def format_table(
    rows: dict[str, dict[str, float]],
    keys: list[str] | tuple[str, ...] | None = None,
    *,
    transpose: bool = False,
) -> str:
    """A plain-text, column-aligned table for a terminal.

    Args:
        rows: ``{system name: {metric key: value}}``, e.g. the model and each baseline.
        keys: metric columns in order; ``None`` = every key, in order of appearance.
            A key missing from a row prints ``n/a``.
        transpose: one row per metric and one column per system instead.

    Returns:
        The table, lines joined by ``\\n`` (no trailing newline).
    """
    header, body = _grid(rows, keys, transpose)
    widths = [max(len(r[j]) for r in [header, *body]) for j in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:]))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in body)])


def markdown_table(
    rows: dict[str, dict[str, float]],
    keys: list[str] | tuple[str, ...] | None = None,
    *,
    transpose: bool = False,
) -> str:
    """The same table as :func:`format_table`, as GitHub Markdown (numbers right-aligned).

    Args:
        rows: ``{system name: {metric key: value}}``.
        keys: metric columns in order; ``None`` = every key, in order of appearance.
        transpose: one row per metric and one column per system instead.

    Returns:
        The Markdown table, lines joined by ``\\n`` (no trailing newline).
    """
    header, body = _grid(rows, keys, transpose)
    align = ["---", *("---:" for _ in header[1:])]
    return "\n".join(
        "| " + " | ".join(cells) + " |" for cells in [header, align, *body]
    )
