"""Command line of the dataset build (:mod:`data.preprocess`).

    python -m utils.preprocess --config config.json [--midi-dir DIR] [--out-dir DIR]
        [--workers N] [--melody-json FILE] [--seed S] [--split-by song|folder|named]
        [--min-bar-density F] [--max-song-bars B] [--melody-in-mixture]
        [--default-meter-4-4] [--class-tracks largest|all] [--instrument-set NAME]
        [--no-progress]
    python -m utils.preprocess --midi-dir DIR --out-dir DIR [...]

With ``--config`` the keys ``midi_dir``, ``data_dir`` (the output folder), ``melody_json``,
``train_split``/``val_split``/``test_split``, ``split_by``, ``seed``, ``preprocess_workers``,
``min_bar_density``, ``max_song_bars``, ``melody_in_mixture``, ``default_meter_4_4``,
``class_tracks`` and ``instrument_set`` are read from the config;
flags given explicitly replace them and are validated like config keys
(``--instrument-set`` names a preset of :mod:`data.instruments` and sets ``in_ch`` and
``out_ch`` to its class count, which the build does not read). Without
``--config`` the defaults of :class:`utils.core.config.Config` apply and ``--midi-dir`` and
``--out-dir`` are required.
Exit status: 0 done, 2 a config or input problem (one ``error:`` line, nothing written),
1 a failure while writing, 130 interrupted (Ctrl-C; finished files are kept).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from data.build_plan import SPLIT_BY
from data.contract import MAX_SONG_BARS
from data.instruments import PRESETS
from data.preprocess import build
from data.song_roll import CLASS_TRACKS
from data.store import MANIFEST_NAME
from utils.core.cli import command
from utils.core.config import config_from_flags

# flag -> config key
FLAG_KEYS = {"midi_dir": "midi_dir", "out_dir": "data_dir", "workers": "preprocess_workers",
             "melody_json": "melody_json", "seed": "seed", "min_bar_density": "min_bar_density",
             "split_by": "split_by", "max_song_bars": "max_song_bars",
             "melody_in_mixture": "melody_in_mixture", "default_meter_4_4": "default_meter_4_4",
             "class_tracks": "class_tracks", "instrument_set": "instrument_set",
             "in_ch": "in_ch", "out_ch": "out_ch"}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m utils.preprocess",
                                     description="Build phrases from a folder of MIDI files.")
    parser.add_argument("--config", help="config.json to take defaults from")
    parser.add_argument("--midi-dir", help="folder of MIDI files (searched recursively)")
    parser.add_argument("--out-dir", help="dataset folder to write (resumes if it exists)")
    parser.add_argument("--workers", type=int, help="processes (default: all cores)")
    parser.add_argument("--melody-json", help='midi-miner style {file: {"melody": program}}')
    parser.add_argument("--seed", type=int, help="seed of the song split (default 0)")
    parser.add_argument("--min-bar-density", type=float,
                        help="fraction of each bar's cells that must be on (default 0.01)")
    parser.add_argument("--split-by", choices=SPLIT_BY,
                        help="song: shuffle songs; folder: shuffle whole first-level folders; "
                             "named: the first-level folder names the split (train, val/valid/"
                             "validation, test) (default song)")
    parser.add_argument("--max-song-bars", type=int,
                        help=f"longest song converted, in bars; longer files are counted as "
                             f"too_long (default {MAX_SONG_BARS})")
    parser.add_argument("--melody-in-mixture", action="store_true", default=None,
                        help="the melody track joins the class its program names (the tune "
                             "is in the mixture); default: kept apart, as the paper")
    parser.add_argument("--default-meter-4-4", action="store_true", default=None,
                        help="a file without any time signature is read as 4/4, the MIDI "
                             "standard's default; default: such a file is skipped as not_4_4, "
                             "as the paper")
    parser.add_argument("--class-tracks", choices=CLASS_TRACKS,
                        help="largest: one track per class, the one with most notes, tracks "
                             "of 50 notes or fewer dropped (the paper's); all: every track of "
                             "a class merged into its channel, short ones kept (default "
                             "largest)")
    parser.add_argument("--instrument-set", choices=tuple(PRESETS),
                        help="the classes tracks are sorted into, a preset (default: the "
                             "config's instrument_set, else paper)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    n_music = PRESETS[args.instrument_set].n_music if args.instrument_set else None
    args.in_ch = args.out_ch = n_music  # network keys follow the set; the build reads none
    return args


@command(interrupted="interrupted: the files finished so far are kept; run the same command "
                     "again to continue")
def main(argv: Sequence[str] | None = None) -> int:
    """Run the build from the command line; print the manifest. Returns the exit code."""
    args = parse_args(argv)
    cfg = config_from_flags(args, FLAG_KEYS, required=("midi_dir", "out_dir"))
    manifest = build(cfg.midi_dir, cfg.data_dir, workers=cfg.preprocess_workers,
                     melody_json=cfg.melody_json, seed=cfg.seed,
                     fractions=(cfg.train_split, cfg.val_split, cfg.test_split),
                     progress=not args.no_progress, min_bar_density=cfg.min_bar_density,
                     split_by=cfg.split_by, max_song_bars=cfg.max_song_bars,
                     melody_in_mixture=cfg.melody_in_mixture,
                     default_meter_4_4=cfg.default_meter_4_4, class_tracks=cfg.class_tracks,
                     instruments=cfg.instruments)
    shown = {k: v for k, v in manifest.items() if k not in ("split_songs", "split_folders",
                                                         "song_sources")}
    print(json.dumps(shown, indent=2))
    print(f"full manifest (with the songs of each split): {Path(cfg.data_dir) / MANIFEST_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
