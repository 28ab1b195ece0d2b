"""Train the independent decoder (x1 -> x0) on top of a trained separator.

    python melody2music_decoder.py [--config config.json] [--resume]

The separator is the checkpoint named by ``transunet_model_path``, else the newest in
``model_dir/separator/``. Checkpoints go to ``model_dir/decoder/``, logs to
``model_dir/logs/decoder/``.
"""

from __future__ import annotations

import sys

from utils.training.runs import main_for


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and train; returns the exit status."""
    return main_for("decoder", argv, prog="melody2music_decoder.py")


if __name__ == "__main__":
    sys.exit(main())
