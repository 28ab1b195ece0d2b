"""Atomic file output: readers see either the old file, nothing, or the whole new file.

Every file the project writes (phrase shards, manifests, tables, MIDI, audio, pictures)
goes through :func:`atomic_write_many`: each target is first written to a temporary file
beside it, and only when all writers have succeeded are the temporaries renamed into
place, each old file kept aside until all are in. On any error the temporaries are
removed and the targets are left as they were (a failed rename puts back the old files of
the targets already replaced).
Temporary names are short (at most :data:`TEMP_NAME` characters of the target's name),
so a target with a long name still has a temporary the file system accepts.

A command that makes outputs from a long piece of work first claims them
(:func:`claim_outputs`): one claim file per target, created exclusively (``O_EXCL``) and
locked, so a second run making the same files is refused at once instead of silently
replacing the first's; claims are removed when the work ends, however it ends, and a
claim left by a killed run (its lock is gone with the process) is taken over. A writer
holds a lock on each of its temporaries too, so the temporaries of a killed one are
known by their free lock and removed by the next run that claims their targets.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from data.errors import UserError

Writer = Callable[[Path], None]  # writes the whole file at the path it is given
# names of the temporaries below: .<target name>.<random>.tmp<suffix>, and .tmpold<suffix>
# for an old file kept aside while its target is replaced
TEMP_GLOB = ".*.tmp*"
TEMP_NAME = 48  # characters of the target's name kept in a temporary's or a claim's name
TEMP_SUFFIX = 16  # characters of the target's suffix kept in a temporary's name
CLAIM_GLOB = ".*.claim"  # names of the claims of claim_outputs


def _short(name: str) -> str:
    """A file name cut so that names made from it stay far below 255 bytes."""
    return name if len(name) <= TEMP_NAME else name[:TEMP_NAME]


def atomic_write_many(writers: Mapping[Path, Writer]) -> None:
    """Write several files all-or-nothing.

    Every file is written under a temporary name first; then each existing target is kept
    aside (a hard link, or a copy where links are not supported) and the temporaries are
    renamed into place one by one. If a rename fails, the targets already replaced get
    their old files back and the new ones are removed, so the folder is as it was.

    Args:
        writers: ``{target path: writer}``; each writer is called with a temporary path in
            the target's folder (same suffix, so format detection by name still works).

    Raises:
        IsADirectoryError: a target is a folder (before anything is written).
        OSError: a writer or a rename failed (the targets are as they were).
    """
    targets = [Path(target) for target in writers]
    for target in targets:
        if target.is_dir():
            raise IsADirectoryError(errno.EISDIR, "an output name is a folder", str(target))
    temps: dict[Path, Path] = {}
    locks: list[int] = []
    try:
        for target, write in zip(targets, writers.values()):
            temps[target], fd = _locked_temporary(target)
            locks.append(fd)
            write(temps[target])
            os.chmod(temps[target], 0o644)  # mkstemp makes 0600; give the usual mode
        _replace_all(temps)
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
        for fd in locks:
            os.close(fd)


def _locked_temporary(target: Path) -> tuple[Path, int]:
    """:func:`_temporary` for a writer, with its open descriptor holding an exclusive
    ``flock`` on it: held until the writer renames or removes it, so a temporary whose lock
    is free was left by a dead writer (:func:`remove_dead_temporaries`)."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{_short(target.name)}.",
                                suffix=f".tmp{target.suffix[:TEMP_SUFFIX]}")
    fcntl.flock(fd, fcntl.LOCK_EX)
    return Path(name), fd


