"""The learned song pass: a dilated convolution network over a song's pitched notes.

The separator sees 4 bars at a time; an instrument keeps its register, rhythm and role for
the whole song. After the first pass has given every pitched note its instrument
probabilities ``p`` (the separator's stitched window probabilities averaged over the note's
cells), this network reads the song's pitched notes as one sequence -- sorted by start
step, then by pitch row -- and corrects them:

    x_k      = [E_pitch(row_k), E_beat(step_k mod 16), c_k, log p_k]
    h^0      = W x                                     (width channels per note)
    h^(l+1)  = h^l + Conv_l(Drop(GELU(LayerNorm(h^l)))) (kernel 3, dilation 1, 2, 4, ... 32,
                                                         twice: 126 notes each way)
    h^L     += P BiGRU(LayerNorm(h^L))                  (with ``recurrent`` H > 0: a
                                                         bidirectional GRU of H units each
                                                         way over the whole song)
    g        = mean_k h^L_k                             (the song's summary)
    logits_k = V [h^L_k, g] + log p_k                   (4 pitched instruments; without
                                                         ``residual``: V [h^L_k, g])
    q        = sigmoid(U g)                             (presence head, when the spec has
                                                         one: each pitched instrument's
                                                         probability of playing in the song)

With the presence head, an instrument predicted absent (``q`` below the spec's ``gate``,
0.5 unless the training chose a lower one on the validation songs) is not chosen for any
note (:func:`gate_logits`; when every one is predicted absent, the most likely one stays),
so a song's notes cannot be spread over an instrument the song as a whole does not hold.
``gate`` 0 keeps every instrument: the head is then trained and reported, not obeyed.

``c_k`` are per-note numbers read from the mixture (:data:`N_CONTINUOUS` of them, built by
:func:`utils.separation.song_pass.note_features`): the note's duration, how many notes
start with it, whether it is the lowest or the highest of those, its velocity (when the
model uses velocities), the song's register prior at its row
(:mod:`utils.separation.register_prior`) and, when the model reads them (``timing``), its
timing numbers (:data:`N_TIMING`): the sequence alone says which notes are neighbours, not
how far apart in time they start. The
first pass's log probabilities are added to the output, so the network learns what to
change. It plays the part of Arranger's note-sequence model (Dong et al., ISMIR 2021, a
BiLSTM over pitch, beat position and duration), given the separator's probabilities as
well; convolutions instead of a recurrent network because a song of thousands of notes
then trains in parallel on a CPU.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from data.contract import N_PITCH, N_PITCHED, STEPS_PER_BAR
from models.options import (
    DEFAULT_GATE,
    SONG_PASS_BOUNDS,
    SONG_PASS_DEFAULTS,
    dropout_problem,
    gate_problem,
    song_pass_size_problem,
)

N_TIMING = 12
"""Per-note timing numbers of a network that reads them (``timing``): the gaps to the
previous and the next start, the notes sounding and the starts under the note, and the
start step on four slower clocks (:func:`utils.separation.song_pass.timing_numbers`)."""


def n_continuous(pitched: int = N_PITCHED, timing: bool = False) -> int:
    """Per-note numbers besides pitch and beat: log duration, log simultaneous starts,
    lowest, highest, velocity / 127 (0 when unused), log register prior of each of the
    ``pitched`` instruments, then (with ``timing``) the :data:`N_TIMING` timing numbers."""
    return 5 + pitched + (N_TIMING if timing else 0)


N_CONTINUOUS = n_continuous()
"""The per-note numbers of the paper's set (its 4 pitched instruments)."""
MAX_PITCHED = 64  # pitched classes a song pass network is built for at most


UNSTORED_DEFAULTS: dict[str, int | float | bool] = {
    "recurrent": 0, "dropout": 0.0, "residual": True, "presence": False,
    "gate": DEFAULT_GATE, "pitched": N_PITCHED, "timing": False}
"""Settings a checkpoint leaves out at these values (older checkpoints hold none of them)."""


