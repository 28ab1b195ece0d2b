"""The second pass over a whole song's notes: one object per kind, built once.

After the first pass (:class:`utils.separation.first_pass.FirstPass`), a second pass
decides the song's pitched notes again from what the whole song showed:

* :class:`~utils.separation.register_prior.NoSecondPass`: none, the first pass decides;
* :class:`~utils.separation.register_prior.RegisterPrior`: the fixed pass, each pitched
  note weighed by the song's registers (config keys ``song_context_weight``,
  ``song_context_width``);
* :class:`~utils.separation.song_pass.SongPass`: the learned song pass, trained on the
  separator's own first pass (config key ``song_pass``), in place of the fixed one.

:func:`second_pass_from_config` picks one from the config and the model's folders; the
:class:`utils.separation.separator.Separator` holds it, and every separation (``separate.py``,
the notebook, the song evaluation) goes through it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from utils.core.config import Config
from utils.separation.first_pass import FirstPass
from utils.separation.register_prior import NoSecondPass, RegisterPrior
from utils.separation.song_pass import SONG_PASS_FILE, SongPass, matching_song_pass

__all__ = ["NoSecondPass", "RegisterPrior", "SecondPass", "SongPass", "second_pass_from_config"]


class SecondPass(Protocol):
    """What every kind of second pass does."""

    def decide(self, first_pass: FirstPass) -> np.ndarray:
        """float64 ``[K, 5]`` the notes' probabilities after the second pass."""
        ...

    def decide_song(self, first_pass: FirstPass) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`decide`, and bool ``[4]`` the pitched instruments the pass predicts in the
        song (None: a pass that predicts none)."""
        ...

    def describe(self) -> str | None:
        """The pass in words for the model's line, or None when it adds nothing."""
        ...

    def settings(self) -> dict[str, object]:
        """``{"song_context": [weight, width], "song_pass": file or None}`` for reports."""
        ...

    def to(self, device: torch.device) -> SecondPass:
        """The pass on ``device`` (a pass without a network stays as it is)."""
        ...


def second_pass_from_config(cfg: Config, folders: list[Path], separator: torch.nn.Module,
                            device: torch.device) -> SecondPass:
    """The second pass ``cfg`` asks for: the learned song pass in ``folders`` that was trained
    on ``separator`` when the config's ``song_pass`` is on and one exists
    (:func:`utils.separation.song_pass.matching_song_pass`), else the fixed register prior,
    else (weight 0) none."""
    prior = (cfg.song_context_weight, cfg.song_context_width)
    learned = None
    if cfg.song_pass:  # trained with this config, or shipped beside the separator
        learned = matching_song_pass([f / SONG_PASS_FILE for f in folders], separator, device)
    if learned is not None:
        return replace(learned, register_prior=prior)
    if cfg.song_context_weight > 0:
        return RegisterPrior(*prior)
    return NoSecondPass(width=cfg.song_context_width)
