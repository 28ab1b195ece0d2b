"""config.json -> a typed, validated :class:`Config`.

The file keeps the original release's keys where they exist (``in_ch``, ``latent_dim``,
``rate``, ``batch_size``, ``transunet_model_path``, ``gpus``, ...) and adds what
Lightning 2.x and the data pipeline need. Every problem is reported as one
:class:`ConfigError` line that names the key or the file: a file that is not UTF-8 JSON,
an unknown key, a wrong type, a NaN or infinite number, a value out of range. Checkpoints
store the resolved config, and loading one validates it the same way.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from data.build_plan import MAX_SEED, MAX_SONG_BARS_LIMIT, SplitBy
from data.contract import BARS_PER_PHRASE, MAX_SONG_BARS
from data.errors import EXIT_USER, UserError
from data.fileio import not_a_file, writable_dir_problem
from data.instruments import InstrumentSet, InstrumentSetError, channels_problem, resolve_set
from data.song_roll import ClassTracks
from models.options import (
    GROUPS,
    HEAD_DIM,
    LATENT_MULTIPLE,
    BetaSchedule,
    DirectLoss,
    Sampler,
    SeparatorKind,
    dropout_problem,
    gate_problem,
    song_pass_network_problem,
)
from utils.core.json_types import MAX_INTEGER, describe, float_valued, too_large, type_ok

# The allowed values of the networks' options live in models.options (torch-free, so that
# reading a config never imports torch); these are read by utils/ and the trainer set-up.
AssignMode = Literal["threshold", "partition"]  # see utils.separation.assignment
Strategy = Literal["auto", "ddp", "ddp_spawn", "ddp_find_unused_parameters_true", "fsdp"]
Accelerator = Literal["auto", "cpu", "gpu", "cuda", "mps"]
SongPassSongs = Literal["unified", "whole"]  # see utils.training.song_pass_data
Precision = Literal["32-true", "32", "16-mixed", "bf16-mixed", "bf16-true", "64-true"]

BATCH_NOTES = 4096  # notes of a song pass training step: song_pass_crop x songs
MIN_CROP_NOTES = 64  # shortest song pass training crop
MAX_SONG_PASS_AUGMENT = 16  # each copy is a first pass of its own (~1.2 s a song on 2 cores)

# The diffusion schedule is computed up front (about ten float64 tables of time_steps
# entries) and the time embedding is indexed by it; 1e9 steps would take 8 GB before the
# first batch. 100x the paper's 1000 steps is far beyond any use.
MAX_TIME_STEPS = 100_000

# Exit status of every command for a config or input problem (one ``error:`` line).
EXIT_CONFIG = EXIT_USER


class ConfigError(UserError, ValueError):
    """A config.json problem, phrased as one line naming the key or file."""


@dataclass
class Config:
    """Every key of config.json. Defaults are the paper's configuration."""

    # --- data ----------------------------------------------------------------------
    midi_dir: str = "data/demo/openmsx"  # MIDI files to build phrases from (searched recursively)
    melody_json: str | None = None  # optional midi-miner style {file: {"melody": program}}
    data_dir: str = "dataset"  # where data.preprocess writes phrases and manifest.json
    train_split: float = 0.9  # fraction of songs in train
    val_split: float = 0.05  # fraction of songs in val (the rest is test)
    test_split: float = 0.05  # fraction of songs in test
    split_by: SplitBy = "song"  # "folder": top folders stay together; "named": they name the split
    melody_in_mixture: bool = False  # the melody track joins its program's class (in the mixture)
    default_meter_4_4: bool = False  # a file without a time signature is 4/4 (the MIDI default)
    class_tracks: ClassTracks = "largest"  # "all": every track of a class in its channel, short too
    min_bar_density: float = 0.01  # each bar of a kept window has >= this fraction of cells on
    max_song_bars: int = MAX_SONG_BARS  # longer MIDI files are refused (build: "too_long")
    preprocess_workers: int | None = None  # processes for the build; None = all cores
    seed: int = 0  # seeds the song split, weight init and sampling noise
    # the classes separated: a preset or [{"name", "programs", "drum"?}] (data.instruments)
    instrument_set: str | list[dict[str, Any]] = "paper"

    # --- network (docs/method.md section 2) ------------------------------------------
    separator: SeparatorKind = "diffusion"  # "diffusion" (the paper) or "direct" (one pass)
    in_ch: int = 5  # channels of x_t (the five separated instruments)
    out_ch: int = 5  # channels of the predicted noise
    latent_dim: int = 256  # widest U-Net width; stem width is latent_dim // 4
    d_model: int = 256  # transformer width at the bottleneck
    num_layers: int = 2  # transformer encoder layers
    time_emb_dim: int = 16  # sinusoidal time-embedding size
    rate: float = 0.0  # dropout rate
    decoder_dim: int = 64  # channels of the independent decoder
    pitch_channel: bool = False  # add an absolute pitch coordinate channel to the input
    condition_on_mixture: bool = False  # diffusion: the mixture is also an input channel
    direct_loss: DirectLoss = "bce"  # direct: "bce" per instrument or "softmax" over them
    onset_channel: bool = False  # the mixture's note starts are an input channel
    beat_channel: bool = False  # fixed channels giving each step's position in its bar and beat

    # --- diffusion (docs/method.md section 3) ----------------------------------------
    time_steps: int = 1000  # T
    beta_schedule: BetaSchedule = "linear"  # betas from beta_start to beta_end
    beta_start: float = 1e-4  # beta_1
    beta_end: float = 0.02  # beta_T

    # --- optimisation ------------------------------------------------------------------
    batch_size: int = 512  # phrases per device per step
    lr: float = 1e-3  # AdamW learning rate
    weight_decay: float = 0.01  # AdamW weight decay (torch default)
    lr_factor: float = 0.95  # ReduceLROnPlateau factor for the separator
    separator_ema: float = 0.0  # separator: decay of its weights' moving average (0: none)
    decoder_lr_factor: float = 0.9  # ReduceLROnPlateau factor for the decoder
    lr_patience: int = 0  # ReduceLROnPlateau patience (epochs)
    min_lr: float = 1e-5  # ReduceLROnPlateau floor
    max_epochs: int = 50  # separator epochs
    decoder_max_epochs: int = 50  # decoder epochs
    limit_train_batches: float | int = 1.0  # Lightning: fraction or count of batches per epoch
    limit_val_batches: float | int = 1.0  # Lightning: fraction or count of val batches
    gradient_clip_val: float | None = None  # clip gradient norm (None = off)
    num_workers: int = 4  # DataLoader workers per device
    transpose: list[int] = field(default_factory=lambda: [0, 0])  # random semitones lo..hi
    train_mix: dict[str, float] | None = None  # {dataset folder: share of each epoch's phrases}
    init_from: str = ""  # separator checkpoint whose weights start a fresh run ("" = random)
    song_pass_data: list[str] | dict[str, float] = field(default_factory=list)  # its songs
    # ([] = data_dir; a list: equal weights; {folder: weight}: each batch's share of songs)
    song_pass_songs: SongPassSongs = "unified"  # learned song pass: "whole" = every track
    song_pass_steps: int = 1500  # learned song pass: training steps (batches of songs)
    song_pass_velocity: bool = False  # learned song pass: read the notes' velocities
    song_pass_presence: bool = False  # learned song pass: a head that gates by song presence
    song_pass_augment: int = 0  # learned song pass: augmented copies per training song
    song_pass_ema: float = 0.0  # learned song pass: decay of its weights' moving average
    song_pass_gates: list[float] = field(default_factory=lambda: [0.5])  # learned song
    # pass: presence gates tried at each validation, the best kept with its step
    song_pass_network: dict[str, int] = field(default_factory=dict)  # learned song pass:
    # its network's {"width", "levels", "stacks", "recurrent"} ({} or a missing one: 96, 6, 2, 0)
    song_pass_dropout: float = 0.0  # learned song pass: channels dropped in training
    song_pass_residual: bool = True  # learned song pass: add the first pass to its output
    song_pass_timing: bool = False  # learned song pass: read the notes' timing numbers
    song_pass_crop: int = 512  # learned song pass: notes of each training crop (a step
    # reads 4,096 notes: 4,096 // crop songs)
    panel: dict[str, str] = field(default_factory=dict)  # validation panel: {corpus: dataset}

    # --- hardware (Lightning 2.x) ------------------------------------------------------
    accelerator: Accelerator = "auto"  # "cpu", "gpu", ...
    devices: int | list[int] | str = "auto"  # count, list of indices, or "auto"
    gpus: int | list[int] | None = None  # release key: a count/list means accelerator="gpu"
    strategy: Strategy = "auto"  # "ddp" for several GPUs or nodes
    num_nodes: int = 1  # machines in a multi-node DDP run
    precision: Precision = "32-true"  # Lightning precision flag

    # --- checkpoints and logs ----------------------------------------------------------
    model_dir: str = "checkpoints"  # checkpoints, logs and evaluation tables
    transunet_model_path: str = ""  # separator checkpoint ("" = newest in model_dir)
    decoder_model_path: str = ""  # decoder checkpoint ("" = newest in model_dir)
    resume: bool = False  # continue from model_dir's last checkpoint

    # --- sampling (docs/method.md section 5) -------------------------------------------
    sampler: Sampler = "ddim"  # "ddim" (deterministic with eta 0) or "ddpm"
    sampling_steps: int = 999  # reverse steps from T-1 down to 1 (the release walks 999)
    eta: float = 0.0  # DDIM eta (0 = deterministic)
    assign: AssignMode = "threshold"  # "threshold" (release) or "partition" (one per cell)
    threshold: float = 0.5  # decoder probability needed for a cell in "threshold" mode
    num_samples: int = 1  # diffusion: decoder probabilities averaged over K samples
    song_context_weight: float = 1.0  # song-level second pass: weight of the song's registers
    song_context_width: float = 1.0  # ... and their smoothing over pitch rows (semitones)
    song_pass: bool = True  # use the model's learned song pass when it has one (replaces the above)
    sample_batch_size: int = 256  # phrases separated at once
    output_dir: str = "separated"  # where separate.py writes by default

    _source: str = field(default="<defaults>", repr=False, compare=False)

    # ------------------------------------------------------------------------------
    def validate(self) -> None:
        """Check ranges and relations between keys, group by group; raise :class:`ConfigError`."""
        for check in (self._check_network, self._check_data, self._check_training,
                      self._check_separation, self._check_hardware):
            check(self._source)

    def _check_network(self, src: str) -> None:
        """The network's and the diffusion schedule's keys."""
        positive = ("in_ch", "out_ch", "latent_dim", "d_model", "num_layers", "time_emb_dim",
                    "time_steps", "batch_size", "max_epochs", "decoder_max_epochs",
                    "num_nodes", "sampling_steps", "sample_batch_size", "decoder_dim",
                    "num_samples", "song_pass_steps")
        for key in positive:
            if getattr(self, key) <= 0:
                raise ConfigError(f"{src}: '{key}' must be > 0, got {getattr(self, key)!r}")
        if self.latent_dim % LATENT_MULTIPLE:
            raise ConfigError(f"{src}: 'latent_dim' must be a multiple of {LATENT_MULTIPLE} "
                              f"(GroupNorm({GROUPS}) on latent_dim/4 channels), "
                              f"got {self.latent_dim}")
        if self.decoder_dim % GROUPS:
            raise ConfigError(f"{src}: 'decoder_dim' must be a multiple of {GROUPS} "
                              f"(GroupNorm({GROUPS})), got {self.decoder_dim}")
        if self.d_model % HEAD_DIM:
            raise ConfigError(f"{src}: 'd_model' must be a multiple of {HEAD_DIM} (heads = "
                              f"d_model/{HEAD_DIM}), got {self.d_model}")
        if self.time_emb_dim % 2:
            raise ConfigError(f"{src}: 'time_emb_dim' must be even, got {self.time_emb_dim}")
        for key in ("rate", "separator_ema", "song_pass_ema"):  # dropout; moving averages
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ConfigError(f"{src}: '{key}' must be in [0, 1), got {getattr(self, key)}")
        if not 0.0 < self.beta_start < self.beta_end < 1.0:
            raise ConfigError(f"{src}: need 0 < 'beta_start' < 'beta_end' < 1, "
                              f"got {self.beta_start}, {self.beta_end}")
        if self.sampling_steps > self.time_steps - 1:
            raise ConfigError(f"{src}: 'sampling_steps' must be at most time_steps - 1 = "
                              f"{self.time_steps - 1}, got {self.sampling_steps}")
        if self.time_steps > MAX_TIME_STEPS:
            raise ConfigError(f"{src}: 'time_steps' must be at most {MAX_TIME_STEPS:,} (the "
                              f"schedule is allocated up front), got {self.time_steps}")
        problem = channels_problem(self.instruments, {"in_ch": self.in_ch, "out_ch": self.out_ch})
        if problem:
            raise ConfigError(f"{src}: {problem}")

    @property
    def instruments(self) -> InstrumentSet:
        """The resolved ``instrument_set``; ConfigError naming the key if it is refused."""
        try:
            return resolve_set(self.instrument_set)
        except InstrumentSetError as exc:
            raise ConfigError(f"{self._source}: {exc}") from None

    def _check_data(self, src: str) -> None:
        """The dataset's keys: splits, density, song length, seed, transposition, mix."""
        for key in ("train_split", "val_split", "test_split"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"{src}: '{key}' must be in [0, 1], got {getattr(self, key)}")
        total = self.train_split + self.val_split + self.test_split
        if abs(total - 1.0) > 1e-6:
            raise ConfigError(f"{src}: 'train_split' + 'val_split' + 'test_split' must be 1, "
                              f"got {total:g}")
        if not 0.0 <= self.min_bar_density < 1.0:
            raise ConfigError(f"{src}: 'min_bar_density' must be in [0, 1), "
                              f"got {self.min_bar_density}")
        if self.max_song_bars < BARS_PER_PHRASE:
            raise ConfigError(f"{src}: 'max_song_bars' must be >= {BARS_PER_PHRASE} "
                              f"(one window), got {self.max_song_bars}")
        if self.max_song_bars > MAX_SONG_BARS_LIMIT:
            raise ConfigError(f"{src}: 'max_song_bars' must be at most "
                              f"{MAX_SONG_BARS_LIMIT:,} (a song's arrays are allocated at "
                              f"its length), got {self.max_song_bars}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"{src}: 'seed' must be in [0, 2**32 - 1], got {self.seed}")
        if len(self.transpose) != 2 or not -24 <= self.transpose[0] <= self.transpose[1] <= 24:
            raise ConfigError(f"{src}: 'transpose' must be [lo, hi] semitones with "
                              f"-24 <= lo <= hi <= 24, got {self.transpose}")
        if self.train_mix is not None:
            if not self.train_mix:
                raise ConfigError(f"{src}: 'train_mix' must name at least one dataset or "
                                  f"be null")
            for folder, weight in self.train_mix.items():
                if not weight > 0:
                    raise ConfigError(f"{src}: 'train_mix' weight of {folder!r} must be > 0, "
                                      f"got {weight}")
        if isinstance(self.song_pass_data, dict):
            if not self.song_pass_data:
                raise ConfigError(f"{src}: 'song_pass_data' must name at least one dataset "
                                  "(a list, or a mapping of folders to weights)")
            for folder, weight in self.song_pass_data.items():
                if not weight > 0:
                    raise ConfigError(f"{src}: 'song_pass_data' weight of {folder!r} must be "
                                      f"> 0, got {weight}")
        if not MIN_CROP_NOTES <= self.song_pass_crop <= BATCH_NOTES:  # an int by now
            raise ConfigError(f"{src}: 'song_pass_crop' must be an integer in "
                              f"{MIN_CROP_NOTES}..{BATCH_NOTES} (notes of a training crop), "
                              f"got {self.song_pass_crop!r}")
        if not 0 <= self.song_pass_augment <= MAX_SONG_PASS_AUGMENT:
            raise ConfigError(f"{src}: 'song_pass_augment' must be in 0..{MAX_SONG_PASS_AUGMENT}"
                              f" (augmented copies per training song), got "
                              f"{self.song_pass_augment}")
        problem = song_pass_network_problem(self.song_pass_network)
        if problem:
            raise ConfigError(f"{src}: {problem}")
        problem = dropout_problem(self.song_pass_dropout)
        if problem:
            raise ConfigError(f"{src}: 'song_pass_dropout' {problem}")
        gates = self.song_pass_gates
        problems = [gate_problem(g) for g in gates]
        if not gates or any(problems) or len(set(gates)) != len(gates):
            why = next((p for p in problems if p), "must be distinct numbers in [0, 1), "
                       f"at least one, got {gates!r}")
            raise ConfigError(f"{src}: 'song_pass_gates' {why}")
        for name, folder in self.panel.items():
            if not name.strip() or not folder.strip():
                raise ConfigError(f"{src}: 'panel' must map corpus names to dataset folders, "
                                  f"got {name!r}: {folder!r}")
        if self.preprocess_workers is not None and self.preprocess_workers <= 0:
            raise ConfigError(f"{src}: 'preprocess_workers' must be > 0 or null, "
                              f"got {self.preprocess_workers}")

    def _check_training(self, src: str) -> None:
        """The optimiser's and the trainer's keys."""
        for key in ("lr", "min_lr"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{src}: '{key}' must be > 0, got {getattr(self, key)}")
        for key in ("weight_decay", "gradient_clip_val"):
            value = getattr(self, key)
            if value is not None and value < 0:
                raise ConfigError(f"{src}: '{key}' must be >= 0, got {value}")
        for key in ("limit_train_batches", "limit_val_batches"):
            value = getattr(self, key)
            if isinstance(value, float) and not 0.0 < value <= 1.0:
                raise ConfigError(f"{src}: '{key}' must be a fraction in (0, 1] or a count "
                                  f">= 1, got {value}")
            if isinstance(value, int) and value < 1:
                raise ConfigError(f"{src}: '{key}' must be a count >= 1 or a fraction in "
                                  f"(0, 1], got {value}")
        for key in ("lr_factor", "decoder_lr_factor"):
            if not 0.0 < getattr(self, key) < 1.0:
                raise ConfigError(f"{src}: '{key}' must be in (0, 1), got {getattr(self, key)}")
        for key in ("num_workers", "lr_patience"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{src}: '{key}' must be >= 0, got {getattr(self, key)}")

    def _check_separation(self, src: str) -> None:
        """The sampling and second-pass keys."""
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"{src}: 'threshold' must be in (0, 1), got {self.threshold}")
        if not 0.0 <= self.song_context_weight <= 10.0:
            raise ConfigError(f"{src}: 'song_context_weight' must be in [0, 10], "
                              f"got {self.song_context_weight}")
        if not 0.0 < self.song_context_width <= 72.0:
            raise ConfigError(f"{src}: 'song_context_width' must be in (0, 72] semitones, "
                              f"got {self.song_context_width}")
        if self.eta < 0:
            raise ConfigError(f"{src}: 'eta' must be >= 0, got {self.eta}")

    def _check_hardware(self, src: str) -> None:
        """The device keys (``devices``, the release's ``gpus``)."""
        for key in ("devices", "gpus"):
            value = getattr(self, key)
            if isinstance(value, str) and value != "auto":
                try:
                    value = int(value)
                except ValueError:
                    raise ConfigError(f"{src}: '{key}' must be an int, a list of ints or "
                                      f"\"auto\", got {value!r}") from None
            if isinstance(value, int) and value < 1:
                raise ConfigError(f"{src}: '{key}' must be a count >= 1 or a list of device "
                                  f"indices, got {value}")
            if isinstance(value, list) and (not value or min(value) < 0
                                            or len(set(value)) != len(value)):
                raise ConfigError(f"{src}: '{key}' must be a non-empty list of distinct "
                                  f"device indices >= 0, got {value}")

    # ------------------------------------------------------------------------------
    def hardware(self) -> tuple[str, int | list[int] | str]:
        """``(accelerator, devices)`` the config asks for, training and separating alike.

        The release's ``gpus`` key (a count or a list of indices) still works: when set,
        it means ``accelerator="gpu"`` and ``devices=gpus``.
        """
        accelerator, devices = self.accelerator, self.devices
        if self.gpus is not None:
            accelerator, devices = "gpu", self.gpus
        if isinstance(devices, str) and devices != "auto":
            devices = int(devices)
        return accelerator, devices

    def trainer_hardware(self) -> dict[str, Any]:
        """Lightning ``Trainer`` keyword arguments for accelerator, devices and strategy."""
        accelerator, devices = self.hardware()
        return {"accelerator": accelerator, "devices": devices, "strategy": self.strategy,
                "num_nodes": self.num_nodes, "precision": self.precision}

    def to_dict(self) -> dict[str, Any]:
        """The resolved configuration as plain JSON types (stored in every checkpoint)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if not f.name.startswith("_")}

    def replace(self, **changes: Any) -> Config:
        """A copy with some keys changed, validated like a config file (same source)."""
        return config_from_dict({**self.to_dict(), **changes}, source=self._source)

    def resolve(self, key: str) -> Path:
        """A path-valued key, relative paths taken from the current directory."""
        value = getattr(self, key)
        if not value:
            raise ConfigError(f"{self._source}: '{key}' is empty")
        return Path(value)

    def require_dir(self, key: str) -> Path:
        """A path-valued key that must name an existing folder."""
        path = self.resolve(key)
        if not path.is_dir():
            raise ConfigError(f"{self._source}: '{key}' = {str(path)!r} is not a folder")
        return path

    def require_writable_dir(self, key: str) -> Path:
        """A path-valued key naming a folder that can be written (or created); made later."""
        path = self.resolve(key)
        problem = writable_dir_problem(path)
        if problem:
            raise ConfigError(f"{self._source}: '{key}' = {str(path)!r} is not a writable "
                              f"folder ({problem})")
        return path


_HINTS = typing.get_type_hints(Config)


def config_from_dict(raw: dict[str, Any], source: str = "<dict>") -> Config:
    """Validate a raw mapping (unknown keys and wrong types are errors) into a Config."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a JSON object")
    known = {f.name for f in dataclasses.fields(Config) if not f.name.startswith("_")}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"{source}: unknown key '{key}'")
        annotation = _HINTS[key]
        if too_large(value):
            raise ConfigError(f"{source}: '{key}' holds an integer beyond 64 bits "
                              f"(|value| > {MAX_INTEGER:,}), which no setting can use")
        if not type_ok(value, annotation):
            raise ConfigError(f"{source}: '{key}' must be {describe(annotation)}, got {value!r}")
        if isinstance(value, dict) and float_valued(annotation):  # {folder: weight}
            if any(isinstance(v, float) and not math.isfinite(v) for v in value.values()):
                raise ConfigError(f"{source}: '{key}' weights must be finite numbers, "
                                  f"got {value!r}")
            value = {k: float(v) if isinstance(v, int) else v for k, v in value.items()}
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{source}: '{key}' must be a finite number, got {value!r}")
        if annotation is float or (get_origin(annotation) in (Union, types.UnionType)
                                    and float in get_args(annotation)
                                    and int not in get_args(annotation)):
            value = float(value) if isinstance(value, int) else value
        values[key] = value
    cfg = Config(**values, _source=source)
    cfg.validate()
    return cfg


