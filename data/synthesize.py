"""A synthetic training corpus: seeded chord charts arranged by MMA's groove library.

Its command line is ``python -m utils.synthesize`` (:mod:`utils.synthesize`).

Song ``i`` is planned from a random generator seeded by ``(seed, i)`` alone:

1. a style file of MMA's standard library, uniformly, then one of its 4/4 song grooves
   (intros, endings and fills skipped; :mod:`data.mma` reads the library);
2. a random key (30% minor), tempo (70..160 BPM) and a chord progression from the
   functional-harmony model of :mod:`data.harmony`: 4- or 8-bar phrases, one or two chords
   per bar, a form with repeated phrases, 16..48 bars in all;
3. with probability one half a melody line over the chords: an MMA ``Aria`` track named
   ``Aria-Melody`` (a lead voice, random rhythm patterns and contour), which the data
   contract's melody detector recognises by its name;
4. MMA's own randomisation (``RndSeed``) is seeded from the same generator.

MMA renders the chart (in worker threads, one MMA process per song) and the song is
written atomically to ``DIR/<style>/<nnnnn>.mid``, where ``<style>`` is the stem of the
style file, so a split by first-level folder is a split by style. The same seed gives the
same files byte for byte on any number of workers. A song MMA fails on is counted under
its reason and never stops the run.

``DIR/synth_manifest.json`` (atomic) records the settings (seed, MMA version, a digest of
the groove library), counts, failures by reason and, per song, its groove, style, key,
tempo, bars, form, chords, melody voice and MMA seed. Re-running into a finished folder
renders nothing; into a half-finished one it renders only the missing songs; into a folder
made with another seed, MMA version or library it stops with an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import symusic
from tqdm import tqdm

from data.build_plan import MAX_SEED
from data.errors import UserError
from data.fileio import atomic_write, atomic_write_json, remove_temporaries
from data.harmony import progression, random_key
from data.midi import describe_time_signatures, notes_from_score
from data.mma import (
    Groove,
    MmaFailed,
    MmaMissing,
    find_mma,
    library_dir,
    mma_version,
    read_grooves,
    render,
    song_grooves,
)
from data.workers import reason_summary

MANIFEST = "synth_manifest.json"
GENERATOR_VERSION = 1  # bump when a seed would plan a different song
TEMPO_RANGE = (70, 160)  # BPM, inclusive
MIN_BARS, MAX_BARS = 16, 48
MELODY_PROB = 0.5
MELODY_VOICES = ("Flute", "Clarinet", "Oboe", "AltoSax", "Trumpet", "Piccolo", "Whistle",
                 "Ocarina", "SopranoSax", "Recorder")
# Aria rhythms: "offset length volume" groups of one bar (MMA pattern syntax)
MELODY_RHYTHMS = ("1 4. 90; 2.5 8 80; 3 2 85", "1 8 90 * 8", "1 4 90 * 4",
                  "1 2 90; 3 4 85; 4 4 80", "1 4 90; 2 8 80; 2.5 8 80; 3 2 85",
                  "1 4. 90; 2.5 4. 85; 4 4 80", "1 8 90; 1.5 8 70; 2 4 85; 3 4. 85; 4.5 8 70")
MELODY_DIRECTIONS = ("1", "r", "1 1 -1", "r 1 r -1 2 r", "1 -1 2 -2 r", "0 1 1 -2 r r")


class SynthError(UserError, ValueError):
    """A problem with the run's inputs, phrased as one line naming the path or option."""


@dataclass(frozen=True)
class SongPlan:
    """Everything that decides one song's bytes (all drawn from the ``(seed, index)`` stream).

    Attributes:
        index: song number; the file is ``<style>/<index:05d>.mid``.
        style: style file stem; groove: groove name in it.
        key: e.g. ``"Bb major"``; tempo: BPM; bars: length; form: phrase letters.
        chords_per_bar: 1 or 2; chords: one entry per bar, chords separated by spaces.
        melody: the melody's MMA voice, or None for no melody.
        melody_rhythms, melody_direction: the melody's Aria patterns and contour.
        seed: the seed given to MMA's ``RndSeed``.
    """

    index: int
    style: str
    groove: str
    key: str
    tempo: int
    bars: int
    form: str
    chords_per_bar: int
    chords: tuple[str, ...]
    melody: str | None
    melody_rhythms: tuple[str, ...]
    melody_direction: str
    seed: int

    @property
    def path(self) -> str:
        """The song's file relative to the output folder."""
        return f"{self.style}/{self.index:05d}.mid"


