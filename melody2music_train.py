"""Train the TransUNet separator with explicitly guided diffusion.

    python melody2music_train.py [--config config.json] [--resume]

Checkpoints go to ``model_dir/separator/`` (best by val_loss and ``last.ckpt``), logs to
``model_dir/logs/separator/`` (TensorBoard and CSV).
"""

from __future__ import annotations

import sys

from utils.training.runs import main_for


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and train; returns the exit status."""
    return main_for("separator", argv, prog="melody2music_train.py")


if __name__ == "__main__":
    sys.exit(main())
