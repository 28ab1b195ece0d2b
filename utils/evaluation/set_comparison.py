"""Models of different instrument sets side by side, on the same songs and the same notes.

``python bench/instrument_sets.py --config A.json --config B.json`` scores two or more
models (each config's, with the baselines saved with it) on whole songs of every corpus
their ``panel`` keys share, keeping only the songs that are in the split of every config's
build of that corpus. Builds with different sets keep a few different songs (a track of
an extra class gives a window), so their splits differ and the panel of each model alone
compares them on different songs; here each corpus is read song for song.

A model whose set holds the paper's five classes and more is scored folded back onto them
(:meth:`utils.evaluation.metrics.NoteConfusion.folded`), a five-class model as it is, so
every system is scored on the same notes: those of tracks of the paper's five classes.
Each corpus's best baseline is the best baseline row of any config (by pitched-note
accuracy); each model's margin over it and the mean margin over the corpora are printed,
as the validation panel's rule reads them. The whole-song truth depends only on the song
file and the model's set (:func:`utils.evaluation.song_modes.whole_song_truth`), so the
builds serve as song lists here and a model is never given a build of another set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from data.instruments import PAPER
from utils.core.config import Config, ConfigError
from utils.evaluation.panel import PANEL_METRICS
from utils.evaluation.song_modes import SongSystems, whole_song_truth
from utils.evaluation.songs import SongScorer, SplitSongs, song_model_row


@dataclass
class SetComparison:
    """The side-by-side table.

    Attributes:
        split: the split scored.
        models: ``{label: what the config's model is}``, in the configs' order.
        corpora: ``{corpus: {"songs": n, "notes": n, "rows": {system: metrics},
            "best_baseline": name, "margins": {model label: margin}}}``.
    """

    split: str
    models: dict[str, str]
    corpora: dict[str, dict[str, Any]] = field(default_factory=dict)

    def mean_margins(self) -> dict[str, float]:
        """Each model's mean margin over the corpora."""
        return {label: sum(c["margins"][label] for c in self.corpora.values())
                / max(len(self.corpora), 1) for label in self.models}

    def markdown(self) -> str:
        """The table: one row per corpus x system, then each model's mean margin."""
        lines = [f"Whole {self.split} songs in every build, the paper's five classes "
                 "(a wider set folded back). Pitched-note accuracy / macro F1.", "",
                 "| corpus (songs, notes) | system | pitched-note accuracy | macro F1 | "
                 "margin over the best baseline |", "| --- | --- | --- | --- | --- |"]
        for name, c in self.corpora.items():
            for system, row in c["rows"].items():
                label = system.split(": ", 1)[0]
                margin = (f"{c['margins'][label]:+.3f} (over {c['best_baseline']})"
                          if system.endswith(MODEL_SUFFIX) else "")
                lines.append(f"| {name} ({c['songs']}, {c['notes']}) | {system} | "
                             f"{row['pitched_note_accuracy']:.3f} | {row['macro_f1']:.3f} | "
                             f"{margin} |")
        lines += ["", "mean margin over the corpora: " + ", ".join(
            f"{label} {m:+.3f}" for label, m in self.mean_margins().items())]
        return "\n".join(lines)


MODEL_SUFFIX = ": model"


def common_songs(cfgs: Sequence[Config], corpus: str, split: str,
                 limit: int | None = None) -> tuple[SplitSongs, list[str]]:
    """The first config's build of ``corpus`` and the names of the songs in ``split`` of
    every config's build of it (in the first build's order), at most ``limit``."""
    builds = [SplitSongs.checked(cfg.panel[corpus], split) for cfg in cfgs]
    kept = set.intersection(*(set(b.names) for b in builds))
    names = [n for n in builds[0].names if n in kept]
    return builds[0], names[:limit] if limit else names


def compare_sets(cfgs: Sequence[Config], labels: Sequence[str], split: str = "val",
                 limit: int | None = None, device: str | None = None,
                 progress: bool = True) -> SetComparison:
    """Score every config's model and baselines on the songs the builds share (module
    docstring).

    Raises:
        utils.core.config.ConfigError: fewer than two configs, no corpus shared by their
            ``panel`` keys, a model whose set neither is the paper's nor folds onto it, or
            a corpus without a song common to every build.
    """
    if len(cfgs) < 2:
        raise ConfigError("compare at least two configs")
    corpora = [c for c in cfgs[0].panel if all(c in cfg.panel for cfg in cfgs[1:])]
    if not corpora:
        raise ConfigError("the configs' 'panel' keys share no corpus")
    systems = [SongSystems.load(cfg, device) for cfg in cfgs]
    for cfg, s in zip(cfgs, systems):
        sets = s.separator.instruments
        if not (sets.same_classes(PAPER) or sets.folds_onto(PAPER)):
            raise ConfigError(f"{cfg._source}: its model's set {sets.describe()} does not "
                              "hold the paper's five classes")
    report = SetComparison(split, {label: s.separator.source
                                   for label, s in zip(labels, systems)})
    for corpus in corpora:
        build, names = common_songs(cfgs, corpus, split, limit)
        if not names:
            raise ConfigError(f"'panel' corpus {corpus!r}: no {split} song is in every build")
        rows: dict[str, dict[str, float]] = {}
        notes = set()
        for label, s in zip(labels, systems):
            sep = s.separator
            scorer = SongScorer(sep, s.rules, song_model_row(sep.kind), None, sep.instruments)
            truths = (whole_song_truth(build.midi_dir / n, n, build.max_song_bars,
                                       sep.instruments) for n in names)
            scorer.add_songs(tqdm(truths, total=len(names), unit="song", disable=not progress,
                                  desc=f"{corpus} ({label})", dynamic_ncols=True))
            scored = scorer.folded_rows(PAPER) or scorer.rows()
            notes.add(int(next(iter(scored.values()))["notes"]))
            for system, row in scored.items():
                name = f"{label}{MODEL_SUFFIX}" if system == scorer.model_row else \
                    f"{label}: {system}"
                rows[name] = {k: float(row[k]) for k in PANEL_METRICS}
        if len(notes) != 1:  # the same songs, the same five classes: the same notes
            raise RuntimeError(f"{corpus}: the models scored {sorted(notes)} notes")
        best = max((n for n in rows if not n.endswith(MODEL_SUFFIX)),
                   key=lambda n: rows[n]["pitched_note_accuracy"])
        report.corpora[corpus] = {
            "songs": len(names), "notes": notes.pop(), "rows": rows, "best_baseline": best,
            "margins": {label: rows[f"{label}{MODEL_SUFFIX}"]["pitched_note_accuracy"]
                        - rows[best]["pitched_note_accuracy"] for label in labels}}
    return report
