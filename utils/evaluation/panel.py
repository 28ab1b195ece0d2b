"""The validation panel: one table of every corpus the model should serve.

``evaluate.py --panel`` scores the songs of one split (val by default) of each corpus of
the config's ``panel`` (``{corpus name: built dataset folder}``) in the whole-song mode
(:mod:`utils.evaluation.song_modes`: every note fed, every note of a classed track
scored), with the model loaded once and the baselines saved with it. The table holds one
row per corpus x system (the model and each baseline): pitched-note accuracy and macro F1,
and on the model's row its margin over that corpus's best baseline (the baseline of the
highest pitched-note accuracy there). With ``given`` every system also gets a row with
each song's true set of pitched instruments given (:mod:`utils.separation.instrument_hints`,
as ``evaluate.py --songs --instruments-given``): shown in the table, never counted in the
margins, which compare the model without hints to the baselines without hints.

The choice rule, written down before the runs: **choose by the mean margin over the
corpora, report the worst beside it** -- a model, a setting or a training mix is preferred
when its mean margin (pitched-note accuracy over each corpus's best baseline, averaged over
the corpora, each corpus counting once) is higher; the worst corpus's margin is printed
beside it. The test splits stay for the final table.

Written into ``model_dir`` as ``panel_<split>.json`` and ``.md``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from data.errors import UserError, one_line
from data.fileio import atomic_write_json, atomic_write_text
from utils.core.config import Config, ConfigError
from utils.evaluation.song_modes import SongSystems, score_song_modes
from utils.evaluation.songs import SplitSongs
from utils.separation.instrument_hints import GIVEN_SUFFIX

PANEL_METRICS: tuple[str, ...] = ("pitched_note_accuracy", "macro_f1")
"""The metrics of each row of the panel, in column order."""
RULE = "choose by the mean margin over the corpora, report the worst beside it"


@dataclass
class CorpusScore:
    """One corpus of the panel.

    Attributes:
        data_dir: the built dataset scored.
        songs: songs of the split scored.
        notes: notes scored (every system scores the same notes).
        rows: ``{system: {metric: value}}`` for :data:`PANEL_METRICS`, the model first.
        best_baseline: the baseline of the highest pitched-note accuracy on this corpus.
        margin: the model's pitched-note accuracy minus the best baseline's.
        f1: the model's F1 of each class (``{class: F1}``).
        folded: for a model of a wider set, every system's rows folded back onto the
            paper's five classes (:data:`PANEL_METRICS` and each class's F1), else empty;
            folded_margin: the model's margin there.
    """

    data_dir: str
    songs: int
    notes: int
    rows: dict[str, dict[str, float]]
    best_baseline: str
    margin: float
    f1: dict[str, float] = field(default_factory=dict)
    folded: dict[str, dict[str, float]] = field(default_factory=dict)
    folded_margin: float | None = None


def _kept(rows: dict[str, dict[str, float]], model: str
          ) -> tuple[dict[str, dict[str, float]], str, float]:
    """The panel's metrics of each row, the best baseline and the model's margin over it."""
    kept = {name: {k: float(row[k]) for k in PANEL_METRICS} for name, row in rows.items()}
    baselines = [name for name in kept if name != model and not name.endswith(GIVEN_SUFFIX)]
    if not baselines:
        raise ValueError("a panel needs at least one baseline to measure a margin against")
    best = max(baselines, key=lambda name: kept[name]["pitched_note_accuracy"])
    return kept, best, kept[model]["pitched_note_accuracy"] - kept[best]["pitched_note_accuracy"]


def class_f1(row: dict[str, float]) -> dict[str, float]:
    """``{class: F1}`` of a metrics row (its ``<class>_f1`` keys but ``macro_f1``)."""
    return {k[:-3]: float(v) for k, v in row.items() if k.endswith("_f1") and k != "macro_f1"}


def corpus_score(data_dir: str, songs: int, rows: dict[str, dict[str, float]],
                 model: str, folded: dict[str, dict[str, float]] | None = None) -> CorpusScore:
    """A corpus's rows (a whole-song report's, ``model`` the model's row) with its margin
    over the best baseline; rows with the instruments given are kept and never compared.
    ``folded``: the report's rows folded onto the paper's classes, kept with their margin."""
    kept, best, margin = _kept(rows, model)
    score = CorpusScore(data_dir, songs, int(rows[model]["notes"]), kept, best, margin,
                        class_f1(rows[model]))
    if folded:
        folded_kept, _, score.folded_margin = _kept(folded, model)
        score.folded = {name: {**row, **{f"{c}_f1": f for c, f in class_f1(folded[name]).items()}}
                        for name, row in folded_kept.items()}
    return score


@dataclass
class PanelReport:
    """The panel's table: every corpus's :class:`CorpusScore`, and the margins' summary.

    Attributes:
        split: the split scored.
        model: the model's row name.
        corpora: ``{corpus: CorpusScore}`` in the config's order.
        mean_margin: the mean of the corpora's margins (the choice rule).
        worst_corpus: the corpus of the lowest margin; worst_margin: that margin.
        seconds: wall-clock seconds; settings: the model's and baselines' settings.
    """

    split: str
    model: str
    corpora: dict[str, CorpusScore]
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)
    rule: str = RULE
    mean_margin: float = field(init=False)
    worst_corpus: str = field(init=False)
    worst_margin: float = field(init=False)

    def __post_init__(self) -> None:
        margins = {name: c.margin for name, c in self.corpora.items()}
        self.mean_margin = sum(margins.values()) / len(margins)
        self.worst_corpus = min(margins, key=margins.__getitem__)
        self.worst_margin = margins[self.worst_corpus]

    def table(self) -> str:
        """The Markdown table, one row per corpus x system, and the margins below it."""
        lines = ["| corpus | system | pitched-note accuracy | macro F1 | margin over the "
                 "best baseline |", "| --- | --- | --- | --- | --- |"]
        for name, corpus in self.corpora.items():
            for system, row in corpus.rows.items():
                margin = (f"{corpus.margin:+.3f} (over {corpus.best_baseline})"
                          if system == self.model else "")
                lines.append(f"| {name} | {system} | {row['pitched_note_accuracy']:.3f} | "
                             f"{row['macro_f1']:.3f} | {margin} |")
        lines += ["", f"mean margin over {len(self.corpora)} corpora: {self.mean_margin:+.3f}; "
                  f"worst corpus: {self.worst_corpus} {self.worst_margin:+.3f} "
                  f"(rule: {self.rule})"]
        if any(c.f1 for c in self.corpora.values()):
            lines += ["", "F1 of each class, the model:", "",
                      *f1_table({name: c.f1 for name, c in self.corpora.items()})]
        if all(c.folded for c in self.corpora.values()):
            lines += self.folded_table()
        presence = self.settings.get("presence_accuracy")
        if presence:
            lines += ["", "presence accuracy of the learned song pass (song x pitched-instrument "
                      "pairs right / all): " + ", ".join(f"{name} {value:.3f}"
                                                         for name, value in presence.items())]
        return "\n".join(lines)

    def folded_table(self) -> list[str]:
        """Lines of the table folded back onto the paper's five classes (a wider set)."""
        lines = ["", "Folded back onto the paper's five classes (their notes alone; another "
                 "class given to one of them is an error):", "",
                 "| corpus | system | pitched-note accuracy | macro F1 | margin over the "
                 "best baseline |", "| --- | --- | --- | --- | --- |"]
        for name, corpus in self.corpora.items():
            for system, row in corpus.folded.items():
                margin = f"{corpus.folded_margin:+.3f}" if system == self.model else ""
                lines.append(f"| {name} | {system} | {row['pitched_note_accuracy']:.3f} | "
                             f"{row['macro_f1']:.3f} | {margin} |")
        margins = [c.folded_margin or 0.0 for c in self.corpora.values()]
        return [*lines, "", f"mean folded margin: {sum(margins) / len(margins):+.3f}", "",
                "F1 of each of the five classes, the model, folded back:", "",
                *f1_table({name: class_f1(c.folded[self.model])
                           for name, c in self.corpora.items()})]

    def markdown(self) -> str:
        """The whole file: a title, what was scored, the table."""
        scored = ", ".join(f"{name} {c.songs} songs / {c.notes} notes ({c.data_dir})"
                           for name, c in self.corpora.items())
        given = any(r.endswith(GIVEN_SUFFIX) for c in self.corpora.values() for r in c.rows)
        given_words = (f"\n\nRows ending in '{GIVEN_SUFFIX.strip()}': each song's true set of "
                       "pitched instruments given to the system, which keeps every pitched "
                       "note within it; not counted in the margins." if given else "")
        return (f"# Validation panel on the {self.split} split: whole songs\n\n"
                f"{self.settings.get('model')}; baselines {self.settings.get('baselines')}. "
                f"Scored: {scored}. {self.seconds:.1f} s.\n\n{self.table()}{given_words}\n")