def plan_song(seed: int, index: int, grooves: Sequence[Groove]) -> SongPlan:
    """Draw song ``index`` of a corpus from a generator seeded by ``(seed, index)``.

    Args:
        seed: the corpus seed (>= 0).
        index: the song number (>= 0).
        grooves: the grooves to choose from (:func:`data.mma.song_grooves`).
    """
    rng = np.random.default_rng([seed, index])
    styles = sorted({g.style for g in grooves})
    style = styles[int(rng.integers(len(styles)))]
    in_style = [g for g in grooves if g.style == style]
    groove = in_style[int(rng.integers(len(in_style)))]
    key = random_key(rng)
    tempo = int(rng.integers(TEMPO_RANGE[0], TEMPO_RANGE[1] + 1))
    phrase_bars = int(rng.choice([4, 8]))
    phrases = int(rng.integers(-(-MIN_BARS // phrase_bars), MAX_BARS // phrase_bars + 1))
    chords_per_bar = 1 if rng.random() < 0.6 else 2
    bars, form = progression(rng, key, phrases, phrase_bars, chords_per_bar,
                             sevenths=float(rng.uniform(0.0, 0.5)))
    melody = None
    rhythms: tuple[str, ...] = ()
    direction = ""
    if rng.random() < MELODY_PROB:
        melody = MELODY_VOICES[int(rng.integers(len(MELODY_VOICES)))]
        picks = rng.choice(len(MELODY_RHYTHMS), size=2, replace=False)
        rhythms = tuple(MELODY_RHYTHMS[int(k)] for k in picks)
        direction = MELODY_DIRECTIONS[int(rng.integers(len(MELODY_DIRECTIONS)))]
    return SongPlan(index=index, style=style, groove=groove.name, key=key.name, tempo=tempo,
                    bars=len(bars), form=form, chords_per_bar=chords_per_bar,
                    chords=tuple(" ".join(bar) for bar in bars), melody=melody,
                    melody_rhythms=rhythms, melody_direction=direction,
                    seed=int(rng.integers(1, 2**31 - 1)))


def chart(plan: SongPlan, style_file: Path) -> str:
    """The MMA source of a planned song.

    Args:
        plan: the song.
        style_file: the library file that defines ``plan.groove``.
    """
    lines = [f"// synthetic song {plan.index:05d}: {plan.groove}, {plan.key}, form {plan.form}",
             f"RndSeed {plan.seed}", f"Tempo {plan.tempo}", f"Use {style_file}",
             f"Groove {plan.groove}"]
    if plan.melody is not None:
        lines += ["Begin Aria-Melody", f" Voice {plan.melody}", " Octave 5", " Range 1.5",
                  " ScaleType Chord", f" Direction {plan.melody_direction}",
                  " Sequence " + " ".join(f"{{{r}}}" for r in plan.melody_rhythms),
                  " SeqRnd On", " Articulate 90", "End"]
    for bar, chords in enumerate(plan.chords, start=1):
        names = chords.split()
        # two chords in a 4/4 bar: on beats 1 and 3 ("C / G7 /")
        lines.append(f"{bar} " + (names[0] if len(names) == 1 else f"{names[0]} / {names[1]} /"))
    return "\n".join(lines) + "\n"


def check_4_4(midi: bytes) -> None:
    """Raise :class:`data.mma.MmaFailed` (reason ``"not_4_4"``) unless the file passes the
    build's 4/4 filter (:meth:`data.midi.Timing.is_4_4`)."""
    timing = notes_from_score(symusic.Score.from_midi(midi)).timing()
    if not timing.is_4_4():
        found = describe_time_signatures(timing.time_signatures)
        raise MmaFailed("not_4_4", f"needs exactly one 4/4 time signature, found {found}")


def _render_song(exe: str, plan: SongPlan, style_file: Path) -> bytes:
    midi = render(exe, chart(plan, style_file))
    check_4_4(midi)
    return midi


# ----------------------------------------------------------------------------- run
def library_digest(folder: Path) -> str:
    """SHA-256 over the names and bytes of a library's style files."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.mma")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _read_manifest(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise SynthError(f"{path}: not a readable manifest; use a new --out-dir or delete "
                         f"it") from None


@dataclass(frozen=True)
class SynthSettings:
    """The checked settings of one run (what :func:`synthesize` was given)."""

    out_dir: Path
    songs: int
    seed: int
    workers: int

    @classmethod
    def checked(cls, out_dir: str | Path, songs: int, seed: int,
                workers: int | None) -> SynthSettings:
        """Check every argument (the config's validator checks the same bounds for the
        config keys ``seed`` and ``preprocess_workers``; a direct caller of
        :func:`synthesize` gets them checked here).

        Raises:
            SynthError: the first problem, in one line.
        """
        if songs < 1:
            raise SynthError(f"--songs must be >= 1, got {songs}")
        if not 0 <= seed <= MAX_SEED:
            raise SynthError(f"--seed must be in [0, 2**32 - 1], got {seed}")
        n_workers = workers if workers is not None else (os.cpu_count() or 1)
        if n_workers < 1:
            raise SynthError(f"--workers must be >= 1, got {workers}")
        return cls(Path(out_dir), songs, seed, n_workers)


def synthesize(out_dir: str | Path, songs: int, *, seed: int = 0, workers: int | None = None,
               progress: bool = True) -> dict[str, Any]:
    """Generate (or finish generating) a synthetic corpus.

    Args:
        out_dir: output folder (created); re-running into it resumes.
        songs: number of songs (indices ``0 .. songs - 1``).
        seed: corpus seed (0 .. 2**32 - 1).
        workers: MMA processes at once (None = all cores).
        progress: show a progress bar with songs/s on stderr.

    Returns:
        The manifest (also written to ``out_dir/synth_manifest.json``).

    Raises:
        MmaMissing: MMA or its groove library is not installed.
        SynthError: bad arguments, or an ``out_dir`` made with other settings.
    """
    started = time.perf_counter()
    settings = SynthSettings.checked(out_dir, songs, seed, workers)
    exe = find_mma()
    library = library_dir(exe)
    grooves = song_grooves(read_grooves(library))
    if not grooves:
        raise MmaMissing(f"{library}: no 4/4 song grooves found in MMA's library")
    fingerprint = {"generator_version": GENERATOR_VERSION, "seed": seed,
                   "mma_version": mma_version(exe), "library": str(library),
                   "library_sha256": library_digest(library)}
    previous = _check_resumable(settings.out_dir, fingerprint)
    plans = [plan_song(seed, i, grooves) for i in range(songs)]
    status = _known_failures(previous, songs)
    todo = [p for p in plans
            if p.index not in status and not (settings.out_dir / p.path).is_file()]
    if previous is not None and previous.get("finished") and not todo \
            and previous["settings"].get("songs") == songs:
        return previous  # a finished folder: nothing to do

    _start_run(settings, fingerprint)
    status.update(_render_songs(exe, todo, {g.style: g.path for g in grooves}, settings,
                                progress))
    manifest = _manifest(plans, status, fingerprint, settings, grooves, len(todo), started)
    atomic_write_json(settings.out_dir / MANIFEST, manifest)
    return manifest


def _check_resumable(out_dir: Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest of an earlier run into ``out_dir`` (None: there was none).

    Raises:
        SynthError: it was made with another seed, generator, MMA version or library.
    """
    previous = _read_manifest(out_dir / MANIFEST)
    if previous is not None:
        mismatch = [k for k in fingerprint
                    if k != "library" and previous.get("settings", {}).get(k) != fingerprint[k]]
        if mismatch:
            raise SynthError(f"{out_dir}: made with another {', '.join(mismatch)}; "
                             f"use a new --out-dir or delete this one")
    return previous


def _known_failures(previous: dict[str, Any] | None, songs: int) -> dict[int, dict[str, str]]:
    """``{index: {"status", "detail"}}`` of the songs MMA failed on in a finished run: they
    would fail again (same chart, same seed), so they are not retried."""
    if previous is None or not previous.get("finished"):
        return {}
    return {s["index"]: {"status": s["status"], "detail": s["detail"]}
            for s in previous["songs"] if s["status"] != "ok" and s["index"] < songs}


def _start_run(settings: SynthSettings, fingerprint: dict[str, Any]) -> None:
    """Create the folder, clear what a killed run left, and mark the run unfinished."""
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    for style_dir in (d for d in settings.out_dir.iterdir() if d.is_dir()):
        remove_temporaries(style_dir)  # left beside its MIDI files by a killed run
    atomic_write_json(settings.out_dir / MANIFEST,
                      {"finished": False, "settings": {**fingerprint, "songs": settings.songs}})


def _render_songs(exe: str, todo: list[SongPlan], style_files: dict[str, Path],
                  settings: SynthSettings, progress: bool) -> dict[int, dict[str, str]]:
    """Render the songs of ``todo`` in worker threads, each written atomically as it
    finishes (whatever finished is kept on Ctrl-C or an error).

    Returns:
        ``{index: {"status", "detail"}}`` of the songs MMA failed on.
    """
    failed: dict[int, dict[str, str]] = {}
    bar = tqdm(total=settings.songs, initial=settings.songs - len(todo), unit="song",
               desc="synthesize", disable=not progress, dynamic_ncols=True)
    pool = ThreadPoolExecutor(max_workers=settings.workers)
    try:
        futures = {pool.submit(_render_song, exe, p, style_files[p.style]): p for p in todo}
        for future in as_completed(futures):
            plan = futures[future]
            try:
                midi = future.result()
            except MmaFailed as exc:
                failed[plan.index] = {"status": exc.reason, "detail": str(exc)}
            else:
                target = settings.out_dir / plan.path
                target.parent.mkdir(exist_ok=True)
                atomic_write(target, lambda tmp, data=midi: tmp.write_bytes(data))
            bar.update(1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    return failed


def _manifest(plans: list[SongPlan], status: dict[int, dict[str, str]],
              fingerprint: dict[str, Any], settings: SynthSettings, grooves: list[Groove],
              rendered: int, started: float) -> dict[str, Any]:
    """The finished run's manifest: settings, counts, failures by reason, every song.

    Args:
        plans: every song's plan.
        status: ``{index: {"status", "detail"}}`` of the songs MMA failed on.
        fingerprint: what the songs depend on (:func:`_check_resumable`).
        settings: the run's settings.
        grooves: the grooves songs were drawn from.
        rendered: songs rendered by this run.
        started: ``time.perf_counter()`` when the run started.
    """
    records = []
    for plan in plans:
        record = {k: v for k, v in asdict(plan).items() if k != "melody_rhythms"}
        record["chords"] = " | ".join(plan.chords)
        record["path"] = plan.path
        record.update(status.get(plan.index, {"status": "ok"}))
        records.append(record)
    failures, examples = reason_summary(
        ((r["status"], f"{r['path']} ({r['groove']}): {r.get('detail')}") for r in records),
        ok="ok")
    ok = [r for r in records if r["status"] == "ok"]
    return {
        "finished": True,
        "settings": {**fingerprint, "songs": settings.songs, "workers": settings.workers},
        "songs_written": len(ok),
        "songs_failed": sum(failures.values()),
        "failures": failures,
        "failure_examples": examples,
        "styles": dict(sorted(Counter(r["style"] for r in ok).items())),
        "grooves_available": len(grooves),
        "grooves_used": len({r["groove"] for r in ok}),
        "melody_songs": sum(r["melody"] is not None for r in ok),
        "songs_this_run": rendered,
        "seconds_this_run": round(time.perf_counter() - started, 3),
        "songs": records,
    }
