"""Score -> dry stems on disk: the `render` job."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..fileio import atomic_directory, write_json_atomic, write_wav
from ..music import instruments
from ..music.score import Score
from ..versions import versions
from .fluid_renderer import PartVoice, get_renderer, render_parts
from .soundfonts import Soundfont

SUBTYPES = {"float": "FLOAT", "pcm24": "PCM_24"}


def voices_for(score: Score, soundfont: Soundfont, sample_rate: int) -> list[PartVoice]:
    """Each part's GM program in the font; a missing preset is an error naming the instrument."""
    renderer = get_renderer(sample_rate)
    voices = []
    for part in score.parts:
        program = instruments.get(part.instrument).program
        if renderer.preset_name(soundfont, program) is None:
            raise UserError(
                f"{soundfont.path}: no preset for {part.instrument} (GM program {program + 1}, bank 0)"
            )
        voices.append(PartVoice(soundfont, program))
    return voices


def stems_metadata(score: Score, voices: list[PartVoice], stems: np.ndarray, sample_rate: int) -> dict:
    renderer = get_renderer(sample_rate)
    parts = []
    for part, voice, stem in zip(score.parts, voices, stems):
        parts.append(
            {
                "name": part.name,
                "instrument": part.instrument,
                "program": voice.program,
                "bank": voice.bank,
                "preset": renderer.preset_name(voice.soundfont, voice.program, voice.bank),
                "source_track": part.source,
                "notes": int(len(part.notes)),
                "peak": float(np.abs(stem).max()),
            }
        )
    font = voices[0].soundfont
    return {
        "score": score.source,
        "parts": parts,
        "soundfont": {"name": font.name, "file": font.path.name, "sha256": font.sha256},
        "sample_rate": sample_rate,
        "samples": int(stems.shape[1]),
        "duration": stems.shape[1] / sample_rate,
        "score_duration": score.duration,
        "versions": versions(),
    }


def render_score_to_dir(
    score: Score,
    soundfont: Soundfont,
    out_dir: str | os.PathLike,
    sample_rate: int = 44100,
    subtype: str = "float",
    overwrite: bool = False,
) -> dict:
    """Render every part to ``out_dir/<part>.wav`` plus ``metadata.json``; returns the metadata."""
    if subtype not in SUBTYPES:
        raise UserError(f"unknown sample format '{subtype}' (known: {', '.join(SUBTYPES)})")
    voices = voices_for(score, soundfont, sample_rate)
    stems = render_parts(score.parts, voices, sample_rate)
    meta = stems_metadata(score, voices, stems, sample_rate)
    silent = [p["name"] for p in meta["parts"] if p["peak"] == 0.0]
    if silent:
        raise UserError(f"{score.source}: rendered silence for {', '.join(silent)} with {soundfont.path}")
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        for part, stem in zip(score.parts, stems):
            write_wav(Path(tmp) / f"{part.name}.wav", stem, sample_rate, SUBTYPES[subtype])
        write_json_atomic(Path(tmp) / "metadata.json", meta)
    return meta
