"""The direct separator, the conditioning options of the network and K-sample averaging."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.decoder import Decoder
from models.diffusion import GuidedDiffusion
from models.direct import DirectSeparation
from models.process import Sampling
from models.transunet import InputPlanes, TransUNet
from tests.test_train import QUIET, SyntheticPhrases, synthetic_phrases, tiny_cfg
from utils.core.checkpoints import (
    SeparatorSpec,
    build_separator,
    checkpoint_config,
    export_checkpoint,
    load_separator,
)
from utils.core.config import ConfigError
from utils.training.runs import train_decoder, train_separator


class RowLogits(torch.nn.Module):
    """Analytic network: instrument k's logit is +5 on pitch rows of zone k, else -5."""

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        pitches = x.shape[-1]
        zone = torch.arange(pitches) * 5 // pitches  # (P,)
        onehot = torch.nn.functional.one_hot(zone, 5).T.float()  # (5, P)
        return (10 * onehot - 5)[None, :, None, :].expand(x.shape[0], 5, x.shape[-2], pitches)


def test_direct_probs_follow_the_logits_and_vanish_outside_the_mixture() -> None:
    phrases = synthetic_phrases(2, steps=16, pitches=40)
    for loss in ("bce", "softmax"):
        probs = DirectSeparation(loss).probs(RowLogits(), phrases["mixture"])
        assert probs.shape == phrases["music"].shape
        assert torch.all(probs[phrases["mixture"].expand_as(probs) == 0] == 0)
        picked = probs.argmax(dim=1, keepdim=True)
        truth = phrases["music"].argmax(dim=1, keepdim=True)
        on = phrases["mixture"].bool()
        assert torch.equal(picked[on], truth[on])
    soft = DirectSeparation("softmax").probs(RowLogits(), phrases["mixture"])
    on = phrases["mixture"][:, 0].bool()
    assert torch.allclose(soft.sum(dim=1)[on], torch.ones(int(on.sum())))


def test_direct_loss_counts_only_sounding_cells() -> None:
    phrases = synthetic_phrases(2, steps=16, pitches=40)
    for loss in ("bce", "softmax"):
        process = DirectSeparation(loss)
        good = process.training_loss(RowLogits(), phrases["music"], phrases["mixture"])
        wrong = process.training_loss(RowLogits(), phrases["music"].roll(1, dims=1),
                                      phrases["mixture"])
        assert good < 0.05 < wrong
    with pytest.raises(ValueError, match="direct_loss"):
        DirectSeparation("hinge")


