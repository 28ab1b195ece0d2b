"""Separation of a MIDI file with a window-probability function (an analytic stand-in for
a trained separator), as the tests of the file job call it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from utils.separation.file_job import FileOptions, separate_midi_file
from utils.separation.notes import NoteSeparator
from utils.separation.windows import ProbFn


def separate_file(prob_fn: ProbFn, song: str | Path, out_dir: str | Path,
                  batch_size: int = 64, **options: Any):
    """:func:`separate_midi_file` with ``prob_fn`` and no second pass; ``options`` are
    :class:`FileOptions`'s fields."""
    return separate_midi_file(NoteSeparator(prob_fn, batch_size=batch_size), song, out_dir,
                              FileOptions(**options))
