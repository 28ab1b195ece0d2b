"""Command line of the synthetic corpus generator (:mod:`data.synthesize`).

    python -m utils.synthesize --out-dir DIR --songs N [--seed S] [--workers W]
    python -m utils.synthesize --config configs/synth.json --songs N   # DIR = midi_dir

With ``--config`` the output folder is the config's ``midi_dir``, and ``seed`` and
``preprocess_workers`` give the defaults of ``--seed`` and ``--workers``; flags given
explicitly replace them and are validated like config keys.
Exit status: 0 done, 2 a config or input problem or MMA missing (one ``error:`` line).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from data.synthesize import MANIFEST, synthesize
from utils.core.cli import command
from utils.core.config import config_from_flags

# flag -> config key
FLAG_KEYS = {"out_dir": "midi_dir", "seed": "seed", "workers": "preprocess_workers"}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m utils.synthesize",
                                     description="Generate a synthetic MIDI corpus with MMA.")
    parser.add_argument("--config", help="config.json whose midi_dir is the output folder")
    parser.add_argument("--out-dir", help="folder to write (resumes if it exists)")
    parser.add_argument("--songs", type=int, required=True, help="number of songs")
    parser.add_argument("--seed", type=int, help="corpus seed (default 0)")
    parser.add_argument("--workers", type=int, help="MMA processes at once (default: all cores)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser.parse_args(argv)


@command(interrupted="interrupted: the songs finished so far are kept; run the same command "
                     "again to continue")
def main(argv: Sequence[str] | None = None) -> int:
    """Run the generator from the command line; print a summary. Returns the exit code."""
    args = parse_args(argv)
    cfg = config_from_flags(args, FLAG_KEYS, required=("out_dir",))
    manifest = synthesize(cfg.midi_dir, args.songs, seed=cfg.seed,
                          workers=cfg.preprocess_workers, progress=not args.no_progress)
    shown = {k: v for k, v in manifest.items() if k != "songs"}
    print(json.dumps(shown, indent=2))
    print(f"full manifest (every song): {Path(cfg.midi_dir) / MANIFEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