def f1_table(f1s: dict[str, dict[str, float]]) -> list[str]:
    """Markdown lines of a corpus x class F1 table (``{corpus: {class: F1}}``)."""
    classes = list(dict.fromkeys(c for f1 in f1s.values() for c in f1))
    return ["| corpus | " + " | ".join(classes) + " |", "| --- |" + " --- |" * len(classes),
            *(f"| {name} | " + " | ".join(f"{f1[c]:.3f}" if c in f1 else "" for c in classes)
              + " |" for name, f1 in f1s.items())]


def check_panel(cfg: Config, split: str, limit: int | None = None) -> dict[str, SplitSongs]:
    """Every corpus of the config's ``panel``, checked before any model work.

    Raises:
        utils.core.config.ConfigError: no corpus, or a folder that is not a built dataset
            with songs in ``split`` (one line naming the corpus and the folder).
    """
    if not cfg.panel:
        raise ConfigError(f"{cfg._source}: 'panel' names no corpus (a mapping of corpus "
                          "names to built dataset folders)")
    checked = {}
    for name, folder in cfg.panel.items():
        try:
            checked[name] = SplitSongs.checked(folder, split, limit)
        except (UserError, FileNotFoundError) as exc:
            raise ConfigError(f"{cfg._source}: 'panel' corpus {name!r}: "
                              f"{one_line(exc)}") from None
    return checked


