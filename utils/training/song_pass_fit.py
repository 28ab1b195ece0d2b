"""Fitting the learned song pass: batches of songs, validation, the training loop.

:mod:`utils.song_pass_training` gathers the songs' first passes and calls
:func:`train_network`, which trains :class:`models.song_pass.SongPassNet` on crops of
``crop`` notes (``song_pass_crop``, :data:`CROP_NOTES` by default) of ``BATCH_NOTES //
crop`` train songs per step (cross-entropy over the
pitched notes, plus, with the presence head, binary cross-entropy of each pitched
instrument's presence in the crop; AdamW, one-cycle learning rate). The songs of a step
are drawn from the corpora by weight (:func:`draw_songs`). Every ``EVAL_EVERY`` steps the
validation songs of every corpus are decided whole (gated by the presence head when the
network has one) and the step of the best mean over the corpora of the pitched note
accuracy is kept -- the validation panel's rule, each corpus counting once.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from data.contract import N_PITCHED
from models.options import DEFAULT_GATE
from models.song_pass import SongPassNet, SongPassSpec, gate_logits
from utils.core.config import BATCH_NOTES
from utils.separation.song_pass import VELOCITY, SongNoteFeatures

CROP_NOTES = 512  # the default crop (config key song_pass_crop): 8 songs a step
EVAL_EVERY = 250
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 0.01
VELOCITY_SCALE = (0.6, 1.4)  # per instrument and song, in training
IGNORE = -100  # target of padding


class SongExample(Protocol):
    """A training song: its first pass's network inputs and targets."""

    def features(self, use_velocity: bool, timing: bool = False
                 ) -> tuple[SongNoteFeatures, np.ndarray]:
        """The network's inputs and int64 targets 0..3 (:data:`IGNORE`: not scored);
        ``timing``: with the timing numbers."""
        ...


@dataclass
class Sequences:
    """Songs ready for the network: features and targets, one entry per song."""

    feats: list[SongNoteFeatures]
    targets: list[np.ndarray]

    @classmethod
    def of(cls, songs: Iterable[SongExample], use_velocity: bool, timing: bool = False
           ) -> Sequences:
        pairs = [s.features(use_velocity, timing) for s in songs]
        keep = [(f, t) for f, t in pairs if len(f)]
        return cls([f for f, _ in keep], [t for _, t in keep])

    def __len__(self) -> int:
        return len(self.feats)

    def batch(self, pick: Sequence[int], crop: int | None = None,
              rng: np.random.Generator | None = None,
              velocity_scale: tuple[float, float] | None = None) -> tuple[torch.Tensor, ...]:
        """``(rows, beat, numbers, log_probs, lengths, targets)`` of the picked songs, padded.

        Each song is cut to a random ``crop`` notes when longer; with ``velocity_scale``
        ``(lo, hi)`` the velocities of each instrument of each song are multiplied by one
        factor drawn from ``U(lo, hi)`` (clipped to 1..127), so the network cannot learn one
        corpus's mixing habits. ``rng`` draws both.
        """
        parts = []
        for i in pick:
            f, t = self.feats[i], self.targets[i]
            lo, hi = 0, len(t)
            if crop is not None and hi > crop:
                assert rng is not None
                lo = int(rng.integers(0, hi - crop + 1))
                hi = lo + crop
            numbers = f.numbers[lo:hi]
            if velocity_scale is not None:
                assert rng is not None
                n_pitched = f.log_probs.shape[1]  # the instrument set's pitched classes
                factor = rng.uniform(*velocity_scale, size=n_pitched + 1)  # last: ignored
                scale = factor[np.where(t[lo:hi] == IGNORE, n_pitched, t[lo:hi])]
                numbers = numbers.copy()
                velocity = numbers[:, VELOCITY] * 127.0 * scale
                numbers[:, VELOCITY] = np.clip(np.rint(velocity), 1, 127) / 127.0
            parts.append((f.rows[lo:hi], f.beat[lo:hi], numbers, f.log_probs[lo:hi],
                          t[lo:hi]))
        width = max(len(p[0]) for p in parts)

        def pad(j: int, fill: float | int) -> torch.Tensor:
            first = parts[0][j]
            out = np.full((len(parts), width, *first.shape[1:]), fill, dtype=first.dtype)
            for b, p in enumerate(parts):
                out[b, :len(p[j])] = p[j]
            return torch.from_numpy(out)

        lengths = torch.tensor([len(p[0]) for p in parts], dtype=torch.int64)
        return pad(0, 0), pad(1, 0), pad(2, 0.0), pad(3, 0.0), lengths, pad(4, IGNORE)



def presence_of(target: torch.Tensor, n_pitched: int = N_PITCHED) -> torch.Tensor:
    """float32 ``[B, 4]``: whether each pitched instrument is the target of a note of each
    song (``target`` int64 ``[B, K]``, :data:`IGNORE` where not scored; ``n_pitched``: the
    instrument set's pitched classes, the paper's 4)."""
    return (target[..., None] == torch.arange(n_pitched)).any(dim=1).float()


