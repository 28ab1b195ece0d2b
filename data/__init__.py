"""MIDI -> phrase data pipeline: contract, conversion, storage and datasets."""

from data.store import DatasetError, PhraseStore, read_phrases

__all__ = ["DatasetError", "PhraseStore", "read_phrases"]
