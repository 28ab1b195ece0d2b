"""Looking: piano-roll pictures (docs/method.md section 9).

Pictures: a roll is drawn with time on x (bar lines every ``steps_per_bar`` steps),
MIDI pitch on y, and one colour per instrument (a cell played by several instruments
gets the mean of their colours). Figures are built on matplotlib's Agg canvas, never
through pyplot, so scripts need no display and notebooks show them with ``display(fig)``.
Roll axis orders (the ``order=`` argument, always explicit; a :class:`RollLayout` each):

* ``"model"``: ``[5, T, P]`` instruments in :data:`MUSIC_INSTRUMENTS` order, or
  ``[1, T, P]`` for a mixture;
* ``"phrase"``: ``[T, P, 6]``, the storage order of the data contract (melody included);
* ``"mixture"``: ``[T, P]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pretty_midi
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from data.contract import PITCH_LOW, STEPS_PER_BAR
from data.errors import InputError
from data.fileio import atomic_write
from data.instruments import PAPER, InstrumentSet
from data.roll import to_bool_array

COLORS: dict[str, str] = {
    "melody": "tab:red",
    "piano": "tab:blue",
    "guitar": "tab:orange",
    "bass": "tab:green",
    "string": "tab:purple",
    "drum": "tab:brown",
    "organ": "tab:pink",
    "brass": "gold",
    "reed": "tab:cyan",
    "synth_lead": "tab:olive",
    "synth_pad": "navy",
    "mixture": "0.25",
}
"""Colour of each instrument (and of an unlabelled mixture) in every picture."""
SPARE_COLORS: tuple[str, ...] = ("teal", "salmon", "lime", "sienna", "orchid", "slategray",
                                 "darkkhaki", "crimson", "steelblue", "yellowgreen")
"""Colours of a written set's classes without one in :data:`COLORS`, by channel."""


def color_of(name: str, channel: int) -> str:
    """The colour of an instrument: its own (:data:`COLORS`), else a spare by channel."""
    return COLORS.get(name, SPARE_COLORS[channel % len(SPARE_COLORS)])

SAVE_DPI = 100  # resolution of saved pictures
EXCERPT_BARS = 16  # bars in a song's default picture excerpt
STEP_PX = 6.0  # pixels per 16th-note step in a song excerpt


@dataclass(frozen=True)
class RollLayout:
    """One axis order a picture's roll may come in (the ``order=`` argument).

    Attributes:
        name: its name (``"model"``, ``"phrase"``, ``"mixture"``).
        shape: the shape it expects, in words (for the error message).
        channels: bool roll -> ``(bool [C, T, P], the name of each channel)``, or None
            when the roll does not have this layout's shape.
    """

    name: str
    shape: str
    channels: Callable[[np.ndarray], tuple[np.ndarray, tuple[str, ...]] | None]


def set_layouts(instruments: InstrumentSet = PAPER) -> dict[str, RollLayout]:
    """The layouts of an instrument set's rolls, by name: ``"model"`` ``[C, T, P]`` (or
    ``[1, T, P]``), ``"phrase"`` ``[T, P, C + 1]``, ``"mixture"`` ``[T, P]``."""
    music, names = instruments.music, instruments.instruments

    def model(r: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]] | None:
        if r.ndim == 3 and r.shape[0] == len(music):
            return r, music
        return (r, ("mixture",)) if r.ndim == 3 and r.shape[0] == 1 else None

    return {layout.name: layout for layout in (
        RollLayout("model", f"[{len(music)}, T, P] or [1, T, P]", model),
        RollLayout("phrase", f"[T, P, {len(names)}]",
                   lambda r: (np.moveaxis(r, -1, 0), names)
                   if r.ndim == 3 and r.shape[2] == len(names) else None),
        RollLayout("mixture", "[T, P]",
                   lambda r: (r[None], ("mixture",)) if r.ndim == 2 else None),
    )}


ROLL_LAYOUTS: dict[str, RollLayout] = set_layouts(PAPER)
ROLL_ORDERS: tuple[str, ...] = tuple(ROLL_LAYOUTS)


