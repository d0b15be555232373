"""Corpora: presets, sampling track specs, rendering them, the on-disk format, generation."""
