"""models/process.py: one interface for every separator process, chosen by name."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest
import torch

from models.diffusion import GuidedDiffusion
from models.direct import DirectSeparation
from models.options import SeparatorKind
from models.process import PROCESSES, Sampling, SeparationProcess, process_class, register
from tests.test_train import tiny_cfg
from utils.core.checkpoints import SeparatorSpec, build_separator

ROOT = Path(__file__).resolve().parent.parent


def test_every_config_kind_has_one_registered_process() -> None:
    assert set(PROCESSES) == set(get_args(SeparatorKind)) == {"diffusion", "direct"}
    assert process_class("diffusion") is GuidedDiffusion
    assert process_class("direct") is DirectSeparation
    with pytest.raises(ValueError, match="separator must be one of"):
        process_class("gan")

    class Unknown(SeparationProcess):
        kind = "gan"

    with pytest.raises(ValueError, match="SeparatorKind"):
        register(Unknown)


@pytest.mark.parametrize("kind", ["diffusion", "direct"])
def test_the_interface_answers_for_each_process(kind: str) -> None:
    cfg = tiny_cfg(Path("/nonexistent"), separator=kind, onset_channel=True)
    net, process = build_separator(SeparatorSpec.of(cfg))
    assert process.kind == kind and isinstance(process, process_class(kind))
    batch = {"music": torch.zeros(2, 5, 64, 72), "mixture": torch.zeros(2, 1, 64, 72)}
    batch["music"][:, 1, 10:20, 30] = 1
    batch["mixture"][:, 0, 10:20, 30] = 1
    loss, metrics = process.step(net, batch, "val")
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert process.monitor[0] in {"val_loss"} | {f"val_{name}" for name in metrics}
    decoder = None
    if process.needs_decoder:
        from models.decoder import Decoder

        decoder = Decoder(cfg.in_ch, cfg.decoder_dim).eval()
    sampling = Sampling(steps=3)
    probs = process.probs(net.eval(), batch["mixture"], decoder=decoder, sampling=sampling,
                          generator=torch.Generator().manual_seed(0))
    assert probs.shape == (2, 5, 64, 72) and float(probs.min()) >= 0.0
    assert 1 <= process.max_steps() and isinstance(process.describe(sampling), str)


def test_no_module_outside_models_asks_which_process_it_holds() -> None:
    """Callers use the interface; only models/ knows the kinds by name."""
    asks = re.compile(r"""(separator|kind)\s*[!=]=\s*["'](direct|diffusion)["']"""
                      r"""|isinstance\([^)]*(GuidedDiffusion|DirectSeparation)""")
    found = []
    for path in [*ROOT.glob("*.py"), *ROOT.glob("utils/*.py"), *ROOT.glob("bench/*.py"),
                 *ROOT.glob("data/*.py")]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if asks.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
