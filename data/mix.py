"""The shares of a training mix (config key ``train_mix``: ``{dataset folder: weight}``).

Read by the mix's sampler (:class:`data.dataset.MixSampler`), by the check made before
training (:func:`utils.training.check_data_dir`) and by the baselines fitted on the mix
(:func:`utils.evaluation.fit_train_baselines`), so that all three count alike.
"""

from __future__ import annotations

from collections.abc import Sequence


def mix_shares(weights: Sequence[float]) -> list[float]:
    """Each weight's share of their sum, for any finite weights > 0: scaled by the largest
    first, so that weights near the float limit (1e308 + 1e308) do not overflow the sum."""
    top = max(float(w) for w in weights)
    scaled = [float(w) / top for w in weights]
    total = sum(scaled)
    return [w / total for w in scaled]


def mix_counts(weights: Sequence[float], epoch_size: int) -> list[int]:
    """Phrases of each dataset in an epoch of ``epoch_size`` phrases (its share, rounded)."""
    return [int(round(share * epoch_size)) for share in mix_shares(weights)]
