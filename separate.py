"""Separate the instruments of any MIDI file, note by note, with the trained separator.

    python separate.py INPUT.mid [MORE.mid FOLDER ...] [-o OUTDIR] [--config config.json]
        [--reference] [--bars A:B] [--json] [--outputs midi,audio,mixture,picture,json]
        [--instruments piano,bass,...] [--drums-by-model] [--overwrite]

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
without time signature is read as 4/4; another meter is separated with a warning.
``--outputs`` writes only the kinds named; ``--instruments`` keeps every pitched note
within the instruments named (drum-channel notes keep their rule), and the summary and
the JSON say so.

Several inputs (files, and folders standing for their ``.mid``/``.midi`` files, sorted)
are separated in one run with the model loaded once, with a progress bar over the files
(:mod:`utils.separation.file_batch`); two inputs of one stem are refused before any work, and a file
that fails is one ``error:`` line while the others are still written (exit status 1).

Limits (checked before anything of the song's size exists; see docs/reliability.md):
``--max-file-mb`` (32), ``--max-notes`` (2,000,000 notes, and as many controller and
pitch-bend events), ``--max-overlap`` (4,096 notes of one pitch at once),
``max_song_bars`` of the config (2,000); the audio is cut at ``--max-audio-seconds``
(600) and the picture at 64 bars, each with a warning. The outputs are claimed before the
work, so a second run into the same files is refused instead of replacing them. Exit
status 2 for a config or input problem (one ``error:`` line; control characters in names
are escaped), 1 when writing the outputs fails.
"""

from __future__ import annotations

import argparse
import sys

from data.errors import InputError, one_line
from data.fileio import writable_dir_problem
from data.midi import MAX_FILE_BYTES
from utils.core.cli import command
from utils.core.config import load_config
from utils.rendering.audio import MAX_AUDIO_SECONDS
from utils.rendering.pictures import parse_bars
from utils.separation.devices import add_device_option, device_problem
from utils.separation.file_batch import check_batch_outputs, input_files, separate_files
from utils.separation.file_choices import (
    DEFAULT_OUTPUTS,
    OUTPUT_KINDS,
    FileChoices,
    parse_outputs,
)
from utils.separation.file_job import MAX_NOTES, MAX_OVERLAP, FileOptions, Limits
from utils.separation.instrument_hints import HINT_NAMES, InstrumentHint
from utils.separation.separator import Separator

SAMPLE_RATES = (8000, 192000)  # --sample-rate accepted, in Hz


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="MIDI files, and folders of MIDI files (their .mid/.midi files, "
                             "sorted), to separate")
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
    parser.add_argument("--outputs", default=None, metavar="KINDS",
                        help=f"the outputs written, comma-separated, of {', '.join(OUTPUT_KINDS)} "
                             f"(default {','.join(DEFAULT_OUTPUTS)}, and json with --json)")
    parser.add_argument("--instruments", default=None, metavar="NAMES",
                        help="the instruments the song holds, comma-separated, of "
                             f"{', '.join(HINT_NAMES)} (or the classes of the config's "
                             "instrument_set): every pitched note is kept within them "
                             "(drum-channel notes keep their rule)")
    parser.add_argument("--drums-by-model", action="store_true",
                        help="let the model choose the instrument of drum-channel notes too "
                             "(default: they stay drums)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing outputs (default: refuse)")
    add_device_option(parser)
    parser.add_argument("--sample-rate", type=int, default=22050,
                        help=f"audio rate in Hz, {SAMPLE_RATES[0]}..{SAMPLE_RATES[1]} "
                             "(FluidSynth renders at most 96000; a higher rate is rendered at "
                             "96000, and the WAV files say so)")
    parser.add_argument("--max-audio-seconds", type=float, default=MAX_AUDIO_SECONDS,
                        help="longest audio rendered; a longer song's audio is cut, with a "
                             f"warning (default {MAX_AUDIO_SECONDS:g})")
    parser.add_argument("--max-file-mb", type=float, default=MAX_FILE_BYTES / 2**20,
                        help="largest input file in MiB, checked before it is read "
                             f"(default {MAX_FILE_BYTES / 2**20:g})")
    parser.add_argument("--max-notes", type=int, default=MAX_NOTES,
                        help="most notes of the input, and most controller and pitch-bend "
                             f"events (default {MAX_NOTES:,})")
    parser.add_argument("--max-overlap", type=int, default=MAX_OVERLAP,
                        help="most notes of one pitch sounding at once; each needs a track "
                             f"of its own in the separated file (default {MAX_OVERLAP:,})")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


@command
def main(argv: list[str] | None = None) -> int:
    """Parse the command line, separate the files, print where the outputs are."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not SAMPLE_RATES[0] <= args.sample_rate <= SAMPLE_RATES[1]:
        parser.error(f"--sample-rate must be {SAMPLE_RATES[0]}..{SAMPLE_RATES[1]} Hz, got "
                     f"{args.sample_rate}")
    if not 0 < args.max_audio_seconds <= 24 * 3600:
        parser.error(f"--max-audio-seconds must be in (0, 86400], got {args.max_audio_seconds}")
    if not 0 < args.max_file_mb <= 4096:
        parser.error(f"--max-file-mb must be in (0, 4096], got {args.max_file_mb}")
    for flag, value in (("--max-notes", args.max_notes), ("--max-overlap", args.max_overlap)):
        if value < 1:
            parser.error(f"{flag} must be >= 1, got {value}")
    if args.max_overlap > 13_000:  # 5 instruments x 13,000 tracks: a MIDI file holds 65,535
        parser.error(f"--max-overlap must be <= 13000, got {args.max_overlap}")
    problem = device_problem(args.device)
    if problem:
        raise InputError(problem)
    try:
        bars = None if args.bars is None else parse_bars(args.bars)
    except InputError as exc:
        parser.error(f"--{exc}")
    outputs = None if args.outputs is None else parse_outputs(args.outputs)
    if outputs is not None and args.json and "json" not in outputs:
        outputs = parse_outputs(",".join([*outputs, "json"]))
    write_json = args.json or (outputs is not None and "json" in outputs)
    cfg = load_config(args.config)
    hint = None if args.instruments is None else InstrumentHint.parse(
        args.instruments, instruments=cfg.instruments)
    files = input_files(args.inputs)
    if args.out_dir is None:
        cfg.require_writable_dir("output_dir")
    else:
        problem = writable_dir_problem(args.out_dir)
        if problem:
            raise InputError(f"--out-dir {args.out_dir!r} is not a writable folder ({problem})")
    out_dir = args.out_dir or cfg.output_dir
    limits = Limits(max_song_bars=cfg.max_song_bars,
                    max_file_bytes=int(args.max_file_mb * 2**20),
                    max_notes=args.max_notes, max_overlap=args.max_overlap,
                    max_audio_seconds=args.max_audio_seconds)
    options = FileOptions(reference=args.reference, bars=bars, write_json=write_json,
                          drums_by_model=args.drums_by_model, overwrite=args.overwrite,
                          sample_rate=args.sample_rate, limits=limits,
                          choices=FileChoices(outputs=outputs, hint=hint))
    check_batch_outputs(files, out_dir, options)
    separator = Separator.from_config(cfg, args.device)
    result = separate_files(separator, files, out_dir, options,
                            progress=not args.no_progress,
                            head=f"model: {one_line(separator.describe())}")
    if len(files) > 1:
        print(f"{len(result.done)} of {len(files)} files separated into {one_line(out_dir)}"
              + (f"; {len(result.failed)} failed" if result.failed else ""))
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
