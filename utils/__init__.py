"""Everything built on the networks, in subpackages by job; the commands at the top.

- ``core``: the typed config and its validator, the checkpoint kinds and checkpoints on
  disk, the command-line wrapper (the exit-status rule).
- ``rendering``: MIDI -> audio and WAV files; piano-roll pictures.
- ``separation``: a trained separator over phrases, songs and notes; assignment; the
  second passes (the fixed register prior, the learned song pass); MIDI files in and out.
- ``evaluation``: metrics, baselines, the phrase-level and the song-level evaluation.
- ``training``: the Lightning modules and the training runs.
- the modules at the top are commands (``python -m utils.preprocess``, ``utils.synthesize``,
  ``utils.debian_songs``, ``utils.song_pass_training``, ``utils.pretrained``).

In the package order ``data <- models <- utils <- scripts`` it may import ``data`` and
``models``; only the scripts (top level, ``bench/``) and notebooks import it. Inside it the
subpackages keep an order too, ``core <- rendering <- separation <- evaluation <- training
<- commands`` (tests/test_layering.py).
"""
