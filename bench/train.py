"""Training throughput of the separator: phrases/s for the paper and demo configurations.

    python bench/train.py [--device cpu] [--precision 32-true] [--batch-size 8]
                          [--steps 5] [--warmup 2] [--configs config.json configs/demo.json]

Synthetic batches (random sparse mixtures), full training steps (guided loss, backward,
AdamW); the warm-up steps are not timed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.contract import N_MUSIC, N_PITCH, PHRASE_STEPS  # noqa: E402
from data.errors import InputError  # noqa: E402
from utils.core.checkpoints import SeparatorSpec, build_separator  # noqa: E402
from utils.core.cli import command  # noqa: E402
from utils.core.config import Config, load_config  # noqa: E402

AUTOCAST = {"32-true": None, "32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def phrases_per_second(cfg: Config, device: torch.device, precision: str, batch_size: int,
                       steps: int, warmup: int) -> float:
    """Timed training steps of one configuration; returns phrases per second."""
    torch.manual_seed(0)
    net, diffusion = build_separator(SeparatorSpec.of(cfg), cfg.rate)
    net.to(device).train()
    diffusion.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "16-mixed")
    mixture = (torch.rand(batch_size, 1, PHRASE_STEPS, N_PITCH, device=device) < 0.05).float()
    owner = torch.randint(0, N_MUSIC, (batch_size, 1, PHRASE_STEPS, N_PITCH), device=device)
    music = torch.zeros(batch_size, N_MUSIC, PHRASE_STEPS, N_PITCH, device=device)
    music.scatter_(1, owner, 1.0).mul_(mixture)
    dtype = AUTOCAST[precision]

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = diffusion.training_loss(net, music, mixture)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - start)


@command
def main(argv: list[str] | None = None) -> int:
    """Measure every given configuration and print one line each."""
    parser = argparse.ArgumentParser(prog="bench/train.py", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    parser.add_argument("--precision", default="32-true", choices=sorted(AUTOCAST))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--configs", nargs="+", default=["config.json", "configs/demo.json"])
    args = parser.parse_args(argv)
    if args.batch_size <= 0 or args.steps <= 0 or args.warmup < 0:
        raise InputError("--batch-size and --steps must be > 0, --warmup >= 0")
    device = torch.device(args.device)
    print(f"device {args.device}, precision {args.precision}, batch {args.batch_size}, "
          f"{args.steps} timed steps after {args.warmup} warm-up, torch threads "
          f"{torch.get_num_threads()}")
    for path in args.configs:
        cfg = load_config(path)
        rate = phrases_per_second(cfg, device, args.precision, args.batch_size,
                                  args.steps, args.warmup)
        print(f"{path}: latent_dim {cfg.latent_dim}, d_model {cfg.d_model}, "
              f"num_layers {cfg.num_layers}: {rate:.2f} training phrases/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
