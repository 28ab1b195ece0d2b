"""Assignment: instrument probabilities -> a binary separation (docs/method.md section 5).

Every separator -- the guided diffusion's decoder, the direct separator, the baselines'
scores -- ends in per-cell instrument probabilities; this module turns them into notes
on and off. Two rules (config key ``assign``):

* ``"threshold"`` (the original release): an instrument plays a mixture cell when its
  probability reaches ``threshold``; a cell may get none or several instruments.
* ``"partition"``: every sounding mixture cell goes to its most probable instrument
  only, so the OR over instruments equals the mixture exactly (consistency 0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import get_args

import torch

from data.contract import check_option
from utils.core.config import AssignMode


def _by_threshold(probs: torch.Tensor, on: torch.Tensor, threshold: float) -> torch.Tensor:
    return (probs >= threshold) & on


def _partition(probs: torch.Tensor, on: torch.Tensor, threshold: float) -> torch.Tensor:
    best = probs.argmax(dim=1, keepdim=True)  # (B, 1, T, P)
    onehot = torch.zeros_like(probs, dtype=torch.bool).scatter_(1, best, True)
    return onehot & on


ASSIGN_RULES: dict[str, Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]] = {
    "threshold": _by_threshold, "partition": _partition}
"""Every assignment rule by its config name (``assign``, :data:`utils.core.config.AssignMode`)."""
ASSIGN_MODES: tuple[str, ...] = get_args(AssignMode)
assert set(ASSIGN_RULES) == set(ASSIGN_MODES)


def assign_instruments(probs: torch.Tensor, mixture: torch.Tensor, mode: str = "threshold",
                       threshold: float = 0.5) -> torch.Tensor:
    """Turn instrument probabilities into a binary separation.

    Args:
        probs: float ``[B, C, T, P]`` in [0, 1].
        mixture: float or bool ``[B, 1, T, P]``.
        mode: ``"threshold"`` or ``"partition"`` (module docstring).
        threshold: used by ``"threshold"``.

    Returns:
        bool ``[B, C, T, P]``, False outside the mixture.
    """
    check_option("assign", mode, ASSIGN_MODES)
    return ASSIGN_RULES[mode](probs, mixture.bool(), threshold)
