"""Metrics on hand-made rolls whose values are worked out by hand in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from data.contract import BASS, DRUM, GUITAR, PIANO, STRING
from utils.evaluation.metrics import (
    METRIC_KEYS,
    MetricAccumulator,
    format_table,
    markdown_table,
    note_counts,
)


def compute_metrics(pred, true, mixture) -> dict[str, float]:
    """Every metric of one set of phrases, through the accumulator (one update)."""
    acc = MetricAccumulator()
    acc.update(pred, true, mixture)
    return acc.compute()


# model channel of each instrument (melody is not a model channel)
PI, GU, BA, ST, DR = (i - 1 for i in (PIANO, GUITAR, BASS, STRING, DRUM))


@pytest.fixture
def hand_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One phrase, T=4, P=2.

    truth: piano row0 t0-3; guitar AND bass row1 t0-1 (shared); drum row1 t3.
    mixture: row0 t0-3, row1 t0,t1,t3 (7 of 8 cells).
    pred: piano row0 t0-2; bass row1 t0; string row0 t3 and row1 t2 (outside the mixture).
    """
    true = np.zeros((1, 5, 4, 2), dtype=bool)
    true[0, PI, 0:4, 0] = True
    true[0, GU, 0:2, 1] = True
    true[0, BA, 0:2, 1] = True
    true[0, DR, 3, 1] = True
    mixture = true.any(axis=1, keepdims=True)
    pred = np.zeros_like(true)
    pred[0, PI, 0:3, 0] = True
    pred[0, BA, 0, 1] = True
    pred[0, ST, 3, 0] = True
    pred[0, ST, 2, 1] = True
    return pred, true, mixture


def metric(name: str, pred, true, mixture) -> float:
    """One metric, computed the one way the project computes them."""
    return compute_metrics(pred, true, mixture)[name]


def test_consistency_by_hand(hand_case):
    pred, true, mixture = hand_case
    # OR(pred): row0 all, row1 t0,t2. mixture row1 t0,t1,t3 -> mismatches t1,t2,t3 = 3 of 8
    assert metric("consistency", pred, true, mixture) == pytest.approx(3 / 8)
    assert metric("consistency", _one_hot_piano(mixture), true, mixture) == 0


def _one_hot_piano(mixture: np.ndarray) -> np.ndarray:
    out = np.zeros((mixture.shape[0], 5, *mixture.shape[2:]), dtype=bool)
    out[:, PI] = mixture[:, 0]
    return out


def test_diversity_by_hand(hand_case):
    pred, true, mixture = hand_case
    # XOR(true, pred & mix): piano t3, guitar t0,t1, bass t1, string row0 t3, drum t3 = 6 of 40
    # (string row1 t2 is outside the mixture, masked away)
    assert metric("diversity", pred, true, mixture) == pytest.approx(6 / 40)
    assert metric("diversity", true, true, mixture) == 0


def test_cell_accuracy_by_hand(hand_case):
    pred, true, mixture = hand_case
    # right: row0 t0,t1,t2; wrong: row0 t3 (string not piano), row1 t0 ({bass} vs
    # {guitar,bass}), row1 t1 (nothing), row1 t3 (nothing) -> 3 of 7
    assert metric("cell_accuracy", pred, true, mixture) == pytest.approx(3 / 7)
    assert metric("cell_accuracy", true, true, mixture) == 1.0


def test_note_accuracy_by_hand(hand_case):
    pred, true, mixture = hand_case
    # notes: piano 3/4 right; guitar 0/2; bass 1/2 (not more than half); drum 0/1 -> 1 of 4
    assert metric("note_accuracy", pred, true, mixture) == pytest.approx(1 / 4)


def test_note_runs_split_at_gaps_rows_and_phrases():
    true = np.zeros((2, 5, 6, 2), dtype=bool)
    true[0, PI, 0:2, 0] = True  # note A, 2 cells
    true[0, PI, 3:6, 0] = True  # note B, 3 cells, touches the end of phrase 0
    true[1, PI, 0:2, 0] = True  # note C starts phrase 1: not joined to B
    true[0, PI, 3:6, 1] = True  # note D on the next pitch row, same time as B
    pred = np.zeros_like(true)
    pred[0, PI, 0, 0] = True  # A: 1 of 2 -> wrong
    pred[0, PI, 4:6, 0] = True  # B: 2 of 3 -> right
    pred[1, PI, 0:2, 0] = True  # C: 2 of 2 -> right
    pred[0, GU, 3:6, 1] = True  # D: predicted for the wrong instrument -> wrong
    assert note_counts(pred, true) == (4, 2)


