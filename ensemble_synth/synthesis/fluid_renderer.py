"""FluidSynth rendering of parts to dry mono stems.

Each soundfont's samples are loaded once per process (FluidSynth's sample cache) and
reused for all parts and scores. Chorus and reverb are off: stems are dry.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from ..music.score import (
    END,
    MAX_NOTE_SECONDS,
    MAX_SCORE_MINUTES,
    PITCH,
    START,
    VELOCITY,
    check_limits,
    check_notes,
    part_label,
)
from .soundfonts import Soundfont

GAIN = 0.5
BLOCK = 4096
CHUNK = 16 * BLOCK  # samples per streamed block (1.5 s at 44.1 kHz)
FLUID_BUFSIZE = 64  # FluidSynth applies events at the start of its 64-sample blocks
MAX_TAIL_SECONDS = 4.0
PITCH_BEND_RANGE_CENTS = 200.0  # the GM default pitch-wheel sensitivity

_NOTE_OFF, _CONTROL, _NOTE_ON = 0, 1, 2  # order of events at the same sample


GEN_RELEASE = 38  # the SoundFont generator of the volume-envelope release (timecents)


@dataclass(frozen=True)
class PartVoice:
    """How one part sounds: soundfont, bank, program, a fixed detuning and a release scale."""

    soundfont: Soundfont
    program: int
    bank: int = 0
    detune_cents: float = 0.0
    release_scale: float = 1.0


class Renderer:
    """Renders parts with FluidSynth at one sample rate."""

    def __init__(self, sample_rate: int):
        import fluidsynth

        if not 8000 <= sample_rate <= 96000:
            raise UserError(f"sample rate {sample_rate}: FluidSynth renders 8000-96000 Hz")
        self.sample_rate = int(sample_rate)
        self._fluidsynth = fluidsynth
        self._write_float = fluidsynth._fl.fluid_synth_write_float
        self._write_float.argtypes = [ctypes.c_void_p, ctypes.c_int] + [ctypes.c_void_p, ctypes.c_int, ctypes.c_int] * 2
        self._write_float.restype = ctypes.c_int
        self._set_gen = fluidsynth._fl.fluid_synth_set_gen
        self._set_gen.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_float]
        self._set_gen.restype = ctypes.c_int
        self._checked: set[str] = set()

    def _new_synth(self, soundfont: Soundfont):
        """A fresh synthesizer with the font loaded.

        FluidSynth keeps sample data in a process-wide cache, so only the first load of a
        font reads it; later loads take about a millisecond. A fresh synthesizer per part
        matters: a reused one carries voice state from earlier notes into the first notes
        of the next part, and a part would not render the same whatever came before it.
        """
        synth = self._fluidsynth.Synth(
            gain=GAIN,
            samplerate=float(self.sample_rate),
            **{
                "synth.reverb.active": 0,
                "synth.chorus.active": 0,
                "synth.dynamic-sample-loading": 1,
            },
        )
        sfid = synth.sfload(str(soundfont.path))
        if sfid < 0:
            synth.delete()
            raise UserError(f"{soundfont.path}: FluidSynth could not load this soundfont")
        return synth, sfid

    def preset_name(self, soundfont: Soundfont, program: int, bank: int = 0) -> str | None:
        """The font's preset name at bank/program, or None when it has none."""
        synth, sfid = self._new_synth(soundfont)
        try:
            return synth.sfpreset_name(sfid, bank, program)
        finally:
            synth.delete()

    def _write(self, synth, left: np.ndarray, right: np.ndarray, start: int, count: int) -> None:
        if count > 0:
            self._write_float(synth.synth, count, left.ctypes.data, start, 1, right.ctypes.data, start, 1)

    def render(
        self,
        notes: np.ndarray,
        voice: PartVoice,
        controls: np.ndarray | None = None,
        max_minutes: float = MAX_SCORE_MINUTES,
        max_note_seconds: float = MAX_NOTE_SECONDS,
        where: str = "part",
    ) -> np.ndarray:
        """Render one part (notes as in :mod:`score`) to mono float32, release tail included.

        ``controls``: optional (m, 3) array of time s, MIDI controller, value (e.g. CC 11
        expression curves for dynamics). Notes past the limits (see
        :func:`~ensemble_synth.music.score.check_notes`) are refused before rendering.
        """
        chunks = list(self.stream(notes, voice, controls, max_minutes, max_note_seconds, where))
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)

    def stream(
        self,
        notes: np.ndarray,
        voice: PartVoice,
        controls: np.ndarray | None = None,
        max_minutes: float = MAX_SCORE_MINUTES,
        max_note_seconds: float = MAX_NOTE_SECONDS,
        where: str = "part",
    ) -> Iterator[np.ndarray]:
        """:meth:`render` in blocks of at most :data:`CHUNK` samples (memory independent of
        the duration); the concatenated blocks are exactly what :meth:`render` returns.

        The limits are checked when this is called, the soundfont preset on the first block.
        """
        check_notes(notes, where, max_minutes, max_note_seconds, options=None)
        if controls is not None and len(controls):
            times = np.asarray(controls, dtype=np.float64).reshape(len(controls), -1)[:, 0]
            if not (np.all(np.isfinite(times)) and times.min() >= 0 and times.max() <= float(max_minutes) * 60):
                raise UserError(f"{where}: controller events must lie between 0 s and {float(max_minutes):g} minutes")
        return self._stream(notes, voice, controls)

    def _stream(self, notes: np.ndarray, voice: PartVoice, controls) -> Iterator[np.ndarray]:
        synth, sfid = self._new_synth(voice.soundfont)
        try:
            yield from self._blocks(synth, sfid, notes, voice, controls)
        finally:
            synth.delete()

    def _blocks(self, synth, sfid: int, notes: np.ndarray, voice: PartVoice, controls) -> Iterator[np.ndarray]:
        if synth.sfpreset_name(sfid, voice.bank, voice.program) is None:
            raise UserError(f"{voice.soundfont.path}: no preset for bank {voice.bank} program {voice.program}")
        synth.program_select(0, sfid, voice.bank, voice.program)
        bend = int(round(voice.detune_cents / PITCH_BEND_RANGE_CENTS * 8192))
        synth.pitch_bend(0, max(-8192, min(8191, bend)))
        if voice.release_scale != 1.0:  # a channel generator: added to every voice the preset starts
            self._set_gen(synth.synth, 0, GEN_RELEASE, float(1200.0 * np.log2(voice.release_scale)))

        # FluidSynth writes into a pair of CHUNK buffers; each full pair leaves as one mono
        # block. Every write is a multiple of FluidSynth's 64-sample block (events sit on its
        # grid, CHUNK and BLOCK are multiples of it), so cutting the writes at CHUNK
        # boundaries renders the same samples as writing each stretch between events whole.
        left = np.zeros(CHUNK, dtype=np.float32)
        right = np.zeros(CHUNK, dtype=np.float32)
        fill = 0

        def advance(count: int):
            nonlocal fill
            while count > 0:
                n = min(count, CHUNK - fill)
                self._write(synth, left, right, fill, n)
                fill += n
                count -= n
                if fill == CHUNK:
                    yield 0.5 * (left + right)
                    fill = 0

        events = self._events(notes, controls)
        position = 0
        for sample, kind, a, b in events:
            yield from advance(sample - position)
            position = sample
            if kind == _NOTE_ON:
                synth.noteon(0, a, b)
            elif kind == _NOTE_OFF:
                synth.noteoff(0, a)
            else:
                synth.cc(0, a, b)
        # The release tail: whole BLOCKs while voices sound, at most MAX_TAIL_SECONDS (and
        # one block) after the last event.
        for _ in range(int(MAX_TAIL_SECONDS * self.sample_rate) // BLOCK + 1):
            if synth.get_active_voice_count() == 0:
                break
            yield from advance(BLOCK)
            position += BLOCK
        # Events are grid-aligned, so every render starts and ends on FluidSynth's block grid:
        # the next render sees the same block phase (determinism).
        assert position % FLUID_BUFSIZE == 0
        if fill:
            yield 0.5 * (left[:fill] + right[:fill])

    def _events(self, notes: np.ndarray, controls: np.ndarray | None) -> list[tuple[int, int, int, int]]:
        sr = self.sample_rate
        grid = FLUID_BUFSIZE

        def to_sample(seconds: float) -> int:
            # Quantised to FluidSynth's block grid, where it applies events anyway
            # (1.45 ms at 44.1 kHz), so that rendered onsets equal the recorded ones.
            return int(round(seconds * sr / grid)) * grid

        events = []
        for start, end, pitch, velocity in notes[:, [START, END, PITCH, VELOCITY]]:
            on = to_sample(start)
            off = max(on + grid, to_sample(end))
            vel = int(np.clip(round(velocity), 1, 127))
            events.append((on, _NOTE_ON, int(pitch), vel))
            events.append((off, _NOTE_OFF, int(pitch), 0))
        if controls is not None:
            for time, controller, value in controls:
                events.append((to_sample(time), _CONTROL, int(controller), int(np.clip(round(value), 0, 127))))
        events.sort()
        return events


_renderers: dict[int, Renderer] = {}
_lock = threading.Lock()


def get_renderer(sample_rate: int) -> Renderer:
    """The process-wide renderer for a sample rate (soundfonts stay loaded)."""
    with _lock:
        if sample_rate not in _renderers:
            _renderers[sample_rate] = Renderer(sample_rate)
        return _renderers[sample_rate]


def pad_stack(stems: list[np.ndarray], length: int | None = None) -> np.ndarray:
    """Stack mono stems into (n, length) float32, zero-padding to the longest."""
    length = length or max((len(s) for s in stems), default=0)
    out = np.zeros((len(stems), length), dtype=np.float32)
    for i, stem in enumerate(stems):
        out[i, : min(len(stem), length)] = stem[:length]
    return out


def render_parts(
    parts,
    voices: list[PartVoice],
    sample_rate: int,
    controls=None,
    max_minutes: float = MAX_SCORE_MINUTES,
    max_note_seconds: float = MAX_NOTE_SECONDS,
    source: str = "",
) -> np.ndarray:
    """Render each part with its voice -> (n_parts, n_samples) float32, all the same length.

    The whole result is held in memory (corpus tracks are short excerpts); parts past the
    limits of :func:`~ensemble_synth.music.score.check_limits` are refused before any
    rendering. ``source`` (a file or track id) starts such messages.
    """
    check_limits(parts, source, max_minutes, max_note_seconds, options=None)
    renderer = get_renderer(sample_rate)
    controls = controls or [None] * len(parts)
    # A fresh synthesizer per part: cheaper than resetting a used one (system_reset takes
    # ~1 s on a large sf3), and a part renders the same whatever was rendered before it.
    stems = [
        renderer.render(part.notes, voice, ctl, max_minutes, max_note_seconds, part_label(source, part))
        for part, voice, ctl in zip(parts, voices, controls)
    ]
    return pad_stack(stems)
