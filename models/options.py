"""The options and fixed shapes of the networks and processes, without importing torch.

The config validator (:mod:`utils.core.config`) reads these, and so does every command that
loads a config -- including the dataset build, whose worker processes must not pay for
importing torch. Each option's allowed values are a ``Literal`` type here, and
``typing.get_args`` of it is what :func:`data.contract.check_option` checks against.
"""

from __future__ import annotations

from typing import Literal, get_args

SeparatorKind = Literal["diffusion", "direct"]  # config key separator (models.process registry)
SEPARATOR_KINDS: tuple[str, ...] = get_args(SeparatorKind)
BetaSchedule = Literal["linear"]  # config key beta_schedule
Sampler = Literal["ddpm", "ddim"]  # config key sampler
DirectLoss = Literal["bce", "softmax"]  # config key direct_loss

HEAD_DIM = 64  # attention heads = d_model / 64 (docs/method.md section 2)
GROUPS = 8  # GroupNorm groups
# latent_dim must be a multiple of this: the stem has latent_dim / 4 channels in GROUPS groups
LATENT_MULTIPLE = 4 * GROUPS

# the learned song pass network's settings (models.song_pass.SongPassSpec; config key
# song_pass_network): their largest values, whatever a checkpoint or a config says (at most
# about 42 million weights, 170 MB), and the defaults
SONG_PASS_BOUNDS = {"width": 512, "levels": 12, "stacks": 4, "recurrent": 512}
SONG_PASS_DEFAULTS = {"width": 96, "levels": 6, "stacks": 2, "recurrent": 0}
SONG_PASS_OFF = {"recurrent"}  # settings whose 0 means "none"


def song_pass_size_problem(key: str, value: object) -> str | None:
    """Why ``value`` cannot be the song pass network's ``key`` (one of
    :data:`SONG_PASS_BOUNDS`), as the end of an error line; None when it can."""
    top, low = SONG_PASS_BOUNDS[key], 0 if key in SONG_PASS_OFF else 1
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= top:
        return f"must be an integer in {low}..{top}, got {value!r}"
    return None


def song_pass_network_problem(settings: dict[str, int]) -> str | None:
    """Why ``song_pass_network`` settings cannot size a song pass network (None: they can)."""
    for key, value in settings.items():
        if key not in SONG_PASS_BOUNDS:
            return (f"'song_pass_network' knows {', '.join(map(repr, SONG_PASS_BOUNDS))}, "
                    f"not {key!r}")
        problem = song_pass_size_problem(key, value)
        if problem:
            return f"'song_pass_network' {key!r} {problem}"
    return None


MAX_DROPOUT = 0.9  # the song pass's dropout: at most this fraction of channels


def dropout_problem(dropout: object) -> str | None:
    """Why ``dropout`` is not a song pass dropout (a number in [0, 0.9]), or None."""
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) \
            or not 0.0 <= float(dropout) <= MAX_DROPOUT:
        return f"must be a number in [0, {MAX_DROPOUT:g}] (0: none), got {dropout!r}"
    return None


DEFAULT_GATE = 0.5  # presence probability under which an instrument is ruled out


def gate_problem(gate: object) -> str | None:
    """Why ``gate`` is not a presence gate (a number in [0, 1)), or None."""
    if isinstance(gate, bool) or not isinstance(gate, (int, float)) \
            or not 0.0 <= float(gate) < 1.0:
        return f"must be a number in [0, 1) (0: no gate), got {gate!r}"
    return None