def config_from_flags(args: Any, flag_keys: dict[str, str], required: tuple[str, ...]
                      ) -> Config:
    """The config of a command line: ``--config`` (``args.config``) if given, else the
    defaults; every flag of ``flag_keys`` (``{flag attribute: config key}``) that was
    given replaces its key and is validated like one.

    Raises:
        ConfigError: no ``--config`` and a flag of ``required`` missing, or an invalid value.
    """
    overrides = {key: getattr(args, flag) for flag, key in flag_keys.items()
                 if getattr(args, flag) is not None}
    if args.config:
        return load_config(args.config, overrides=overrides)
    missing = [flag for flag in required if getattr(args, flag) is None]
    if missing:
        names = " and ".join("--" + flag.replace("_", "-") for flag in missing)
        raise ConfigError(f"{names} {'is' if len(missing) == 1 else 'are'} required "
                          f"(or --config)")
    return config_from_dict(overrides, source="command line")


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Read and validate a config file; ``overrides`` replace keys before validation."""
    path = Path(path)
    problem = not_a_file(path, "config file")
    if problem:
        raise ConfigError(f"{path}: {problem}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
                          f"offset {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise ConfigError(f"{path}: a number that cannot be read "
                          f"({str(exc).splitlines()[0]})") from None
    if overrides:
        raw = {**raw, **overrides}
    return config_from_dict(raw, source=str(path))