def draw_songs(rng: np.random.Generator, sizes: Sequence[int], weights: Sequence[float],
               n: int) -> np.ndarray:
    """int64 ``[n]`` indices into the corpora's songs laid end to end: each song's corpus
    drawn with probability ``weights / sum(weights)``, then a song of it uniformly.

    With one corpus, ``n`` songs of it uniformly (the draw of a single dataset).
    """
    if len(sizes) == 1:
        return rng.integers(0, sizes[0], n)
    p = np.asarray(weights, dtype=np.float64)
    corpus = rng.choice(len(sizes), size=n, p=p / p.sum())
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return starts[corpus] + rng.integers(0, np.asarray(sizes)[corpus])


@dataclass
class SongScores:
    """What a network scored on one corpus's validation songs, decided whole.

    Attributes:
        pitched_note_accuracy: pitched notes right / pitched notes.
        presence_accuracy: song x pitched-instrument pairs whose presence the head
            predicted right / all pairs (None: no head).
    """

    pitched_note_accuracy: float
    presence_accuracy: float | None = None

    def to_dict(self) -> dict[str, float]:
        out = {"pitched_note_accuracy": round(self.pitched_note_accuracy, 4)}
        if self.presence_accuracy is not None:
            out["presence_accuracy"] = round(self.presence_accuracy, 4)
        return out


@torch.inference_mode()
def gate_scores(net: SongPassNet | None, seqs: Sequences, gates: Sequence[float]
                ) -> list[SongScores]:
    """Scores over whole songs under each presence gate of ``gates``
    (:func:`models.song_pass.gate_logits`), the network run once a song (``net`` None: the
    first pass alone, the same for every gate)."""
    right, total = np.zeros(len(gates), np.int64), 0
    present_right = pairs = 0
    for i in range(len(seqs)):
        f, t = seqs.feats[i], seqs.targets[i]
        scored = t != IGNORE
        if net is None:
            preds = [f.log_probs.argmax(axis=1)] * len(gates)
        else:
            rows, beat, numbers, log_probs, _, target = seqs.batch([i])
            logits, presence = net.song_outputs(rows, beat, numbers, log_probs)
            preds = [gate_logits(logits, presence, g)[0].argmax(dim=1).numpy() for g in gates]
            if presence is not None:  # the head's own answer: probability >= 0.5
                present_right += int(((presence[0] >= 0).float()
                                      == presence_of(target, presence.shape[-1])[0]).sum())
                pairs += presence.shape[-1]
        right += [int((pred[scored] == t[scored]).sum()) for pred in preds]
        total += int(scored.sum())
    return [SongScores(int(r) / max(total, 1), present_right / pairs if pairs else None)
            for r in right]


def own_gate(net: SongPassNet | None) -> float:
    """The gate ``net`` decides with (``net.spec.gate``; the default for the first pass)."""
    return net.spec.gate if net is not None else DEFAULT_GATE


def song_scores(net: SongPassNet | None, seqs: Sequences, gate: float | None = None
                ) -> SongScores:
    """Scores over whole songs (``net`` None: the first pass alone), gated by the presence
    head when ``net`` has one, at ``gate`` (None: the network's own, :func:`own_gate`)."""
    return gate_scores(net, seqs, [own_gate(net) if gate is None else gate])[0]


def pitched_accuracy(net: SongPassNet | None, seqs: Sequences) -> float:
    """Pitched note accuracy over whole songs (``net`` None: the first pass alone)."""
    return song_scores(net, seqs).pitched_note_accuracy


def validation_scores(net: SongPassNet | None, val: Mapping[str, Sequences],
                      gates: Sequence[float] | None = None
                      ) -> list[tuple[float, dict[str, dict[str, float]]]]:
    """For each presence gate of ``gates`` (None: the network's own): the mean over the
    corpora of the pitched note accuracy, and each corpus's scores."""
    gates = [own_gate(net)] if gates is None else gates
    per_corpus = {name: gate_scores(net, seqs, gates) for name, seqs in val.items()}
    out = []
    for k in range(len(gates)):
        scores = {name: s[k] for name, s in per_corpus.items()}
        mean = float(np.mean([s.pitched_note_accuracy for s in scores.values()]))
        out.append((mean, {name: s.to_dict() for name, s in scores.items()}))
    return out


