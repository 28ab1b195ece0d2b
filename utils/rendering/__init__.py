"""Listening and looking: MIDI -> audio and WAV files (``audio``), piano-roll pictures."""
