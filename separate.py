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
without time signature is read as 4/4; another meter is separated with a warning.

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
from pathlib import Path

import torch

from data.errors import InputError, one_line
from data.fileio import not_a_file, writable_dir_problem
from data.midi import MAX_FILE_BYTES
from utils.cli import command
from utils.config import load_config
from utils.note_separation import (
    MAX_NOTES,
    MAX_OVERLAP,
    Limits,
    check_outputs,
    output_paths,
    separate_midi_file,
)
from utils.render import MAX_AUDIO_SECONDS, parse_bars
from utils.separation import Separator, add_device_option

SAMPLE_RATES = (8000, 192000)  # --sample-rate accepted, in Hz
DEVICES = "auto, cpu, cuda, cuda:N or mps"


def device_problem(name: str | None) -> str | None:
    """Why ``--device`` cannot be used here, or None (checked before anything is loaded)."""
    if name is None or name == "auto":
        return None
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        return f"--device {name!r} is not a device name ({DEVICES})"
    if dev.type not in ("cpu", "cuda", "mps"):
        return f"--device {name!r}: separation runs on {DEVICES}, not {dev.type!r}"
    if dev.type == "cpu" and dev.index not in (None, 0):
        return f"--device {name!r}: the CPU is one device; use 'cpu'"
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return f"--device {name!r}: CUDA is not available on this machine"
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            return (f"--device {name!r}: this machine has {torch.cuda.device_count()} CUDA "
                    "device(s)")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        return f"--device {name!r}: MPS is not available on this machine"
    return None


@command
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
    cfg = load_config(args.config)
    problem = not_a_file(Path(args.input), "input MIDI file")
    if problem:
        raise InputError(f"{args.input}: {problem}")
    if args.out_dir is None:
        cfg.require_writable_dir("output_dir")
    else:
        problem = writable_dir_problem(args.out_dir)
        if problem:
            raise InputError(f"--out-dir {args.out_dir!r} is not a writable folder ({problem})")
    out_dir = args.out_dir or cfg.output_dir
    check_outputs(output_paths(args.input, out_dir, args.json), args.overwrite, args.input)
    limits = Limits(max_song_bars=cfg.max_song_bars,
                    max_file_bytes=int(args.max_file_mb * 2**20),
                    max_notes=args.max_notes, max_overlap=args.max_overlap,
                    max_audio_seconds=args.max_audio_seconds)
    separator = Separator.from_config(cfg, args.device)
    result = separate_midi_file(
        separator.probs, args.input, out_dir, batch_size=separator.batch_size,
        device=separator.device, reference=args.reference, bars=bars,
        write_json=args.json, drums_by_model=args.drums_by_model,
        overwrite=args.overwrite, sample_rate=args.sample_rate,
        progress=not args.no_progress, limits=limits, song_context=separator.song_context,
        song_pass=separator.song_pass)
    for line in result.warnings:
        print(f"warning: {one_line(line)}", file=sys.stderr)
    print(f"model: {one_line(separator.describe())}")
    print(f"separated {one_line(args.input)}: {result.n_steps} steps in {result.n_windows} "
          f"windows (note by note, audio by {result.synth} at {result.sample_rate} Hz)")
    for line in result.summary():
        print(f"  {line}")
    labels = {"midi": "MIDI", "wav": "audio", "mixture_wav": "mixture", "png": "picture",
              "json": "notes"}
    for key, path in result.paths.items():
        bars = f" (bars {result.excerpt[0]}-{result.excerpt[1]})" if key == "png" else ""
        print(f"  {labels[key]:<10}{one_line(path)}{bars}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
