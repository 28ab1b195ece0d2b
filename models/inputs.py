"""What the separator sees besides the mixture: note starts read from cells alone.

The mixture's note starts (``onsets``) come from the notes themselves wherever they are
known -- the phrase store keeps them (:mod:`data.store`), and separation reads them from
the user's notes. A caller that has only cells gets :func:`run_onsets`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def run_onsets(mixture: torch.Tensor) -> torch.Tensor:
    """Note starts read from cells alone: a sounding cell whose previous step is silent.

    What a caller without notes can give (two repeated notes look like one held note).

    Args:
        mixture: float ``[B, 1, T, P]`` (0/1).

    Returns:
        float ``[B, 1, T, P]`` (0/1).
    """
    before = F.pad(mixture[:, :, :-1], (0, 0, 1, 0))  # (B, 1, T, P), step k-1 at step k
    return mixture * (1.0 - before)