def roll_layout(order: str | RollLayout) -> RollLayout:
    """The layout an ``order=`` names (or the layout itself).

    Raises:
        ValueError: an unknown name, naming the allowed ones.
    """
    if isinstance(order, RollLayout):
        return order
    if order not in ROLL_LAYOUTS:
        raise ValueError(f"order: unknown value {order!r}, allowed: {', '.join(ROLL_ORDERS)}")
    return ROLL_LAYOUTS[order]


def _channels(roll: Any, order: str | RollLayout) -> tuple[np.ndarray, tuple[str, ...]]:
    """A roll in any supported order -> bool ``[C, T, P]`` and the name of each channel."""
    layout = roll_layout(order)
    found = layout.channels(to_bool_array(roll, "roll"))
    if found is None:
        shape = list(to_bool_array(roll, "roll").shape)
        raise ValueError(f"roll: order={layout.name!r} expects shape {layout.shape}, "
                         f"got {shape}")
    return found


def roll_image(roll: Any, *, order: str | RollLayout) -> tuple[np.ndarray, tuple[str, ...]]:
    """Colour a roll: white background, each instrument its colour, shared cells blended.

    Args:
        roll: binary roll in the axis ``order`` given (see the module docstring).
        order: ``"model"``, ``"phrase"`` or ``"mixture"``.

    Returns:
        ``(rgb, names)``: float ``[P, T, 3]`` image (row 0 = lowest pitch) and the
        instrument name of each channel.
    """
    chans, names = _channels(roll, order)  # (C, T, P)
    colors = np.array([to_rgb(color_of(n, k)) for k, n in enumerate(names)])  # (C, 3)
    count = chans.sum(axis=0)  # (T, P)
    mixed = np.einsum("ctp,ck->ptk", chans.astype(np.float64), colors)  # (P, T, 3)
    rgb = np.where(count.T[..., None] > 0, mixed / np.maximum(count.T, 1)[..., None], 1.0)
    return rgb, names


def plot_roll(
    ax: Any,
    roll: Any,
    *,
    order: str | RollLayout,
    title: str | None = None,
    steps_per_bar: int = STEPS_PER_BAR,
    pitch_low: int = PITCH_LOW,
    legend: bool = True,
    first_bar: int = 1,
) -> None:
    """Draw one roll on a matplotlib Axes.

    Args:
        ax: target ``matplotlib.axes.Axes``.
        roll: binary roll (numpy or torch) in the axis ``order`` given.
        order: ``"model"`` (``[5|1, T, P]``), ``"phrase"`` (``[T, P, 6]``) or
            ``"mixture"`` (``[T, P]``); explicit, since shapes alone can be ambiguous.
        title: panel title.
        steps_per_bar: grid steps between bar lines.
        pitch_low: MIDI pitch of row 0. (In the drum channel the top rows are drum
            components, not pitches; they are drawn where they are stored.)
        legend: draw a legend of the roll's instruments beside the axes.
        first_bar: number printed under the roll's first bar (for an excerpt of a song).
    """
    rgb, names = roll_image(roll, order=order)
    n_p, n_t, _ = rgb.shape
    ax.imshow(rgb, origin="lower", aspect="auto", interpolation="nearest",
              extent=(0, n_t, pitch_low - 0.5, pitch_low + n_p - 0.5))
    n_bars = -(-n_t // steps_per_bar)
    for bar in range(n_bars + 1):
        ax.axvline(min(bar * steps_per_bar, n_t), color="0.7", linewidth=0.6)
    every = max(1, n_bars // 16)
    ax.set_xticks([b * steps_per_bar for b in range(0, n_bars, every)])
    ax.set_xticklabels([str(b + first_bar) for b in range(0, n_bars, every)])
    ax.set_xlabel("bar")
    c_notes = [p for p in range(pitch_low, pitch_low + n_p) if p % 12 == 0]
    ax.set_yticks(c_notes)
    ax.set_yticklabels([pretty_midi.note_number_to_name(p) for p in c_notes])
    ax.set_ylabel("pitch")
    if title:
        ax.set_title(title, loc="left", fontsize="medium")
    if legend:
        handles = [Patch(facecolor=color_of(n, k), label=n) for k, n in enumerate(names)]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0),
                  fontsize="small", frameon=False)