def _temporary(target: Path, kind: str = "tmp") -> Path:
    """A new empty file beside ``target`` with a short name of the form :data:`TEMP_GLOB`."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{_short(target.name)}.",
                                suffix=f".{kind}{target.suffix[:TEMP_SUFFIX]}")
    os.close(fd)
    return Path(name)


def _replace_all(temps: dict[Path, Path]) -> None:
    """Rename every temporary onto its target; on a failure put every target back."""
    kept: dict[Path, Path | None] = {}  # target -> its old file kept aside (None: none)
    try:
        for target, tmp in temps.items():
            kept[target] = _keep_aside(target)
            os.replace(tmp, target)
    except BaseException:
        for target, old in kept.items():
            with contextlib.suppress(OSError):
                if old is not None:
                    os.replace(old, target)
                elif not temps[target].exists():  # renamed in: the new file is removed
                    target.unlink(missing_ok=True)
        raise
    finally:
        for old in kept.values():
            if old is not None:
                old.unlink(missing_ok=True)


def _keep_aside(target: Path) -> Path | None:
    """A second name for ``target``'s current file (None when there is none): a hard link,
    or a copy on file systems without them."""
    if not os.path.lexists(target):
        return None
    old = _temporary(target, "tmpold")  # a leftover is removed like any temporary
    try:
        old.unlink()
        os.link(target, old, follow_symlinks=False)
    except OSError:
        shutil.copy2(target, old, follow_symlinks=False)
    return old


def atomic_write(path: str | Path, write: Writer) -> None:
    """Write one file atomically with ``write(temporary path)``."""
    atomic_write_many({Path(path): write})


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_json(path: str | Path, obj: Any, indent: int = 2) -> None:
    """Write ``obj`` as JSON (with a trailing newline) atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


def remove_temporaries(folder: str | Path) -> int:
    """Delete the temporaries a killed writer left in ``folder`` (not in sub-folders).

    Only names of the form :data:`TEMP_GLOB` are touched. Call it when no writer is
    running in the folder (e.g. at the start of a build that owns it).

    Returns:
        How many files were removed.
    """
    removed = 0
    for tmp in Path(folder).glob(TEMP_GLOB):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def remove_dead_temporaries(target: str | Path) -> int:
    """Delete the temporaries of ``target`` that a killed writer left beside it.

    A temporary is removed only when both prove it is such a leftover: its name is the one
    :func:`atomic_write_many` gives a temporary of ``target`` (``.<name>.<8 random
    characters>.tmp<suffix>``), and its lock is free -- a writer holds the lock of each of
    its temporaries until it is renamed or removed, so a free lock means its writer is
    dead. Anything else in the folder is left alone.

    Returns:
        How many files were removed.
    """
    target = Path(target)
    pattern = re.compile(re.escape(f".{_short(target.name)}.") + r"[a-z0-9_]{8}"
                         + re.escape(f".tmp{target.suffix[:TEMP_SUFFIX]}"))
    removed = 0
    for tmp in target.parent.glob(TEMP_GLOB):
        if not pattern.fullmatch(tmp.name):
            continue
        try:
            fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue  # gone meanwhile, a link, or not ours to open
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if stat.S_ISREG(os.fstat(fd).st_mode) and os.path.samestat(os.fstat(fd),
                                                                        os.stat(tmp)):
                os.unlink(tmp)
                removed += 1
        except OSError:
            pass  # held by a live writer, or gone meanwhile
        finally:
            os.close(fd)
    return removed


