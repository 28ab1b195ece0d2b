"""Command line of the Debian game-music corpus (:mod:`data.debian_songs`).

    python -m utils.debian_songs --out runs/corpora/debian
        [--packages simutrans-data freedoom freedm]

Collects the General MIDI songs of the Debian packages ``simutrans-data`` (MIDI files),
``freedoom`` and ``freedm`` (MIDI lumps of their WAD files) into ``OUT/<package>/``, each
song once (duplicates by sha256 are kept under the first package in that order), with
``OUT/SOURCES.json`` listing where every file comes from. Re-running changes nothing.

Every requested package must be installed: when one is not, nothing is written and one
line says what to install (``--packages`` picks a subset). Exit status: 0 done, 2 a
missing package or another input problem (one ``error:`` line, nothing written), 1 a
failure while writing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from data.debian_songs import PACKAGE_NAMES, collect
from utils.core.cli import command


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m utils.debian_songs",
        description="Collect the MIDI songs of Debian game packages into a corpus folder.")
    parser.add_argument("--out", required=True,
                        help="corpus folder to write (one sub-folder per package)")
    parser.add_argument("--packages", nargs="+", choices=PACKAGE_NAMES, default=None,
                        metavar="PACKAGE",
                        help=f"packages to collect (default: all of {' '.join(PACKAGE_NAMES)})")
    return parser.parse_args(argv)


@command
def main(argv: Sequence[str] | None = None) -> int:
    """Collect the songs; print the summary. Returns the exit code."""
    args = parse_args(argv)
    summary = collect(args.out, packages=args.packages)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
