"""Separate the instruments of any MIDI file with the trained separator.

    python separate.py INPUT.mid [-o OUTDIR] [--config config.json] [--reference]

Writes ``OUTDIR/<name>.separated.mid`` (one track per instrument, the song's tempo map),
``<name>.separated.wav``, ``<name>.mixture.wav`` and ``<name>.png`` (separated roll above
the input mixture; with ``--reference`` above the file's own multitrack too). OUTDIR
defaults to the config's ``output_dir``. Uses the checkpoints named in the config, else
the newest ones in ``model_dir``. Any length up to ``max_song_bars``; a file without
time signature is read as 4/4; another meter is separated with a warning. Exit status 2
for a config or input problem (one ``error:`` line), 1 when writing the outputs fails.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, separate the file, print where the outputs are."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", help="MIDI file to separate")
    parser.add_argument("-o", "--out-dir", default=None,
                        help="output folder (default: the config's output_dir)")
    parser.add_argument("--config", default="config.json", help="config file (config.json)")
    parser.add_argument("--reference", action="store_true",
                        help="also draw the file's own multitrack in the picture")
    parser.add_argument("--device", default=None,
                        help="auto, cpu, cuda, cuda:N (default: the config's accelerator)")
    parser.add_argument("--sample-rate", type=int, default=22050, help="audio rate in Hz")
    args = parser.parse_args(argv)
    if args.sample_rate <= 0:
        parser.error(f"--sample-rate must be > 0, got {args.sample_rate}")

    from data.midi import MidiError
    from utils.config import ConfigError, load_config
    from utils.fileio import writable_dir_problem
    from utils.separation import Separator, separate_midi_file

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
        separator = Separator.from_config(cfg, args.device)
        result = separate_midi_file(separator, args.input, args.out_dir or cfg.output_dir,
                                    reference=args.reference, sample_rate=args.sample_rate,
                                    max_song_bars=cfg.max_song_bars)
    except (MidiError, ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for line in result.warnings:
        print(f"warning: {line}", file=sys.stderr)
    print(f"separated {args.input}: {result.n_steps} steps in {result.n_windows} windows "
          f"({separator.sampler}, {separator.steps} steps, assign '{separator.assign}', "
          f"audio by {result.synth})")
    print(f"  MIDI      {result.midi}")
    print(f"  audio     {result.wav}")
    print(f"  mixture   {result.mixture_wav}")
    print(f"  picture   {result.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
