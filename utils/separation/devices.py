"""Where separation runs: the one check of a device name, and the config's device.

Every command that separates takes ``--device`` (:func:`add_device_option`); the name is
checked once, by :func:`device_problem`, before anything is loaded, and turned into a
``torch.device`` by :func:`resolve_device` (``"auto"``: CUDA if available, else CPU).
"""

from __future__ import annotations

import argparse

import torch

from data.errors import InputError
from utils.core.config import Config

DEVICES = "auto, cpu, cuda, cuda:N or mps"


def device_problem(name: str | torch.device | None, label: str = "--device") -> str | None:
    """Why the device ``name`` cannot be used here, or None (``label`` names it in the line).

    A name torch does not read, a device other than a CPU, CUDA or MPS, a CPU index, and a
    CUDA or MPS device this machine lacks are problems.
    """
    if name is None or name == "auto":
        return None
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        return f"{label} {str(name)!r} is not a device name ({DEVICES})"
    if dev.type not in ("cpu", "cuda", "mps"):
        return f"{label} {str(name)!r}: separation runs on {DEVICES}, not {dev.type!r}"
    if dev.type == "cpu" and dev.index not in (None, 0):
        return f"{label} {str(name)!r}: the CPU is one device; use 'cpu'"
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return f"{label} {str(name)!r}: CUDA is not available on this machine"
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            return (f"{label} {str(name)!r}: this machine has {torch.cuda.device_count()} CUDA "
                    "device(s)")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        return f"{label} {str(name)!r}: MPS is not available on this machine"
    return None


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA if available, else CPU; any other name is checked
    (:func:`device_problem`) and passed to torch.

    Raises:
        data.errors.InputError: a name :func:`device_problem` refuses.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    problem = device_problem(device, "'device'")
    if problem:
        raise InputError(problem)
    return torch.device(device)


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """The ``--device`` option of every command that separates (read by :func:`resolve_device`)."""
    parser.add_argument("--device", default=None,
                        help="auto, cpu, cuda, cuda:N (default: the config's accelerator)")


def config_device(cfg: Config) -> torch.device:
    """The sampling device a config asks for (:meth:`utils.core.config.Config.hardware`).

    ``"cpu"`` -> CPU, ``"gpu"``/``"cuda"`` -> CUDA, ``"mps"`` -> MPS, ``"auto"`` -> CUDA if
    available, else CPU.
    """
    accelerator, _ = cfg.hardware()
    if accelerator in ("gpu", "cuda"):
        return resolve_device("cuda")
    if accelerator in ("cpu", "mps"):
        return resolve_device(accelerator)
    return resolve_device("auto")
