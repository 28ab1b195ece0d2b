"""Scoring a separator: metrics, fitted baselines, phrase-level and song-level evaluation."""
