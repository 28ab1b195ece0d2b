"""Separation with a trained separator: phrases, songs, notes, the second passes, MIDI files."""
