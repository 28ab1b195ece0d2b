"""The learned song pass: its note features, its network, applying it, training it."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import evaluate
from data.instruments import PAPER
from models.song_pass import N_CONTINUOUS, N_TIMING, SongPassNet, SongPassSpec, n_continuous
from utils.core import checkpoints as checkpoints
from utils.core.checkpoints import BASELINES_FILE
from utils.core.config import ConfigError, load_config
from utils.pretrained import export_model, export_song_pass
from utils.pretrained import main as pretrained_main
from utils.separation.first_pass import FirstPass
from utils.separation.register_prior import RegisterPrior, song_prior
from utils.separation.separator import Separator
from utils.separation.song_pass import (
    LOG_FLOOR,
    PRIOR_WIDTH,
    SONG_PASS_FILE,
    VELOCITY,
    SongPass,
    load_song_pass,
    network_digest,
    note_features,
    timing_numbers,
)
from utils.song_pass_training import IGNORE, Sequences, TrainingSong, song_pass_corpora
from utils.song_pass_training import main as train_main

TINY = SongPassSpec(width=16, levels=2, stacks=1)


def _song() -> FirstPass:
    """Five notes: a chord of three at step 16, a note at step 2 and a drum note."""
    return FirstPass(**{
        "probs": np.array([[0.6, 0.2, 0.1, 0.1, 0.0],   # note 0
                           [0.1, 0.1, 0.7, 0.1, 0.0],   # note 1
                           [0.2, 0.2, 0.2, 0.2, 0.2],   # note 2: drum channel
                           [np.nan] * 5,                # note 3
                           [0.0, 0.5, 0.0, 0.5, 0.0]]),  # note 4
        "rows": np.array([40, 10, 65, 30, 20]),
        "first": np.array([16, 16, 16, 2, 16]),
        "stop": np.array([20, 32, 17, 3, 18]),
        "velocity": np.array([100, 64, 127, 1, 90]),
        "pitched": np.array([True, True, False, True, True]),
        "chosen": np.array([True, True, False, True, True]),
        "row_sums": np.zeros((72, 5)),
    })


def test_note_features_cell_by_cell() -> None:
    song = _song()
    song.row_sums[10, 2] = 5.0  # bass plays row 10 in this song
    f = note_features(song, use_velocity=True)
    # sorted by start step, then row; the drum note is not chosen
    assert f.order.tolist() == [3, 1, 4, 0]
    assert f.rows.tolist() == [30, 10, 20, 40]
    assert f.beat.tolist() == [2, 0, 0, 0]
    n = f.numbers
    assert n.shape == (4, N_CONTINUOUS)
    np.testing.assert_allclose(n[:, 0], np.log1p([1, 16, 2, 4]))  # duration in steps
    np.testing.assert_allclose(n[:, 1], np.log1p([1, 3, 3, 3]))  # notes starting together
    assert n[:, 2].tolist() == [1, 1, 0, 0]  # lowest of its start
    assert n[:, 3].tolist() == [1, 0, 0, 1]  # highest of its start
    np.testing.assert_allclose(n[:, 4], np.array([1, 64, 90, 100]) / 127.0, rtol=1e-6)
    prior = song_prior(song.row_sums, PRIOR_WIDTH)
    np.testing.assert_allclose(n[:, 5:], np.log(prior[[30, 10, 20, 40]] + LOG_FLOOR), rtol=1e-5)
    assert prior[10].argmax() == 2  # row 10 leans to bass
    # first-pass log probabilities over the 4 pitched instruments; NaN reads uniform
    expected = np.array([[0.25] * 4, [0.1, 0.1, 0.7, 0.1], [0.0, 0.5, 0.0, 0.5],
                         [0.6, 0.2, 0.1, 0.1]])
    np.testing.assert_allclose(f.log_probs, np.log(expected + LOG_FLOOR), rtol=1e-5)
    without = note_features(song, use_velocity=False)
    assert (without.numbers[:, 4] == 0).all()


@pytest.mark.parametrize("recurrent", [0, 6])
def test_network_reads_a_song_alike_alone_or_padded(recurrent: int) -> None:
    torch.manual_seed(0)
    net = SongPassNet(replace(TINY, recurrent=recurrent)).eval()
    k = 30
    rows, beat = torch.randint(0, 72, (1, k)), torch.randint(0, 16, (1, k))
    numbers, log_probs = torch.randn(1, k, N_CONTINUOUS), torch.randn(1, k, 4)

    def pad(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, torch.full((1, 7, *x.shape[2:]), 3, dtype=x.dtype)], dim=1)

    alone = net(rows, beat, numbers, log_probs)
    padded = net(pad(rows), pad(beat), pad(numbers), pad(log_probs), torch.tensor([k]))
    torch.testing.assert_close(padded[:, :k], alone)
    if recurrent:  # the GRU reads the whole song: the first note hears the last
        h = torch.randn(1, TINY.width, 8)  # 8 notes: beyond the convolutions' 3 each way
        moved = h.clone()
        moved[..., -1] = torch.randn(TINY.width)  # another last note
        ones = torch.ones(1, 1, 8)
        assert not torch.allclose(net._recurrent(h, ones, None)[..., 0],
                                  net._recurrent(moved, ones, None)[..., 0])


def test_dropout_acts_in_training_only_and_residual_can_be_off() -> None:
    torch.manual_seed(0)
    k = 40
    rows, beat = torch.randint(0, 72, (1, k)), torch.randint(0, 16, (1, k))
    numbers, log_probs = torch.randn(1, k, N_CONTINUOUS), torch.randn(1, k, 4)
    net = SongPassNet(replace(TINY, dropout=0.5))
    net.train()
    assert not torch.equal(net(rows, beat, numbers, log_probs),
                           net(rows, beat, numbers, log_probs))  # channels dropped at random
    net.eval()
    torch.testing.assert_close(net(rows, beat, numbers, log_probs),
                               net(rows, beat, numbers, log_probs))
    # without the residual the first pass is an input only: a network whose output layer
    # is zero says nothing, whatever the first pass said
    flat = SongPassNet(replace(TINY, residual=False)).eval()
    torch.nn.init.zeros_(flat.out.weight)
    torch.nn.init.zeros_(flat.out.bias)
    assert torch.equal(flat(rows, beat, numbers, log_probs), torch.zeros(1, k, 4))
    added = SongPassNet(TINY).eval()
    added.load_state_dict(flat.state_dict())  # the same weights, the residual form
    torch.testing.assert_close(added(rows, beat, numbers, log_probs), log_probs)


def test_dropout_and_residual_are_stored_only_when_set(tmp_path: Path) -> None:
    assert not {"dropout", "residual", "recurrent"} & set(TINY.to_dict())
    spec = replace(TINY, dropout=0.2, residual=False, recurrent=8)
    assert SongPassSpec(**spec.to_dict()) == spec
    with pytest.raises(ValueError, match="song pass 'dropout' must be a number in"):
        replace(TINY, dropout=1.5)
    with pytest.raises(ValueError, match="song pass 'residual' must be true or false"):
        replace(TINY, residual=1)
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"song_pass_dropout": -0.1}))
    with pytest.raises(ConfigError, match=f"{path}: 'song_pass_dropout' must be a number in"):
        load_config(path)
    path.write_text(json.dumps({"song_pass_dropout": 0.2, "song_pass_residual": False}))
    cfg = load_config(path)
    assert (cfg.song_pass_dropout, cfg.song_pass_residual) == (0.2, False)


def test_timing_numbers_counted_by_hand() -> None:
    # A (0-16) holds while C (4-8), D (8-9) and E (8-12) start; B (0-4) is A's partner;
    # F (20-24) starts after a gap of 12 steps, when nothing sounds
    first = np.array([0, 0, 4, 8, 8, 20])
    stop = np.array([16, 4, 8, 9, 12, 24])
    got = timing_numbers(first, stop)
    assert got.shape == (6, N_TIMING) and got.dtype == np.float32
    counts = np.rint(np.expm1(got[:, :4])).astype(int)
    # since the previous start, to the next, sounding at its start, starts while it sounds
    assert counts.tolist() == [[0, 4, 0, 2], [0, 4, 0, 0], [4, 4, 1, 0],
                               [4, 12, 1, 0], [4, 12, 1, 0], [12, 0, 0, 0]]
    # the 2-bar clock: step 4 is an eighth of its turn, step 20 five eighths
    np.testing.assert_allclose(got[[0, 2, 5], 4:6], [[0.0, 1.0], [np.sqrt(0.5)] * 2,
                                                      [-np.sqrt(0.5)] * 2], atol=1e-6)
    # the 16-bar clock tells step 0 from step 32, which the 2-bar clock cannot
    late = timing_numbers(np.array([32]), np.array([33]))
    np.testing.assert_allclose(late[0, 4:6], got[0, 4:6], atol=1e-6)
    assert not np.allclose(late[0, 10:12], got[0, 10:12])
    # the order of the notes does not matter
    turn = np.array([5, 3, 1, 0, 4, 2])
    np.testing.assert_array_equal(timing_numbers(first[turn], stop[turn]), got[turn])
    assert timing_numbers(np.zeros(0, np.int64), np.zeros(0, np.int64)).shape == (0, N_TIMING)


def test_a_timing_network_reads_the_timing_numbers_after_the_others(tmp_path: Path) -> None:
    song = _song()
    plain = note_features(song, use_velocity=False)
    timed = note_features(song, use_velocity=False, timing=True)
    assert timed.numbers.shape == (4, n_continuous(4, timing=True))  # the pitched notes
    np.testing.assert_array_equal(timed.numbers[:, :N_CONTINUOUS], plain.numbers)
    chosen = plain.order
    np.testing.assert_array_equal(timed.numbers[:, N_CONTINUOUS:],
                                  timing_numbers(song.first[chosen], song.stop[chosen]))
    # stored only when set; a timing network is built, saved and read back as one
    assert "timing" not in TINY.to_dict()
    spec = replace(TINY, timing=True)
    assert SongPassSpec(**spec.to_dict()) == spec
    with pytest.raises(ValueError, match="song pass 'timing' must be true or false"):
        replace(TINY, timing="yes")
    torch.manual_seed(0)
    net = SongPassNet(spec).eval()
    path = tmp_path / SONG_PASS_FILE
    torch.save({"song_pass": spec.to_dict(), "state_dict": net.state_dict()}, path)
    loaded = load_song_pass(path)
    assert loaded.spec.timing
    np.testing.assert_allclose(loaded.decide(song), SongPass(net).decide(song))
    # a network without timing refuses the wider inputs rather than misreading them
    with pytest.raises(RuntimeError):
        SongPassNet(TINY)(torch.from_numpy(timed.rows)[None], torch.from_numpy(timed.beat)[None],
                          torch.from_numpy(timed.numbers)[None],
                          torch.from_numpy(timed.log_probs)[None])


def test_apply_changes_only_the_chosen_pitched_notes() -> None:
    torch.manual_seed(0)
    song = _song()
    out = SongPass(SongPassNet(TINY).eval()).decide(song)
    probs = song.probs
    for i in (2,):  # not chosen: as given
        np.testing.assert_array_equal(out[i], probs[i])
    np.testing.assert_array_equal(out[:, 4], probs[:, 4])  # the drum column stays
    for i in (0, 1, 4):  # the pitched part keeps its total
        assert out[i, :4].sum() == pytest.approx(probs[i, :4].sum())
        assert not np.allclose(out[i, :4], probs[i, :4])
    assert out[3, :4].sum() == pytest.approx(1.0)  # a note without probabilities gets some


def test_a_bad_song_pass_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / SONG_PASS_FILE
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=f"{bad}: not a readable song pass checkpoint"):
        load_song_pass(bad)
    torch.save({"state_dict": {}}, bad)
    with pytest.raises(ConfigError, match=f"{bad}: not a song pass checkpoint"):
        load_song_pass(bad)


def test_trained_song_pass_is_used_for_its_separator(song_pass_run: Path) -> None:
    cfg = load_config(song_pass_run)
    path = Path(cfg.model_dir) / SONG_PASS_FILE
    record = load_song_pass(path).trained
    assert record["steps"] == 3 and record["train_songs"] <= 2 and record["seed"] == cfg.seed
    separator = Separator.from_config(cfg, "cpu")
    assert isinstance(separator.second_pass, SongPass)
    assert record["separator_digest"] == network_digest(separator.model)
    assert "learned song pass" in separator.describe()
    off = Separator.from_config(load_config(song_pass_run, overrides={"song_pass": False}), "cpu")
    assert isinstance(off.second_pass, RegisterPrior)
    # scored song by song with it, and the report says so
    assert evaluate.main(["--config", str(song_pass_run), "--songs", "--limit", "1",
                          "--no-progress"]) == 0
    report = json.loads((Path(cfg.model_dir) / "evaluation_test_songs.json").read_text())
    assert report["settings"]["song_pass"] == str(path)
    assert "learned song pass" in (Path(cfg.model_dir) / "evaluation_test_songs.md").read_text()


def test_song_pass_of_another_separator_is_not_used(song_pass_run: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    cfg = load_config(song_pass_run)
    path = Path(cfg.model_dir) / SONG_PASS_FILE
    state = torch.load(path, weights_only=True)
    state["trained"]["separator_digest"] = "0" * 16
    other = Path(cfg.model_dir) / "other"
    other.mkdir()
    torch.save(state, other / SONG_PASS_FILE)
    moved = load_config(song_pass_run, overrides={"model_dir": str(other)})
    separator = Separator.from_config(moved, "cpu")
    assert not isinstance(separator.second_pass, SongPass)
    err = capsys.readouterr().err
    assert f"warning: {other / SONG_PASS_FILE} was trained on another separator" in err


def test_song_pass_keys_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"song_pass_steps": 0}))
    with pytest.raises(ConfigError, match="'song_pass_steps' must be > 0"):
        load_config(path)
    path.write_text(json.dumps({"song_pass_data": "runs/slakh/dataset"}))
    with pytest.raises(ConfigError, match="'song_pass_data' must be list"):
        load_config(path)




def test_export_ships_the_song_pass_with_its_separator(
        song_pass_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(song_pass_run)
    trained_in = Path(cfg.transunet_model_path).parents[1]  # the tiny run's model_dir
    shutil.copyfile(trained_in / BASELINES_FILE, Path(cfg.model_dir) / BASELINES_FILE)
    out = tmp_path / "shipped"
    assert out / SONG_PASS_FILE in export_model(cfg, out)
    # a user with no model of their own separates with the shipped one and its song pass
    monkeypatch.setattr(checkpoints, "PRETRAINED_DIR", out)
    fresh = load_config(song_pass_run, overrides={"model_dir": str(tmp_path / "none"),
                                                  "transunet_model_path": "",
                                                  "decoder_model_path": ""})
    separator = Separator.from_config(fresh, "cpu")
    assert isinstance(separator.second_pass, SongPass)
    assert separator.second_pass.source == str(out / SONG_PASS_FILE)


def test_export_song_pass_only_goes_beside_its_separator(song_pass_run: Path,
                                                        tmp_path: Path) -> None:
    cfg = load_config(song_pass_run)
    trained_in = Path(cfg.transunet_model_path).parents[1]
    shutil.copyfile(trained_in / BASELINES_FILE, Path(cfg.model_dir) / BASELINES_FILE)
    out = tmp_path / "shipped"
    export_model(cfg, out)
    stale = out / "evaluation_old_songs.md"
    stale.write_text("an earlier model's table")
    (Path(cfg.model_dir) / "panel_val.md").write_text("| corpus |")
    before = (out / "separator.ckpt").read_bytes()
    written = export_song_pass(cfg, out)
    assert out / SONG_PASS_FILE in written and (out / "panel_val.md").is_file()
    assert not stale.exists() and (out / "separator.ckpt").read_bytes() == before
    # beside another separator it is refused, and nothing is copied
    other = tmp_path / "other"
    other.mkdir()
    state = torch.load(out / "separator.ckpt", weights_only=False)
    for value in state["state_dict"].values():
        value.add_(1.0)
    torch.save(state, other / "separator.ckpt")
    with pytest.raises(ConfigError, match="trained on another separator"):
        export_song_pass(cfg, other)
    assert not (other / SONG_PASS_FILE).exists()
    assert pretrained_main(["--config", str(song_pass_run), "--out", str(tmp_path / "none"),
                            "--song-pass"]) == 2


def test_training_batches_rescale_velocities_per_instrument() -> None:
    song = _song()
    first_pass = TrainingSong(replace(song, probs=song.probs.astype(np.float32),
                                      velocity=np.array([50, 60, 127, 40, 80])),
                              target=np.array([1, 3, 5, 1, 5]))
    seqs = Sequences.of([first_pass], use_velocity=True)
    # order: notes 3, 1, 4, 0; note 4 is on a pitched track scored as drums: left out
    assert seqs.targets[0].tolist() == [0, 2, IGNORE, 0]
    rng = np.random.default_rng(0)
    for _ in range(5):
        numbers = seqs.batch([0], rng=rng, velocity_scale=(0.5, 1.5))[2][0, :, VELOCITY]
        velocity = numbers.numpy() * 127
        assert ((velocity >= 1) & (velocity <= 127)).all()
        # both piano notes (40 and 50) scaled by one factor, up to rounding
        assert velocity[0] / 40 == pytest.approx(velocity[3] / 50, abs=0.03)
    plain = seqs.batch([0])[2][0, :, VELOCITY].numpy() * 127
    np.testing.assert_allclose(plain, [40, 60, 80, 50], rtol=1e-6)


def test_a_second_run_reads_the_cached_first_pass_and_trains_alike(song_pass_run: Path) -> None:
    cfg = load_config(song_pass_run)
    cached = sorted((Path(cfg.model_dir) / "song_pass").glob("first_pass_*.npz"))
    assert len(cached) == 2  # the train and the validation songs
    before = torch.load(Path(cfg.model_dir) / SONG_PASS_FILE, weights_only=True)
    stamps = [p.stat().st_mtime_ns for p in cached]
    assert train_main(["--config", str(song_pass_run), "--limit", "2", "--no-progress"]) == 0
    after = torch.load(Path(cfg.model_dir) / SONG_PASS_FILE, weights_only=True)
    assert [p.stat().st_mtime_ns for p in cached] == stamps  # read, not written again
    assert before["trained"]["val_pitched_note_accuracy"] == \
        after["trained"]["val_pitched_note_accuracy"]
    for key, value in before["state_dict"].items():
        torch.testing.assert_close(after["state_dict"][key], value)


def test_the_config_sets_the_trained_networks_dropout_residual_and_timing(
        song_pass_run: Path, tmp_path: Path) -> None:
    cfg = load_config(song_pass_run)
    models = tmp_path / "models"
    shutil.copytree(cfg.model_dir, models)  # the cached first passes come along
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({**cfg.to_dict(), "model_dir": str(models),
                                  "song_pass_dropout": 0.3, "song_pass_residual": False,
                                  "song_pass_timing": True}))
    assert train_main(["--config", str(config), "--limit", "2", "--no-progress"]) == 0
    saved = torch.load(models / SONG_PASS_FILE, weights_only=True)
    assert (saved["song_pass"]["dropout"], saved["song_pass"]["residual"],
            saved["song_pass"]["timing"]) == (0.3, False, True)
    net = load_song_pass(models / SONG_PASS_FILE).net
    assert (net.spec.dropout, net.spec.residual, net.spec.timing, net.training) == \
        (0.3, False, True, False)


def test_the_ensemble_bench_scores_each_song_pass_and_their_average(
        song_pass_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench import song_pass_ensemble

    cfg = load_config(song_pass_run)
    ckpt = Path(cfg.model_dir) / SONG_PASS_FILE
    argv = [str(ckpt), str(ckpt), "--config", str(song_pass_run), "--limit", "2",
            "--best", "0.5", "--no-progress"]
    assert song_pass_ensemble.main(argv) == 0
    rows = {cells[1].strip(): [c.strip() for c in cells[2:-1]]
            for cells in (line.split("|") for line in capsys.readouterr().out.splitlines())
            if len(cells) > 2 and cells[1].strip() in ("song pass 1", "song pass 2", "averaged")}
    # one song pass twice: each alone and their average decide every note alike
    assert rows["song pass 1"] == rows["song pass 2"] == rows["averaged"]
    accuracy, mean, margin, worst = (float(c) for c in rows["averaged"])
    assert 0.0 <= accuracy <= 1.0 and mean == accuracy  # one corpus
    assert margin == worst == pytest.approx(100 * (accuracy - 0.5), abs=0.01)  # rounded
    # a song pass of another separator is refused in one line, before any song is read
    state = torch.load(ckpt, weights_only=True)
    state["trained"]["separator_digest"] = "0" * 16
    other = tmp_path / SONG_PASS_FILE
    torch.save(state, other)
    assert song_pass_ensemble.main([str(ckpt), str(other), "--config", str(song_pass_run),
                                    "--no-progress"]) == 2
    assert capsys.readouterr().err == (f"error: {other}: trained on another separator than "
                                       f"the one {song_pass_run} names\n")
    assert song_pass_ensemble.main([str(ckpt), "--config", str(song_pass_run), "--best",
                                    "0.5", "0.6", "--no-progress"]) == 2
    assert "--best gives 2 figures for the 1 corpora" in capsys.readouterr().err


def test_track_decisions_give_each_track_one_instrument() -> None:
    from bench.track_oracle import track_decisions

    probs = np.array([[0.6, 0.4], [0.6, 0.4], [0.01, 0.99],  # track 7: two votes for 0,
                      [0.2, 0.8], [0.9, 0.1]])               # one sure note for 1
    majority, summed = track_decisions(probs, np.array([7, 7, 7, 3, 3]))
    assert majority.tolist() == [0, 0, 0, 0, 0]  # track 3: a 1-1 tie goes to the lower
    assert summed.tolist() == [1, 1, 1, 0, 0]    # log 0.99 outweighs two of log 0.6 / 0.4


def test_track_numbers_describe_each_track_of_a_song() -> None:
    from bench.track_oracle import corpus_tracks, fit_track_classifier, track_numbers

    # two tracks: a low line of single notes (bass) and a high line of 3-note chords (piano)
    n = 8
    rows = np.array([10] * n + [40, 44, 47] * n)
    first = np.concatenate([np.arange(n) * 4, np.repeat(np.arange(n) * 4, 3)])
    fp = FirstPass(probs=np.tile([0.4, 0.3, 0.2, 0.1, 0.0], (4 * n, 1)), rows=rows,
                   first=first, stop=first + 2, velocity=np.full(4 * n, 90),
                   pitched=np.ones(4 * n, bool), chosen=np.ones(4 * n, bool),
                   row_sums=np.ones((72, 5)))
    target = np.array([3] * n + [1] * (3 * n))  # contract classes: piano 1, bass 3
    song = TrainingSong(fp, target)

    class Truth:  # what the bench reads of a song's truth: its notes' tracks
        class notes:  # noqa: N801
            track = np.array([5] * n + [2] * (3 * n))

    numbers, counts, group = track_numbers(song, Truth)
    assert counts.tolist() == [[3 * n, 0, 0, 0], [0, 0, n, 0]]  # track 2, then track 5
    low, high = numbers[1], numbers[0]
    assert (low[2], high[2]) == pytest.approx((10 / 72, 131 / 216))  # mean rows
    assert (low[9], high[9]) == (1.0, 3.0)  # notes per start
    assert (low[15], high[15]) == (0.0, 1.0)  # rank among the song's tracks by register
    assert np.bincount(group).tolist() == [3 * n, n]
    x, c = corpus_tracks([song, song], [Truth, Truth])
    net = fit_track_classifier(x, c, seed=0)
    with torch.no_grad():  # two tracks learnt apart: each decided as its majority
        assert net(torch.as_tensor(numbers)).argmax(dim=1).tolist() == [0, 2]


def test_the_track_oracle_bench_agrees_with_the_ensemble_bench(
        song_pass_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench import song_pass_ensemble, track_oracle

    cfg = load_config(song_pass_run)
    ckpt = Path(cfg.model_dir) / SONG_PASS_FILE

    def rows(out: str) -> dict[str, list[str]]:
        return {cells[1].strip(): [c.strip() for c in cells[2:-1]]
                for cells in (line.split("|") for line in out.splitlines()) if len(cells) > 2}

    assert song_pass_ensemble.main([str(ckpt), "--config", str(song_pass_run), "--limit", "2",
                                    "--no-progress"]) == 0
    alone = rows(capsys.readouterr().out)["song pass 1"][0]
    assert track_oracle.main(["--config", str(song_pass_run), "--song-pass", str(ckpt),
                              "--limit", "2", "--classifier", "--no-progress"]) == 0
    table = rows(capsys.readouterr().out)
    (corpus,) = song_pass_corpora(cfg)
    first, song_pass, *grouped, notes = table[corpus]
    assert song_pass == alone  # the same notes decided by the same song pass
    assert int(notes) > 0 and len(grouped) == 5  # 3 oracles, velocities, the classifier
    assert all(0.0 <= float(a) <= 1.0 for a in (first, *grouped))
    confusion = [[float(c) for c in table[f"{corpus}: {name}"]] for name in PAPER.pitched]
    for shares in confusion:  # each true instrument's notes by decision: sum 1, or 0 if absent
        assert sum(shares) == pytest.approx(1.0, abs=1e-3) or sum(shares) == 0.0
    assert any(sum(shares) > 0 for shares in confusion)
    state = torch.load(ckpt, weights_only=True)
    state["trained"]["separator_digest"] = "0" * 16
    other = tmp_path / SONG_PASS_FILE
    torch.save(state, other)
    assert track_oracle.main(["--config", str(song_pass_run), "--song-pass", str(other),
                              "--no-progress"]) == 2
    assert capsys.readouterr().err == (f"error: {other}: trained on another separator than "
                                       f"the one {song_pass_run} names\n")
