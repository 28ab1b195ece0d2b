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

from data.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USER,
    InputError,
    UserError,
    WorkFailed,
    one_line,
)

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


def comma_list(text: str, flag: str, allowed: Sequence[str], noun: str) -> list[str]:
    """Read a flag's comma-separated list of names (any case), each one of ``allowed``.

    Returns:
        the names, lower-cased, in the order given.

    Raises:
        data.errors.InputError: an unknown name, or none (one line naming the flag, the
            names refused and the allowed ones; ``noun`` says what a name is).
    """
    words = [w.strip().lower() for w in text.split(",")]
    unknown = [w for w in words if w not in allowed]
    if unknown or not text.strip():
        shown = ", ".join(repr(w) for w in unknown) if unknown else "nothing"
        raise InputError(f"{flag}: {shown} is not {noun}; name one or more of "
                         f"{', '.join(allowed)}, separated by commas")
    return words
