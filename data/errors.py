"""The errors a command reports as one line, and the exit status of each.

Every command's ``main`` goes through :func:`utils.core.cli.command`, the one place that prints
``error:`` lines:

* :class:`UserError` -- a problem with what the user gave (config, flags, input files,
  built data, output folders), phrased as one line naming the file or key: exit status
  :data:`EXIT_USER` (2), found before any work where it can be;
* :class:`WorkFailed` -- the work itself failed for a reason that is not a bug (a
  non-finite training loss, an output that could not be written): one line, status 1;
* Ctrl-C: status :data:`EXIT_INTERRUPTED` (130);
* anything else is a bug: Python's traceback, status 1.

Every error class of the project that means "the user's input" derives from
:class:`UserError` (and keeps its older base, e.g. ``ValueError``, so existing handlers
still catch it).
"""

from __future__ import annotations

EXIT_USER = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """A problem with the user's config, flags, input files, data or output folders."""


class InputError(UserError, ValueError):
    """A bad command-line value or input that has no more specific error class."""


class WorkFailed(Exception):
    """The work failed for a reason that is not a bug and not the input's (one line)."""


def one_line(exc: BaseException) -> str:
    """An exception's message as one printable line: control characters (a newline in a
    file name, say) escaped, so that a message can never forge a second line."""
    text = str(exc) or type(exc).__name__
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
