"""One command-line wrapper for every command: the exit-status rule lives here.

    @command
    def main(argv: Sequence[str] | None = None) -> int: ...

A wrapped ``main`` returns what it returns; :class:`data.errors.UserError` (and a missing
input file) becomes one ``error:`` line on stderr and status 2;
:class:`data.errors.WorkFailed` and other OS errors while working one ``error:`` line and
status 1; Ctrl-C a line saying so and status 130; anything else propagates -- a bug shows
its traceback, and Python exits with status 1.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence

from data.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USER, UserError, WorkFailed, one_line

Main = Callable[[Sequence[str] | None], int]


def report(exc: BaseException) -> None:
    """Print ``error: <one line>`` on stderr."""
    print(f"error: {one_line(exc)}", file=sys.stderr)


def command(main: Main | None = None, *, interrupted: str = "interrupted") -> Main:
    """Wrap a command's ``main(argv) -> int`` with the exit-status rule (module docstring).

    Args:
        main: the function (``@command``), or None (``@command(interrupted=...)``).
        interrupted: what is printed on Ctrl-C.
    """
    def wrap(function: Main) -> Main:
        @functools.wraps(function)
        def wrapped(argv: Sequence[str] | None = None) -> int:
            try:
                return function(argv)
            except (UserError, FileNotFoundError) as exc:
                report(exc)
                return EXIT_USER
            except (WorkFailed, OSError) as exc:
                report(exc)
                return EXIT_FAILED
            except KeyboardInterrupt:
                print(interrupted, file=sys.stderr)
                return EXIT_INTERRUPTED
        return wrapped
    return wrap if main is None else wrap(main)
