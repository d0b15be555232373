"""Synthesis: the soundfont registry, the FluidSynth renderer, per-player timbre, dry stems on disk."""