def plot_comparison(
    panels: Sequence[tuple[str, Any] | tuple[str, Any, str]],
    path: str | Path | None = None,
    *,
    order: str | RollLayout = "model",
    steps_per_bar: int = STEPS_PER_BAR,
    first_bar: int = 1,
    step_px: float | None = None,
) -> Figure:
    """Stack rolls top to bottom (e.g. prediction, ground truth, mixture) on one time axis.

    Args:
        panels: ``(title, roll)`` pairs, drawn in ``order``, or ``(title, roll, order)``
            triples that name their own order.
        path: when given, the figure is saved there as PNG (atomically).
        order: axis order of the pairs (see :func:`plot_roll`).
        steps_per_bar: grid steps between bar lines.
        first_bar: number of the first bar drawn (1 for a phrase or a song's start).
        step_px: pixels per time step at the saved resolution (100 dpi), so a 16th note
            stays visible in a long excerpt; None fits the width to the length (8-40
            inches).

    Returns:
        The ``matplotlib.figure.Figure`` (Agg canvas).
    """
    if not panels:
        raise ValueError("panels: nothing to plot")
    n_t = max(_channels(p[1], p[2] if len(p) == 3 else order)[0].shape[1] for p in panels)
    if step_px is None:
        width = float(np.clip(n_t / 24, 8, 40))
    else:
        width = n_t * step_px / SAVE_DPI + 2.5  # + room for the axis labels and legend
    fig = Figure(figsize=(width, 2.8 * len(panels)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, panel in zip(axes, panels):
        title, roll = panel[0], panel[1]
        plot_roll(ax, roll, order=panel[2] if len(panel) == 3 else order, title=title,
                  steps_per_bar=steps_per_bar, first_bar=first_bar)
    for ax in axes[:-1]:
        ax.set_xlabel("")  # the shared time axis is labelled once, at the bottom
    if path is not None:
        path = Path(path)
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=SAVE_DPI))
    return fig


def parse_bars(text: str) -> tuple[int, int]:
    """Read a bar range ``"A:B"``: bars A to B, counted from 1, both included.

    Returns:
        ``(A, B)``.

    Raises:
        ValueError: not two whole numbers ``1 <= A <= B`` (the message quotes the text).
    """
    parts = text.split(":")
    try:
        first, last = (int(p) for p in parts) if len(parts) == 2 else (0, -1)
    except ValueError:
        first, last = 0, -1
    if not 1 <= first <= last:
        raise InputError(f"bars {text!r}: expected A:B with whole numbers 1 <= A <= B "
                         "(bars counted from 1, both included)")
    return first, last


def excerpt_steps(mixture: np.ndarray, bars: tuple[int, int] | None = None,
                  n_bars: int = EXCERPT_BARS, steps_per_bar: int = STEPS_PER_BAR
                  ) -> tuple[int, int]:
    """Steps of a song's picture excerpt.

    Args:
        mixture: bool ``[T, P]`` song mixture.
        bars: ``(A, B)`` bars to draw (from 1, both included; B is cut at the song's last
            bar); None = ``n_bars`` bars from the first bar that holds a note.
        n_bars: length of the default excerpt in bars.
        steps_per_bar: grid steps in a bar.

    Returns:
        ``(begin, end)`` steps, ``end`` exclusive, whole bars.

    Raises:
        ValueError: ``bars`` starts after the song's last bar.
    """
    song_bars = max(1, -(-mixture.shape[0] // steps_per_bar))
    if bars is None:
        sounding = np.flatnonzero(np.asarray(mixture).any(axis=1))
        first = int(sounding[0]) // steps_per_bar + 1 if sounding.size else 1
        bars = (first, first + n_bars - 1)
    first, last = bars
    if first > song_bars:
        raise InputError(f"bars {first}:{last}: the song has {song_bars} bars")
    return (first - 1) * steps_per_bar, min(last, song_bars) * steps_per_bar
