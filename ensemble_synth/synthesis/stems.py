"""Score -> dry stems on disk: the `render` job."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import UserError
from ..fileio import _no_peak_chunk, atomic_directory, write_json_atomic
from ..music import instruments
from ..music.instruments import escape
from ..music.score import (
    MAX_NOTE_SECONDS,
    MAX_SCORE_MINUTES,
    Score,
    check_limits,
    part_label,
)
from ..versions import versions
from .fluid_renderer import CHUNK, PartVoice, get_renderer
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


def stems_metadata(score: Score, voices: list[PartVoice], peaks: list[float], samples: int, sample_rate: int) -> dict:
    """``metadata.json`` of a render: ``peaks`` per part, ``samples`` per stem."""
    renderer = get_renderer(sample_rate)
    parts = []
    for part, voice, peak in zip(score.parts, voices, peaks):
        parts.append(
            {
                "name": part.name,
                "instrument": part.instrument,
                "program": voice.program,
                "bank": voice.bank,
                "preset": renderer.preset_name(voice.soundfont, voice.program, voice.bank),
                "source_track": part.source,
                "notes": len(part.notes),
                "peak": float(peak),
            }
        )
    font = voices[0].soundfont
    return {
        "score": score.source,
        "parts": parts,
        "soundfont": {"name": font.name, "file": font.path.name, "sha256": font.sha256},
        "sample_rate": sample_rate,
        "samples": int(samples),
        "duration": samples / sample_rate,
        "score_duration": score.duration,
        "versions": versions(),
    }


def _render_raw(renderer, part, voice: PartVoice, raw: Path, max_minutes: float, max_note_seconds: float,
                where: str) -> tuple[int, float]:
    """Stream one part into ``raw`` (float32 samples, no header) -> (samples, peak)."""
    samples, peak = 0, 0.0
    blocks = renderer.stream(part.notes, voice, None, max_minutes, max_note_seconds, where)
    with contextlib.closing(blocks), open(raw, "wb") as f:
        for block in blocks:
            if len(block):
                f.write(block.tobytes())
                samples += len(block)
                peak = max(peak, float(np.abs(block).max()))
    return samples, peak


def _raw_to_wav(raw: Path, path: Path, samples: int, sample_rate: int, subtype: str) -> None:
    """Copy ``raw`` into a mono WAV in blocks, zero-padded to ``samples``; removes ``raw``.

    Same bytes as :func:`~ensemble_synth.fileio.write_wav` of the whole stem: libsndfile
    converts sample by sample and writes the header on close (no PEAK chunk).
    """
    written = 0
    with sf.SoundFile(str(path), "w", int(sample_rate), 1, subtype=subtype, format="WAV") as out:
        _no_peak_chunk(out)
        with open(raw, "rb") as f:
            while True:
                block = np.fromfile(f, dtype=np.float32, count=CHUNK)
                if not len(block):
                    break
                out.write(block)
                written += len(block)
        zeros = np.zeros(min(CHUNK, max(0, samples - written)), dtype=np.float32)
        while written < samples:
            n = min(len(zeros), samples - written)
            out.write(zeros[:n])
            written += n
    raw.unlink()


def render_score_to_dir(
    score: Score,
    soundfont: Soundfont,
    out_dir: str | os.PathLike,
    sample_rate: int = 44100,
    subtype: str = "float",
    overwrite: bool = False,
    max_minutes: float = MAX_SCORE_MINUTES,
    max_note_seconds: float = MAX_NOTE_SECONDS,
) -> dict:
    """Render every part to ``out_dir/<part>.wav`` plus ``metadata.json``; returns the metadata.

    Memory does not grow with the duration: each part streams from FluidSynth into a raw
    file inside the temporary output directory, and once every part's length is known
    (the longest sets the stems' common length) each is copied into its WAV in blocks,
    zero-padded. A score past the limits (see :data:`~ensemble_synth.music.score.MAX_SCORE_MINUTES`)
    is refused before anything is rendered; on any error nothing is left at ``out_dir``.
    """
    if subtype not in SUBTYPES:
        raise UserError(f"unknown sample format '{escape(subtype)}' (known: {', '.join(SUBTYPES)})")
    if not score.parts:
        raise UserError(f"{escape(score.source)}: the score has no parts")
    check_limits(score.parts, score.source, max_minutes, max_note_seconds)
    voices = voices_for(score, soundfont, sample_rate)
    renderer = get_renderer(sample_rate)
    try:
        with atomic_directory(out_dir, overwrite=overwrite) as tmp:
            tmp = Path(tmp)
            lengths, peaks = [], []
            for index, (part, voice) in enumerate(zip(score.parts, voices)):
                where = part_label(score.source, part)
                n, peak = _render_raw(renderer, part, voice, tmp / f".part{index}.f32", max_minutes,
                                      max_note_seconds, where)
                lengths.append(n)
                peaks.append(peak)
            silent = [part.name for part, peak in zip(score.parts, peaks) if peak == 0.0]
            if silent:
                raise UserError(
                    f"{escape(score.source)}: rendered silence for {escape(', '.join(silent))} with {escape(soundfont.path)}"
                )
            samples = max(lengths, default=0)
            for index, part in enumerate(score.parts):
                _raw_to_wav(tmp / f".part{index}.f32", tmp / f"{part.name}.wav", samples, sample_rate, SUBTYPES[subtype])
            meta = stems_metadata(score, voices, peaks, samples, sample_rate)
            write_json_atomic(tmp / "metadata.json", meta)
    except (OSError, sf.SoundFileError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).strip().splitlines()[0]
        raise UserError(f"{escape(out_dir)}: cannot write the stems ({escape(reason)})") from None
    return meta
