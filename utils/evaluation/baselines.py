"""Baselines for instrument separation, fitted on the train split, evaluated like the model.

Every fitted baseline is a *pitch -> instrument* rule: each sounding mixture cell gets
exactly one instrument (partition mode, consistency 0). All of them are fitted from one
statistic, ``counts[i, p]`` = training cells of instrument ``i`` at pitch row ``p``
(an int64 ``[5, P]`` array), accumulated batch by batch so fitting scales to LMD:

* :class:`MostCommonBaseline` -- every cell -> the instrument with the most training cells.
* :class:`ZoneBaseline` -- contiguous pitch zones, one per instrument (the zone-based
  baseline of automatic-instrumentation work); boundaries and order maximise the training
  cells that fall in their own instrument's zone, found by dynamic programming.
* :class:`PitchRowBaseline` -- every pitch row -> the instrument with the most training
  cells at that row (a non-contiguous zone, at least as good as the zones on the train set).
* :class:`OracleBaseline` -- not fitted; reads the truth and gives the best
  partition-mode answer (the upper bound for ``assign="partition"``).

Ties are broken towards the first instrument in :data:`MUSIC_INSTRUMENTS` order.
Arrays: ``batches`` of music are binary ``[B, 5, T, P]``, ``mixture`` is binary
``[N, 1, T, P]``, predictions are bool ``[N, 5, T, P]`` (numpy or torch in, numpy out).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from data.contract import MUSIC_INSTRUMENTS, N_MUSIC
from data.errors import InputError
from data.fileio import atomic_write_json
from data.roll import note_lengths, to_bool_array


def pitch_counts(batches: Iterable[Any], n_music: int = N_MUSIC) -> np.ndarray:
    """Training cells per instrument and pitch row, streamed over batches.

    Args:
        batches: iterable of binary music ``[B, C, T, P]`` (numpy or torch; C = 5 for the
            paper's set); every batch must have the same ``P``.
        n_music: ``C``, the instrument set's classes (5 for the paper's).

    Returns:
        int64 ``[C, P]``: ``counts[i, p]`` = on-cells of instrument ``i`` at row ``p``.

    Raises:
        ValueError: on a batch of the wrong shape or when ``batches`` is empty.
    """
    total: np.ndarray | None = None
    for k, batch in enumerate(batches):
        music = to_bool_array(batch, f"batch {k}")
        if music.ndim != 4 or music.shape[1] != n_music:
            raise ValueError(f"batch {k}: expected shape [B, {n_music}, T, P], "
                             f"got {list(music.shape)}")
        c = np.count_nonzero(music, axis=(0, 2)).astype(np.int64)  # (C, P)
        if total is None:
            total = c
        elif total.shape != c.shape:
            raise ValueError(f"batch {k}: {c.shape[1]} pitch rows, earlier batches had "
                             f"{total.shape[1]}")
        else:
            total += c
    if total is None:
        raise ValueError("batches: no training batch to fit on")
    return total


def zone_dp(counts: np.ndarray, order: tuple[int, ...]) -> tuple[int, np.ndarray]:
    """Best contiguous zones for one bottom-to-top instrument order.

    Zone ``k`` (instrument ``order[k]``) covers rows ``[b_k, b_{k+1})`` with
    ``0 = b_0 <= b_1 <= ... <= b_K = P`` (empty zones allowed). With prefix sums
    ``C_i[b]`` = cells of instrument ``i`` below row ``b``, the score of a layout is
    ``sum_k C_{order[k]}[b_{k+1}] - C_{order[k]}[b_k]`` and

        f_0[0] = 0, f_0[b > 0] = -inf
        f_k[b] = C_i[b] + max_{a <= b} (f_{k-1}[a] - C_i[a]),   i = order[k-1]

    where the inner max is a running maximum over ``a``, so one order costs ``O(K * P)``
    (brute force over boundaries costs ``O(P^(K-1))``).

    Args:
        counts: int ``[K, P]`` cells per instrument and pitch row.
        order: a permutation of ``range(K)``, bottom zone first.

    Returns:
        ``(score, bounds)``: the cells inside their own zone, and int ``[K + 1]`` zone
        boundaries ``b_0 .. b_K`` (on ties, each boundary from the top down is the lowest
        optimal one).
    """
    n_k, n_p = counts.shape
    prefix = np.zeros((n_k, n_p + 1), dtype=np.int64)
    np.cumsum(counts, axis=1, out=prefix[:, 1:])
    neg = np.iinfo(np.int64).min // 4
    f = np.full(n_p + 1, neg, dtype=np.int64)
    f[0] = 0
    back = np.zeros((len(order), n_p + 1), dtype=np.int64)  # argmax a for each (k, b)
    for k, inst in enumerate(order):
        g = f - prefix[inst]  # g[a] = f_{k-1}[a] - C_i[a]
        run_max = np.maximum.accumulate(g)
        # index of the first maximum of g[0..b]: where the running max last increased
        increased = np.r_[True, run_max[1:] > run_max[:-1]]
        back[k] = np.maximum.accumulate(np.where(increased, np.arange(n_p + 1), 0))
        f = prefix[inst] + run_max
    bounds = np.zeros(len(order) + 1, dtype=np.int64)
    bounds[-1] = n_p
    for k in range(len(order) - 1, -1, -1):
        bounds[k] = back[k, bounds[k + 1]]
    return int(f[n_p]), bounds


def best_zones(counts: np.ndarray) -> tuple[int, tuple[int, ...], np.ndarray]:
    """Zones, order and boundaries maximising the cells inside their own instrument's zone.

    Runs :func:`zone_dp` for every one of the ``K!`` orders: ``O(K! * K * P)`` in all
    (120 * 5 * 72 steps for the contract), against ``O(K! * P^(K-1))`` for brute force.
    Past :data:`MAX_ORDERED_ZONES` instruments (a wider instrument set) the same maximum
    is found over subsets instead (:func:`subset_zones`, ``O(2^K * K * P)``); its ties may
    fall to another order.

    Args:
        counts: int ``[K, P]`` cells per instrument and pitch row.

    Returns:
        ``(score, order, bounds)``; the first optimal order in lexicographic order wins.
    """
    if counts.shape[0] > MAX_ORDERED_ZONES:
        return subset_zones(counts)
    best: tuple[int, tuple[int, ...], np.ndarray] | None = None
    for order in itertools.permutations(range(counts.shape[0])):
        score, bounds = zone_dp(counts, order)
        if best is None or score > best[0]:
            best = (score, order, bounds)
    assert best is not None
    return best


MAX_ORDERED_ZONES = 6  # instruments up to which every order is tried (720 orders)


def subset_zones(counts: np.ndarray) -> tuple[int, tuple[int, ...], np.ndarray]:
    """:func:`best_zones` by dynamic programming over the set of instruments placed.

    ``f[S][b]`` = the most cells inside their own zone with the instruments of ``S``
    stacked, in some order, in rows ``[0, b)``; adding instrument ``i`` on top is the
    running maximum of :func:`zone_dp`. The optimum equals the one over every order.

    Returns:
        ``(score, order, bounds)`` as :func:`best_zones`.
    """
    n_k, n_p = counts.shape
    prefix = np.zeros((n_k, n_p + 1), dtype=np.int64)
    np.cumsum(counts, axis=1, out=prefix[:, 1:])
    neg = np.iinfo(np.int64).min // 4
    f = np.full((1 << n_k, n_p + 1), neg, dtype=np.int64)
    f[0, 0] = 0
    came = np.full((1 << n_k, n_p + 1, 2), -1, dtype=np.int64)  # (instrument on top, a)
    for mask in range(1 << n_k):  # a superset always comes later
        if f[mask].max() == neg:
            continue
        for inst in (i for i in range(n_k) if not mask >> i & 1):
            run_max = np.maximum.accumulate(f[mask] - prefix[inst])
            increased = np.r_[True, run_max[1:] > run_max[:-1]]
            start = np.maximum.accumulate(np.where(increased, np.arange(n_p + 1), 0))
            cand, new = prefix[inst] + run_max, mask | 1 << inst
            better = cand > f[new]
            f[new, better] = cand[better]
            came[new, better] = np.stack([np.full(n_p + 1, inst), start], axis=1)[better]
    mask, b, order, bounds = (1 << n_k) - 1, n_p, [], [n_p]
    while mask:
        inst, b = (int(v) for v in came[mask, b])
        order.append(inst)
        bounds.append(b)
        mask ^= 1 << inst
    return (int(f[(1 << n_k) - 1, n_p]), tuple(reversed(order)),
            np.array(bounds[::-1], dtype=np.int64))


class Baseline:
    """A pitch -> instrument rule fitted from :func:`pitch_counts` statistics.

    Subclasses define :meth:`_assignment`; ``assignment[p]`` is the instrument channel
    (0..4) given to every sounding cell of pitch row ``p``.
    """

    name: ClassVar[str] = "baseline"

    def __init__(self) -> None:
        self.counts: np.ndarray | None = None  # int64 [C, P]
        self.assignment: np.ndarray | None = None  # int64 [P]
        self.names: tuple[str, ...] = MUSIC_INSTRUMENTS  # the classes, in channel order

    def fit_counts(self, counts: np.ndarray, names: tuple[str, ...] = MUSIC_INSTRUMENTS
                   ) -> Baseline:
        """Fit from precomputed ``counts`` (int ``[C, P]``) of the classes ``names`` (the
        paper's five by default); returns ``self``."""
        counts = np.asarray(counts, dtype=np.int64)
        if counts.ndim != 2 or counts.shape[0] != len(names):
            raise ValueError(f"counts: expected shape [{len(names)}, P] ({', '.join(names)}), "
                             f"got {list(counts.shape)}")
        self.counts, self.names = counts, tuple(names)
        self.assignment = self._assignment(counts)
        return self

    def _assignment(self, counts: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict(self, mixture: Any) -> np.ndarray:
        """Give every sounding mixture cell its row's instrument.

        Args:
            mixture: binary ``[N, 1, T, P]`` (numpy or torch).

        Returns:
            bool ``[N, C, T, P]``, exactly one instrument on every sounding cell.
        """
        if self.assignment is None:
            raise RuntimeError(f"{self.name}: predict called before fit")
        m = _check_mixture(mixture)
        if m.shape[3] != self.assignment.size:
            raise ValueError(f"mixture: {m.shape[3]} pitch rows, {self.name} was fitted on "
                             f"{self.assignment.size}")
        one_hot = self.assignment[None, :] == np.arange(len(self.names))[:, None]  # (C, P)
        return m & one_hot[None, :, None, :]  # (N, C, T, P)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fitted state: ``{"name", "counts", "assignment"}``, and ``"classes"``
        (the rows of ``counts``) for a set other than the paper's."""
        if self.counts is None or self.assignment is None:
            raise RuntimeError(f"{self.name}: to_dict called before fit")
        classes = {} if self.names == MUSIC_INSTRUMENTS else {"classes": list(self.names)}
        return {"name": self.name, "counts": self.counts.tolist(),
                "assignment": [self.names[i] for i in self.assignment], **classes}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(fitted={self.assignment is not None})"


def _check_mixture(mixture: Any) -> np.ndarray:
    """Convert and shape-check a mixture ``[N, 1, T, P]`` to numpy bool."""
    m = to_bool_array(mixture, "mixture")
    if m.ndim != 4 or m.shape[1] != 1:
        raise ValueError(f"mixture: expected shape [N, 1, T, P], got {list(m.shape)}")
    return m


class MostCommonBaseline(Baseline):
    """Every sounding cell -> the instrument with the most training cells."""

    name = "most_common"

    def _assignment(self, counts: np.ndarray) -> np.ndarray:
        return np.full(counts.shape[1], int(np.argmax(counts.sum(axis=1))), dtype=np.int64)


class PitchRowBaseline(Baseline):
    """Every pitch row -> the instrument with the most training cells at that row; a row
    never seen in training gets the overall most common instrument."""

    name = "pitch_row"

    def _assignment(self, counts: np.ndarray) -> np.ndarray:
        out = np.argmax(counts, axis=0).astype(np.int64)
        out[counts.sum(axis=0) == 0] = int(np.argmax(counts.sum(axis=1)))
        return out


class ZoneBaseline(Baseline):
    """One contiguous pitch zone per instrument; order and boundaries maximise the training
    cells inside their own instrument's zone (:func:`best_zones`). Zones may be empty."""

    name = "zone"

    def __init__(self) -> None:
        super().__init__()
        self.order: tuple[int, ...] | None = None  # bottom zone first
        self.bounds: np.ndarray | None = None  # int64 [6], zone k = [bounds[k], bounds[k+1])
        self.score: int | None = None  # training cells inside their own zone

    def _assignment(self, counts: np.ndarray) -> np.ndarray:
        self.score, self.order, self.bounds = best_zones(counts)
        out = np.empty(counts.shape[1], dtype=np.int64)
        for k, inst in enumerate(self.order):
            out[self.bounds[k]:self.bounds[k + 1]] = inst
        return out

    def to_dict(self) -> dict[str, Any]:
        """As :meth:`Baseline.to_dict`, plus the fitted ``zones`` (for a reader of the file)."""
        return {**super().to_dict(), "zones": self.zones()}

    def zones(self) -> dict[str, tuple[int, int]]:
        """``{instrument: (first row, end row exclusive)}``, bottom zone first."""
        if self.order is None or self.bounds is None:
            raise RuntimeError("zone: zones called before fit")
        return {self.names[i]: (int(self.bounds[k]), int(self.bounds[k + 1]))
                for k, i in enumerate(self.order)}


class OracleBaseline:
    """The best partition-mode answer, read from the truth (an upper bound, not a method).

    Every sounding mixture cell gets exactly one instrument, one that truly plays it.
    Where several instruments share a cell, it goes to the one whose true note through
    that cell is shortest (ties: contract order), so a short note doubled inside a long
    one is kept whole while the long one still keeps most of its cells.

    Exact maximum, over every partition answer, of cell accuracy (a shared cell is wrong
    whatever one picks) and minimum of consistency (0) and diversity (k-1 errors on a
    cell that k instruments share); for note accuracy and per-instrument F1 the shared
    cells can be split in other ways, so there the rule is a strong, not a proven, bound.
    A sounding cell that no true instrument plays (truth and mixture disagree) stays empty.
    """

    name: ClassVar[str] = "oracle"

    def predict(self, mixture: Any, true: Any) -> np.ndarray:
        """Best partition answer for ``mixture`` given the true music.

        Args:
            mixture: binary ``[N, 1, T, P]``.
            true: binary ``[N, C, T, P]``.

        Returns:
            bool ``[N, C, T, P]`` with at most one instrument per cell.
        """
        m = _check_mixture(mixture)
        t = to_bool_array(true, "true")
        n_music = t.shape[1] if t.ndim == 4 else N_MUSIC
        want = (m.shape[0], n_music, m.shape[2], m.shape[3])
        if t.shape != want:
            raise ValueError(f"true: expected shape {list(want)}, got {list(t.shape)}")
        length = np.where(t, note_lengths(t), np.iinfo(np.int64).max)  # (N, C, T, P)
        pick = np.argmin(length, axis=1)  # (N, T, P): first shortest on ties
        one_hot = pick[:, None] == np.arange(n_music)[None, :, None, None]
        return one_hot & t & m


FITTED_BASELINES: dict[str, type[Baseline]] = {
    cls.name: cls for cls in (MostCommonBaseline, ZoneBaseline, PitchRowBaseline)
}
"""The fitted baselines by name, in table order."""


def fit_baselines(batches: Iterable[Any], names: tuple[str, ...] = MUSIC_INSTRUMENTS
                  ) -> dict[str, Baseline]:
    """Fit every baseline of :data:`FITTED_BASELINES` in one pass over the training music.

    Args:
        batches: iterable of binary music ``[B, C, T, P]`` (read once).
        names: the ``C`` classes (the paper's five by default).

    Returns:
        ``{name: fitted baseline}`` in table order (the oracle is separate: it needs the
        truth at prediction time).
    """
    counts = pitch_counts(batches, len(names))
    return {name: cls().fit_counts(counts, names) for name, cls in FITTED_BASELINES.items()}


def save_baselines(path: str | Path, baselines: dict[str, Baseline]) -> None:
    """Write fitted baselines as JSON (atomically: temp file + rename).

    Args:
        path: target ``.json`` file.
        baselines: ``{name: fitted baseline}`` as from :func:`fit_baselines`.
    """
    path = Path(path)
    payload = {name: b.to_dict() for name, b in baselines.items()}
    atomic_write_json(path, payload, indent=1)


def load_baselines(path: str | Path) -> dict[str, Baseline]:
    """Read baselines written by :func:`save_baselines` (refitted from the stored counts).

    Raises:
        ValueError: one line naming the file when it is not such a JSON file.
    """
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
        out: dict[str, Baseline] = {}
        for name, state in payload.items():
            if name not in FITTED_BASELINES:
                raise ValueError(f"unknown baseline {name!r}, allowed: "
                                 f"{', '.join(FITTED_BASELINES)}")
            names = tuple(state.get("classes", MUSIC_INSTRUMENTS))
            out[name] = FITTED_BASELINES[name]().fit_counts(np.asarray(state["counts"]), names)
        return out
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise InputError(f"{path}: not a baselines file ({err})") from err
