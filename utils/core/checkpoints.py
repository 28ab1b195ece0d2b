"""Where checkpoints live, which one a script uses, and loading them into plain modules.

Layout under ``model_dir`` (written by :mod:`utils.training.runs`)::

    model_dir/separator/best-epoch=EEE-val_loss=L.LLLL.ckpt   best separator by val_loss
    model_dir/separator/last.ckpt                             end of the latest epoch
    model_dir/decoder/best-epoch=EEE-val_loss=L.LLLL.ckpt     best decoder by val_loss
    model_dir/decoder/last.ckpt
    model_dir/logs/{separator,decoder}/version_N/             TensorBoard and CSV logs

Every checkpoint is a Lightning checkpoint whose ``hyper_parameters["config"]`` is the
resolved config the run was trained with, as plain JSON types (so that it loads
weights-only); :func:`checkpoint_config` reads it back as a typed, validated
:class:`utils.core.config.Config`.

    model_dir/baselines.json                                  baselines fitted on the
                                                              separator's training data

Trust: every checkpoint -- the ones scripts load and the ``last.ckpt`` a ``--resume``
hands to Lightning -- is read with ``torch.load(weights_only=True)``, so a file carrying
pickled code is refused, even where ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` is set. The
stored config is validated like a config file, and loading with a config refuses any
network or schedule key that differs, naming it.

The rule every script follows (:func:`find_checkpoint`): the path named in the config
(``transunet_model_path`` / ``decoder_model_path``) if non-empty, else the newest
``best-*.ckpt`` of that kind in ``model_dir`` that is whole (a truncated one is skipped,
with one warning line). Training writes every checkpoint atomically
(:func:`atomic_checkpoint_io`: a temporary file, renamed when complete). Scripts that
only use a model (:func:`model_paths`) fall back to the shipped model in ``pretrained/``
when neither exists::

    pretrained/separator.ckpt     weights + stored config (no optimiser state)
    pretrained/decoder.ckpt       only for a diffusion separator
    pretrained/baselines.json     baselines fitted on the shipped model's training data
"""

from __future__ import annotations

import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from data.fileio import atomic_write
from models import diffusion as _diffusion  # noqa: F401 -- registers the processes
from models import direct as _direct  # noqa: F401
from models.decoder import Decoder
from models.process import SeparationProcess, SeparatorSpec, process_class
from models.transunet import TransUNet
from utils.core.config import Config, ConfigError, config_from_dict
from utils.core.kinds import DECODER, SEPARATOR, CheckpointKind, checkpoint_kind

BASELINES_FILE = "baselines.json"
PRETRAINED_DIR = Path(__file__).resolve().parents[2] / "pretrained"
PRETRAINED_SEPARATOR = SEPARATOR.shipped_file
PRETRAINED_DECODER = DECODER.shipped_file
BEST_PREFIX = "best"
LAST_NAME = "last.ckpt"
# Values of keys added after the first checkpoints were written: a stored config without
# them was trained with these (the paper's process).
LEGACY_DEFAULTS: dict[str, Any] = {"separator": "diffusion", "pitch_channel": False,
                                   "condition_on_mixture": False, "direct_loss": "bce",
                                   "onset_channel": False, "beat_channel": False}


SEPARATOR_KEYS = SEPARATOR.stored_keys
DECODER_KEYS = DECODER.stored_keys
# The separator's folder took the config's name for it; it was named after its network
# before, and model_dirs trained then are still read from there (checkpoint_dir,
# CheckpointKind.former_dir).
_warned: set[Path] = set()  # former folders already named in a warning
# What Lightning needs to continue a run (weights alone cannot be resumed).
# Where Lightning keeps the state of the training data (data.dataset.PhraseDataModule's
# state_dict, under its class name): whether the mixtures held the melody.
DATA_STATE = "PhraseDataModule"
RESUME_KEYS = ("state_dict", "optimizer_states", "lr_schedulers", "loops", "epoch",
               "global_step")


