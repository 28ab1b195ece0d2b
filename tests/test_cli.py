"""utils/core/cli.py: one exit-status rule for every command -- user errors 2 (one line), work
failures 1 (one line), Ctrl-C 130, bugs 1 with their traceback."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from data.errors import InputError, UserError, WorkFailed, one_line
from utils.core.cli import command

ROOT = Path(__file__).resolve().parent.parent

# every command of the repository: (module, how its main is called)
COMMANDS: dict[str, str] = {
    "melody2music_train.py": "melody2music_train",
    "melody2music_decoder.py": "melody2music_decoder",
    "evaluate.py": "evaluate",
    "separate.py": "separate",
    "python -m utils.preprocess": "utils.preprocess",
    "python -m utils.synthesize": "utils.synthesize",
    "python -m utils.debian_songs": "utils.debian_songs",
    "python -m utils.pretrained": "utils.pretrained",
    "bench/ablation.py": "bench.ablation",
    "bench/corpora.py": "bench.corpora",
    "bench/long_song.py": "bench.long_song",
    "bench/preprocess.py": "bench.preprocess",
    "bench/sample.py": "bench.sample",
    "bench/song_context.py": "bench.song_context",
    "bench/song_pass_ensemble.py": "bench.song_pass_ensemble",
    "bench/synthesize.py": "bench.synthesize",
    "bench/track_oracle.py": "bench.track_oracle",
    "bench/train.py": "bench.train",
}


def test_the_rule(capsys: pytest.CaptureFixture[str]) -> None:
    def fails(error: BaseException):
        @command(interrupted="stopped here")
        def main(argv=None) -> int:  # noqa: ANN001
            raise error
        return main

    assert fails(InputError("bad\nvalue"))([]) == 2
    assert capsys.readouterr().err == "error: bad\\nvalue\n"  # one line, whatever the text
    assert fails(FileNotFoundError("x.mid: not found"))([]) == 2
    assert fails(WorkFailed("loss is nan"))([]) == 1
    assert fails(PermissionError("disk"))([]) == 1
    assert fails(KeyboardInterrupt())([]) == 130
    assert capsys.readouterr().err.splitlines()[-1] == "stopped here"
    with pytest.raises(ZeroDivisionError):  # a bug is not reported as the user's problem
        fails(ZeroDivisionError("bug"))([])
    with pytest.raises(ValueError):  # nor is a plain ValueError
        fails(ValueError("bug"))([])
    assert one_line("a\x1b[2Jb") == "a\\x1b[2Jb"


def test_the_project_errors_are_user_errors() -> None:
    from data.build_plan import BuildError
    from data.debian_songs import CollectError, WadError
    from data.fileio import OutputsBusy
    from data.midi import MidiError, SkipFile
    from data.mma import MmaMissing
    from data.store import DatasetError
    from data.synthesize import SynthError
    from utils.core.config import ConfigError
    from utils.separation.file_outputs import OutputExists
    from utils.training.runs import NonFiniteLossError

    for cls in (ConfigError, DatasetError, BuildError, SynthError, WadError, CollectError,
                OutputsBusy, MmaMissing, MidiError, SkipFile, OutputExists, InputError):
        assert issubclass(cls, UserError), cls
    assert issubclass(NonFiniteLossError, WorkFailed)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_lets_a_bug_through_and_stops_on_ctrl_c(
        name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    module = importlib.import_module(COMMANDS[name])
    main = module.main if hasattr(module, "main") else None
    assert main is not None, name

    def bug(self, args=None, namespace=None):  # noqa: ANN001, ANN202
        raise RuntimeError("a bug in the code")

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", bug)
    with pytest.raises(RuntimeError, match="a bug in the code"):
        main([])

    def interrupt(self, args=None, namespace=None):  # noqa: ANN001, ANN202
        raise KeyboardInterrupt

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", interrupt)
    assert main([]) == 130


def test_a_bug_shows_its_traceback_and_exits_1() -> None:
    code = ("import argparse, sys, evaluate\n"
            "def bug(self, args=None, namespace=None):\n"
            "    raise RuntimeError('a bug in the code')\n"
            "argparse.ArgumentParser.parse_args = bug\n"
            "sys.exit(evaluate.main())\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 1
    assert "Traceback (most recent call last)" in run.stderr
    assert "RuntimeError: a bug in the code" in run.stderr
    assert "error:" not in run.stderr
