"""The instrument set as a config key (data/instruments.py): presets, the paper's set as the
contract's constants, the refusals, and a six-class set from build to separated file."""

from __future__ import annotations

import json
from pathlib import Path

import mido
import numpy as np
import pytest
import torch

import evaluate
import melody2music_train
import separate
from bench import instrument_sets
from data import contract
from data.instruments import PAPER, PRESETS, InstrumentSetError, resolve_set
from data.manifest import Manifest
from data.midi import read_notes
from data.notes import OUTPUT_CHANNEL, separated_midi
from data.preprocess import build
from data.store import PhraseStore
from tests.fixtures_midi import Track, dense_tracks, write_midi
from utils import preprocess as preprocess_cli
from utils import song_pass_training
from utils.core.checkpoints import (
    PRETRAINED_DIR,
    checkpoint_config,
    find_checkpoint,
    load_separator,
    read_checkpoint,
)
from utils.core.config import ConfigError, load_config
from utils.evaluation.baselines import best_zones, subset_zones
from utils.evaluation.metrics import NoteConfusion
from utils.evaluation.phrases import evaluate_split
from utils.evaluation.set_comparison import compare_sets
from utils.evaluation.song_modes import evaluate_song_modes
from utils.evaluation.songs import evaluate_songs

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.json"
BRASS = list(range(56, 64))
SIX = [{"name": "piano", "programs": list(range(8))},
       {"name": "guitar", "programs": list(range(24, 32))},
       {"name": "bass", "programs": list(range(32, 40))},
       {"name": "string", "programs": list(range(48, 56))},
       {"name": "drum", "programs": [], "drum": True},
       {"name": "brass", "programs": BRASS}]