def test_direct_model_learns_pitch_zones_quickly() -> None:
    torch.manual_seed(0)
    phrases = synthetic_phrases(4, steps=32, pitches=40)
    net = TransUNet(1, 5, latent_dim=32, d_model=64, num_layers=1, time_emb_dim=16,
                    planes=InputPlanes(pitch_channel=True))
    process = DirectSeparation("softmax")
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    for _ in range(40):
        loss = process.training_loss(net, phrases["music"], phrases["mixture"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    probs = process.probs(net.eval(), phrases["mixture"])
    on = phrases["mixture"][:, 0].bool()
    right = probs.argmax(1)[on] == phrases["music"].argmax(1)[on]
    assert right.float().mean() > 0.9


def test_network_conditioning_and_pitch_channel_change_the_input() -> None:
    x = torch.randn(2, 5, 16, 24)
    t = torch.zeros(2, dtype=torch.long)
    plain = TransUNet(5, 5, 32, 64, 1, 16)
    assert plain.stem.in_channels == 5
    cond = TransUNet(5, 5, 32, 64, 1, 16, planes=InputPlanes(cond_ch=1, pitch_channel=True))
    assert cond.stem.in_channels == 7
    assert cond(x, t, cond=torch.ones(2, 1, 16, 24)).shape == (2, 5, 16, 24)
    with pytest.raises(ValueError, match="cond_ch=1"):
        cond(x, t)
    with pytest.raises(ValueError, match="cond_ch=0"):
        plain(x, t, cond=torch.ones(2, 1, 16, 24))
    # the pitch channel tells rows apart: a pitch-invariant input gives row-dependent output
    pitch = TransUNet(1, 5, 32, 64, 1, 16, planes=InputPlanes(pitch_channel=True)).eval()
    out = pitch(torch.ones(1, 1, 16, 24), torch.zeros(1, dtype=torch.long))
    assert not torch.allclose(out[..., 8], out[..., 16])


def test_conditioned_diffusion_hands_the_mixture_to_the_network() -> None:
    seen: list[torch.Tensor | None] = []

    class Spy(torch.nn.Module):
        def forward(self, x: torch.Tensor, t: torch.Tensor,
                    cond: torch.Tensor | None = None) -> torch.Tensor:
            seen.append(cond)
            return torch.zeros_like(x)

    phrases = synthetic_phrases(2, steps=16, pitches=24)
    GuidedDiffusion(20, condition_on_mixture=True).training_loss(
        Spy(), phrases["music"], phrases["mixture"])
    assert seen[-1] is not None and torch.equal(seen[-1], phrases["mixture"])
    GuidedDiffusion(20).training_loss(Spy(), phrases["music"], phrases["mixture"])
    assert seen[-1] is None


def test_k_samples_average_the_decoder_probabilities() -> None:
    torch.manual_seed(0)
    diffusion = GuidedDiffusion(20)
    net = TransUNet(5, 5, 32, 64, 1, 16).eval()
    decoder = Decoder(5, 16).eval()
    mixture = synthetic_phrases(2, steps=16, pitches=24)["mixture"]
    def probs(samples: int, gen: torch.Generator) -> torch.Tensor:
        return diffusion.probs(net, mixture, decoder=decoder,
                               sampling=Sampling(steps=5, num_samples=samples), generator=gen)

    singles = [probs(1, torch.Generator().manual_seed(0))]
    gen = torch.Generator().manual_seed(0)
    first = probs(1, gen)
    second = probs(1, gen)
    both = probs(2, torch.Generator().manual_seed(0))
    assert torch.allclose(singles[0], first)
    assert torch.allclose(both, (first + second) / 2, atol=1e-6)
    with pytest.raises(ValueError, match="num_samples"):
        probs(0, gen)
    with pytest.raises(ValueError, match="needs its decoder"):
        diffusion.probs(net, mixture)


def test_direct_training_run_needs_no_decoder_and_exports(tmp_path: Path) -> None:
    cfg = tiny_cfg(tmp_path, separator="direct", pitch_channel=True, limit_train_batches=2,
                   limit_val_batches=1)
    data = SyntheticPhrases(synthetic_phrases(8), batch_size=4)
    best = train_separator(cfg, datamodule=data, **QUIET)
    assert train_decoder(cfg, datamodule=data, **QUIET) is None
    net, process, stored = load_separator(best, cfg=cfg)
    assert isinstance(process, DirectSeparation) and stored.separator == "direct"
    assert net.in_ch == 1 and net.pitch_channel
    slim = export_checkpoint(best, tmp_path / "shipped" / "separator.ckpt")
    assert slim.stat().st_size < best.stat().st_size  # no optimiser state
    net2, _, _ = load_separator(slim)
    for (name, a), (_, b) in zip(net.state_dict().items(), net2.state_dict().items()):
        assert torch.equal(a, b), name
    # a config that asks for the other formulation is refused, naming the key
    with pytest.raises(ConfigError, match="'separator'"):
        load_separator(best, cfg=tiny_cfg(tmp_path))


def test_legacy_checkpoint_configs_mean_the_paper_process() -> None:
    cfg = tiny_cfg(Path("/nonexistent")).to_dict()
    for key in ("separator", "pitch_channel", "condition_on_mixture", "direct_loss"):
        cfg.pop(key)
    stored = checkpoint_config({"state_dict": {}, "hyper_parameters": {"config": cfg}},
                               "legacy.ckpt")
    assert stored.separator == "diffusion" and stored.direct_loss == "bce"
    net, process = build_separator(SeparatorSpec.of(stored))
    assert isinstance(process, GuidedDiffusion) and not process.condition_on_mixture
    assert net.stem.in_channels == 5


def test_separator_moving_average_is_validated_kept_and_exported(tmp_path: Path) -> None:
    cfg = tiny_cfg(tmp_path, separator="direct", pitch_channel=True, limit_train_batches=3,
                   limit_val_batches=1, separator_ema=0.5)
    data = SyntheticPhrases(synthetic_phrases(8), batch_size=4)
    best = train_separator(cfg, datamodule=data, **QUIET)
    state = torch.load(best, map_location="cpu", weights_only=True)
    weights = state["state_dict"]
    trained = {k[4:]: v for k, v in weights.items() if k.startswith("net.")}
    averaged = {k[11:]: v for k, v in weights.items() if k.startswith("ema.module.")}
    assert trained.keys() == averaged.keys()
    assert any(not torch.equal(trained[k], averaged[k]) for k in trained)  # a real average
    # the loaded network is the average, and the export keeps the average alone
    net, _, _ = load_separator(best, cfg=cfg)
    for name, tensor in net.state_dict().items():
        assert torch.equal(tensor, averaged[name]), name
    slim = export_checkpoint(best, tmp_path / "shipped" / "separator.ckpt")
    shipped = torch.load(slim, map_location="cpu", weights_only=True)["state_dict"]
    assert not any(k.startswith("net.") for k in shipped)
    net2, _, _ = load_separator(slim)
    for name, tensor in net2.state_dict().items():
        assert torch.equal(tensor, averaged[name]), name
    # the trained weights are scored beside the average, and the learning rate follows them
    metrics = (Path(cfg.model_dir) / "logs" / "separator").rglob("metrics.csv")
    header = next(iter(metrics)).read_text().splitlines()[0].split(",")
    assert {"val_accuracy", "val_raw_accuracy", "val_loss", "val_raw_loss"} <= set(header)


def test_separator_moving_average_decay_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'separator_ema'"):
        tiny_cfg(tmp_path, separator_ema=1.0)


def test_a_run_without_the_average_resumes_with_one(tmp_path: Path) -> None:
    data = SyntheticPhrases(synthetic_phrases(8), batch_size=4)
    keys = dict(separator="direct", limit_train_batches=2, limit_val_batches=1)
    train_separator(tiny_cfg(tmp_path, max_epochs=1, **keys), datamodule=data, **QUIET)
    cfg = tiny_cfg(tmp_path, max_epochs=2, separator_ema=0.9, **keys)
    best = train_separator(cfg, resume=True, datamodule=data, **QUIET)
    weights = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    assert int(weights["ema.n_averaged"]) >= 1 and any(k.startswith("ema.module.") for k in weights)