def evaluate_panel(cfg: Config, split: str = "val", limit: int | None = None,
                   device: str | None = None, progress: bool = True,
                   given: bool = False) -> PanelReport:
    """Score each corpus of the panel in the whole-song mode, the model loaded once.

    Args:
        cfg: the typed config (``panel``, checkpoints, sampling keys).
        split: the split of every corpus scored.
        limit: at most this many songs of each corpus (the first ones of the split).
        device: sampling device; None = the config's ``accelerator``.
        progress: show a progress bar in songs.
        given: add every system's ``(instruments given)`` row (not counted in the margins).
    """
    corpora = check_panel(cfg, split, limit)
    started = time.perf_counter()
    systems = SongSystems.load(cfg, device)
    scores, settings, model, presence = {}, {}, "", {}
    for name, songs in corpora.items():
        (report,) = score_song_modes(systems, songs, split, cfg.panel[name], ("whole",),
                                     given, progress)
        model = next(iter(report.rows))
        settings = report.settings
        scores[name] = corpus_score(cfg.panel[name], len(songs.names), report.rows, model,
                                    report.folded)
        if "presence_accuracy" in report.settings:
            presence[name] = report.settings["presence_accuracy"]
    kept = {k: settings.get(k) for k in ("model", "baselines", "device")}
    return PanelReport(split, model, scores, time.perf_counter() - started,
                       {**kept, "presence_accuracy": presence} if presence else kept)


def write_panel(report: PanelReport, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``panel_<split>.json`` and ``.md`` into ``out_dir`` (created), atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"panel_{report.split}.json", out / f"panel_{report.split}.md"
    atomic_write_json(json_path, asdict(report))
    atomic_write_text(md_path, report.markdown())
    return json_path, md_path
