"""The learned song pass on songs as users bring them: the presence head and its gate,
weighted corpora, whole-song reading and song-level augmentation with its cache."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from data.midi import read_notes
from data.preprocess import build
from data.song_roll import load_mixture
from models.song_pass import SongPassNet, SongPassSpec, gate_logits
from tests.fixtures_midi import Track, dense_tracks, write_midi
from utils.core.config import ConfigError, load_config
from utils.evaluation.panel import PanelReport, corpus_score
from utils.evaluation.song_modes import whole_song_truth
from utils.evaluation.songs import SongScorer, SongTruth, fed_song
from utils.separation.first_pass import FirstPass
from utils.separation.notes import NoteAssignment
from utils.separation.separator import Separator
from utils.separation.song_pass import (
    SONG_PASS_FILE,
    SongNoteFeatures,
    load_song_pass,
    note_features,
    song_pass_state,
)
from utils.training.song_augment import SongAugment, SongReading, changed_song, fed_mixture
from utils.training.song_pass_fit import (
    FitOptions,
    Sequences,
    draw_songs,
    train_network,
    validation_scores,
)

TINY = SongPassSpec(width=16, levels=2, stacks=1)
PRESENT = replace(TINY, presence=True)  # with the presence head
PIANO, GUITAR, BASS, STRING = range(4)  # targets 0..3 of the pitched instruments

ROOT = Path(__file__).resolve().parents[1]


def _feats(rows: np.ndarray, log_probs: np.ndarray | None = None) -> SongNoteFeatures:
    n = rows.size
    return SongNoteFeatures(order=np.arange(n), rows=rows.astype(np.int64),
                            beat=np.arange(n, dtype=np.int64) % 16,
                            numbers=np.zeros((n, 9), dtype=np.float32),
                            log_probs=np.full((n, 4), np.log(0.25), dtype=np.float32)
                            if log_probs is None else log_probs.astype(np.float32))


def _songs(kind: str, n_songs: int, rng: np.random.Generator) -> Sequences:
    """Bass songs (low rows, bass alone) or piano-and-strings songs (piano rows 40..49,
    strings 50..60); every first pass says nothing (uniform)."""
    feats, targets = [], []
    for _ in range(n_songs):
        if kind == "bass":
            rows = rng.integers(0, 16, 40)
            target = np.full(40, BASS)
        else:
            rows = rng.integers(40, 61, 40)
            target = np.where(rows < 50, PIANO, STRING)
        feats.append(_feats(rows))
        targets.append(target.astype(np.int64))
    return Sequences(feats, targets)


def _two_corpora() -> tuple[dict[str, tuple[Sequences, float]], dict[str, Sequences]]:
    """Train songs of a bass corpus and a piano-and-strings one, weighted equally, and their
    validation songs (seeded)."""
    rng = np.random.default_rng(0)
    train = {"bass": (_songs("bass", 12, rng), 0.5), "ensemble": (_songs("pno", 12, rng), 0.5)}
    return train, {"bass": _songs("bass", 4, rng), "ensemble": _songs("pno", 4, rng)}


def test_presence_head_learns_which_instruments_a_song_holds() -> None:
    train, val = _two_corpora()
    net, record = train_network(train, val, PRESENT, 120, 0, False)
    assert record["best_step"] > 0
    for corpus in ("bass", "ensemble"):
        assert record["val_corpora"][corpus]["presence_accuracy"] >= 0.95
        assert "presence_accuracy" not in record["first_pass_val_corpora"][corpus]
    mean = np.mean([s["pitched_note_accuracy"] for s in record["val_corpora"].values()])
    assert record["val_pitched_note_accuracy"] == pytest.approx(mean, abs=1e-4)
    with torch.no_grad():
        f = val["bass"].feats[0]
        _, presence = net.song_outputs(torch.from_numpy(f.rows)[None],
                                       torch.from_numpy(f.beat)[None],
                                       torch.from_numpy(f.numbers)[None],
                                       torch.from_numpy(f.log_probs)[None])
    assert (presence[0] >= 0).tolist() == [False, False, True, False]


def test_a_longer_crop_reads_fewer_songs_a_step(monkeypatch: pytest.MonkeyPatch) -> None:
    from utils.training import song_pass_fit
    train, val = _two_corpora()
    seen: list[tuple[int, int | None]] = []
    batch = Sequences.batch

    def spy(self: Sequences, pick, crop=None, rng=None, velocity_scale=None):  # noqa: ANN001
        seen.append((len(pick), crop))
        return batch(self, pick, crop, rng, velocity_scale)

    monkeypatch.setattr(song_pass_fit.Sequences, "batch", spy)
    _, default = train_network(train, val, TINY, 2, 0, False)
    assert seen[:2] == [(8, 512), (8, 512)] and default["crop"] == 512  # the recipe's
    seen.clear()
    _, longer = train_network(train, val, TINY, 2, 0, False, FitOptions(crop=2048))
    assert seen[:2] == [(2, 2048), (2, 2048)] and longer["crop"] == 2048  # 4,096 notes a step
    seen.clear()
    train_network(train, val, TINY, 1, 0, False, FitOptions(crop=4096))
    assert seen[0] == (1, 4096)


def test_the_crop_key_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "cfg.json"
    for bad in (10, 5000):
        path.write_text(json.dumps({"song_pass_crop": bad}))
        with pytest.raises(ConfigError, match=f"{path}: 'song_pass_crop' must be an integer "
                                              "in 64..4096"):
            load_config(path)
    for bad in (True, 512.0):
        path.write_text(json.dumps({"song_pass_crop": bad}))
        with pytest.raises(ConfigError, match=f"{path}: 'song_pass_crop' must be int"):
            load_config(path)
    path.write_text(json.dumps({"song_pass_crop": 2048}))
    assert load_config(path).song_pass_crop == 2048


def test_moving_average_is_what_is_validated_and_kept() -> None:
    train, val = _two_corpora()
    plain, plain_record = train_network(train, val, PRESENT, 120, 0, False)
    net, record = train_network(train, val, PRESENT, 120, 0, False, FitOptions(ema=0.9))
    assert record["ema"] == 0.9 and plain_record["ema"] == 0.0
    assert record["best_step"] > 0 and record["val_corpora"]["bass"]["presence_accuracy"] >= 0.95
    # the same steps, the same batches: the kept weights are the average, not the last ones
    assert any(not torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                    plain.state_dict().values()))
    mean, _ = validation_scores(net, val)[0]  # the kept weights score what the record says
    assert mean == pytest.approx(record["val_pitched_note_accuracy"], abs=1e-4)


def test_gate_is_chosen_with_the_step_on_the_validation_songs() -> None:
    train, val = _two_corpora()
    one, one_record = train_network(train, val, PRESENT, 120, 0, False)
    net, record = train_network(train, val, PRESENT, 120, 0, False,
                                FitOptions(gates=[0.5, 0.2, 0.0]))
    assert one_record["gate"] == 0.5 and one.spec.gate == 0.5
    assert record["gate"] in (0.5, 0.2, 0.0) and net.spec.gate == record["gate"]
    # gates change no training step: the kept score is the best over the same steps
    assert record["val_pitched_note_accuracy"] >= one_record["val_pitched_note_accuracy"]
    by_gate = {g: validation_scores(net, val, [g])[0][0] for g in (0.5, 0.2, 0.0)}
    assert by_gate[record["gate"]] == pytest.approx(record["val_pitched_note_accuracy"],
                                                    abs=1e-4)
    assert by_gate[record["gate"]] == max(by_gate.values())
    assert set(record["history"][-1]["val_by_gate"]) == {"0.5", "0.2", "0.0"}


def test_gate_rules_out_absent_instruments_and_keeps_the_likeliest_of_none() -> None:
    logits = torch.tensor([[[0.0, 3.0, 1.0, 2.0]]])
    assert gate_logits(logits, None) is logits
    gated = gate_logits(logits, torch.tensor([[2.0, -1.0, 0.5, -3.0]]))
    assert gated[0, 0].argmax().item() == 2  # guitar and strings predicted absent
    assert torch.isinf(gated[0, 0, [1, 3]]).all()
    none = gate_logits(logits, torch.tensor([[-4.0, -1.0, -2.0, -3.0]]))
    assert torch.isfinite(none[0, 0]).tolist() == [False, True, False, False]
    # guitar at probability 0.27: out at the default gate 0.5, in at 0.2, and no gate at 0
    presence = torch.tensor([[2.0, -1.0, 0.5, -3.0]])
    assert torch.isfinite(gate_logits(logits, presence, 0.2)[0, 0]).tolist() == \
        [True, True, True, False]
    assert gate_logits(logits, presence, 0.2)[0, 0].argmax().item() == 1
    assert gate_logits(logits, presence, 0.0) is logits


def test_gate_is_stored_with_the_network_and_checked() -> None:
    spec = replace(PRESENT, gate=0.2)
    assert spec.to_dict()["gate"] == 0.2 and SongPassSpec(**spec.to_dict()) == spec
    assert "gate" not in SongPassSpec(presence=True).to_dict()  # 0.5: stored as before
    for bad in (1.0, -0.1, True, "0.2"):
        with pytest.raises(ValueError, match="'gate'"):
            SongPassSpec(presence=True, gate=bad)


def test_a_loaded_song_pass_gates_at_its_own_gate(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = SongPassNet(PRESENT)
    with torch.no_grad():  # the head says: guitar at probability 0.27, the rest at 0.88
        net.presence_head.weight.zero_()
        net.presence_head.bias.copy_(torch.tensor([2.0, -1.0, 2.0, 2.0]))
    feats = _feats(np.arange(30, 42), np.log(np.tile([0.1, 0.7, 0.1, 0.1], (12, 1))))
    guitar = {}
    for gate in (0.5, 0.2):
        net.spec = replace(net.spec, gate=gate)
        torch.save(song_pass_state(net, {}), tmp_path / f"{gate}.ckpt")
        loaded = load_song_pass(tmp_path / f"{gate}.ckpt")
        assert loaded.spec.gate == gate
        probs, present = loaded.song_probs(feats)
        assert present.tolist() == [True, False, True, True]  # the head's answer either way
        guitar[gate] = probs[:, GUITAR]
    assert (guitar[0.5] == 0).all() and (guitar[0.2] > 0.5).any()


def _first_pass(k: int = 6) -> FirstPass:
    """``k`` pitched notes the first pass gives to guitar."""
    probs = np.tile([0.1, 0.6, 0.1, 0.1, 0.1], (k, 1))
    return FirstPass(probs=probs, rows=np.arange(k) + 30, first=np.arange(k) * 4,
                     stop=np.arange(k) * 4 + 2, velocity=np.full(k, 80),
                     pitched=np.ones(k, bool), chosen=np.ones(k, bool),
                     row_sums=np.ones((72, 5)))


def _checkpoint(path: Path, spec: SongPassSpec, presence_bias: list[float] | None) -> Path:
    torch.manual_seed(0)
    net = SongPassNet(spec)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(0.01)  # the first pass's probabilities decide
        if presence_bias is not None:
            net.presence_head.weight.zero_()
            net.presence_head.bias.copy_(torch.tensor(presence_bias))
    torch.save(song_pass_state(net, {"steps": 1}), path)
    return path


def test_the_gate_changes_a_songs_answer(tmp_path: Path) -> None:
    song = _first_pass()
    plain = load_song_pass(_checkpoint(tmp_path / "plain.ckpt", TINY, None))
    gated = load_song_pass(_checkpoint(tmp_path / "gated.ckpt", PRESENT,
                                       [4.0, -4.0, -4.0, -4.0]))
    probs, present = plain.decide_song(song)
    assert present is None and (probs[:, :4].argmax(axis=1) == GUITAR).all()
    probs, present = gated.decide_song(song)
    assert present.tolist() == [True, False, False, False]
    assert (probs[:, :4].argmax(axis=1) == PIANO).all()
    assert (probs[:, GUITAR] == 0).all()
    assert probs[:, :4].sum(axis=1) == pytest.approx(song.probs[:, :4].sum(axis=1))
    assert np.array_equal(gated.decide(song), probs)


def test_a_checkpoint_without_the_head_loads_and_scores_as_before(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / SONG_PASS_FILE, TINY, None)
    state = torch.load(path, weights_only=True)
    assert "presence" not in state["song_pass"]  # stored as before the head existed
    assert not any("presence" in k for k in state["state_dict"])
    song_pass = load_song_pass(path)
    assert song_pass.spec.presence is False
    song = _first_pass()
    feats = note_features(song, False)
    net = song_pass.net
    with torch.no_grad():  # the network's formula, written out (models/song_pass.py)
        x = torch.cat([net.pitch(torch.from_numpy(feats.rows)), net.beat(torch.from_numpy(
            feats.beat)), torch.from_numpy(feats.numbers), torch.from_numpy(feats.log_probs)],
            dim=-1)
        h = net.inp(x)[None].transpose(1, 2)
        mask = torch.ones(1, 1, h.shape[2])
        for block in net.blocks:
            h = block(h, mask)
        g = h.mean(dim=2, keepdim=True).expand_as(h)
        logits = net.out(torch.cat([h, g], dim=1).transpose(1, 2))[0] + torch.from_numpy(
            feats.log_probs)
    expected = torch.softmax(logits.double(), dim=-1).numpy() * song.probs[:, :4].sum(1)[:, None]
    probs, present = song_pass.decide_song(song)
    assert present is None
    np.testing.assert_allclose(probs[:, :4], expected, rtol=1e-6)
    assert np.array_equal(probs[:, 4], song.probs[:, 4])


def test_shipped_song_pass_has_the_presence_head_and_gates(tmp_path: Path) -> None:
    shipped = Path(__file__).resolve().parents[1] / "pretrained" / SONG_PASS_FILE
    song_pass = load_song_pass(shipped)
    assert song_pass.spec.presence is True and hasattr(song_pass.net, "presence_head")
    assert song_pass.trained["songs"] == "whole" and song_pass.trained["augment"] == 1
    # its gate is the one its training chose, from the gates it tried
    assert song_pass.spec.gate == song_pass.trained["gate"] in song_pass.trained["gates"]
    # a real song through the shipped separator and its song pass
    cfg = load_config(ROOT / "config.json", overrides={"model_dir": str(tmp_path / "none"),
                                                        "accelerator": "cpu"})
    separator = Separator.from_config(cfg)
    assert separator.second_pass.spec.gate == song_pass.spec.gate
    song = whole_song_truth(ROOT / "data" / "demo" / "openmsx" / "chemistry_lab.mid", "lab")
    shipped = separator.separate_notes(fed_song(song))
    present = shipped.presence  # the head's own answer, at probability 0.5
    assert present is not None and present.any() and not present.all()
    # gated at 0.5, an instrument the head judges absent gets no note
    net = separator.second_pass.net
    net.spec = replace(net.spec, gate=0.5)
    result = separator.separate_notes(fed_song(song))
    pitched = result.instrument[~song.notes.is_drum]
    assert set(np.unique(pitched).tolist()) <= set((np.flatnonzero(present) + 1).tolist())


def test_a_head_without_its_weights_is_refused(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / SONG_PASS_FILE, TINY, None)
    state = torch.load(path, weights_only=True)
    state["song_pass"]["presence"] = True
    torch.save(state, path)
    with pytest.raises(Exception, match="not a song pass checkpoint"):
        load_song_pass(path)


def test_weighted_corpora_draw_by_weight() -> None:
    rng = np.random.default_rng(0)
    picks = draw_songs(rng, [10, 30, 5], [0.6, 0.3, 0.1], 20000)
    corpus = np.searchsorted([10, 40, 45], picks, side="right")
    share = np.bincount(corpus, minlength=3) / picks.size
    np.testing.assert_allclose(share, [0.6, 0.3, 0.1], atol=0.015)
    assert picks.min() >= 0 and picks.max() < 45
    one = draw_songs(np.random.default_rng(3), [7], [1.0], 8)  # one corpus: as before
    assert np.array_equal(one, np.random.default_rng(3).integers(0, 7, 8))


class _Presence:
    """A song separator whose second pass predicts piano and strings in every song."""

    def separate_notes(self, song: object, **_: object) -> NoteAssignment:
        k = len(song.notes)
        return NoteAssignment(instrument=np.ones(k, np.int64), probs=np.zeros((k, 5)),
                              decided_by=np.zeros(k, np.int64),
                              presence=np.array([True, False, False, True]))


def _ensemble(tmp_path: Path) -> Path:
    tracks = dense_tracks(bars=4)
    guitar = [(s, e, p - 5) for s, e, p in tracks[0].notes[::3]]
    return write_midi(tmp_path / "song.mid", [*tracks, Track("Guitar", 25, guitar)])


def test_song_tables_report_presence_accuracy(tmp_path: Path) -> None:
    truth = whole_song_truth(_ensemble(tmp_path), "song.mid")  # piano, bass, guitar, drums
    scorer = SongScorer(_Presence(), {})
    scorer.add(truth)
    assert scorer.presence_accuracy() == {"presence_accuracy": 0.25, "presence_pairs": 4}
    rows = {"model": {"pitched_note_accuracy": 0.5, "macro_f1": 0.4, "notes": 10},
            "zone": {"pitched_note_accuracy": 0.4, "macro_f1": 0.3, "notes": 10}}
    report = PanelReport("val", "model", {"a": corpus_score("d", 1, rows, "model")},
                         settings={"presence_accuracy": {"a": 0.25}})
    assert "presence accuracy of the learned song pass" in report.table()
    assert "a 0.250" in report.table()
    plain = PanelReport("val", "model", {"a": corpus_score("d", 1, rows, "model")})
    assert "presence" not in plain.table()


def test_changed_song_is_transposed_and_reduced_then_its_mixture_rebuilt(
        tmp_path: Path) -> None:
    truth = whole_song_truth(_ensemble(tmp_path), "song.mid")
    guitar = truth.true == 2
    changed = changed_song(truth, 3, [2])
    drums = truth.notes.is_drum
    assert np.array_equal(changed.notes.pitch[~drums], truth.notes.pitch[~drums] + 3)
    assert np.array_equal(changed.notes.pitch[drums], truth.notes.pitch[drums])
    assert (changed.true[guitar] == -1).all() and not changed.fed[guitar].any()
    assert changed.fed[~guitar].all() and np.array_equal(changed.true[~guitar],
                                                         truth.true[~guitar])
    # the mixture a file holding the same tracks, moved and without the guitar, would give
    tracks = dense_tracks(bars=4, transpose=3)
    moved = write_midi(tmp_path / "moved.mid", [tracks[0], tracks[1], dense_tracks(4)[2]])
    mixture, _, _ = load_mixture(moved, notes=read_notes(moved))
    assert changed.mixture.shape == truth.mixture.shape
    assert np.array_equal(changed.mixture[: mixture.shape[0]], mixture)
    assert not changed.mixture[mixture.shape[0]:].any()
    assert np.array_equal(fed_mixture(truth, truth.fed), truth.mixture)


def test_copies_are_seeded_and_keep_a_pitched_instrument(tmp_path: Path) -> None:
    truth = whole_song_truth(_ensemble(tmp_path), "song.mid")
    augment = SongAugment(copies=3, seed=7)
    songs = list(augment.expand([truth, truth]))
    assert len(songs) == 8 and songs[0] is truth and songs[4] is truth
    again = list(SongAugment(copies=2, seed=7).expand([truth]))
    for a, b in zip(songs[1:3], again[1:]):  # copy c of song i does not depend on copies
        assert np.array_equal(a.mixture, b.mixture) and np.array_equal(a.true, b.true)
    for copy in songs[1:4]:
        kept = {c for c in np.unique(copy.true) if 1 <= c <= 4}
        assert 1 <= len(kept) <= 2  # 3 pitched instruments, one or two taken out
        assert not np.array_equal(copy.mixture, truth.mixture)
    assert SongReading().key() == []
    assert SongReading("whole", augment).key()[0] == "whole"


def test_augmented_whole_songs_are_cached_with_their_settings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_reliability_data import _corpus
    from utils import song_pass_training as training

    data = tmp_path / "data"
    build(_corpus(tmp_path / "corpus"), data, workers=1, progress=False, split_by="named",
          min_bar_density=0.0)
    seen: list[SongTruth] = []

    def first_pass_songs(separator: object, truths: list[SongTruth]) -> object:
        for truth in truths:
            seen.append(truth)
            k = len(truth.true)
            yield training.TrainingSong(FirstPass(
                probs=np.full((k, 5), 0.2, np.float32), rows=truth.notes.rows(),
                first=np.arange(k), stop=np.arange(k) + 1, velocity=np.full(k, 64),
                pitched=~truth.notes.is_drum, chosen=truth.true > 0,
                row_sums=np.zeros((72, 5), np.float32)), target=truth.true.astype(np.int64))

    monkeypatch.setattr(training, "first_pass_songs", first_pass_songs)
    separator = type("Stand", (), {"model": torch.nn.Linear(1, 1), "sampling": None,
                                   "process": type("P", (), {"describe": lambda s, x: "p"})()})()
    cache = tmp_path / "cache"
    plain = training.first_pass_split(separator, str(data), "train", cache, False)
    n = len(plain)
    assert all(t.fed is None for t in seen)  # unified: the build's tracks
    seen.clear()
    reading = SongReading("whole", SongAugment(copies=2, seed=0))
    augmented = training.first_pass_split(separator, str(data), "train", cache, False,
                                          reading=reading)
    assert len(augmented) == 3 * n and len(seen) == 3 * n
    assert all(t.fed is not None for t in seen)  # whole songs: every note fed
    originals, copies = seen[::3], [t for i, t in enumerate(seen) if i % 3]
    assert all(t.fed.all() for t in originals)
    assert all(not np.array_equal(c.mixture, seen[3 * (i // 2)].mixture)
               for i, c in enumerate(copies))  # each copy separated on its own mixture
    assert len(list(cache.glob("first_pass_*.npz"))) == 2
    seen.clear()
    again = training.first_pass_split(separator, str(data), "train", cache, False,
                                      reading=reading)
    assert seen == [] and len(again) == 3 * n  # the second run reads the cache
    assert all(np.array_equal(a.target, b.target) for a, b in zip(augmented, again))
    other = SongReading("whole", SongAugment(copies=2, seed=1))
    training.first_pass_split(separator, str(data), "train", cache, False, reading=other)
    assert len(seen) == 3 * n  # other settings: another key, separated again
    assert len(list(cache.glob("first_pass_*.npz"))) == 3


def test_bad_song_pass_weights_are_refused_with_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from utils import song_pass_training as training

    config = tmp_path / "cfg.json"
    for weights, words in (({"runs/a": 0.5, "runs/b": 0}, "weight of 'runs/b' must be > 0"),
                           ({"runs/a": "x"}, "'song_pass_data' must be"),
                           ({}, "'song_pass_data' must name at least one dataset"),
                           ({"runs/a": 1.0, "song_pass_ema": 1.0}, "'song_pass_ema' must be"),
                           ({"runs/a": 1.0, "song_pass_gates": [0.5, 1.0]},
                            "'song_pass_gates' must be a number in [0, 1)"),
                           ({"runs/a": 1.0, "song_pass_gates": []},
                            "'song_pass_gates' must be distinct numbers"),
                           ({"runs/a": 1.0, "song_pass_gates": [0.2, 0.2]},
                            "'song_pass_gates' must be distinct numbers")):
        ema = weights.pop("song_pass_ema", 0.0)
        gates = weights.pop("song_pass_gates", [0.5])
        config.write_text(json.dumps({"song_pass_data": weights, "song_pass_ema": ema,
                                      "song_pass_gates": gates}))
        assert training.main(["--config", str(config), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and words in err[0]
        assert str(config) in err[0]


def test_whole_song_pass_with_presence_trains_and_reports(
        tiny_run: object, tmp_path: Path) -> None:
    import evaluate
    from utils import song_pass_training as training
    from utils.core.checkpoints import find_checkpoint
    from utils.core.config import load_config
    from utils.separation.separator import Separator

    config = tmp_path / "cfg.json"
    data_dir = tiny_run.data_dir
    config.write_text(json.dumps({
        **tiny_run.to_dict(), "model_dir": str(tmp_path / "models"),
        "transunet_model_path": str(find_checkpoint(tiny_run, "separator")),
        "decoder_model_path": str(find_checkpoint(tiny_run, "decoder")),
        "song_pass_steps": 3, "song_pass_data": {data_dir: 2}, "song_pass_songs": "whole",
        "song_pass_presence": True, "song_pass_augment": 1, "panel": {"tiny": data_dir},
        "song_pass_network": {"width": 24, "stacks": 1}, "song_pass_gates": [0.5, 0.0]}))
    assert training.main(["--config", str(config), "--limit", "2", "--no-progress"]) == 0
    cfg = load_config(config)
    song_pass = load_song_pass(Path(cfg.model_dir) / SONG_PASS_FILE)
    record = song_pass.trained
    assert song_pass.spec.presence and record["songs"] == "whole" and record["augment"] == 1
    assert (song_pass.spec.width, song_pass.spec.levels, song_pass.spec.stacks) == (24, 6, 1)
    assert record["data"] == [data_dir] and record["weights"] == [2.0]
    assert 2 < record["train_songs"] <= 4  # 2 songs and their copies
    assert "presence_accuracy" in record["val_corpora"][data_dir]
    assert record["gates"] == [0.5, 0.0] and song_pass.spec.gate == record["gate"]
    separator = Separator.from_config(cfg, "cpu")
    assert separator.second_pass.spec.presence
    assert separator.second_pass.spec.gate == record["gate"]
    assert evaluate.main(["--config", str(config), "--songs", "--limit", "1",
                          "--no-progress"]) == 0
    whole = json.loads((Path(cfg.model_dir) / "evaluation_test_songs_whole.json").read_text())
    assert 0.0 <= whole["settings"]["presence_accuracy"] <= 1.0
    assert whole["settings"]["presence_pairs"] == 4
    assert "Presence accuracy of the learned song pass" in (
        Path(cfg.model_dir) / "evaluation_test_songs_whole.md").read_text()
    assert evaluate.main(["--config", str(config), "--panel", "--limit", "1",
                          "--no-progress"]) == 0
    panel = json.loads((Path(cfg.model_dir) / "panel_val.json").read_text())
    assert set(panel["settings"]["presence_accuracy"]) == {"tiny"}
    assert "presence accuracy of the learned song pass" in (
        Path(cfg.model_dir) / "panel_val.md").read_text()


def test_whole_songs_feed_and_decide_every_note_as_the_evaluation_does(
        tmp_path: Path) -> None:
    from utils import song_pass_training as training

    tracks = [*dense_tracks(bars=4), Track("Lead", 80, [(0, 480, 84), (960, 1440, 86)])]
    truth = whole_song_truth(write_midi(tmp_path / "lead.mid", tracks), "lead.mid")
    lead = truth.notes.track == 3
    assert (truth.true[lead] == -1).all() and truth.fed.all()  # fed, not scored
    seen = []

    def probs(batch: torch.Tensor) -> torch.Tensor:
        seen.append(batch[:, 1].sum().item())  # the note starts given to the model
        return torch.full((batch.shape[0], 5, *batch.shape[2:]), 0.2)

    separator = type("Stand", (), {"probs": staticmethod(probs), "batch_size": 4})()
    song = next(training.first_pass_songs(separator, [truth]))
    assert song.first_pass.chosen[lead].all()  # decided again, as at separation
    feats, target = song.features(False)
    assert (target[np.isin(feats.order, np.flatnonzero(lead))] == -100).all()
    starts_fed = sum(seen)
    seen.clear()
    unscored = next(training.first_pass_songs(separator, [replace(truth, fed=None)]))
    assert not unscored.first_pass.chosen[lead].any()
    assert starts_fed > sum(seen)  # the lead's note starts were given to the model too
