"""separate.py killed while writing: the temporaries it leaves are removed by the next run
into the same outputs, and a SIGTERM cleans up at once."""

from __future__ import annotations

import fcntl
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from data.fileio import CLAIM_GLOB, TEMP_GLOB
from tests.test_separate_limits import FS, Piano, fake_model, midi_file, run_cli  # noqa: F401
from utils.separation.file_outputs import output_paths

ROOT = Path(__file__).resolve().parents[1]


def _killed_writer(targets: list[Path], how: signal.Signals) -> subprocess.CompletedProcess:
    """A process that claims ``targets``, starts writing them all at once and, half-way
    through writing the last one, gets signal ``how``."""
    code = f"""
import os, signal
from pathlib import Path
from data.fileio import atomic_write_many, claim_outputs
targets = [Path(p) for p in {[str(t) for t in targets]!r}]
def half(last):
    def write(tmp):
        tmp.write_bytes(b"half a file")
        if last:
            os.kill(os.getpid(), signal.{how.name})
            raise SystemExit("the signal did not stop the writer")
    return write
with claim_outputs(targets):
    atomic_write_many({{t: half(t == targets[-1]) for t in targets}})
"""
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_a_sigterm_while_writing_leaves_no_temporary_and_no_claim(tmp_path: Path) -> None:
    targets = list(output_paths(tmp_path / "song.mid", tmp_path).values())
    proc = _killed_writer(targets, signal.SIGTERM)
    assert proc.returncode != 0 and "did not stop" not in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []  # no temporary, no claim, no output


def test_the_next_run_removes_the_temporaries_a_killed_run_left(
        tmp_path: Path, fake_model: list[Piano], capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    song = midi_file(tmp_path / "song.mid", [(0, 480, 60)])
    out = tmp_path / "out"
    out.mkdir()
    paths = output_paths(song, out)
    proc = _killed_writer(list(paths.values()), signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    left = sorted(p.name for p in out.glob(TEMP_GLOB))
    assert len(left) == len(paths) and list(out.glob(CLAIM_GLOB))
    # a temporary of the same name pattern that a live writer still holds is not touched,
    # nor a file of the user's that only looks like one
    live = out / f".{paths['png'].name}.abcd1234.tmp.png"
    live.write_bytes(b"being written")
    mine = out / ".song.png.notes.tmp"
    mine.write_bytes(b"the user's")
    with open(live, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        code, _, err = run_cli([str(song), "-o", str(out), "--sample-rate", str(FS)], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [live.name, mine.name, *(p.name for p in paths.values())])
    assert live.read_bytes() == b"being written" and mine.read_bytes() == b"the user's"
