"""Baselines fitted on toy music predict what they should; the zone DP equals brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from data.contract import BASS, GUITAR, PIANO, STRING
from data.roll import note_lengths
from tests.test_metrics import compute_metrics
from utils.evaluation.baselines import (
    MostCommonBaseline,
    OracleBaseline,
    PitchRowBaseline,
    ZoneBaseline,
    best_zones,
    fit_baselines,
    load_baselines,
    pitch_counts,
    save_baselines,
    zone_dp,
)

PI, GU, BA, ST = (i - 1 for i in (PIANO, GUITAR, BASS, STRING))  # model channels

# Cells per (model channel, pitch row) of the toy training set, P = 5:
#   string: row0 5, row4 6   (mean row 2.2: low AND high)
#   bass:   row0 1, row1 4, row2 4   (mean row 1.3)
#   guitar: row3 4   (mean row 3)
# Sorting zones by mean pitch (bass, string, guitar) keeps at most 15 cells in their own
# zone (bass rows 0-2 = 9, string rows 3-4 = 6). The optimum puts string on TOP with only
# its high cluster: bass rows 0-2 (9) + guitar row 3 (4) + string row 4 (6) = 19.
TOY_COUNTS = np.zeros((5, 5), dtype=np.int64)
TOY_COUNTS[ST, [0, 4]] = [5, 6]
TOY_COUNTS[BA, [0, 1, 2]] = [1, 4, 4]
TOY_COUNTS[GU, 3] = 4


def toy_batches(counts: np.ndarray = TOY_COUNTS, t: int = 8) -> list[np.ndarray]:
    """Music with exactly ``counts[i, p]`` on-cells per instrument and row, in 2 batches."""
    music = np.zeros((2, 5, t, counts.shape[1]), dtype=bool)
    for i, p in zip(*np.nonzero(counts)):
        n = int(counts[i, p])
        music[0, i, :min(n, t), p] = True
        music[1, i, :max(n - t, 0), p] = True
    return [music[:1], torch.from_numpy(music[1:])]


def test_pitch_counts_stream_over_batches():
    np.testing.assert_array_equal(pitch_counts(toy_batches()), TOY_COUNTS)
    with pytest.raises(ValueError, match="batch 0"):
        pitch_counts([np.zeros((1, 4, 8, 5), dtype=bool)])
    with pytest.raises(ValueError, match="no training batch"):
        pitch_counts([])


def test_zone_picks_the_non_obvious_order_and_boundaries():
    zone = ZoneBaseline().fit_counts(pitch_counts(toy_batches()))
    assert zone.score == 19
    assert zone.assignment.tolist() == [BA, BA, BA, GU, ST]
    zones = {k: v for k, v in zone.zones().items() if v[0] < v[1]}
    assert zones == {"bass": (0, 3), "guitar": (3, 4), "string": (4, 5)}
    # the mean-pitch order does worse
    assert zone_dp(TOY_COUNTS, (BA, ST, GU, PI, 4))[0] == 15


def test_pitch_row_and_most_common():
    rows = PitchRowBaseline().fit_counts(pitch_counts(toy_batches()))
    assert rows.assignment.tolist() == [ST, BA, BA, GU, ST]  # not contiguous
    common = MostCommonBaseline().fit_counts(pitch_counts(toy_batches()))
    assert common.assignment.tolist() == [ST] * 5  # string has 11 cells, bass 9, guitar 4


def test_unseen_row_falls_back_to_most_common():
    counts = TOY_COUNTS.copy()
    counts[:, 2] = 0
    assert PitchRowBaseline().fit_counts(counts).assignment[2] == ST


def _brute_force(counts: np.ndarray, order: tuple[int, ...]) -> int:
    n_k, n_p = counts.shape
    best = -1
    for cuts in itertools.combinations_with_replacement(range(n_p + 1), n_k - 1):
        bounds = (0, *cuts, n_p)
        score = sum(int(counts[i, bounds[k]:bounds[k + 1]].sum()) for k, i in enumerate(order))
        best = max(best, score)
    return best


def test_zone_dp_equals_brute_force_on_random_instances():
    rng = np.random.default_rng(1)
    for _ in range(3):
        counts = rng.integers(0, 10, size=(4, 6))
        overall = max(_brute_force(counts, o) for o in itertools.permutations(range(4)))
        for order in itertools.permutations(range(4)):
            score, bounds = zone_dp(counts, order)
            assert score == _brute_force(counts, order)
            # the returned boundaries achieve the score
            assert bounds[0] == 0 and bounds[-1] == 6 and np.all(np.diff(bounds) >= 0)
            assert score == sum(int(counts[i, bounds[k]:bounds[k + 1]].sum())
                                for k, i in enumerate(order))
        assert best_zones(counts)[0] == overall


def test_predict_partitions_the_mixture():
    baselines = fit_baselines(toy_batches())
    assert list(baselines) == ["most_common", "zone", "pitch_row"]
    rng = np.random.default_rng(2)
    mixture = rng.random((3, 1, 8, 5)) < 0.4
    for b in baselines.values():
        pred = b.predict(torch.from_numpy(mixture))
        assert pred.dtype == np.bool_ and pred.shape == (3, 5, 8, 5)
        np.testing.assert_array_equal(pred.sum(axis=1), mixture[:, 0])  # one each
        assert compute_metrics(pred, pred, mixture)["consistency"] == 0.0
    pred = baselines["pitch_row"].predict(mixture)
    np.testing.assert_array_equal(pred[:, ST, :, 0], mixture[:, 0, :, 0])
    with pytest.raises(ValueError, match="mixture"):
        baselines["zone"].predict(mixture[..., :4])
    with pytest.raises(RuntimeError, match="before fit"):
        ZoneBaseline().predict(mixture)


def test_save_load_round_trip(tmp_path):
    baselines = fit_baselines(toy_batches())
    path = tmp_path / "baselines.json"
    save_baselines(path, baselines)
    loaded = load_baselines(path)
    assert list(loaded) == list(baselines)
    for name, b in baselines.items():
        np.testing.assert_array_equal(loaded[name].assignment, b.assignment)
    assert loaded["zone"].zones() == baselines["zone"].zones()
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="bad.json"):
        load_baselines(tmp_path / "bad.json")


def test_note_lengths():
    roll = np.zeros((2, 6, 2), dtype=bool)
    roll[0, 0:2, 0] = True
    roll[0, 3:6, 0] = True
    roll[1, 0:4, 0] = True
    roll[0, 2, 1] = True
    got = note_lengths(roll)
    assert got[0, :, 0].tolist() == [2, 2, 0, 3, 3, 3]
    assert got[1, :, 0].tolist() == [4, 4, 4, 4, 0, 0]
    assert got[0, :, 1].tolist() == [0, 0, 1, 0, 0, 0]


def test_oracle_keeps_short_notes_inside_long_ones():
    true = np.zeros((1, 5, 8, 3), dtype=bool)
    true[0, ST, 0:8, 0] = True  # long string note ...
    true[0, PI, 2:4, 0] = True  # ... doubled by a short piano note
    true[0, GU, 0:4, 1] = True  # exact doubling of equal length: contract order wins
    true[0, BA, 0:4, 1] = True
    true[0, BA, 5, 2] = True  # unshared
    mixture = true.any(axis=1, keepdims=True)
    pred = OracleBaseline().predict(mixture, true)
    assert pred[0, PI, 2:4, 0].all() and not pred[0, ST, 2:4, 0].any()
    assert pred[0, ST, [0, 1, 4, 5, 6, 7], 0].all()
    assert pred[0, GU, 0:4, 1].all() and not pred[0, BA, 0:4, 1].any()
    assert pred[0, BA, 5, 2]
    res = compute_metrics(pred, true, mixture)
    assert res["consistency"] == 0.0
    # 8 + 4 + 1 = 13 sounding cells, 2 + 4 shared -> 7 right
    assert res["cell_accuracy"] == pytest.approx(7 / 13)
    # notes: string 6/8 right, piano right, guitar right, bass row1 wrong, bass row2 right
    assert res["note_accuracy"] == pytest.approx(4 / 5)
