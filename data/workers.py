"""Run one function over many tasks in worker processes, surviving dead workers and Ctrl-C.

``multiprocessing.Pool`` waits for ever when one of its workers is killed (for example by
the kernel, out of memory) and often hangs on Ctrl-C. :func:`run_tasks` instead:

* submits every task as its own ``concurrent.futures`` future to a
  ``ProcessPoolExecutor`` (forkserver start), a bounded number at a time, so the tasks in
  flight are always known;
* treats a dead worker as what it is: the executor reports ``BrokenProcessPool`` for the
  tasks in flight instead of hanging. Those tasks are then run again one at a time, each
  in a fresh one-worker pool. The task that kills its worker again is the one the dead
  worker was on: it is yielded with the result ``None``. The others finish normally (a
  worker killed from outside, e.g. by a memory-hungry neighbour, costs only a retry),
  and the remaining tasks continue in a new pool;
* leaves Ctrl-C to the main process (workers ignore SIGINT) and, when the caller stops
  iterating -- ``KeyboardInterrupt``, an exception, or simply closing the generator --
  terminates the workers at once, so the caller keeps what it has and exits in seconds;
* while a pool runs, raises Ctrl-C's ``KeyboardInterrupt`` only between two steps of its
  own (:class:`_CtrlC`), never inside ``concurrent.futures``, where an interrupt that lands
  while a future's lock is held leaves the executor's thread waiting for that lock for
  ever -- and with it the interpreter's exit.

Results come back in completion order, not task order.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from data.errors import WorkFailed

T = TypeVar("T")
R = TypeVar("R")

IN_FLIGHT_PER_WORKER = 4  # tasks submitted ahead per worker (keeps every worker busy)
TERMINATE_WAIT_S = 5.0  # how long a worker may take to die of SIGTERM before SIGKILL
POLL_S = 0.1  # how often a wait on the workers looks for a Ctrl-C noted meanwhile


class WorkerStartError(WorkFailed, RuntimeError):
    """Worker processes die before running any task, so no task can be blamed."""


class _CtrlC:
    """Ctrl-C noted while a pool runs, and raised only where no lock of the executor is held.

    ``concurrent.futures.wait`` takes the lock of every future in turn; a
    ``KeyboardInterrupt`` raised by Python's own handler at that moment leaves one taken,
    and the executor's thread, which needs it to settle the future, waits for ever, so the
    process never exits. While :func:`run_tasks` runs a pool, SIGINT therefore only sets a
    flag; the waits below look at it every :data:`POLL_S` and raise ``KeyboardInterrupt``
    themselves, and a Ctrl-C pressed while the caller holds a result is raised when it asks
    for the next one (or when the results end). A caller that closes the results early is
    already stopping: a Ctrl-C noted then is not raised again. Where SIGINT is ignored or
    has a handler other than Python's, or outside the main thread, nothing is changed.
    """

    def __init__(self) -> None:
        self.pressed = False
        self._installed = False  # Python's own handler replaced (and to be put back)

    def __enter__(self) -> _CtrlC:
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            signal.signal(signal.SIGINT, self._note)
            self._installed = True
        return self

    def _note(self, signum: int, frame: object) -> None:
        self.pressed = True

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed since the last check."""
        if self.pressed:
            self.pressed = False
            raise KeyboardInterrupt

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self._installed = False
        if exc_type is None:
            self.check()  # pressed after the last result was handed over

    def wait(self, futures: Iterable[Future], return_when: str = FIRST_COMPLETED
             ) -> set[Future]:
        """``concurrent.futures.wait`` that raises a Ctrl-C within :data:`POLL_S`; the done."""
        futures = list(futures)
        while True:
            done, not_done = wait(futures, timeout=POLL_S, return_when=return_when)
            self.check()
            if not not_done or (done and return_when == FIRST_COMPLETED):
                return done

    def result(self, future: Future[R]) -> R:
        """``future.result()``, raising a Ctrl-C within :data:`POLL_S` while it waits."""
        self.wait([future])
        return future.result()


