"""MIDI -> phrase data pipeline: contract, conversion, storage and datasets."""

from data.store import PhraseStore, read_phrases

__all__ = ["PhraseStore", "read_phrases"]
