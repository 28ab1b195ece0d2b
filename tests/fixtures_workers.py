"""Task functions that the build's pool workers import in the tests.

Workers import the module of the function they run, so these live apart from the test
modules, which import torch: a worker starts in milliseconds instead of seconds.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import data.preprocess as pre


def die_on_bomb(task: pre.Task) -> pre.FileResult:
    """Convert a file in a pool worker; a file named bomb* kills the worker, like the OOM killer."""
    if Path(task[1]).name.startswith("bomb"):
        os.kill(os.getpid(), signal.SIGKILL)
    return pre._process_task(task)  # the real one: workers do not see a monkeypatch


def stuck_on_fifo(task: pre.Task) -> pre.FileResult:
    """Convert a file in a pool worker; stuck*.mid waits for ever on the FIFO of $M2M_FIFO."""
    if Path(task[1]).name.startswith("stuck"):
        with open(os.environ["M2M_FIFO"]) as fifo:
            fifo.read()
    return pre._process_task(task)