def test_paper_preset_is_the_contract() -> None:
    assert PAPER.instruments == contract.INSTRUMENTS
    assert PAPER.music == contract.MUSIC_INSTRUMENTS and PAPER.drum == contract.DRUM
    assert PAPER.n_pitched == contract.N_PITCHED
    assert PAPER.phrase_shape == contract.PHRASE_SHAPE
    for program in range(128):
        assert PAPER.class_of(program, False) == contract.PROGRAM_FAMILY.get(program // 8)
        assert PAPER.class_of(program, True) == contract.DRUM
    assert PAPER.render_programs() == contract.RENDER_PROGRAM
    assert PAPER.render_velocities() == contract.RENDER_VELOCITY
    assert OUTPUT_CHANNEL == {1: 0, 2: 1, 3: 2, 4: 3, 0: 4, 5: 9}


def test_presets_and_written_sets() -> None:
    arranger, wide = PRESETS["arranger"], PRESETS["wide"]
    assert arranger.music == ("piano", "guitar", "bass", "string", "brass", "drum")
    assert arranger.class_of(44, False) == 4 and arranger.class_of(52, False) is None
    assert arranger.class_of(60, False) == 5
    assert wide.music == ("piano", "guitar", "bass", "string", "organ", "brass", "reed",
                          "synth_lead", "synth_pad", "drum")
    assert wide.n_music == 10 and wide.class_of(66, False) == 7
    assert wide.midi_channels()[0] == 10 and wide.midi_channels()[wide.drum] == 9
    six = resolve_set(SIX)  # the drum class moves last
    assert six.name == "custom" and six.music[-2:] == ("brass", "drum")
    assert six.class_of(57, False) == 5 and six.render_programs()[5] == 56
    assert resolve_set([c.record() for c in PRESETS["wide"].classes]) is PRESETS["wide"]


@pytest.mark.parametrize("spec, words", [
    ([{"name": "piano", "programs": [0, 1]}, {"name": "organ", "programs": [1, 16]},
      {"name": "drum", "drum": True}], "program 1 is in two classes, 'piano' and 'organ'"),
    ([{"name": "piano", "programs": []}, {"name": "drum", "drum": True}], "empty class"),
    ([{"name": "piano", "programs": [0]}, {"name": "drum", "drum": True},
      {"name": "kit", "drum": True}], "exactly one drum class"),
    ([{"name": "piano", "programs": [0]}], "exactly one drum class"),
    ("orchestra", "unknown preset 'orchestra'"),
    ([{"name": "Piano!", "programs": [0]}, {"name": "drum", "drum": True}], "lower-case"),
])
def test_a_set_that_cannot_be_used_is_refused(spec: object, words: str) -> None:
    with pytest.raises(InstrumentSetError, match="instrument_set") as info:
        resolve_set(spec)  # type: ignore[arg-type]
    assert words in str(info.value) and "\n" not in str(info.value)


def _config(tmp_path: Path, name: str = "bad.json", **keys: object) -> Path:
    raw = json.loads(TINY.read_text())
    path = tmp_path / name
    path.write_text(json.dumps({**raw, "midi_dir": str(tmp_path / "midi"),
                                "data_dir": str(tmp_path / "data"),
                                "model_dir": str(tmp_path / "models"),
                                "output_dir": str(tmp_path / "out"), **keys}))
    return path


@pytest.mark.parametrize("keys, words", [
    ({"instrument_set": "orchestra"}, "unknown preset 'orchestra'"),
    ({"instrument_set": [{"name": "piano", "programs": [0, 1]},
                         {"name": "organ", "programs": [1]}, {"name": "drum", "drum": True}],
      "in_ch": 3, "out_ch": 3}, "program 1 is in two classes"),
    ({"instrument_set": [{"name": "piano", "programs": [0]}, {"name": "d1", "drum": True},
                         {"name": "d2", "drum": True}], "in_ch": 3, "out_ch": 3},
     "exactly one drum class"),
    ({"instrument_set": "wide"}, "'in_ch' must be 10"),
    ({"instrument_set": SIX, "in_ch": 6, "out_ch": 5}, "'out_ch' must be 6"),
])
def test_commands_refuse_a_bad_set_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                               keys: dict, words: str) -> None:
    (tmp_path / "midi").mkdir()
    config = _config(tmp_path, **keys)
    assert preprocess_cli.main(["--config", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and words in err[0]
    assert not (tmp_path / "data").exists()


def test_the_wide_recipe_loads_with_its_set() -> None:
    cfg = load_config(ROOT / "configs" / "real_wide.json")
    assert cfg.instruments is PRESETS["wide"] and cfg.in_ch == cfg.out_ch == 10
    assert all(folder.startswith("runs/wide/") for folder in
               [cfg.data_dir, cfg.model_dir, *cfg.train_mix, *cfg.song_pass_data,
                *cfg.panel.values()])
    assert load_config(ROOT / "config.json").instruments is PAPER


def test_a_wider_set_folds_back_onto_the_paper_classes() -> None:
    six, wide = resolve_set(SIX), PRESETS["wide"]
    assert six.folds_onto(PAPER) and wide.folds_onto(PAPER) and wide.folds_onto(six)
    assert not PAPER.folds_onto(PAPER) and not PAPER.folds_onto(six)
    assert not PRESETS["arranger"].folds_onto(PAPER)  # its strings are other programs
    confusion = NoteConfusion(six.music)  # piano, guitar, bass, string, brass, drum
    confusion.update(np.array([1, 1, 1, 4, 5, 5, 6]), np.array([1, 5, 2, 4, 5, 1, 6]))
    folded = confusion.folded(PAPER.music)
    # the brass notes are left out; the piano note given brass is an error; the brass note
    # given piano does not count against piano's precision
    assert folded["notes"] == 5 and folded["note_accuracy"] == pytest.approx(3 / 5)
    assert folded["pitched_note_accuracy"] == pytest.approx(2 / 4)
    assert folded["piano_precision"] == 1.0 and folded["piano_recall"] == pytest.approx(1 / 3)
    assert folded["guitar_precision"] == 0.0 and folded["string_f1"] == 1.0
    assert folded["macro_f1"] == pytest.approx(np.mean([0.5, 0.0, 1.0, 1.0]))  # no bass at all
    assert confusion.folded(six.music) == confusion.compute()  # folding onto itself: the same
    with pytest.raises(ValueError, match="organ"):
        confusion.folded(("organ", "drum"))


def test_checkpoints_without_a_record_are_the_paper_set() -> None:
    ckpt = read_checkpoint(PRETRAINED_DIR / "separator.ckpt")
    assert checkpoint_config(ckpt, "shipped").instruments.same_classes(PAPER)
    config = dict(ckpt["hyper_parameters"]["config"])
    config.pop("instrument_set", None)  # as written before the key existed
    ckpt["hyper_parameters"] = {**ckpt["hyper_parameters"], "config": config}
    assert checkpoint_config(ckpt, "older").instruments is PAPER


def test_zones_over_subsets_find_the_best_score() -> None:
    rng = np.random.default_rng(0)
    for k in (3, 5, 6):
        counts = rng.integers(0, 50, size=(k, 20)) * (rng.random((k, 20)) < 0.4)
        score, order, bounds = subset_zones(counts)
        assert score == best_zones(counts)[0]
        assert sorted(order) == list(range(k)) and bounds[0] == 0 and bounds[-1] == 20
        inside = sum(int(counts[i, bounds[j]:bounds[j + 1]].sum()) for j, i in enumerate(order))
        assert inside == score


def _corpus(folder: Path, songs: int = 10) -> Path:
    """Songs of piano, bass, drums and a brass line (program 61), dense enough to keep."""
    folder.mkdir(parents=True)
    for s in range(songs):
        tracks = dense_tracks(bars=8, transpose=s % 5)
        step = 120
        brass = [(t * 2 * step, (t * 2 + 1) * step, 70 + (t % 3) * 2 + s % 4)
                 for t in range(8 * 8)]  # more than 50 notes: a kept track
        write_midi(folder / f"song{s:02d}.mid", [*tracks, Track("Brass", 61, brass)])
    return folder


@pytest.fixture(scope="module")
def six_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A six-class set (the paper's and brass): corpus, build, a direct separator trained
    a few steps; returns its config file."""
    base = tmp_path_factory.mktemp("six")
    _corpus(base / "midi")
    config = base / "six.json"
    raw = json.loads(TINY.read_text())
    config.write_text(json.dumps({
        **raw, "midi_dir": str(base / "midi"), "data_dir": str(base / "data"),
        "model_dir": str(base / "models"), "output_dir": str(base / "out"),
        "train_split": 0.6, "val_split": 0.2, "test_split": 0.2, "instrument_set": SIX,
        "in_ch": 6, "out_ch": 6, "separator": "direct", "max_epochs": 1,
        "melody_in_mixture": True,  # a tune found among the tracks stays in its class
        "limit_train_batches": 3, "limit_val_batches": 1, "song_pass_steps": 2}))
    assert preprocess_cli.main(["--config", str(config), "--workers", "1",
                                "--no-progress"]) == 0
    assert melody2music_train.main(["--config", str(config)]) == 0
    return config


def test_six_classes_build_train_evaluate_and_separate(six_run: Path, tmp_path: Path) -> None:
    cfg = load_config(six_run)
    manifest = Manifest.read(cfg.data_dir)
    assert manifest.instruments.music[-2:] == ("brass", "drum")
    assert manifest.settings["instrument_set"][4] == {"name": "brass", "programs": BRASS}
    assert manifest.data["instrument_phrases"]["brass"] > 0
    phrases = PhraseStore(cfg.data_dir, "train").batch(slice(0, 2))
    assert phrases.shape == (2, 64, 72, 7) and phrases[..., 5].any()
    stored = checkpoint_config(read_checkpoint(find_checkpoint(cfg, "separator")), "six")
    assert stored.instruments.same_classes(cfg.instruments)

    table = evaluate_split(cfg, "test", limit=8, device="cpu", progress=False)
    model = next(iter(table.rows.values()))
    assert "brass_f1" in model and "drum_f1" in model and "brass_f1" in table.markdown()
    songs = evaluate_songs(cfg, "test", limit=1, device="cpu", progress=False)
    assert set(songs.notes_by_instrument) == set(cfg.instruments.music)
    assert songs.notes_by_instrument["brass"] > 0

    (whole,) = evaluate_song_modes(cfg, "test", limit=1, device="cpu", progress=False,
                                   modes=("whole",))
    model, folded = next(iter(whole.rows)), whole.folded
    assert list(folded) == list(whole.rows)  # every system folded back onto the paper's five
    assert folded[model]["notes"] == whole.rows[model]["notes"] - whole.notes_by_instrument["brass"]
    assert "brass_f1" not in folded[model] and "string_f1" in folded[model]
    assert "Folded back onto the paper's five classes" in whole.markdown()

    song = cfg.midi_dir + "/song00.mid"
    out = tmp_path / "sep"
    assert separate.main([song, "--config", str(six_run), "-o", str(out), "--json",
                          "--outputs", "midi,json", "--no-progress",
                          "--instruments", "brass,bass"]) == 0
    notes = json.loads((out / "song00.notes.json").read_text())
    assert notes["instruments"] == list(cfg.instruments.music)
    pitched = [n["instrument"] for n in notes["notes"] if n["instrument"] != "drum"]
    assert pitched and set(pitched) <= {"brass", "bass"}
    names = {m.name.split(" ")[0] for t in mido.MidiFile(out / "song00.separated.mid").tracks
             for m in t if m.type == "track_name"}  # "bass 2": an overlap layer of bass
    assert names <= {*cfg.instruments.music, "melody"} and names >= set(pitched)


def test_sets_side_by_side_on_the_same_songs_and_notes(six_run: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    six = load_config(six_run)
    paper_config = tmp_path / "paper.json"
    raw = json.loads(six_run.read_text())
    paper_config.write_text(json.dumps({
        **raw, "instrument_set": "paper", "in_ch": 5, "out_ch": 5,
        "data_dir": str(tmp_path / "data"), "model_dir": str(tmp_path / "models"),
        "panel": {"songs": str(tmp_path / "data")}}))
    six_config = tmp_path / "six.json"
    six_config.write_text(json.dumps({**raw, "panel": {"songs": six.data_dir}}))
    assert preprocess_cli.main(["--config", str(paper_config), "--workers", "1",
                                "--no-progress"]) == 0
    assert melody2music_train.main(["--config", str(paper_config)]) == 0
    report = compare_sets([load_config(paper_config), load_config(six_config)],
                          ["paper", "six"], "test", device="cpu", progress=False)
    songs = report.corpora["songs"]
    assert songs["songs"] > 0 and {"paper: model", "six: model"} <= set(songs["rows"])
    best = songs["rows"][songs["best_baseline"]]["pitched_note_accuracy"]
    for label in ("paper", "six"):
        model = songs["rows"][f"{label}: model"]["pitched_note_accuracy"]
        assert songs["margins"][label] == pytest.approx(model - best)
    # the six-class model folded back: the notes of the five classes, the brass left out
    (whole,) = evaluate_song_modes(load_config(six_config), "test", device="cpu",
                                   progress=False, modes=("whole",))
    if songs["songs"] == len(whole.songs):
        assert songs["notes"] == whole.folded[next(iter(whole.rows))]["notes"]
    out = tmp_path / "sets.md"
    assert instrument_sets.main(["--config", str(paper_config), "--config", str(six_config),
                                 "--split", "test", "--no-progress", "--out", str(out)]) == 0
    assert "six: model" in out.read_text() and out.with_suffix(".json").is_file()
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        instrument_sets.main(["--config", str(paper_config)])
    assert refused.value.code == 2
    assert "give --config at least twice" in capsys.readouterr().err


def test_a_class_is_rendered_with_its_program_on_its_channel(tmp_path: Path) -> None:
    six = resolve_set(SIX)
    song = _corpus(tmp_path / "midi", songs=1) / "song00.mid"
    notes = read_notes(song)
    instrument = np.where(notes.is_drum, six.drum, 5)  # every pitched note brass
    midi, tracks = separated_midi(notes, instrument, instruments=six)
    path = tmp_path / "out.mid"
    midi.save(path)
    programs = {m.channel: m.program for t in mido.MidiFile(path).tracks
                for m in t if m.type == "program_change"}
    assert programs == {4: 56, 9: 0}  # brass: the fifth pitched class, its lowest program
    assert [t.name for t in tracks if t.layer == 0] == ["brass", "drum"]


def test_six_class_song_pass_trains_on_its_classes(six_run: Path) -> None:
    assert song_pass_training.main(["--config", str(six_run), "--limit", "2",
                                    "--no-progress"]) == 0
    state = torch.load(Path(load_config(six_run).model_dir) / "song_pass.ckpt",
                       weights_only=True)
    assert state["song_pass"]["pitched"] == 5


def test_a_model_refuses_data_or_configs_of_another_set(six_run: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    cfg = load_config(six_run)
    paper_data = tmp_path / "paper"
    build(cfg.midi_dir, paper_data, workers=1, fractions=(0.6, 0.2, 0.2), progress=False,
          min_bar_density=cfg.min_bar_density)
    assert Manifest.read(paper_data).instruments is PAPER
    # the six-class model on paper-built data: evaluation and song pass refuse it
    assert evaluate.main(["--config", str(six_run), "--split", "test", "--data-dir",
                          str(paper_data), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "was built with 'paper'" in err[0]
    # its checkpoint under a config of the paper's set
    paper_cfg = cfg.replace(instrument_set="paper", in_ch=5, out_ch=5)
    with pytest.raises(ConfigError, match="trained with 'instrument_set' 'custom'"):
        load_separator(find_checkpoint(cfg, "separator"), cfg=paper_cfg)
    # the song pass of the six-class model on paper-built songs
    songs = _config(tmp_path, "songs.json", **{**json.loads(six_run.read_text()),
                                               "song_pass_data": [str(paper_data)]})
    assert song_pass_training.main(["--config", str(songs), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "was built with 'paper'" in err[0]
    # training the six-class config on paper-built data
    other = _config(tmp_path, "train.json", **{**{k: v for k, v in json.loads(
        six_run.read_text()).items()}, "data_dir": str(paper_data),
        "model_dir": str(tmp_path / "m2")})
    assert melody2music_train.main(["--config", str(other)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error:") and "'data_dir'" in err[-1] and "'paper'" in err[-1]