def _step_loss(net: SongPassNet, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Cross-entropy over the batch's pitched notes, plus the presence head's binary
    cross-entropy against each song's (crop's) true presence when the network has one."""
    *inputs, lengths, target = batch
    logits, presence = net.song_outputs(*inputs, lengths)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                           ignore_index=IGNORE)
    if presence is not None:
        loss = loss + F.binary_cross_entropy_with_logits(
            presence, presence_of(target, presence.shape[-1]))
    return loss


@dataclass(frozen=True)
class FitOptions:
    """How a song pass is trained besides its steps and seed (:func:`train_network`).

    Attributes:
        ema: decay of the moving average of the weights validated and kept (0: the
            trained weights themselves).
        gates: presence gates scored at every validation (with the presence head); the
            best (step, gate) pair is kept, a tie going to the earlier step and then to the
            gate listed first, and the kept network's ``spec.gate`` is that gate. Gates do
            not change training, only which notes the head rules out.
        crop: notes of each training crop; a step reads ``BATCH_NOTES // crop`` songs
            (at least one), so its notes stay about the same whatever the crop.
    """

    ema: float = 0.0
    gates: Sequence[float] = (DEFAULT_GATE,)
    crop: int = CROP_NOTES


def train_network(train: Mapping[str, tuple[Sequences, float]], val: Mapping[str, Sequences],
                  spec: SongPassSpec, steps: int, seed: int, progress: bool = True,
                  options: FitOptions = FitOptions()) -> tuple[SongPassNet, dict[str, Any]]:
    """Train a song pass network; returns the best step's network and its record.

    Args:
        train: ``{corpus: (its train songs, its weight)}``.
        val: ``{corpus: its validation songs}``; the step of the best mean pitched note
            accuracy over them is kept.
        spec, steps, seed, progress: the network's settings, the steps, the seed, bars.
        options: the moving average, the presence gates and the crop (:class:`FitOptions`).
    """
    ema, gates, crop = options.ema, options.gates, options.crop
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    pool = Sequences([f for s, _ in train.values() for f in s.feats],
                     [t for s, _ in train.values() for t in s.targets])
    sizes, weights = [len(s) for s, _ in train.values()], [w for _, w in train.values()]
    net = SongPassNet(spec)
    opt = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LEARNING_RATE, total_steps=steps)
    averaged = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(ema)) if ema else None
    judged = net if averaged is None else averaged.module  # the weights validated and kept
    gates = list(gates) if spec.presence else [spec.gate]  # no head: nothing to gate
    first_pass, first_corpora = validation_scores(None, val)[0]
    best: dict[str, Any] = {"step": 0, "score": first_pass, "corpora": first_corpora,
                            "state": None, "gate": gates[0]}
    history = []
    n_songs = max(1, BATCH_NOTES // crop)
    bar = tqdm(range(1, steps + 1), unit="step", desc="song pass", disable=not progress,
               dynamic_ncols=True)
    for step in bar:
        net.train()
        loss = _step_loss(net, pool.batch(draw_songs(rng, sizes, weights, n_songs), crop, rng,
                                          VELOCITY_SCALE if spec.velocity else None))
        if not torch.isfinite(loss):
            raise RuntimeError(f"non-finite song pass loss at step {step}")
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        schedule.step()
        if averaged is not None:
            averaged.update_parameters(net)
        if step % EVAL_EVERY == 0 or step == steps:
            judged.eval()
            by_gate = validation_scores(judged, val, gates)
            k = max(range(len(gates)), key=lambda j: (by_gate[j][0], -j))  # ties: listed first
            acc, corpora = by_gate[k]
            entry = {"step": step, "loss": round(loss.item(), 4),
                     "val_pitched_note_accuracy": round(acc, 4), "val_corpora": corpora}
            if len(gates) > 1:
                entry.update(gate=gates[k], val_by_gate={
                    str(g): round(m, 4) for g, (m, _) in zip(gates, by_gate)})
            history.append(entry)
            at_gate = f" at gate {gates[k]:g}" if len(gates) > 1 else ""
            bar.write(f"step {step}: loss {loss.item():.4f}, validation pitched note "
                      f"accuracy {acc:.4f}{at_gate} (first pass {first_pass:.4f}; mean over "
                      f"{len(val)} corpora){presence_words(corpora)}")
            if acc > best["score"]:
                best = {"step": step, "score": acc, "corpora": corpora, "gate": gates[k],
                        "state": copy.deepcopy(judged.state_dict())}
    if best["state"] is not None:
        net.load_state_dict(best["state"])
    net.spec = replace(net.spec, gate=float(best["gate"]))
    net.eval()
    record = {"steps": steps, "best_step": best["step"], "ema": ema, "crop": crop,
              "gate": net.spec.gate, "gates": gates,
              "val_pitched_note_accuracy": round(best["score"], 4),
              "first_pass_val_pitched_note_accuracy": round(first_pass, 4),
              "val_corpora": best["corpora"], "first_pass_val_corpora": first_corpora,
              "history": history}
    return net, record


def presence_words(corpora: Mapping[str, Mapping[str, float]]) -> str:
    """``"; presence accuracy a 0.91, b 0.87"`` from per-corpus scores ("" without a head)."""
    parts = [f"{name} {s['presence_accuracy']:.3f}" for name, s in corpora.items()
             if "presence_accuracy" in s]
    return f"; presence accuracy {', '.join(parts)}" if parts else ""
