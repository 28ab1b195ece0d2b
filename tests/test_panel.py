"""utils/evaluation/panel.py and ``evaluate.py --panel``: one table of every corpus, each
corpus's margin over its best baseline, the mean margin and the worst."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import evaluate
from utils.core.config import Config, ConfigError, config_from_dict
from utils.evaluation import panel
from utils.evaluation.panel import PanelReport, corpus_score
from utils.separation.instrument_hints import given_row


def row(pna: float, f1: float) -> dict[str, float]:
    return {"notes": 100, "pitched_note_accuracy": pna, "macro_f1": f1, "note_accuracy": 0.9}


def test_margins_mean_and_worst_by_hand() -> None:
    model = "direct (notes)"
    pop = corpus_score("runs/a", 3, {model: row(0.70, 0.6), "zone": row(0.55, 0.5),
                                     "most_common": row(0.40, 0.2)}, model)
    game = corpus_score("runs/b", 2, {model: row(0.50, 0.4), "zone": row(0.45, 0.5),
                                      "pitch_row": row(0.58, 0.5)}, model)
    assert (pop.best_baseline, game.best_baseline) == ("zone", "pitch_row")
    assert pop.margin == pytest.approx(0.15) and game.margin == pytest.approx(-0.08)
    assert list(pop.rows[model]) == ["pitched_note_accuracy", "macro_f1"]
    report = PanelReport("val", model, {"pop": pop, "game": game})
    assert report.mean_margin == pytest.approx((0.15 - 0.08) / 2)
    assert (report.worst_corpus, report.worst_margin) == ("game", pytest.approx(-0.08))
    table = report.table()
    assert table.count("\n| pop |") == 3 and table.count("\n| game |") == 3
    assert "+0.150 (over zone)" in table and "-0.080 (over pitch_row)" in table
    assert "mean margin over 2 corpora: +0.035; worst corpus: game -0.080" in table


def test_rows_with_the_instruments_given_are_shown_and_not_compared() -> None:
    model = "direct (notes)"
    rows = {model: row(0.70, 0.6), given_row(model): row(0.95, 0.9),
            "zone": row(0.55, 0.5), given_row("zone"): row(0.90, 0.8),
            "most_common": row(0.60, 0.3), given_row("most_common"): row(0.99, 0.9)}
    pop = corpus_score("runs/a", 3, rows, model)
    assert list(pop.rows) == list(rows)
    assert pop.best_baseline == "most_common" and pop.margin == pytest.approx(0.10)
    report = PanelReport("val", model, {"pop": pop})
    assert report.mean_margin == pytest.approx(0.10)
    table = report.table()
    assert table.count("\n| pop |") == 6 and table.count("(over ") == 1
    assert "| pop | direct (notes) (instruments given) | 0.950 | 0.900 |  |" in table
    assert "'(instruments given)': each song's true set" in report.markdown()
    plain = {name: r for name, r in rows.items() if "given" not in name}
    assert "given" not in PanelReport("val", model, {
        "pop": corpus_score("runs/a", 3, plain, model)}).markdown()


def test_panel_with_the_instruments_given_against_the_song_reports(
        tiny_run: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tiny_run.data_dir)
    cfg = panel_config(tiny_run, tmp_path, {"only": data})
    assert evaluate.main(["--config", str(cfg), "--panel", "--instruments-given", "--limit",
                          "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    models = tmp_path / "models"
    panel = json.loads((models / "panel_val.json").read_text())
    assert evaluate.main(["--config", str(cfg), "--songs", "--instruments-given", "--split",
                          "val", "--limit", "1", "--no-progress"]) == 0
    whole = json.loads((models / "evaluation_val_songs_whole.json").read_text())["rows"]
    scored = panel["corpora"]["only"]
    assert list(scored["rows"]) == list(whole) and any("given" in name for name in whole)
    for name, r in scored["rows"].items():
        assert r["pitched_note_accuracy"] == pytest.approx(whole[name]["pitched_note_accuracy"])
    model = panel["model"]
    plain = {n: r["pitched_note_accuracy"] for n, r in whole.items() if "given" not in n}
    best = max((n for n in plain if n != model), key=plain.__getitem__)
    assert scored["best_baseline"] == best
    assert scored["margin"] == pytest.approx(plain[model] - plain[best])
    assert out.count("| only |") == len(whole) + 1  # a row per system, one of F1 by class
    assert scored["f1"] == {k[:-3]: pytest.approx(v) for k, v in whole[model].items()
                            if k.endswith("_f1") and k != "macro_f1"}
    assert scored["folded"] == {} and scored["folded_margin"] is None  # the paper's own set
    assert "not counted in the margins" in (models / "panel_val.md").read_text()


def test_panel_config_key() -> None:
    assert Config().panel == {}
    assert config_from_dict({"panel": {"a": "runs/a"}}).panel == {"a": "runs/a"}
    for bad in (["runs/a"], {"a": 1}, {"a": ""}, {"": "runs/a"}, "runs/a"):
        with pytest.raises(ConfigError, match="'panel'"):
            config_from_dict({"panel": bad})


def panel_config(tiny_run: Config, tmp_path: Path, panel: dict[str, str]) -> Path:
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({**tiny_run.to_dict(), "model_dir": str(tmp_path / "models"),
                                "panel": panel}))
    return path


def test_panel_against_the_per_corpus_reports(tiny_run: Config, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tiny_run.data_dir)
    cfg = panel_config(tiny_run, tmp_path, {"first": data, "second": data})
    assert evaluate.main(["--config", str(cfg), "--panel", "--limit", "1",
                          "--no-progress"]) == 0
    out = capsys.readouterr().out
    models = tmp_path / "models"
    panel = json.loads((models / "panel_val.json").read_text())
    assert "validation panel" in out and "mean margin over 2 corpora" in out
    assert "mean margin" in (models / "panel_val.md").read_text()
    # the same songs scored alone, whole, by evaluate.py --songs
    assert evaluate.main(["--config", str(cfg), "--songs", "--split", "val", "--limit", "1",
                          "--no-progress"]) == 0
    whole = json.loads((models / "evaluation_val_songs_whole.json").read_text())["rows"]
    model = panel["model"]
    assert model == next(iter(whole))
    accuracy = {name: r["pitched_note_accuracy"] for name, r in whole.items()}
    best = max((n for n in accuracy if n != model), key=accuracy.__getitem__)
    margin = accuracy[model] - accuracy[best]
    for corpus in ("first", "second"):
        scored = panel["corpora"][corpus]
        assert list(scored["rows"]) == list(whole)  # one row per system, the model first
        for name, r in scored["rows"].items():
            assert r["pitched_note_accuracy"] == pytest.approx(accuracy[name])
            assert r["macro_f1"] == pytest.approx(whole[name]["macro_f1"])
        assert scored["best_baseline"] == best
        assert scored["margin"] == pytest.approx(margin)
    assert panel["mean_margin"] == pytest.approx(margin)
    assert panel["worst_margin"] == pytest.approx(margin)
    assert len(whole) >= 2 and out.count("| first |") == len(whole) + 1  # and its F1 row


def test_a_missing_panel_folder_is_refused_before_any_work(
        tiny_run: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_model(*args: object) -> None:
        raise AssertionError("the model was loaded before the panel was checked")

    monkeypatch.setattr(panel.SongSystems, "load", no_model)
    cfg = panel_config(tiny_run, tmp_path, {"first": str(tiny_run.data_dir),
                                            "gone": str(tmp_path / "nowhere")})
    assert evaluate.main(["--config", str(cfg), "--panel", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "'panel' corpus 'gone'" in err[0]
    models = tmp_path / "models"
    assert not models.exists() or not any(models.iterdir())
    empty = panel_config(tiny_run, tmp_path, {})
    assert evaluate.main(["--config", str(empty), "--panel"]) == 2
    with pytest.raises(SystemExit):
        evaluate.main(["--config", str(cfg), "--panel", "--songs"])
    with pytest.raises(SystemExit):
        evaluate.main(["--config", str(cfg), "--instruments-given"])