def test_instrument_prf_by_hand(hand_case):
    pred, true, mixture = hand_case
    acc = MetricAccumulator()
    acc.update(pred, true, mixture)
    prf = acc.instrument_prf()
    assert prf["piano"] == pytest.approx({"precision": 1.0, "recall": 0.75, "f1": 6 / 7,
                                          "support": 4.0})
    assert prf["guitar"] == pytest.approx({"precision": 0.0, "recall": 0.0, "f1": 0.0,
                                           "support": 2.0})
    assert prf["bass"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3,
                                         "support": 2.0})
    assert prf["string"] == pytest.approx({"precision": 0.0, "recall": 0.0, "f1": 0.0,
                                           "support": 0.0})
    assert prf["drum"]["f1"] == 0.0


def test_absent_instrument_scores_one_and_is_left_out_of_macro_f1():
    true = np.zeros((1, 5, 4, 3), dtype=bool)
    true[0, PI, :, 0] = True
    true[0, BA, :2, 1] = True
    mixture = true.any(axis=1, keepdims=True)
    pred = true.copy()
    pred[0, BA] = False  # bass missed: F1 0; piano perfect: F1 1; the rest absent
    res = compute_metrics(pred, true, mixture)
    assert res["guitar_f1"] == res["guitar_precision"] == res["guitar_recall"] == 1.0
    assert res["macro_f1"] == pytest.approx(0.5)
    assert res["bass_precision"] == 0.0


def test_empty_input_is_finite():
    z = np.zeros((1, 5, 4, 3), dtype=bool)
    res = compute_metrics(z, z, z[:, :1])
    assert res["consistency"] == 0.0 and res["diversity"] == 0.0
    assert res["cell_accuracy"] == res["note_accuracy"] == res["macro_f1"] == 1.0
    assert all(math.isfinite(v) for v in res.values())


def test_compute_metrics_matches_single_functions(hand_case):
    pred, true, mixture = hand_case
    res = compute_metrics(pred, true, mixture)
    assert list(res) == list(METRIC_KEYS)
    assert res["consistency"] == pytest.approx(3 / 8)
    assert res["diversity"] == pytest.approx(6 / 40)
    assert res["cell_accuracy"] == pytest.approx(3 / 7)
    assert res["note_accuracy"] == pytest.approx(1 / 4)
    assert res["macro_f1"] == pytest.approx((6 / 7 + 2 / 3) / 5)


def test_accumulator_equals_one_shot_on_concatenation():
    rng = np.random.default_rng(0)
    true = rng.random((7, 5, 16, 10)) < 0.2
    mixture = true.any(axis=1, keepdims=True)
    pred = (rng.random(true.shape) < 0.3) & (rng.random(true.shape) < 0.5 + 0.5 * true)
    acc = MetricAccumulator()
    for lo, hi in [(0, 1), (1, 4), (4, 7)]:  # uneven batches
        acc.update(torch.from_numpy(pred[lo:hi]).float(), true[lo:hi], mixture[lo:hi])
    streamed = acc.compute()
    one_shot = compute_metrics(pred, true, mixture)
    assert streamed == pytest.approx(one_shot, abs=0, rel=1e-12)


def test_torch_and_numpy_agree(hand_case):
    pred, true, mixture = hand_case
    as_torch = [torch.from_numpy(a.astype(np.float32)) for a in hand_case]
    assert compute_metrics(*as_torch) == compute_metrics(pred, true, mixture)


def test_bad_inputs_raise_naming_the_argument(hand_case):
    pred, true, mixture = hand_case
    with pytest.raises(ValueError, match="pred"):
        compute_metrics(pred[:, :4], true, mixture)
    with pytest.raises(ValueError, match="mixture"):
        compute_metrics(pred, true, mixture[..., :1])
    with pytest.raises(ValueError, match="true"):
        compute_metrics(pred, true[:, :, :2], mixture)
    with pytest.raises(ValueError, match="pred: expected a binary roll"):
        compute_metrics(pred * 0.7, true, mixture)


def test_tables():
    rows = {"model": {"consistency": 0.01, "cell_accuracy": 0.5},
            "zone": {"consistency": 0.0, "cell_accuracy": 0.25}}
    text = format_table(rows)
    lines = text.splitlines()
    assert lines[0].split() == ["system", "consistency", "cell_accuracy"]
    assert lines[2].split() == ["model", "0.0100", "0.5000"]
    assert len({len(line) for line in lines[1:]}) == 1  # aligned columns
    md = markdown_table(rows, ["cell_accuracy", "missing"], transpose=True).splitlines()
    assert md[0] == "| metric | model | zone |"
    assert md[1] == "| --- | ---: | ---: |"
    assert md[2] == "| cell_accuracy | 0.5000 | 0.2500 |"
    assert md[3] == "| missing | n/a | n/a |"
