"""Separate the instruments of any MIDI file, note by note, with the trained separator.

    python separate.py INPUT.mid [-o OUTDIR] [--config config.json] [--reference]
        [--bars A:B] [--json] [--drums-by-model] [--overwrite]

Every input note comes back exactly once, with its own pitch, ticks and velocity, on the
track of the instrument it was given. Writes ``OUTDIR/<name>.separated.mid`` (one track
per instrument, the input's tempo map, time and key signatures),
``<name>.separated.wav``, ``<name>.mixture.wav``, ``<name>.png`` (an excerpt, by default
the first 16 bars that hold notes: the separated notes above the input mixture, and
with ``--reference`` the file's own multitrack) and with ``--json`` ``<name>.notes.json``
(every note's instrument and probabilities). Existing outputs are an error unless
``--overwrite`` is given. OUTDIR defaults to the config's ``output_dir``. Uses the
checkpoints named in the config, else the newest ones in ``model_dir``, else the shipped
model in ``pretrained/`` (it says which). Any length up to ``max_song_bars``; a file
without time signature is read as 4/4; another meter is separated with a warning. Exit
status 2 for a config or input problem (one ``error:`` line), 1 when writing the outputs
fails.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from data.fileio import writable_dir_problem
from data.midi import MidiError
from utils.config import EXIT_CONFIG, ConfigError, load_config
from utils.note_separation import check_outputs, output_paths, separate_midi_file
from utils.render import parse_bars
from utils.separation import Separator, add_device_option


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, separate the file, print where the outputs are."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", help="MIDI file to separate")
    parser.add_argument("-o", "--out-dir", default=None,
                        help="output folder (default: the config's output_dir)")
    parser.add_argument("--config", default="config.json", help="config file (config.json)")
    parser.add_argument("--reference", action="store_true",
                        help="also draw the file's own multitrack in the picture")
    parser.add_argument("--bars", default=None, metavar="A:B",
                        help="bars drawn in the picture, from 1, both included "
                             "(default: the first 16 bars that hold notes)")
    parser.add_argument("--json", action="store_true",
                        help="also write <name>.notes.json: every note's instrument and "
                             "probabilities")
    parser.add_argument("--drums-by-model", action="store_true",
                        help="let the model choose the instrument of drum-channel notes too "
                             "(default: they stay drums)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing outputs (default: refuse)")
    add_device_option(parser)
    parser.add_argument("--sample-rate", type=int, default=22050, help="audio rate in Hz")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    if args.sample_rate <= 0:
        parser.error(f"--sample-rate must be > 0, got {args.sample_rate}")

    try:
        bars = None if args.bars is None else parse_bars(args.bars)
    except ValueError as exc:
        parser.error(f"--{exc}")
    try:
        cfg = load_config(args.config)
        if not Path(args.input).is_file():
            raise ConfigError(f"{args.input}: input MIDI file not found")
        if args.out_dir is None:
            cfg.require_writable_dir("output_dir")
        else:
            problem = writable_dir_problem(args.out_dir)
            if problem:
                raise ConfigError(f"--out-dir {args.out_dir!r} is not a writable folder "
                                  f"({problem})")
        out_dir = args.out_dir or cfg.output_dir
        check_outputs(output_paths(args.input, out_dir, args.json), args.overwrite)
        separator = Separator.from_config(cfg, args.device)
        result = separate_midi_file(
            separator.probs, args.input, out_dir, batch_size=separator.batch_size,
            device=separator.device, reference=args.reference, bars=bars,
            write_json=args.json, drums_by_model=args.drums_by_model,
            overwrite=args.overwrite, sample_rate=args.sample_rate,
            progress=not args.no_progress, max_song_bars=cfg.max_song_bars)
    except (FileExistsError, MidiError, ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for line in result.warnings:
        print(f"warning: {line}", file=sys.stderr)
    print(f"model: {separator.describe()}")
    print(f"separated {args.input}: {result.n_steps} steps in {result.n_windows} windows "
          f"(note by note, audio by {result.synth})")
    for line in result.summary():
        print(f"  {line}")
    labels = {"midi": "MIDI", "wav": "audio", "mixture_wav": "mixture", "png": "picture",
              "json": "notes"}
    for key, path in result.paths.items():
        bars = f" (bars {result.excerpt[0]}-{result.excerpt[1]})" if key == "png" else ""
        print(f"  {labels[key]:<10}{path}{bars}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