@dataclass(frozen=True)
class SongPassSpec:
    """The song pass network's settings, stored with its weights.

    Attributes:
        width: channels per note.
        levels: dilations ``1, 2, ..., 2**(levels-1)`` in each stack.
        stacks: how many times the dilation ladder repeats.
        recurrent: units each way of a bidirectional GRU read over the whole song after
            the convolutions, its output added to theirs (0: none; a checkpoint without the
            key: 0).
        velocity: whether the network reads the notes' velocities.
        pitched: the pitched instruments it decides between (the instrument set's; the
            paper's 4, the default of a checkpoint that does not say).
        presence: whether the network has the song-level presence head (a checkpoint
            without the key has none: the shipped one).
        gate: the presence probability under which the head rules an instrument out of a
            song (:func:`gate_logits`; 0: never; a checkpoint without the key: 0.5).
        dropout: the fraction of each block's channels dropped in training (0: none; a
            checkpoint without the key: 0).
        residual: whether the first pass's log probabilities are added to the output, so
            the network learns what to change (a checkpoint without the key: true); false:
            they are only one of its inputs.
        timing: whether the network reads the notes' timing numbers (:data:`N_TIMING`:
            how far apart the starts around a note are, what sounds under it, where it
            starts on slower clocks than the bar); a checkpoint without the key: false.
    """

    width: int = SONG_PASS_DEFAULTS["width"]
    levels: int = SONG_PASS_DEFAULTS["levels"]
    stacks: int = SONG_PASS_DEFAULTS["stacks"]
    recurrent: int = SONG_PASS_DEFAULTS["recurrent"]
    velocity: bool = False
    pitched: int = N_PITCHED
    presence: bool = False
    gate: float = DEFAULT_GATE
    dropout: float = 0.0
    residual: bool = True
    timing: bool = False

    def __post_init__(self) -> None:
        for key in SONG_PASS_BOUNDS:
            problem = song_pass_size_problem(key, getattr(self, key))
            if problem:
                raise ValueError(f"song pass '{key}' {problem}")
        if isinstance(self.pitched, bool) or not isinstance(self.pitched, int) \
                or not 1 <= self.pitched <= MAX_PITCHED:
            raise ValueError(f"song pass 'pitched' must be an integer in 1..{MAX_PITCHED}, "
                             f"got {self.pitched!r}")
        for key in ("velocity", "presence", "residual", "timing"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"song pass '{key}' must be true or false, got "
                                 f"{getattr(self, key)!r}")
        problem = gate_problem(self.gate)
        if problem:
            raise ValueError(f"song pass 'gate' {problem}")
        problem = dropout_problem(self.dropout)
        if problem:
            raise ValueError(f"song pass 'dropout' {problem}")

    def to_dict(self) -> dict[str, int | float | bool]:
        """The settings a checkpoint stores: those of :data:`UNSTORED_DEFAULTS` only when
        they differ from it, so a network of none of them is stored as before."""
        return {key: value for key, value in asdict(self).items()
                if key not in UNSTORED_DEFAULTS or value != UNSTORED_DEFAULTS[key]}


