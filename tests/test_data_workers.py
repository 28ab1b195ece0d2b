"""data/workers.py: a worker that dies is blamed on its task, never a hang; stopping early
stops the workers.

The task functions live at module level so that worker processes can import them.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from data.workers import run_tasks


def square_or_die(task: int) -> int:
    """Square a number; the task -1 kills its own process, as the kernel's OOM killer would."""
    if task < 0:
        os.kill(os.getpid(), signal.SIGKILL)
    return task * task


def block_on_fifo(task: tuple[int, str]) -> int:
    """Return the number, except for 0: that one waits for ever on a FIFO nobody writes."""
    number, fifo = task
    if number == 0:
        with open(fifo) as f:  # blocks until a writer opens the FIFO
            f.read()
    return number


def _assert_no_worker_left(fifo: Path) -> None:
    """The stuck worker is gone: a FIFO without a reader refuses a non-blocking writer."""
    with pytest.raises(OSError) as info:
        os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    assert info.value.errno == errno.ENXIO


@pytest.fixture
def python_ctrl_c() -> Iterator[None]:
    """Ctrl-C as in a terminal, however the tests were started (a shell's background job
    ignores SIGINT, and pytest would inherit that)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_results_of_every_task(python_ctrl_c: None) -> None:
    tasks = list(range(30))
    for workers in (1, 2):
        assert sorted(run_tasks(square_or_die, tasks, workers)) == [(t, t * t) for t in tasks]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C as before
    with pytest.raises(ValueError, match="workers must be >= 1"):
        list(run_tasks(square_or_die, tasks, 0))


def test_a_dead_worker_is_blamed_on_its_task_and_the_rest_finish() -> None:
    tasks = [3, 1, -1, 4, 5, 9, 2, 6, -1, 8, 7] + list(range(10, 30))
    results = dict(run_tasks(square_or_die, tasks, 2))
    assert set(results) == set(tasks)
    assert results[-1] is None  # the task whose worker died, twice
    assert all(results[t] == t * t for t in tasks if t >= 0)


def test_stopping_early_stops_a_busy_worker(tmp_path: Path) -> None:
    """Closing the results (what Ctrl-C in the caller does) ends even a task stuck for ever."""
    fifo = tmp_path / "never"
    os.mkfifo(fifo)
    results = run_tasks(block_on_fifo, [(n, str(fifo)) for n in range(12)], 2)
    got = [next(results) for _ in range(5)]  # the other worker keeps going meanwhile
    assert all(number > 0 for (number, _), _ in got)
    results.close()
    _assert_no_worker_left(fifo)


def test_ctrl_c_never_cuts_the_callers_work_on_a_result_and_stops_at_the_next(
        tmp_path: Path, python_ctrl_c: None) -> None:
    """Ctrl-C while the caller handles a result (the build writing a shard) lets it finish,
    then stops the run at the next result; the pool's threads end and Ctrl-C is Python's
    again, so the process can exit."""
    fifo = tmp_path / "never"
    os.mkfifo(fifo)
    threads = set(threading.enumerate())
    results = run_tasks(block_on_fifo, [(n, str(fifo)) for n in range(12)], 2)
    handled = []
    with pytest.raises(KeyboardInterrupt):
        for (number, _), _ in results:
            handled.append(number)
            if len(handled) == 2:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C
                handled.append("rest of the caller's work")
    assert handled[2:] == ["rest of the caller's work"]  # and no result after it
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    _assert_no_worker_left(fifo)
    for thread in set(threading.enumerate()) - threads:
        thread.join(10)
        assert not thread.is_alive(), f"{thread.name} of the pool still runs"


def test_ctrl_c_while_every_worker_is_stuck_stops_the_wait(tmp_path: Path,
                                                           python_ctrl_c: None) -> None:
    fifo = tmp_path / "never"
    os.mkfifo(fifo)
    results = run_tasks(block_on_fifo, [(0, str(fifo))], 2)
    ctrl_c = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    ctrl_c.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            next(results)
    finally:
        ctrl_c.cancel()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    _assert_no_worker_left(fifo)
