"""Long-song separation: seconds and peak memory for songs of 10, 30 and 60 minutes.

    python bench/long_song.py [--minutes 10 30 60] [--config CONFIG] [--steps 2]
        [--batch-size 64] [--device cpu] [--markdown]

Builds a synthetic 4/4 song of each length at 120 quarter notes per minute (piano chords
on every beat, a bass line in eighths, kick and hi-hat; 36 notes a bar) as a MIDI file
in a temporary folder, and separates it note by note the way ``separate.py`` does --
read the file, separate every window in batches, stitch, assign every note, write the
separated MIDI -- without the audio, whose size is the song's by nature. Each length
runs in a fresh process, so ``ru_maxrss`` is that song's peak resident memory; the
table also gives the resident memory just before the separation (networks built, one
batch separated) and the growth beyond it.

With ``--config`` the checkpoints that config names are used; without, freshly
initialised networks of the demo configuration's sizes (``configs/demo.json``): speed
and memory do not depend on the weights. ``--steps`` (default 2) sets the sampling
steps; time per window grows linearly with it, memory does not.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import symusic
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere

from data.contract import N_MUSIC  # noqa: E402
from data.errors import WorkFailed  # noqa: E402
from data.midi import read_notes  # noqa: E402
from data.notes import separated_midi  # noqa: E402
from data.roll import window_starts  # noqa: E402
from data.song_roll import load_mixture  # noqa: E402
from models.decoder import Decoder  # noqa: E402
from utils.core.checkpoints import SeparatorSpec, build_separator  # noqa: E402
from utils.core.cli import command  # noqa: E402
from utils.core.config import load_config  # noqa: E402
from utils.evaluation.metrics import format_table, markdown_table  # noqa: E402
from utils.separation.first_pass import MixtureSong  # noqa: E402
from utils.separation.separator import Separator  # noqa: E402

QPM = 120.0
TPQ = 480


def write_song(path: Path, minutes: float) -> int:
    """Write the synthetic song; returns its number of notes."""
    bars = int(round(minutes * QPM / 4))
    piano = symusic.Track("piano", 0, False)
    bass = symusic.Track("bass", 33, False)
    drums = symusic.Track("drums", 0, True)
    chords = ((60, 64, 67, 72), (57, 60, 64, 69), (53, 57, 60, 65), (55, 59, 62, 67))
    for bar in range(bars):
        chord = chords[bar % 4]
        for beat in range(4):
            t = (bar * 4 + beat) * TPQ
            for p in chord:
                piano.notes.append(symusic.Note(t + 7, TPQ - 40, p, 70 + beat * 5))
            drums.notes.append(symusic.Note(t, TPQ // 4, 36, 110))
        for eighth in range(8):
            t = bar * 4 * TPQ + eighth * TPQ // 2
            bass.notes.append(symusic.Note(t, TPQ // 2 - 20, chord[0] - 24 + (eighth % 2) * 7,
                                           90))
            drums.notes.append(symusic.Note(t, TPQ // 8, 42, 60 + (eighth % 2) * 20))
    score = symusic.Score(TPQ)
    score.tempos.append(symusic.Tempo(0, QPM))
    score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    score.tracks.extend([piano, bass, drums])
    score.dump_midi(str(path))
    return sum(len(t.notes) for t in (piano, bass, drums))


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_one(minutes: float, config: str | None, steps: int, batch_size: int,
            device: str) -> dict[str, float | int]:
    """Separate one synthetic song in this process; returns its figures."""
    if config is not None:
        separator = Separator.from_config(load_config(config), device)
    else:
        cfg = load_config(ROOT / "configs" / "demo.json")
        torch.manual_seed(0)
        model, process = build_separator(SeparatorSpec.of(cfg), cfg.rate)
        separator = Separator(model=model, process=process,
                              decoder=Decoder(N_MUSIC, cfg.decoder_dim),
                              device=torch.device(device))
    separator = separator.with_settings(steps=steps, batch_size=batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        song = Path(tmp) / "long.mid"
        n_notes = write_song(song, minutes)
        warm = torch.zeros(batch_size, 1, 64, 72)
        warm[:, :, ::4, ::3] = 1.0
        separator.probs(warm)  # one full batch: the networks' working memory is in place
        before = peak_rss_mb()
        start = time.perf_counter()
        notes = read_notes(song)
        mixture, _, _ = load_mixture(song, notes=notes)
        result = separator.separate_notes(MixtureSong(notes, mixture))
        midi, _ = separated_midi(notes, result.instrument)
        midi.save(str(Path(tmp) / "long.separated.mid"))
        seconds = time.perf_counter() - start
    n_windows = len(window_starts(mixture.shape[0]))
    peak = peak_rss_mb()
    return {"minutes": minutes, "steps": int(mixture.shape[0]), "windows": n_windows,
            "notes": n_notes, "seconds": round(seconds, 1),
            "windows_per_s": round(n_windows / seconds, 1), "rss_before_mb": round(before),
            "peak_rss_mb": round(peak), "growth_mb": round(peak - before)}


@command
def main(argv: list[str] | None = None) -> int:
    """Run each song length in a fresh process and print the table; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0, 30.0, 60.0],
                        help="song lengths in minutes (10 30 60)")
    parser.add_argument("--config", default=None,
                        help="use this config's checkpoints (default: fresh demo-size networks)")
    parser.add_argument("--steps", type=int, default=2, help="sampling steps (2)")
    parser.add_argument("--batch-size", type=int, default=64, help="windows per batch (64)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (cpu)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--child", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps <= 0 or args.batch_size <= 0 or any(m <= 0 for m in args.minutes):
        parser.error("--minutes, --steps and --batch-size must be > 0")
    if args.child is not None:
        print(json.dumps(run_one(args.child, args.config, args.steps, args.batch_size,
                                 args.device)))
        return 0

    rows: dict[str, dict[str, float | int]] = {}
    for minutes in args.minutes:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(minutes),
               "--steps", str(args.steps), "--batch-size", str(args.batch_size),
               "--device", args.device]
        if args.config is not None:
            cmd += ["--config", args.config]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
            raise WorkFailed(f"the {minutes:g}-minute song failed: {last}")
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows[f"{minutes:g}-minute song"] = {k: v for k, v in row.items() if k != "minutes"}
    model = args.config or "fresh demo-size networks"
    print(f"note-level separation of synthetic songs, {model}, {args.steps} sampling steps, "
          f"batch {args.batch_size} windows, on {args.device}")
    keys = ("steps", "windows", "notes", "seconds", "windows_per_s", "rss_before_mb",
            "peak_rss_mb", "growth_mb")
    print(markdown_table(rows, keys) if args.markdown else format_table(rows, keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