def path_kind(path: str | Path) -> str:
    """What ``path`` is, links followed: ``"file"``, ``"folder"``, ``"missing"`` (also a
    link to nothing), ``"FIFO"``, ``"socket"``, ``"device"``, or an OS error's reason.

    Inputs are checked with it before they are opened: opening a FIFO to read it waits
    for a writer, forever if none comes.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
        return getattr(exc, "strerror", None) or str(exc)
    kinds = ((stat.S_ISREG, "file"), (stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "FIFO"),
             (stat.S_ISSOCK, "socket"))
    return next((kind for test, kind in kinds if test(mode)), "device")


def not_a_file(path: str | Path, what: str) -> str | None:
    """Why ``path`` cannot be read as ``what`` (e.g. "input MIDI file"), as the end of an
    error line, or None when it is a file: ``"input MIDI file not found"``,
    ``"input MIDI file is a folder, not a file"``, ...; see :func:`path_kind`."""
    kind = path_kind(path)
    if kind == "file":
        return None
    if kind == "missing":
        return f"{what} not found"
    if kind in ("folder", "FIFO", "socket", "device"):
        return f"{what} is a {kind}{' (named pipe)' if kind == 'FIFO' else ''}, not a file"
    return f"{what} cannot be read ({kind})"


def writable_dir_problem(path: str | Path) -> str | None:
    """Why files cannot be written in the folder ``path`` (made later if missing), or None.

    Nothing is left behind: the folder -- or, when it does not exist yet, its nearest
    existing parent, where it would be created -- is probed by creating and removing a
    temporary file, so permissions, ACLs and read-only mounts all count, as they will
    for the real writes.

    Returns:
        None when the folder can be used, else a short reason ("it is a file",
        "Permission denied", ...).
    """
    path = Path(path)
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        return "it is a file" if probe == path else f"{str(probe)!r} is a file"
    try:
        fd, name = tempfile.mkstemp(dir=probe, prefix=".write-check.", suffix=".tmp")
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


class OutputsBusy(UserError, FileExistsError):  # noqa: N818 -- a refusal, named for what it says
    """An output is claimed by another running command (:func:`claim_outputs`)."""


def claim_path(target: str | Path) -> Path:
    """The claim file of ``target``: beside it, hidden, with a short name."""
    target = Path(target)
    digest = hashlib.sha1(target.name.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return target.parent / f".{_short(target.name)}.{digest}.claim"


@contextlib.contextmanager
def claim_outputs(targets: Iterable[str | Path]) -> Iterator[None]:
    """Hold exclusive claims on the files ``targets`` for the duration of the block.

    Each claim is a file beside its target, created with ``O_EXCL`` and held under an
    exclusive ``flock`` until the block ends; then it is removed, whether the block
    succeeded or raised. A claim whose lock is free was left by a killed process and is
    taken over; once every claim is held, the temporaries a killed writer left of the
    targets are removed (:func:`remove_dead_temporaries`). Within the block SIGTERM is
    taken as Ctrl-C, so that a killed run removes its claims and temporaries itself. The
    targets' folders must exist.

    Raises:
        OutputsBusy: another process holds the claim of one of the targets (every claim
            taken so far is released first).
    """
    held: list[tuple[Path, int]] = []
    try:
        with _sigterm_as_interrupt():
            claimed = list(dict.fromkeys(Path(t) for t in targets))
            for target in claimed:
                path = claim_path(target)
                held.append((path, _take_claim(path, target)))
            for target in claimed:  # ours now: what a killed run writing them left goes
                remove_dead_temporaries(target)
            yield
    finally:
        for path, fd in reversed(held):
            with contextlib.suppress(OSError):
                os.unlink(path)  # unlinked while still locked: no one can take it between
            os.close(fd)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (``kill``) raises KeyboardInterrupt, as Ctrl-C does, so
    that every ``finally`` runs -- claims and temporaries are removed -- before the process
    ends (the commands exit with 130). Only in the main thread, where Python takes
    signals; the previous handler is put back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _take_claim(path: Path, target: Path) -> int:
    """Create (or take over a stale) claim file and lock it; returns its descriptor."""
    for _ in range(8):  # another process may create or release it between two steps
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                fd = os.open(path, os.O_WRONLY)
            except FileNotFoundError:
                continue  # released meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputsBusy(f"{target} is being written by another run (it holds "
                              f"{path.name}); wait for it to finish") from None
        try:
            current = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            current = False
        if current:  # a new claim, or a stale one (its holder died): ours now
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)  # released and replaced while we locked it: try again
    raise OutputsBusy(f"{target}: could not claim {path.name} (other runs keep taking it)")