def checkpoint_dir(cfg: Config, kind: str | CheckpointKind) -> Path:
    """``model_dir/<kind>``: the folder holding one kind's checkpoints.

    ``kind``: a name or its :class:`utils.core.kinds.CheckpointKind`. A ``model_dir``
    whose checkpoints of ``kind`` are still in the folder's former name
    (:attr:`~utils.core.kinds.CheckpointKind.former_dir`) and none in ``model_dir/<kind>``
    is used from there -- found, resumed and trained on alike, so that a run stays in one
    folder -- with one warning line per process.
    """
    kind = checkpoint_kind(kind)
    folder = Path(cfg.model_dir) / kind.name
    former = folder.with_name(kind.former_dir or kind.name)
    if former == folder or _holds_checkpoint(folder) or not _holds_checkpoint(former):
        return folder
    if former not in _warned:
        _warned.add(former)
        print(f"warning: {former}: the {kind.name} checkpoint folder is now called "
              f"'{kind.name}'; "
              f"using this one (rename it to {folder})", file=sys.stderr)
    return former


def _holds_checkpoint(folder: Path) -> bool:
    return any(folder.glob("*.ckpt"))


def find_checkpoint(cfg: Config, kind: str | CheckpointKind) -> Path:
    """The checkpoint a script uses for ``kind`` (``"separator"`` or ``"decoder"``).

    Raises:
        ConfigError: the configured file is missing, or ``model_dir`` holds none.
    """
    kind = checkpoint_kind(kind)
    key = kind.config_key
    named = getattr(cfg, key)
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"{cfg._source}: '{key}' = {named!r} does not exist")
        return path
    folder = checkpoint_dir(cfg, kind)
    found = sorted(folder.glob(f"{BEST_PREFIX}*.ckpt"), key=lambda p: (p.stat().st_mtime, p.name))
    script = kind.script
    if not found:
        raise ConfigError(f"{cfg._source}: no {kind.name} checkpoint in {str(folder)!r} and "
                          f"'{key}' is empty; train first (python {script} --config "
                          f"{cfg._source})")
    skipped: list[str] = []
    for path in reversed(found):  # newest first: the newest one that is whole
        problem = checkpoint_problem(path)
        if problem is None:
            if skipped:
                print(f"warning: skipped {len(skipped)} unreadable {kind.name} checkpoint(s) "
                      f"({'; '.join(skipped)}); using {path}", file=sys.stderr)
            return path
        skipped.append(f"{path.name}: {problem}")
    raise ConfigError(f"{cfg._source}: no readable {kind.name} checkpoint in {str(folder)!r} "
                      f"({'; '.join(skipped[:3])}); train again (python {script} --config "
                      f"{cfg._source})")


