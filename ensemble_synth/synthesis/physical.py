"""Physical-model voices: STK's waveguide instruments (``stk`` in a ``[timbre]`` pool).

STK (the Synthesis ToolKit, Debian ``libstk``) models a bowed string, a clarinet, a
saxophone (Saxofony, a conical reed) and a flute as digital waveguides driven by bow or
breath: no recordings, so their timbres are independent of every sample set, and each
player's bow pressure and position, reed stiffness, breath noise and blow position are drawn
(:func:`draw_voice`), a continuum of instruments rather than one recording. STK is C++; ``native/stk_render.cpp``
(built by ``scripts/install-stk.sh``) plays a part from a list of events and writes float32
samples, which this module reads from a pipe.

How a part is played:

- **Which model**: :data:`MODELS` (violin, viola, cello: Bowed; clarinet: Clarinet;
  saxophones: Saxofony; flute: Flute). STK has no bassoon and no double reed, and no model
  stands in for one: like a sample library's missing instrument, such a part redraws its
  source (:mod:`.timbre`). Saxofony playing bassoon lines was measured and left out: a model
  trained with it separated unseen recorded bassoons 0.37 dB worse (``docs/timbre_sources.md``).
- **Pitch**: the models sound sharp or flat by an amount that grows with pitch and depends
  on the sample rate (the bowed string +13 to +170 cents at 16 kHz, the saxophone -7 to
  -110): each voice is tuned once per process (:func:`tuning`), by rendering notes over its
  range and measuring their f0, and each note asks for the pitch that sounds at the note's
  (the measured offsets interpolated).
- **Level**: velocity drives the model (``amplitude = 128 (0.6 + 0.4 v / 127)``: louder
  notes are brighter, as bow and breath are) and scales the output from the note's onset by
  ``40 log10(v / 127)`` dB, FluidSynth's curve (a 5 ms ramp); CC 11 (expression) is a gain
  over time, as on the sampler.
- **Vibrato**: CC 1 as the GM fonts read it (up to about 50 cents at 64) is a pitch vibrato
  on the bowed string; the wind models' vibrato modulates the breath (an amplitude
  vibrato) and gets the same CC at :data:`WIND_VIBRATO_SCALE`. Its rate is drawn per player.
- **Spectrum**: the wind models are 5-11 dB brighter than Bach10's stems above 2.5 kHz,
  the bowed string is not (the realism report, ``docs/timbre_sources.md``): each player gets
  a one-pole low-pass (in the renderer) drawn from its model's range in :data:`MODELS`, before
  the timbre EQ.
- **Determinism**: STK's noise draws from C's ``rand()``, seeded by the renderer with the
  voice's seed; the same spec renders the same samples.
"""

from __future__ import annotations

import ctypes.util
import functools
import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..music import instruments
from ..music.score import END, PITCH, START, VELOCITY, check_notes
from ..presets import install_folders, project_file
from .sampler import GRID, expression_gain, grid_samples, measure_f0

NAME = "stk"
STK_ENV = "ENSEMBLE_SYNTH_STK"
INSTALLER = "scripts/install-stk.sh"
SOURCE = "native/stk_render.cpp"
LICENCE = "STK licence (MIT-style)"
VOICES = 4  # notes sounding at once in a part (chorale parts are lines; legato overlaps need two)

# STK model -> the instruments it plays (catalogue names), its controls drawn per player
# (STK control number -> uniform range, 0-128: the ranges where every note speaks), the control
# number of its vibrato rate, and the range of its low-pass (Hz, log-uniform).
MODELS = {
    "Bowed": (("violin", "viola", "cello"), {2: (85.0, 128.0), 4: (15.0, 50.0)}, 11, (4000.0, 12000.0)),
    "Clarinet": (("clarinet",), {2: (45.0, 95.0), 4: (0.0, 30.0)}, 11, (700.0, 2500.0)),
    "Saxofony": (("alto_saxophone", "tenor_saxophone"), {2: (55.0, 85.0), 4: (0.0, 40.0), 11: (30.0, 85.0)},
                 29, (1000.0, 4000.0)),
    "Flute": (("flute",), {4: (0.0, 40.0)}, 11, (1500.0, 6000.0)),
}
RANGES = {"Bowed": (36, 96), "Clarinet": (48, 94), "Saxofony": (40, 84), "Flute": (59, 96)}  # tuned MIDI pitches
VIBRATO_HZ = (4.5, 6.5)
BOWED_VIBRATO_SCALE = 10.0 / 64.0  # STK's bowed vibrato at CC 1 = 10 spans about 100 cents, as a GM font's at 64
WIND_VIBRATO_SCALE = 0.3
DRIVE = (0.6, 0.4)  # amplitude sent to the model: 128 (DRIVE[0] + DRIVE[1] v / 127)
TUNING_STEP = 3  # semitones between tuning notes
GAIN_RAMP_S = 0.005  # a note's velocity gain is reached over this


