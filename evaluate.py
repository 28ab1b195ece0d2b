"""Evaluate the trained separator and the baselines on one split.

    python evaluate.py --config config.json [--split test] [--limit N] [--device cpu]
                       [--data-dir DIR] [--songs [--instruments-given]]
    python evaluate.py --config configs/real.json --panel [--split val] [--limit N]
                       [--instruments-given]

Uses the checkpoints named in the config (``transunet_model_path``,
``decoder_model_path``), else the newest ones in ``model_dir``, else the shipped model in
``pretrained/``; prints the metrics table and writes ``evaluation_<split>.json`` and
``.md`` into ``model_dir``. ``--data-dir`` scores another built dataset (cross-corpus:
``evaluation_<parent>_<name>_<split>.*``, e.g. ``evaluation_slakh_dataset_melody_val_songs``
for ``runs/slakh/dataset_melody``); the baselines are those saved with the model, fitted on
its own training data. With ``--songs`` it separates each song of the split whole and
scores its original notes (note accuracy, per-instrument P/R/F1 over notes, baselines at
note level) in two modes (:mod:`utils.evaluation.song_modes`): first whole songs, as a user's file
holds them (every note fed, every note of a classed track scored),
``evaluation_<split>_songs_whole.*``; then the song's unified tracks (the paper's track
unification, as built), ``evaluation_<split>_songs.*``. ``--instruments-given`` adds
every system's row with each song's true pitched instruments given. ``--panel`` scores
the val split (by default) of every corpus of the config's ``panel`` on whole songs and
prints one table, corpus x system, with each corpus's margin over its best baseline, the
mean margin and the worst (:mod:`utils.evaluation.panel`), ``panel_<split>.*``; with
``--instruments-given`` it shows every system's row with the instruments given too (not
counted in the margins).
Exit status 2 for a config or input problem (one ``error:`` line, found before any phrase
is separated; :mod:`utils.core.cli`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from data.store import SPLITS
from utils.core.cli import command
from utils.core.config import Config, load_config
from utils.evaluation.panel import evaluate_panel, write_panel
from utils.evaluation.phrases import evaluate_split, write_evaluation
from utils.evaluation.song_modes import MODE_WORDS, evaluate_song_modes
from utils.separation.devices import add_device_option


def dataset_tag(data_dir: str | Path) -> str:
    """How the tables of another dataset are named: its folder and the folder above it, so
    the builds of several corpora (``runs/slakh/dataset``, ``runs/demo/dataset``) do not
    overwrite each other's tables."""
    path = Path(data_dir).resolve()
    return f"{path.parent.name}_{path.name}" if path.parent.name else path.name


def panel(cfg: Config, args: argparse.Namespace) -> int:
    """``--panel``: score, print and write the validation panel."""
    report = evaluate_panel(cfg, args.split or "val", args.limit, args.device,
                            progress=not args.no_progress, given=args.instruments_given)
    print(f"{report.settings['model']}; baselines {report.settings['baselines']}")
    print(f"validation panel, whole songs of the {report.split} split, "
          f"{report.seconds:.1f} s on {report.settings['device']}")
    print(report.table())
    json_path, md_path = write_panel(report, cfg.model_dir)
    print(f"wrote {json_path} and {md_path}")
    return 0


@command
def main(argv: list[str] | None = None) -> int:
    """Parse the command line, evaluate, print and write the tables; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config.json", help="config file (config.json)")
    parser.add_argument("--split", default=None, choices=SPLITS,
                        help="split to evaluate (test; with --panel: val)")
    parser.add_argument("--limit", type=int, default=None,
                        help="evaluate at most N phrases, spread over the split (with "
                             "--songs: the first N songs)")
    parser.add_argument("--songs", action="store_true",
                        help="separate whole songs and score every original note")
    add_device_option(parser)
    parser.add_argument("--instruments-given", action="store_true",
                        help="with --songs or --panel: also score every system with each "
                             "song's true set of pitched instruments given (rows ending in "
                             "'(instruments given)'; not counted in the panel's margins)")
    parser.add_argument("--data-dir", default=None,
                        help="built dataset to score (default: the config's data_dir)")
    parser.add_argument("--panel", action="store_true",
                        help="score every corpus of the config's 'panel' on whole songs: one "
                             "table, corpus x system, and the margins over the best baselines")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit <= 0:
        parser.error(f"--limit must be > 0, got {args.limit}")

    if args.instruments_given and not (args.songs or args.panel):
        parser.error("--instruments-given needs --songs or --panel")
    if args.panel and (args.songs or args.data_dir):
        parser.error("--panel takes neither --songs nor --data-dir")
    cfg = load_config(args.config)
    cfg.require_writable_dir("model_dir")  # the tables go there: fail before computing
    if args.panel:
        return panel(cfg, args)
    args.split = args.split or "test"
    tag = "" if args.data_dir is None else dataset_tag(args.data_dir)
    if args.songs:
        reports = evaluate_song_modes(cfg, args.split, args.limit, args.device,
                                      progress=not args.no_progress, data_dir=args.data_dir,
                                      given=args.instruments_given)
    else:
        reports = [evaluate_split(cfg, args.split, args.limit, args.device,
                                  progress=not args.no_progress, data_dir=args.data_dir)]
    settings = reports[0].settings
    print(f"{settings['model']}; baselines {settings['baselines']}")
    for evaluation in reports:
        if args.songs:
            print(f"{MODE_WORDS[evaluation.mode]}: {len(evaluation.songs)} {args.split} "
                  f"songs, {sum(evaluation.notes_by_instrument.values())} notes scored, "
                  f"{evaluation.seconds:.1f} s on {settings['device']}")
        else:
            print(f"{evaluation.n_phrases} {args.split} phrases of {settings['data_dir']}, "
                  f"{evaluation.phrases_per_s:.2f} phrases/s on {settings['device']}")
        print(evaluation.table())
        if "presence_accuracy" in evaluation.settings:
            print(f"presence accuracy of the learned song pass: "
                  f"{evaluation.settings['presence_accuracy']:.3f} "
                  f"({evaluation.settings['presence_pairs']} song x instrument pairs)")
        json_path, md_path = write_evaluation(evaluation, cfg.model_dir, tag)
        print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