class _Block(nn.Module):
    """One residual dilated convolution over the note axis.

    Normalised note by note (over channels), so a song's notes never see the padding of a
    batch: padding stays 0 and a song reads the same alone or padded.
    """

    def __init__(self, width: int, dilation: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.drop = nn.Dropout(dropout)
        self.conv = nn.Conv1d(width, width, kernel_size=3, dilation=dilation, padding=dilation)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        normed = self.norm(h.transpose(1, 2)).transpose(1, 2)
        return h + self.conv(self.drop(F.gelu(normed)) * mask) * mask


class SongPassNet(nn.Module):
    """The network of the module docstring.

    Args:
        spec: its settings.
    """

    def __init__(self, spec: SongPassSpec) -> None:
        super().__init__()
        self.spec = spec
        self.pitch = nn.Embedding(N_PITCH, 16)
        self.beat = nn.Embedding(STEPS_PER_BAR, 8)
        self.inp = nn.Linear(16 + 8 + n_continuous(spec.pitched, spec.timing) + spec.pitched,
                             spec.width)
        self.blocks = nn.ModuleList(_Block(spec.width, 2 ** level, spec.dropout)
                                    for _ in range(spec.stacks) for level in range(spec.levels))
        if spec.recurrent:  # absent without it: old weights load as saved
            self.rnn_norm = nn.LayerNorm(spec.width)
            self.rnn = nn.GRU(spec.width, spec.recurrent, batch_first=True, bidirectional=True)
            self.rnn_out = nn.Linear(2 * spec.recurrent, spec.width)
        self.out = nn.Linear(2 * spec.width, spec.pitched)
        if spec.presence:  # absent from a network without the head: old weights load as saved
            self.presence_head = nn.Linear(spec.width, spec.pitched)

    def forward(self, rows: torch.Tensor, beat: torch.Tensor, numbers: torch.Tensor,
                log_probs: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of the pitched instruments of every note (not gated): float32
        ``[B, K, 4]``; the arguments are those of :meth:`song_outputs`."""
        return self.song_outputs(rows, beat, numbers, log_probs, lengths)[0]

    def song_outputs(self, rows: torch.Tensor, beat: torch.Tensor, numbers: torch.Tensor,
                     log_probs: torch.Tensor, lengths: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits of the pitched instruments of every note, and of their presence in the song.

        Args:
            rows: int64 ``[B, K]`` pitch rows 0..71.
            beat: int64 ``[B, K]`` start step within its bar, 0..15.
            numbers: float32 ``[B, K, n_continuous(pitched, timing)]``.
            log_probs: float32 ``[B, K, 4]`` the first pass's log probabilities.
            lengths: int64 ``[B]`` notes of each song (the rest is padding, which no note
                reads); None = all ``K``.

        Returns:
            ``(notes, presence)``: float32 ``[B, K, 4]`` (not gated) and float32 ``[B, 4]``
            logits of each pitched instrument playing in the song (None without the head).
        """
        b, k = rows.shape
        if lengths is None:
            mask = torch.ones(b, 1, k, device=rows.device)
        else:
            mask = (torch.arange(k, device=rows.device)[None] < lengths.to(rows.device)[:, None])
            mask = mask[:, None].float()  # (B, 1, K)
        x = torch.cat([self.pitch(rows), self.beat(beat), numbers, log_probs], dim=-1)
        h = self.inp(x).transpose(1, 2) * mask  # (B, width, K)
        for block in self.blocks:
            h = block(h, mask)
        if self.spec.recurrent:
            h = h + self._recurrent(h, mask, lengths)
        song = (h.sum(dim=2, keepdim=True) / mask.sum(dim=2, keepdim=True).clamp(min=1.0))
        presence = self.presence_head(song[..., 0]) if self.spec.presence else None  # (B, 4)
        h = torch.cat([h, song.expand_as(h)], dim=1).transpose(1, 2)  # (B, K, 2 * width)
        logits = self.out(h)
        return (logits + log_probs if self.spec.residual else logits), presence

    def _recurrent(self, h: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor | None
                   ) -> torch.Tensor:
        """The GRU's change to ``h`` (B, width, K): each song read over its own notes only,
        so padding changes nothing."""
        x = self.rnn_norm(h.transpose(1, 2))  # (B, K, width)
        if lengths is None:
            out, _ = self.rnn(x)
        else:
            packed = nn.utils.rnn.pack_padded_sequence(
                x, lengths.cpu().clamp(min=1), batch_first=True, enforce_sorted=False)
            out, _ = nn.utils.rnn.pad_packed_sequence(self.rnn(packed)[0], batch_first=True,
                                                      total_length=x.shape[1])
        return self.rnn_out(out).transpose(1, 2) * mask


def gate_logits(logits: torch.Tensor, presence: torch.Tensor | None,
                gate: float = DEFAULT_GATE) -> torch.Tensor:
    """Note logits with every instrument the presence head predicts absent ruled out.

    Args:
        logits: float ``[B, K, 4]`` note logits.
        presence: float ``[B, 4]`` presence logits, or None (no head: ``logits``
            unchanged).
        gate: an instrument whose presence probability is below it is absent (0.5:
            presence logit < 0; 0: none is, ``logits`` unchanged).

    Returns:
        float ``[B, K, 4]``: ``-inf`` at the absent instruments of each song; when all four
        are predicted absent, the most likely one stays.
    """
    if presence is None or gate <= 0:
        return logits
    present = presence >= math.log(gate / (1.0 - gate))  # (B, 4); 0.5: logit >= 0
    top = presence.argmax(dim=-1, keepdim=True)
    present = present | (~present.any(dim=-1, keepdim=True)
                         & (torch.arange(presence.shape[-1], device=presence.device) == top))
    return logits.masked_fill(~present[:, None, :], float("-inf"))