def checkpoint_problem(path: str | Path) -> str | None:
    """Why ``path`` is not a whole checkpoint file (e.g. truncated by a full disk), or None.

    Cheap: a checkpoint is a zip archive (``torch.save``), whose directory is at its end,
    so a truncated file has none; only its directory is read. A file that is not a zip
    archive (an old pickle format) is loaded weights-only to decide.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is a reason to skip it
            return f"unreadable ({type(exc).__name__}; truncated?)"
        return None
    except OSError as exc:
        return f"unreadable ({exc.strerror or type(exc).__name__})"
    if not any(name.endswith("data.pkl") for name in names):
        return "not a torch checkpoint (no data.pkl)"
    return None


def atomic_checkpoint_io() -> Any:
    """A Lightning ``CheckpointIO`` that writes every checkpoint atomically.

    Lightning's own writes the target in place, so a full disk or a kill while it writes
    leaves a truncated ``best-*.ckpt`` that :func:`find_checkpoint` would take for the
    newest; this one writes a temporary file beside it and renames it into place only when
    complete (:func:`data.fileio.atomic_write`). Pass it as ``Trainer(plugins=[...])``.
    Lightning is imported here, not at the top: the commands that only read checkpoints
    do not pay for importing it.
    """
    from pytorch_lightning.plugins.io import TorchCheckpointIO

    class AtomicCheckpointIO(TorchCheckpointIO):
        """:class:`TorchCheckpointIO` whose writes are temporary file + rename."""

        def save_checkpoint(self, checkpoint: dict[str, Any], path: Any,
                            storage_options: Any | None = None) -> None:
            if storage_options is not None:
                raise TypeError("AtomicCheckpointIO.save_checkpoint takes no storage_options")
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, lambda tmp: torch.save(checkpoint, tmp))

    return AtomicCheckpointIO()


@dataclass(frozen=True)
class ModelPaths:
    """The files of the model a script uses.

    Attributes:
        separator: the separator checkpoint.
        decoder: the decoder checkpoint when it was found with the separator (shipped
            model), else None (found by :func:`find_checkpoint` when needed).
        folder: where the model's saved baselines are looked for.
        shipped: True when this is the shipped model of ``pretrained/``.
    """

    separator: Path
    decoder: Path | None
    folder: Path
    shipped: bool

    def describe(self) -> str:
        """Which model this is, in words."""
        if self.shipped:
            return f"shipped model {self.separator}"
        return f"model {self.separator}"


def model_paths(cfg: Config, pretrained_dir: Path | None = None) -> ModelPaths:
    """The model a script that separates uses: configured/trained, else the shipped one.

    The configured or newest separator checkpoint (:func:`find_checkpoint`); when the
    config names none and ``model_dir`` holds none, the shipped model of
    ``pretrained_dir`` (default :data:`PRETRAINED_DIR`).

    Raises:
        ConfigError: a named checkpoint is missing, or there is no model at all.
    """
    pretrained_dir = PRETRAINED_DIR if pretrained_dir is None else pretrained_dir
    named = bool(cfg.transunet_model_path)
    try:
        separator = find_checkpoint(cfg, SEPARATOR)
    except ConfigError:
        shipped = pretrained_dir / PRETRAINED_SEPARATOR
        if named or not shipped.is_file():
            raise
        decoder = pretrained_dir / PRETRAINED_DECODER
        return ModelPaths(shipped, decoder if decoder.is_file() else None, pretrained_dir, True)
    folder = separator.parent
    if not (folder / BASELINES_FILE).is_file():
        folder = folder.parent  # model_dir/separator/best-*.ckpt -> model_dir
    return ModelPaths(separator, None, folder, False)


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a Lightning checkpoint dict; unreadable files raise ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one error line
        raise ConfigError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ConfigError(f"{path}: not a Mixture2Music checkpoint (no state_dict)")
    return ckpt


def checkpoint_config(ckpt: dict[str, Any], path: str | Path) -> Config:
    """The config stored in a checkpoint, validated like a config file.

    Returns:
        The typed config; keys the checkpoint predates take :data:`LEGACY_DEFAULTS` where
        listed there, else their defaults.

    Raises:
        ConfigError: no stored config, or one a config file would be refused for (unknown
            key, wrong type, NaN, value out of range), naming the checkpoint and the key.
    """
    hparams = ckpt.get("hyper_parameters")
    config = hparams.get("config") if isinstance(hparams, dict) else None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: checkpoint stores no config")
    return config_from_dict({**LEGACY_DEFAULTS, **config}, source=f"{path} (stored config)")


def _check_against(stored: Config, cfg: Config | None, keys: tuple[str, ...],
                   path: str | Path) -> None:
    if cfg is None:
        return
    if not stored.instruments.same_classes(cfg.instruments):  # before in_ch, which follows it
        raise ConfigError(f"{path}: checkpoint was trained with 'instrument_set' "
                          f"{stored.instruments.describe()} but {cfg._source} sets "
                          f"{cfg.instruments.describe()}")
    for key in keys:
        if getattr(stored, key) != getattr(cfg, key):
            raise ConfigError(f"{path}: checkpoint was trained with '{key}' = "
                              f"{getattr(stored, key)!r} but {cfg._source} sets "
                              f"{getattr(cfg, key)!r}")


def check_resume_checkpoint(path: str | Path, cfg: Config, kind: str | CheckpointKind
                            ) -> bool | None:
    """Make sure ``last.ckpt`` can be handed to Lightning to continue a run.

    Lightning unpickles the file it resumes from; this reads it first weights-only
    (code in the file is refused, whatever ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` says), and
    checks that it is a full training checkpoint of ``kind`` whose stored config agrees
    with ``cfg`` on the network and schedule keys.

    Returns:
        Whether the data it was trained on held the melody in its mixtures
        (:data:`DATA_STATE`); None when it does not say (trained on other batches, or
        before it was recorded). :func:`check_resume_data` compares it with the data.

    Raises:
        ConfigError: one line naming the file (and the key, for a mismatch).
    """
    kind = checkpoint_kind(kind)
    ckpt = read_checkpoint(path)
    missing = [key for key in RESUME_KEYS if key not in ckpt]
    if missing:
        raise ConfigError(f"{path}: cannot resume from it (no {', '.join(missing)}: not a "
                          f"full training checkpoint)")
    state = ckpt["state_dict"]
    if not isinstance(state, dict) or not any(k.startswith(kind.state_prefix) for k in state):
        raise ConfigError(f"{path}: not a {kind.name} checkpoint (no {kind.state_prefix}* "
                          "weights)")
    _check_against(checkpoint_config(ckpt, path), cfg, kind.stored_keys, path)
    data = ckpt.get(DATA_STATE)
    melody = data.get("melody_in_mixture") if isinstance(data, dict) else None
    return melody if isinstance(melody, bool) else None


def check_resume_data(path: str | Path, cfg: Config, trained: bool | None,
                      melody: bool | None) -> None:
    """Refuse to resume a run trained on mixtures with the melody (``trained``) on data
    without it (``melody``), or the other way round; None on either side: not known.

    Raises:
        ConfigError: one line naming the checkpoint and the config.
    """
    if trained is None or melody is None or trained == melody:
        return
    words = {True: "with the melody in the mixture", False: "without the melody"}
    raise ConfigError(f"{path}: cannot resume from it: it was trained on builds made "
                      f"{words[trained]}, and {cfg._source} names builds made {words[melody]}; "
                      f"train afresh (without --resume) or on the builds it was trained on")


def _sub_state(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


# the separator's moving average of its weights (``separator_ema``), beside ``net.``
EMA_PREFIX = "ema.module."


def holds_average(state: dict[str, torch.Tensor]) -> bool:
    """Whether a checkpoint's state dict holds the separator's moving average."""
    return any(k.startswith(EMA_PREFIX) for k in state)


def separator_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The separator weights a checkpoint's state dict serves: the moving average where it
    holds one (:class:`utils.training.lightning.SeparatorModule`), else the trained ones."""
    return _sub_state(state, EMA_PREFIX if holds_average(state) else SEPARATOR.state_prefix)


def _load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], path: str | Path) -> None:
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise ConfigError(f"{path}: weights do not fit the network ({detail})") from None


def build_separator(spec: SeparatorSpec, rate: float = 0.0
                    ) -> tuple[TransUNet, SeparationProcess]:
    """A fresh TransUNet and the process that ``spec.separator`` names
    (:func:`models.process.process_class`; the process decides the network's channels).

    Args:
        spec: the network and process keys (:meth:`SeparatorSpec.of` a config).
        rate: dropout rate.
    """
    return process_class(spec.separator).build(spec, rate)


def load_process(path: str | Path, cfg: Config | None = None) -> SeparationProcess:
    """The process of a separator checkpoint, without its network (e.g. the noise schedule
    a decoder is trained against).

    Raises:
        ConfigError: unreadable file, or keys that do not match ``cfg``.
    """
    config = checkpoint_config(read_checkpoint(path), path)
    _check_against(config, cfg, SEPARATOR_KEYS, path)
    return process_class(config.separator).from_spec(SeparatorSpec.of(config))


def load_separator(path: str | Path, map_location: str | torch.device = "cpu",
                   cfg: Config | None = None) -> tuple[TransUNet, SeparationProcess, Config]:
    """Load a separator checkpoint (network in eval mode, process, stored config).

    Args:
        path: a ``separator`` checkpoint.
        map_location: device for the weights.
        cfg: when given, the checkpoint must match its network and schedule keys.

    Raises:
        ConfigError: unreadable file, or shapes/schedule that do not match ``cfg``.
    """
    ckpt = read_checkpoint(path, map_location)
    config = checkpoint_config(ckpt, path)
    _check_against(config, cfg, SEPARATOR_KEYS, path)
    net, process = build_separator(SeparatorSpec.of(config), config.rate)
    _load_into(net, separator_state(ckpt["state_dict"]), path)
    process.to(map_location)
    return net.to(map_location).eval(), process, config


def export_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Write a slim copy of a checkpoint: weights and stored config, no optimiser state.

    The copy loads with :func:`load_separator` / :func:`load_decoder` like the original
    (it is what ``pretrained/`` ships). Written atomically (:mod:`data.fileio`).
    """
    export_loaded(read_checkpoint(src), src, dst)
    return Path(dst)


def export_loaded(ckpt: dict[str, Any], src: str | Path, dst: str | Path) -> Config:
    """:func:`export_checkpoint` of a checkpoint already read; returns its stored config.

    A separator with a moving average of its weights keeps the average alone (the weights
    :func:`load_separator` gives)."""
    config = checkpoint_config(ckpt, src)
    state = ckpt["state_dict"]
    if holds_average(state):
        state = {k: v for k, v in state.items() if not k.startswith(SEPARATOR.state_prefix)}
    slim = {"state_dict": state, "hyper_parameters": {"config": config.to_dict()}}
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(dst, lambda tmp: torch.save(slim, tmp))
    return config


def load_decoder(path: str | Path, map_location: str | torch.device = "cpu",
                 cfg: Config | None = None) -> Decoder:
    """Load a decoder checkpoint into a :class:`Decoder` in eval mode.

    Raises:
        ConfigError: unreadable file, or shapes that do not match ``cfg``.
    """
    ckpt = read_checkpoint(path, map_location)
    config = checkpoint_config(ckpt, path)
    _check_against(config, cfg, DECODER_KEYS, path)
    decoder = Decoder(config.in_ch, config.decoder_dim)
    _load_into(decoder, _sub_state(ckpt["state_dict"], DECODER.state_prefix), path)
    return decoder.to(map_location).eval()


def warm_start(net: torch.nn.Module, cfg: Config) -> None:
    """Load the separator weights of ``cfg.init_from`` into a fresh run's network.

    Weights only (no optimiser state, epoch or learning rate: the run starts afresh, e.g.
    fine-tuning on real songs a model pre-trained on synthetic ones). The checkpoint must
    have been trained with the same network keys (:data:`SEPARATOR_KEYS`).

    Raises:
        ConfigError: one line naming ``init_from`` and the file, and the key that differs
            or the weights that do not fit.
    """
    path = cfg.resolve("init_from")
    try:
        ckpt = read_checkpoint(path)
        stored = checkpoint_config(ckpt, path)
        _check_against(stored, cfg, SEPARATOR_KEYS, path)
        _load_into(net, separator_state(ckpt["state_dict"]), path)
    except ConfigError as exc:
        raise ConfigError(f"{cfg._source}: 'init_from': {exc}") from None
