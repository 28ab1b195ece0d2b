"""TransUNet, relative attention and decoder: shapes, token count, parameters, round trip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from models.attention import RelativeSelfAttention, skew
from models.decoder import Decoder
from models.transunet import TransUNet, sinusoidal_embedding
from utils.core.checkpoints import load_decoder, load_separator
from utils.core.config import ConfigError, load_config
from utils.training.lightning import SeparatorModule

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("in_ch,out_ch,latent,d_model,layers,emb,shape", [
    (5, 5, 32, 64, 1, 16, (64, 72)),
    (3, 7, 64, 128, 2, 8, (64, 72)),
    (1, 2, 32, 64, 3, 4, (16, 24)),
    (5, 5, 32, 64, 1, 16, (128, 72)),  # longer than the embedding table: distances clip
])
def test_output_shapes_for_odd_configs(in_ch: int, out_ch: int, latent: int, d_model: int,
                                       layers: int, emb: int, shape: tuple[int, int]) -> None:
    net = TransUNet(in_ch, out_ch, latent, d_model, layers, emb, rate=0.1)
    x = torch.randn(2, in_ch, *shape)
    out = net(x, torch.tensor([0, 999]))
    assert out.shape == (2, out_ch, *shape) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_sizes_not_divisible_by_8_are_rejected() -> None:
    net = TransUNet(5, 5, 32, 64, 1, 16)
    with pytest.raises(ValueError, match="divisible by 8"):
        net(torch.randn(1, 5, 60, 72), torch.tensor([1]))


def test_bottleneck_sees_8x9_tokens_and_heads_are_d_model_over_64() -> None:
    net = TransUNet(5, 5, 32, 128, 1, 16)
    seen: list[torch.Size] = []
    net.bottleneck.layers[0].register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape))
    net(torch.randn(2, 5, 64, 72), torch.tensor([3, 4]))
    assert seen == [torch.Size([2, 72, 128])]
    assert net.bottleneck.layers[0].attn1.num_heads == 2


def test_relative_embedding_is_a_trained_saved_parameter() -> None:
    net = TransUNet(5, 5, 32, 64, 1, 16)
    names = dict(net.named_parameters())
    rel = [n for n in names if n.endswith("rel_emb")]
    assert len(rel) == 2 and all(n in net.state_dict() for n in rel)
    loss = net(torch.randn(1, 5, 64, 72), torch.tensor([5])).square().mean()
    loss.backward()
    assert all(names[n].grad is not None and names[n].grad.abs().sum() > 0 for n in rel)


def test_skew_matches_explicit_gather() -> None:
    length = 6
    rel = torch.randn(2, 3, length, 2 * length - 1)
    expect = torch.empty(2, 3, length, length)
    for i in range(length):
        for j in range(length):
            expect[..., i, j] = rel[..., i, j - i + length - 1]
    assert torch.equal(skew(rel), expect)


def test_relative_attention_of_a_constant_sequence_is_constant() -> None:
    torch.manual_seed(0)
    attn = RelativeSelfAttention(64, max_len=8)
    x = torch.randn(1, 1, 64).repeat(1, 8, 1)
    out = attn(x)
    assert out.shape == (1, 8, 64)
    # with a constant sequence the output is a convex combination of identical values
    torch.testing.assert_close(out, out[:, :1].expand_as(out))


def test_time_embedding_is_sinusoidal() -> None:
    emb = sinusoidal_embedding(torch.tensor([0, 7]), 16)
    assert emb.shape == (2, 16)
    assert torch.equal(emb[0, :8], torch.zeros(8)) and torch.equal(emb[0, 8:], torch.ones(8))
    assert torch.allclose(emb[1, 0], torch.tensor(7.0).sin())


def test_decoder_shapes() -> None:
    dec = Decoder(channels=5, dim=16)
    x = torch.randn(3, 5, 64, 72)
    assert dec(x).shape == x.shape
    with pytest.raises(ValueError, match="dim"):
        Decoder(5, 12)


RELOAD = """
import sys, torch
from utils.core.checkpoints import load_separator, load_decoder
net, diffusion, _ = load_separator(sys.argv[1])
x = torch.load(sys.argv[3])
with torch.inference_mode():
    out = net(x["x"], x["t"])
    dec = load_decoder(sys.argv[2])(x["x"])
torch.save({"out": out, "dec": dec, "betas": diffusion.betas}, sys.argv[4])
"""


def test_checkpoint_reloaded_in_a_fresh_process_is_bit_identical(tmp_path: Path) -> None:
    cfg = load_config(ROOT / "configs" / "tiny.json")
    torch.manual_seed(3)
    module = SeparatorModule(cfg)
    sep_path, dec_path, inp, res = (tmp_path / n for n in ("s.ckpt", "d.ckpt", "x.pt", "r.pt"))
    torch.save({"state_dict": module.state_dict(),
                "hyper_parameters": {"config": cfg.to_dict()}}, sep_path)
    decoder = Decoder(cfg.in_ch, cfg.decoder_dim)
    torch.save({"state_dict": {f"decoder.{k}": v for k, v in decoder.state_dict().items()},
                "hyper_parameters": {"config": cfg.to_dict()}}, dec_path)
    x = {"x": torch.randn(2, 5, 64, 72), "t": torch.tensor([0, 50])}
    torch.save(x, inp)
    subprocess.run([sys.executable, "-c", RELOAD, str(sep_path), str(dec_path), str(inp),
                    str(res)], check=True, cwd=ROOT)
    got = torch.load(res)
    with torch.inference_mode():
        assert torch.equal(got["out"], module.net.eval()(x["x"], x["t"]))
        assert torch.equal(got["dec"], decoder.eval()(x["x"]))
    assert torch.equal(got["betas"], module.process.betas)


def test_checkpoint_that_does_not_match_the_config_is_named(tmp_path: Path) -> None:
    cfg = load_config(ROOT / "configs" / "tiny.json")
    path = tmp_path / "s.ckpt"
    module = SeparatorModule(cfg)
    torch.save({"state_dict": module.state_dict(),
                "hyper_parameters": {"config": cfg.to_dict()}}, path)
    other = load_config(ROOT / "configs" / "tiny.json", overrides={"latent_dim": 64})
    with pytest.raises(ConfigError, match=r"s\.ckpt.*'latent_dim' = 32"):
        load_separator(path, cfg=other)
    # weights from another network (e.g. a separator given as decoder) name the file
    with pytest.raises(ConfigError, match=r"s\.ckpt: weights do not fit"):
        load_decoder(path)
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=r"junk\.ckpt: not a readable checkpoint"):
        load_separator(tmp_path / "junk.ckpt")
