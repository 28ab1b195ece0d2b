"""Command line of the Debian game-music corpus (:mod:`data.debian_songs`).

    python -m utils.debian_songs --out runs/corpora/debian [--root DIR]
        [--packages simutrans-data freedoom freedm freedink-data planetblupi-music-midi
                    pianobooster]

Collects the General MIDI songs of the Debian packages ``simutrans-data``,
``freedink-data``, ``planetblupi-music-midi``, ``pianobooster`` (MIDI files), ``freedoom``
and ``freedm`` (MIDI lumps of their WAD files) into ``OUT/<package>/``, each song once
(duplicates by sha256 are kept under the first package in that order), with
``OUT/SOURCES.json`` listing where every file comes from and each package's licence.
Re-running changes nothing.

Every requested package must be installed -- or, with ``--root DIR``, unpacked under DIR
by ``dpkg -x`` (on any machine): when one is not, nothing is written and one line says
what to install or unpack (``--packages`` picks a subset). A song over the size limit is
skipped with one warning line. Exit status: 0 done, 2 a missing package or another input
problem (one ``error:`` line, nothing written), 1 a failure while writing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from data.debian_songs import PACKAGE_NAMES, collect
from utils.cli import command


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m utils.debian_songs",
        description="Collect the MIDI songs of Debian packages into a corpus folder.")
    parser.add_argument("--out", required=True,
                        help="corpus folder to write (one sub-folder per package)")
    parser.add_argument("--root", default=None, metavar="DIR",
                        help="read each package's files under DIR, where dpkg -x unpacked "
                             "the .deb files (default: the installed system)")
    parser.add_argument("--packages", nargs="+", choices=PACKAGE_NAMES, default=None,
                        metavar="PACKAGE",
                        help=f"packages to collect (default: all of {' '.join(PACKAGE_NAMES)})")
    return parser.parse_args(argv)


@command
def main(argv: Sequence[str] | None = None) -> int:
    """Collect the songs; print the summary. Returns the exit code."""
    args = parse_args(argv)
    summary = collect(args.out, packages=args.packages, root=args.root)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