def _init_worker() -> None:
    """Worker start-up: Ctrl-C belongs to the main process, which stops the workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _Pool:
    """A forkserver ``ProcessPoolExecutor`` that can also be stopped at once."""

    def __init__(self, workers: int, preload: Sequence[str]) -> None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(preload))
        self.executor = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker)

    def close(self, terminate: bool) -> None:
        """Shut down: wait for the workers to exit, or with ``terminate`` stop them now.

        Terminating reaches every worker, including one still starting up; a worker left
        alive could wait for ever on the task queue's lock held by one that was stopped.
        ``ProcessPoolExecutor`` offers this as ``terminate_workers`` only from Python 3.14,
        hence its private ``_processes`` (pid -> Process) and ``_result_queue`` here.

        A worker stopped while it was sending a result leaves half a message in the result
        pipe, and the executor's thread then waits for the rest for ever -- and with it the
        interpreter's exit. Once every worker is gone, this process's own copy of the
        pipe's write end is closed, so that wait ends in EOF (the executor's thread then
        winds down as for a broken pool), as CPython does for its task pipe.
        """
        if not terminate:
            self.executor.shutdown(wait=True)
            return
        processes = list((self.executor._processes or {}).values())  # noqa: SLF001
        results = self.executor._result_queue  # noqa: SLF001
        self.executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:  # gone when this returns; SIGKILL if SIGTERM was not enough
            process.join(TERMINATE_WAIT_S)
            if process.exitcode is None:
                process.kill()
                process.join()
        if results is not None:
            results._writer.close()  # noqa: SLF001 -- no worker is left to write


class _Broken(Exception):  # noqa: N818 -- internal signal from _run_pool to run_tasks
    """A pool lost a worker; ``suspects`` were in flight without a result."""

    def __init__(self, suspects: list) -> None:
        super().__init__(f"{len(suspects)} task(s) in flight when a worker died")
        self.suspects = suspects


def _run_pool(fn: Callable[[T], R], queue: deque[T], workers: int, preload: Sequence[str],
              ctrl_c: _CtrlC) -> Iterator[tuple[T, R]]:
    """Run queued tasks in one pool until the queue is empty or the pool breaks.

    On a broken pool, the results that did arrive are yielded, then :class:`_Broken` is
    raised carrying the tasks that were in flight without one (a task never submitted
    stays in ``queue``).
    """
    pool = _Pool(workers, preload)
    in_flight: dict[Future, T] = {}
    broken = False
    suspects: list[T] = []
    try:
        while (queue or in_flight) and not broken:
            while queue and len(in_flight) < workers * IN_FLIGHT_PER_WORKER:
                task = queue.popleft()
                try:
                    in_flight[pool.executor.submit(fn, task)] = task
                except BrokenProcessPool:
                    queue.appendleft(task)
                    broken = True
                    break
            done = ctrl_c.wait(in_flight) if in_flight else set()
            for future in done:
                ctrl_c.check()  # pressed while the caller held the last result
                if isinstance(future.exception(), BrokenProcessPool):
                    broken = True  # dealt with below, once every future has settled
                else:
                    yield in_flight.pop(future), future.result()
        if broken:
            ctrl_c.wait(in_flight, ALL_COMPLETED)  # a broken executor fails them all at once
            for future, task in in_flight.items():
                ctrl_c.check()
                if isinstance(future.exception(), BrokenProcessPool):
                    suspects.append(task)
                else:
                    yield task, future.result()
    except BaseException:  # Ctrl-C, an error, or the caller closed the generator
        pool.close(terminate=True)
        raise
    pool.close(terminate=False)  # a broken executor has already stopped its workers
    if broken:
        raise _Broken(suspects)


def _run_alone(fn: Callable[[T], R], task: T, preload: Sequence[str], ctrl_c: _CtrlC
               ) -> R | None:
    """Run one task in a fresh one-worker pool; None when that worker dies on it.

    Raises:
        WorkerStartError: the worker dies before it gets to the task (then the task is
            not to blame, and neither is any other).
    """
    pool = _Pool(1, preload)
    try:
        try:
            ctrl_c.result(pool.executor.submit(os.getpid))  # the worker is up and answers
        except BrokenProcessPool:
            raise WorkerStartError("worker processes die as they start (before running any "
                                   "task); run with one worker to see why") from None
        try:
            result: R | None = ctrl_c.result(pool.executor.submit(fn, task))
        except BrokenProcessPool:
            result = None
    except BaseException:
        pool.close(terminate=True)
        raise
    pool.close(terminate=False)
    return result


def run_tasks(fn: Callable[[T], R], tasks: Iterable[T], workers: int,
              preload: Sequence[str] = ()) -> Iterator[tuple[T, R | None]]:
    """Yield ``(task, fn(task))`` for every task, in completion order.

    Args:
        fn: a picklable module-level function; it should not raise (an exception it
            raises is re-raised here and stops the run).
        tasks: picklable task arguments.
        workers: worker processes; 1 runs every task in this process, without a pool.
        preload: modules the forkserver imports once for all workers.

    Yields:
        ``(task, result)``; ``result`` is None for a task whose worker process died
        when it was run again alone (module docstring).

    Raises:
        WorkerStartError: worker processes cannot even start.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1:
        for task in tasks:
            yield task, fn(task)
        return
    queue = deque(tasks)
    with _CtrlC() as ctrl_c:
        while queue:
            try:
                yield from _run_pool(fn, queue, workers, preload, ctrl_c)
            except _Broken as broken:
                for task in broken.suspects:
                    yield task, _run_alone(fn, task, preload, ctrl_c)


def reason_summary(outcomes: Iterable[tuple[str, str]], ok: str, shown: int = 3
                   ) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Count the tasks that did not end ``ok`` by reason, with a few examples of each.

    Args:
        outcomes: ``(status, description)`` of every task, in the order examples are taken.
        ok: the status of a task that succeeded.
        shown: examples kept per reason.

    Returns:
        ``({reason: count}, {reason: [description, ...]})``, reasons sorted.
    """
    counts: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    for status, description in outcomes:
        if status == ok:
            continue
        counts[status] += 1
        if len(examples.setdefault(status, [])) < shown:
            examples[status].append(description)
    return dict(sorted(counts.items())), examples
