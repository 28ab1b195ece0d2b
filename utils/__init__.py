"""Everything built on the networks: config, checkpoints, training, separation, evaluation.

The typed config and its validator, assignment, checkpoints on disk, Lightning modules
and training runs, song and note-level separation, metrics, baselines, rendering,
evaluation, the ablation, and the command lines of the data build and the synthetic
corpus. In the package order ``data <- models <- utils <- scripts`` it may import
``data`` and ``models``; only the scripts (top level, ``bench/``) and notebooks import it.
"""
