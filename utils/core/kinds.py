"""The kinds of checkpoint a model folder holds, one record each.

A trained model is two checkpoints at most: the separator and, for a process that needs
one, its decoder. Each kind says where its files live (``model_dir/<name>/``, the
shipped file in ``pretrained/``), which config key names one explicitly, which stored
config keys must agree with the config, which metric picks its best checkpoint and which
script trains it. Code asks :func:`checkpoint_kind` for the record of a name and reads
its fields; no kind is compared by its name anywhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Literal, get_args

from data.contract import check_option
from models import diffusion as _diffusion  # noqa: F401 -- registers the processes
from models import direct as _direct  # noqa: F401
from models.process import SeparatorSpec, process_class
from utils.core.config import Config

Kind = Literal["separator", "decoder"]


def _separator_monitor(cfg: Config) -> tuple[str, str]:
    """What the process names (:attr:`models.process.SeparationProcess.monitor`):
    ``val_loss`` as the paper, ``val_accuracy`` for the direct separator."""
    return process_class(cfg.separator).monitor


def _decoder_monitor(cfg: Config) -> tuple[str, str]:
    return "val_loss", "min"


@dataclass(frozen=True)
class CheckpointKind:
    """One kind of checkpoint.

    Attributes:
        name: the kind's name, and its folder under ``model_dir`` (and ``logs/``).
        config_key: the config key that names one checkpoint of this kind explicitly.
        shipped_file: its file in ``pretrained/``.
        stored_keys: the stored config keys that must equal the config's.
        state_prefix: the prefix of its weights in a Lightning state dict.
        monitor: ``cfg -> (metric, mode)`` that picks the best checkpoint of a run.
        script: the script that trains it (named in messages).
        described: the kind in words (the training script's description).
        former_dir: the folder's name before it was called :attr:`name`, still read.
    """

    name: str
    config_key: str
    shipped_file: str
    stored_keys: tuple[str, ...]
    state_prefix: str
    monitor: Callable[[Config], tuple[str, str]]
    script: str
    described: str
    former_dir: str | None = None


SEPARATOR = CheckpointKind(
    name="separator", config_key="transunet_model_path", shipped_file="separator.ckpt",
    stored_keys=tuple(f.name for f in fields(SeparatorSpec)), state_prefix="net.",
    monitor=_separator_monitor, script="melody2music_train.py",
    described="the TransUNet separator", former_dir="transunet")
DECODER = CheckpointKind(
    name="decoder", config_key="decoder_model_path", shipped_file="decoder.ckpt",
    stored_keys=("in_ch", "decoder_dim"), state_prefix="decoder.",
    monitor=_decoder_monitor, script="melody2music_decoder.py", described="the decoder")
KINDS: dict[str, CheckpointKind] = {k.name: k for k in (SEPARATOR, DECODER)}
assert set(KINDS) == set(get_args(Kind))


def checkpoint_kind(kind: str | CheckpointKind) -> CheckpointKind:
    """The record of a kind given by name (validated: an unknown name is a ValueError that
    names the allowed ones) or as its record."""
    if isinstance(kind, CheckpointKind):
        return kind
    return KINDS[check_option("kind", kind, tuple(KINDS))]
