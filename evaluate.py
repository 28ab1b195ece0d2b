"""Evaluate the trained separator and the baselines on one split.

    python evaluate.py --config config.json [--split test] [--limit N] [--device cpu]
                       [--data-dir DIR] [--songs [--instruments-given]]

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
every system's row with each song's true pitched instruments given.
Exit status 2 for a config or input problem (one ``error:`` line, found before any phrase
is separated; :mod:`utils.core.cli`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from data.store import SPLITS
from utils.core.cli import command
from utils.core.config import load_config
from utils.evaluation.phrases import evaluate_split, write_evaluation
from utils.evaluation.song_modes import MODE_WORDS, evaluate_song_modes
from utils.separation.devices import add_device_option


def dataset_tag(data_dir: str | Path) -> str:
    """How the tables of another dataset are named: its folder and the folder above it, so
    the builds of several corpora (``runs/slakh/dataset``, ``runs/demo/dataset``) do not
    overwrite each other's tables."""
    path = Path(data_dir).resolve()
    return f"{path.parent.name}_{path.name}" if path.parent.name else path.name


@command
def main(argv: list[str] | None = None) -> int:
    """Parse the command line, evaluate, print and write the tables; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config.json", help="config file (config.json)")
    parser.add_argument("--split", default="test", choices=SPLITS,
                        help="split to evaluate (test)")
    parser.add_argument("--limit", type=int, default=None,
                        help="evaluate at most N phrases, spread over the split (with "
                             "--songs: the first N songs)")
    parser.add_argument("--songs", action="store_true",
                        help="separate whole songs and score every original note")
    add_device_option(parser)
    parser.add_argument("--instruments-given", action="store_true",
                        help="with --songs: also score every system with each song's true set "
                             "of pitched instruments given (rows ending in '(instruments "
                             "given)')")
    parser.add_argument("--data-dir", default=None,
                        help="built dataset to score (default: the config's data_dir)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit <= 0:
        parser.error(f"--limit must be > 0, got {args.limit}")

    if args.instruments_given and not args.songs:
        parser.error("--instruments-given needs --songs")
    cfg = load_config(args.config)
    cfg.require_writable_dir("model_dir")  # the tables go there: fail before computing
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
        json_path, md_path = write_evaluation(evaluation, cfg.model_dir, tag)
        print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