def model_for(instrument: str) -> str | None:
    """The STK model that plays ``instrument`` (any catalogue spelling), or None."""
    name = instruments.get(instrument).name
    return next((model for model, (plays, *_) in MODELS.items() if name in plays), None)


def plays(instrument: str) -> bool:
    return model_for(instrument) is not None


@dataclass(frozen=True)
class PhysicalVoice:
    """How one part sounds on an STK model: its controls (STK control number -> value), the
    vibrato rate, the low-pass, a fixed detuning and the seed of the model's noise."""

    model: str
    controls: tuple[tuple[int, float], ...]
    vibrato_hz: float
    lowpass_hz: float
    detune_cents: float = 0.0
    seed: int = 0

    @classmethod
    def from_record(cls, table: dict, detune_cents: float) -> "PhysicalVoice":
        if table.get("model") not in MODELS:
            raise UserError(f"physical model '{table.get('model')}' is not one of {', '.join(MODELS)}")
        controls = tuple(sorted((int(k), float(v)) for k, v in table["controls"].items()))
        return cls(table["model"], controls, float(table["vibrato_hz"]), float(table["lowpass_hz"]),
                   float(detune_cents), int(table["seed"]))


def draw_voice(instrument: str, rng: np.random.Generator) -> dict:
    """A player's ``physical`` table for ``instrument`` (which :func:`plays` must accept)."""
    model = model_for(instrument)
    _, ranges, _, lowpass_hz = MODELS[model]
    controls = {str(k): round(float(rng.uniform(lo, hi)), 1) for k, (lo, hi) in ranges.items()}
    vibrato = round(float(rng.uniform(*VIBRATO_HZ)), 2)
    lowpass = round(float(np.exp(rng.uniform(*np.log(lowpass_hz)))), 1)
    return {"library": NAME, "model": model, "controls": controls, "vibrato_hz": vibrato, "lowpass_hz": lowpass,
            "seed": int(rng.integers(2**31))}


@functools.lru_cache(maxsize=1)
def source_hash() -> str:
    return hashlib.sha256(project_file(SOURCE).read_bytes()).hexdigest()


def search_path() -> list[Path]:
    return install_folders(STK_ENV, "stk")


def renderer() -> Path:
    """The built renderer of this source, or one line naming the command that builds it."""
    name = f"stk-render-{source_hash()[:16]}"
    for folder in search_path():
        if os.access(folder / name, os.X_OK):
            return folder / name
    looked = ", ".join(str(d) for d in search_path())
    raise UserError(f"the STK renderer {name} is not built (looked in {looked}); build it with `{INSTALLER}` "
                    f"(installs Debian libstk-dev and g++)")


def versions() -> dict:
    """What a corpus records about the ``stk`` source."""
    renderer()
    library = ctypes.util.find_library("stk") or "libstk"
    return {"library": NAME, "stk": library, "renderer_sha256": source_hash()}


def _run(model: str, sample_rate: int, seed: int, events: list[str], where: str, lowpass_hz: float = 0.0) -> np.ndarray:
    """Samples of the renderer for ``events`` (lines of ``native/stk_render.cpp``'s protocol)."""
    command = [str(renderer()), model, str(int(sample_rate)), str(int(seed) % 2**32), str(VOICES), repr(float(lowpass_hz))]
    result = subprocess.run(command, input="\n".join(events).encode() + b"\n", capture_output=True)
    if result.returncode != 0:
        reason = result.stderr.decode(errors="replace").strip().splitlines()
        raise UserError(f"{where}: the STK renderer failed ({reason[-1] if reason else f'status {result.returncode}'})")
    return np.frombuffer(result.stdout, dtype=np.float32).copy()


def _control_lines(controls) -> list[str]:
    """The player's controls as control events at time 0."""
    return [f"c 0 {number} {value:.4f}" for number, value in controls]


def _setup(voice: PhysicalVoice, vibrato_cc: float) -> list[str]:
    """The control events at time 0: the player's controls, the vibrato depth and rate."""
    _, _, rate_cc, _ = MODELS[voice.model]
    scale = BOWED_VIBRATO_SCALE if voice.model == "Bowed" else WIND_VIBRATO_SCALE
    lines = _control_lines(voice.controls)
    lines.append(f"c 0 {rate_cc} {min(voice.vibrato_hz / 12.0 * 128.0, 128.0):.4f}")  # STK: rate = value / 128 * 12 Hz
    lines.append(f"c 0 1 {vibrato_cc * scale:.4f}")
    return lines


