"""Copy a trained model into a folder that ships with the repository (``pretrained/``).

    python -m utils.pretrained --config configs/synth.json [--out pretrained]

Takes the separator (and, for a diffusion separator, the decoder) that the config names
or the newest in its ``model_dir``, strips the optimiser state, and writes them with the
baselines saved beside them (fitted on the model's own training data), the learned song
pass trained on that separator (``song_pass.ckpt``, if ``model_dir`` holds one) and the
evaluation and panel tables found in ``model_dir``. With ``--song-pass`` it copies only the
song pass and the tables, for a song pass trained on the separator already in ``--out``
(``transunet_model_path`` naming it). Scripts that separate fall back to this folder
when no model is configured or trained (:func:`utils.core.checkpoints.model_paths`).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from data.fileio import atomic_write_many
from utils.core.checkpoints import (
    BASELINES_FILE,
    PRETRAINED_DECODER,
    PRETRAINED_SEPARATOR,
    export_checkpoint,
    export_loaded,
    find_checkpoint,
    load_separator,
    process_class,
    read_checkpoint,
)
from utils.core.cli import command
from utils.core.config import Config, ConfigError, load_config
from utils.separation.song_pass import SONG_PASS_FILE, matching_song_pass


def export_model(cfg: Config, out_dir: str | Path) -> list[Path]:
    """Write the config's model into ``out_dir``; returns the files written.

    Raises:
        ConfigError: no trained model, or no baselines saved with it.
    """
    separator = find_checkpoint(cfg, "separator")
    baselines = Path(cfg.model_dir) / BASELINES_FILE
    if not baselines.is_file():
        raise ConfigError(f"{cfg._source}: no {BASELINES_FILE} in 'model_dir' = "
                          f"{cfg.model_dir!r}; train the separator with this config first")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / PRETRAINED_SEPARATOR]
    stored = export_loaded(read_checkpoint(separator), separator, written[0])
    stale = out / PRETRAINED_DECODER
    if process_class(stored.separator).needs_decoder:
        written.append(export_checkpoint(find_checkpoint(cfg, "decoder"), stale))
    elif stale.exists():
        stale.unlink()  # a decoder of an earlier model does not belong to this one
    sources = [baselines, *_tables(Path(cfg.model_dir))]
    song_pass = Path(cfg.model_dir) / SONG_PASS_FILE
    if song_pass.is_file() and matching_song_pass([song_pass],
                                                  load_separator(separator)[0]):
        sources.append(song_pass)
    elif (out / SONG_PASS_FILE).exists():
        (out / SONG_PASS_FILE).unlink()  # trained on an earlier separator
    return written + _copy_replacing_tables(sources, out)


def _tables(folder: Path) -> list[Path]:
    return sorted([*folder.glob("evaluation_*"), *folder.glob("panel_*")])


def _copy_replacing_tables(sources: list[Path], out: Path) -> list[Path]:
    """Copy ``sources`` into ``out`` atomically; tables of an earlier model are removed."""
    copies = {out / source.name: source for source in sources}
    atomic_write_many({target: partial(shutil.copyfile, source)
                       for target, source in copies.items()})
    for old in _tables(out):  # tables of an earlier model do not describe this one
        if old not in copies:
            old.unlink()
    return list(copies)


def export_song_pass(cfg: Config, out_dir: str | Path) -> list[Path]:
    """Copy the song pass in ``model_dir`` and its tables beside the separator in ``out_dir``.

    Raises:
        ConfigError: no song pass in ``model_dir``, no separator in ``out_dir``, or a song pass
            trained on another separator than the one in ``out_dir``.
    """
    out = Path(out_dir)
    song_pass = Path(cfg.model_dir) / SONG_PASS_FILE
    separator = out / PRETRAINED_SEPARATOR
    if not song_pass.is_file():
        raise ConfigError(f"{cfg._source}: no {SONG_PASS_FILE} in 'model_dir' = "
                          f"{cfg.model_dir!r}; train the song pass with this config first")
    if not separator.is_file():
        raise ConfigError(f"{separator}: no separator to put the song pass beside")
    if not matching_song_pass([song_pass], load_separator(separator)[0]):
        raise ConfigError(f"{song_pass}: trained on another separator than {separator}")
    return _copy_replacing_tables([song_pass, *_tables(Path(cfg.model_dir))], out)


@command
def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit status (2 for a configuration problem)."""
    parser = argparse.ArgumentParser(prog="python -m utils.pretrained",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config.json", help="config of the trained model")
    parser.add_argument("--out", default="pretrained", help="target folder (pretrained)")
    parser.add_argument("--song-pass", action="store_true",
                        help="copy only the song pass and the tables, for the separator "
                             "already in --out")
    args = parser.parse_args(argv)
    export = export_song_pass if args.song_pass else export_model
    written = export(load_config(args.config), args.out)
    total = sum(p.stat().st_size for p in written)
    for path in written:
        print(f"  {path}  ({path.stat().st_size / 1e6:.2f} MB)")
    print(f"wrote {len(written)} files, {total / 1e6:.2f} MB in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
