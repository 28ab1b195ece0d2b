"""What a user chose for one separated file beyond the defaults: which outputs, which hint.

``separate.py --outputs midi,json`` writes only the kinds named (audio and pictures are
the slow part of a file); ``--instruments piano,bass`` keeps every pitched note within the
instruments named (:mod:`utils.separation.instrument_hints`). :class:`FileChoices` carries both into
:func:`utils.separation.file_job.separate_midi_file`; its defaults are today's behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from utils.core.cli import comma_list
from utils.separation.instrument_hints import InstrumentHint

OUTPUT_KINDS: dict[str, str] = {"midi": "midi", "audio": "wav", "mixture": "mixture_wav",
                                "picture": "png", "json": "json"}
"""``--outputs`` name -> key of :func:`utils.separation.file_outputs.output_paths`."""
DEFAULT_OUTPUTS: tuple[str, ...] = ("midi", "audio", "mixture", "picture")
"""What ``separate.py`` writes without ``--outputs`` (``--json`` adds ``json``)."""


def parse_outputs(text: str, flag: str = "--outputs") -> tuple[str, ...]:
    """Read a comma-separated list of output kinds (:data:`OUTPUT_KINDS`), in that order.

    Raises:
        data.errors.InputError: an unknown kind, or none (one line naming the flag and the
            kinds).
    """
    words = comma_list(text, flag, OUTPUT_KINDS, "an output")
    return tuple(k for k in OUTPUT_KINDS if k in words)


@dataclass(frozen=True)
class FileChoices:
    """A file job's choices beyond the defaults.

    Attributes:
        outputs: the kinds written (names of :data:`OUTPUT_KINDS`); None = the default set
            (:data:`DEFAULT_OUTPUTS`, and ``json`` when asked for).
        hint: the instruments the song is known to hold; None = any.
    """

    outputs: tuple[str, ...] | None = None
    hint: InstrumentHint | None = None

    def select(self, paths: dict[str, Path]) -> dict[str, Path]:
        """The outputs of :func:`utils.separation.file_outputs.output_paths` that are written."""
        if self.outputs is None:
            return paths
        keys = {OUTPUT_KINDS[k] for k in self.outputs}
        return {key: path for key, path in paths.items() if key in keys}
