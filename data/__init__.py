"""The data layer: MIDI files -> phrase rolls, their storage, and the notes of a song.

Holds the data contract, MIDI reading and writing, every roll helper (windowing, the note
run finder), atomic file output, the phrase store and its build, the synthetic corpus
generator and the PyTorch datasets. The bottom of the package order
``data <- models <- utils <- scripts``: it imports no other package of the project.
"""

from data.store import DatasetError, PhraseStore, read_phrases

__all__ = ["DatasetError", "PhraseStore", "read_phrases"]