@functools.lru_cache(maxsize=64)
def tuning(model: str, controls: tuple, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(pitches, cents): how sharp the model sounds over its range, without vibrato."""
    lo, hi = RANGES[model]
    pitches = np.arange(lo, hi + 1, TUNING_STEP, dtype=np.float64)
    note, gap = 0.8, 0.2
    events = _control_lines(controls)
    for i, p in enumerate(pitches):
        t = i * (note + gap)
        events += [f"n {t:.6f} {p:.4f} 100", f"f {t + note:.6f} {p:.4f} 64"]
    events.append(f"e {len(pitches) * (note + gap):.6f}")
    x = _run(model, sample_rate, 1, events, f"tuning {model}").astype(np.float64)
    cents = []
    for i, p in enumerate(pitches):
        start = int((i * (note + gap) + 0.35) * sample_rate)
        f0 = 440.0 * 2 ** ((p - 69) / 12)
        measured = measure_f0(x[start:start + int(0.4 * sample_rate)], sample_rate, f0, 300.0)
        cents.append(1200 * np.log2(measured / f0) if np.isfinite(measured) else np.nan)
    cents = np.array(cents)
    keep = np.isfinite(cents)
    if keep.sum() < 2:
        raise UserError(f"STK {model} did not sound in tune anywhere in its range at {sample_rate} Hz")
    return pitches[keep], cents[keep]


def out_of_range(notes: np.ndarray, model: str) -> int:
    lo, hi = RANGES[model]
    pitches = np.asarray(notes)[:, PITCH] if len(notes) else np.zeros(0)
    return int(np.count_nonzero((pitches < lo) | (pitches > hi)))


def render(notes: np.ndarray, voice: PhysicalVoice, sample_rate: int, controls=None, where: str = "part",
           tail_s: float = 0.5) -> np.ndarray:
    """Render one part (notes as in :mod:`~ensemble_synth.music.score`) -> mono float32 with
    ``tail_s`` of release after the last note-off."""
    sample_rate = int(sample_rate)
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4) if np.size(notes) else np.zeros((0, 4))
    check_notes(notes, where, options=None)
    if not len(notes):
        return np.zeros(0, dtype=np.float32)
    notes = notes[np.lexsort((notes[:, PITCH], notes[:, START]))]
    on = grid_samples(notes[:, START], sample_rate)
    off = np.maximum(grid_samples(notes[:, END], sample_rate), on + GRID)
    velocity = np.clip(np.round(notes[:, VELOCITY]), 1, 127)
    known, cents = tuning(voice.model, voice.controls, sample_rate)
    # The pitch to ask for: where the model's sounding pitch (asked + its offset there) is the note's.
    target = notes[:, PITCH] + voice.detune_cents / 100.0
    sounding = known + cents / 100.0
    pitch = target - np.interp(target, sounding, cents) / 100.0
    drive = 128.0 * (DRIVE[0] + DRIVE[1] * velocity / 127.0)
    vibrato_cc = 0.0
    if controls is not None and len(controls):
        ccs = np.asarray(controls, dtype=np.float64).reshape(len(controls), -1)
        modulation = ccs[ccs[:, 1] == 1]
        vibrato_cc = float(modulation[0, 2]) if len(modulation) else 0.0
    level = (velocity / 127.0) ** 2
    timed = [(on[i], 1, f"n {on[i] / sample_rate:.6f} {pitch[i]:.4f} {drive[i]:.3f}") for i in range(len(on))]
    timed += [(on[i], 2, f"g {on[i] / sample_rate:.6f} {level[i]:.6f} {GAIN_RAMP_S}") for i in range(len(on))]
    timed += [(off[i], 0, f"f {off[i] / sample_rate:.6f} {pitch[i]:.4f} 64") for i in range(len(on))]
    timed.sort(key=lambda event: (event[0], event[1]))
    length = int(off.max() + tail_s * sample_rate)
    events = _setup(voice, vibrato_cc) + [line for _, _, line in timed] + [f"e {length / sample_rate:.6f}"]
    out = _run(voice.model, sample_rate, voice.seed, events, where, voice.lowpass_hz)[:length]
    gain = expression_gain(controls, len(out), sample_rate)
    if gain is not None:
        out *= gain
    return out
