"""Separate the instruments of any MIDI file with the trained separator.

    python separate.py INPUT.mid [-o OUTDIR] [--config config.json] [--reference]

Writes ``OUTDIR/<name>.separated.mid`` (one track per instrument, the song's tempo map),
``<name>.separated.wav``, ``<name>.mixture.wav`` and ``<name>.png`` (separated roll above
the input mixture; with ``--reference`` above the file's own multitrack too). OUTDIR
defaults to the config's ``output_dir``. Uses the checkpoints named in the config, else
the newest ones in ``model_dir``, else the shipped model in ``pretrained/`` (it says
which). Any length; a file without time signature is read as 4/4; another meter is
separated with a warning.
"""

from __future__ import annotations

import argparse
import sys


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
    from utils.separation import Separator, separate_midi_file

    try:
        cfg = load_config(args.config)
        separator = Separator.from_config(cfg, args.device)
        result = separate_midi_file(separator, args.input, args.out_dir or cfg.output_dir,
                                    reference=args.reference, sample_rate=args.sample_rate)
    except (MidiError, ConfigError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for line in result.warnings:
        print(f"warning: {line}", file=sys.stderr)
    print(f"model: {separator.describe()}")
    print(f"separated {args.input}: {result.n_steps} steps in {result.n_windows} windows "
          f"(audio by {result.synth})")
    print(f"  MIDI      {result.midi}")
    print(f"  audio     {result.wav}")
    print(f"  mixture   {result.mixture_wav}")
    print(f"  picture   {result.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
