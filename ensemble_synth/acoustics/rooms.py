"""Rooms: shoebox rooms with a reverberation time that comes out as asked.

A room preset (``presets/rooms/*.toml``) gives ``dimensions`` (metres, or ``[low, high]``
ranges per axis), either ``rt60`` (seconds at mid frequencies, 500 Hz-1 kHz, or a range)
or ``materials`` (pyroomacoustics database names, one for all walls or a table per wall),
``air_absorption``, the stage centre (fractions of width and length) and the simulation
``model`` ("hybrid", the default, or "ism" for pyroomacoustics' plain image sources).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import numpy as np

from .. import distributions
from ..errors import UserError
from ..presets import get_key, load_preset
from ..schema import Key, check_table
from .mics import draw
from .physics import SPEED_OF_SOUND

LN_1E6 = math.log(1e6)  # a 60 dB energy decay
BAND_CENTRES = (125, 250, 500, 1000, 2000, 4000, 8000)  # octave bands, as pyroomacoustics
MID_BANDS = (2, 3)  # 500 Hz and 1 kHz: "RT60" means their mean, as ISO 3382's T30,mid
@functools.cache
def air_absorption_coefficients() -> tuple[float, ...]:
    """pyroomacoustics' air absorption per octave band: energy, 1/m (20 C, 50 % humidity)."""
    import pyroomacoustics as pra  # where used: a second at start-up otherwise

    return tuple(pra.parameters.Physics().get_air_absorption()["coeffs"])
WALL_ABSORPTION_RANGE = (0.01, 0.8)  # mean wall absorption a real room can have (bare concrete .. treated studio)
MIN_WALL_DISTANCE = 0.3  # m between a player or a microphone and any wall, floor or ceiling
MODELS = ("hybrid", "ism")
WALLS = ("east", "west", "north", "south", "floor", "ceiling")


@dataclass(frozen=True)
class RoomSpec:
    """A resolved room: everything that determines its impulse responses except the positions."""

    name: str
    dimensions: tuple[float, float, float]
    rt60: float  # seconds, mean of the 500 Hz and 1 kHz octaves
    rt60_bands: tuple[float, ...]  # seconds per octave band in BAND_CENTRES
    wall_absorption: tuple[float, ...]  # mid-band energy absorption per wall (WALLS order), for image sources
    air_absorption: bool
    stage_centre: tuple[float, float]  # world x, y of the stage centre, metres
    model: str = "hybrid"
    max_order: int = -1  # image-source order for model "ism"; -1: from the reverberation time
    materials: tuple[str, ...] = ()  # database names per wall when the room was given materials

    @property
    def volume(self) -> float:
        return float(np.prod(self.dimensions))

    @property
    def surface(self) -> float:
        x, y, z = self.dimensions
        return 2.0 * (x * y + x * z + y * z)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RoomSpec":
        return cls(
            name=d["name"],
            dimensions=tuple(float(v) for v in d["dimensions"]),
            rt60=float(d["rt60"]),
            rt60_bands=tuple(float(v) for v in d["rt60_bands"]),
            wall_absorption=tuple(float(v) for v in d["wall_absorption"]),
            air_absorption=bool(d["air_absorption"]),
            stage_centre=tuple(float(v) for v in d["stage_centre"]),
            model=d.get("model", "hybrid"),
            max_order=int(d.get("max_order", -1)),
            materials=tuple(d.get("materials", ())),
        )


# --- reverberation time <-> absorption (Eyring, plus air) ---------------------------------

def _air(band: int, air_absorption: bool) -> float:
    return air_absorption_coefficients()[band] if air_absorption else 0.0


def _air_mid(air_absorption: bool) -> float:
    return float(np.mean([_air(b, air_absorption) for b in MID_BANDS]))


def eyring_decay_rate(alpha: float, volume: float, surface: float) -> float:
    """Energy decay rate (1/s) from mean wall absorption alpha (Eyring)."""
    return -SPEED_OF_SOUND * surface * math.log(1.0 - alpha) / (4.0 * volume)


def feasible_rt60_range(dimensions, air_absorption: bool = True) -> tuple[float, float]:
    """The mid-band RT60 a room of these dimensions can have with realistic walls."""
    volume, surface = float(np.prod(dimensions)), _surface(dimensions)
    air = SPEED_OF_SOUND * _air_mid(air_absorption)
    lo, hi = (LN_1E6 / (eyring_decay_rate(a, volume, surface) + air) for a in WALL_ABSORPTION_RANGE[::-1])
    return lo, hi


def _surface(dimensions) -> float:
    x, y, z = dimensions
    return 2.0 * (x * y + x * z + y * z)


def absorption_for_rt60(rt60: float, dimensions, air_absorption: bool, source: str) -> float:
    """Mean wall absorption giving this mid-band RT60; an unreachable target names the feasible range."""
    lo, hi = feasible_rt60_range(dimensions, air_absorption)
    if not lo <= rt60 <= hi:
        dims = " x ".join(f"{v:g}" for v in dimensions)
        raise UserError(f"{source}: rt60 {rt60:g} s is not reachable in a {dims} m room "
                        f"(feasible {lo:.2f}-{hi:.2f} s); change the dimensions or the rt60")
    volume, surface = float(np.prod(dimensions)), _surface(dimensions)
    wall_rate = LN_1E6 / rt60 - SPEED_OF_SOUND * _air_mid(air_absorption)
    return 1.0 - math.exp(-wall_rate * 4.0 * volume / (SPEED_OF_SOUND * surface))


def band_rt60s(wall_rates, air_absorption: bool) -> tuple[float, ...]:
    """Per-band RT60 from per-band wall decay rates plus air absorption."""
    return tuple(round(LN_1E6 / (rate + SPEED_OF_SOUND * _air(b, air_absorption)), 6)
                 for b, rate in enumerate(wall_rates))


# --- presets -> RoomSpec ------------------------------------------------------------------

def load_room(room) -> dict:
    """A room preset name, a TOML path, or an already-loaded dict."""
    return check_room(load_preset("rooms", room))


def _choice(value, rng):
    """A material name, or one drawn from a list or a distribution of names."""
    return distributions.draw(value, rng, "materials")


ROOM_KEYS = {
    "dimensions": Key(None, "list", random=False),
    "rt60": Key(None, "any"),
    "materials": Key(None, "any"),
    "air_absorption": Key(True, "bool", random=False),
    "stage_centre": Key([0.5, 0.75], "list", random=False),
    "model": Key("hybrid", "name", random=False),
    "max_order": Key(-1, "integer", low=-1, high=100, random=False, unit="(-1: from the RT60)"),
}
DIMENSION = Key(None, low=2 * MIN_WALL_DISTANCE + 0.5, high=1000.0, unit="m")
RT60 = Key(None, low=0.05, high=30.0, unit="s")
FRACTION = Key(None, low=0.0, high=1.0)


def check_room(preset: dict) -> dict:
    """Every key of a room preset known and in range; errors name the file and the key."""
    source = preset.get("_source", "room")
    check_table(preset, ROOM_KEYS, source, extra=("name", "description"))
    dims = preset.get("dimensions")
    if not isinstance(dims, list) or len(dims) != 3:
        raise UserError(f"{source}: key 'dimensions': expected [width, length, height] in metres (numbers or ranges), got {dims!r}")
    for axis, value in zip("xyz", dims):
        DIMENSION.check(value, f"{source}: key 'dimensions' {axis}")
    if ("rt60" in preset) == ("materials" in preset):
        raise UserError(f"{source}: give exactly one of 'rt60' or 'materials'")
    if "rt60" in preset:
        RT60.check(preset["rt60"], f"{source}: key 'rt60'")
    stage = preset.get("stage_centre", [0.5, 0.75])
    if len(stage) != 2:
        raise UserError(f"{source}: key 'stage_centre': expected [x, y] as fractions of width and length, got {stage!r}")
    for axis, value in zip("xy", stage):
        FRACTION.check(value, f"{source}: key 'stage_centre' {axis}")
    if preset.get("model", "hybrid") not in MODELS:
        raise UserError(f"{source}: key 'model': expected one of {', '.join(MODELS)}, got {preset['model']!r}")
    return preset


def sample_room(preset: dict, rng: np.random.Generator) -> RoomSpec:
    """Draw every ranged value of a room preset and resolve absorption and per-band RT60."""
    source = preset.get("_source", "room")
    name = preset.get("name") or source.rsplit("/", 1)[-1].removesuffix(".toml")
    dims_spec = get_key(preset, "dimensions", list, source)
    if len(dims_spec) != 3:
        raise UserError(f"{source}: dimensions must be [width, length, height] in metres")
    dims = tuple(round(draw(v, rng, f"{source}: dimensions"), 4) for v in dims_spec)
    if min(dims) < 2 * MIN_WALL_DISTANCE + 0.5:
        raise UserError(f"{source}: dimensions {dims} are too small for a room")
    air = get_key(preset, "air_absorption", bool, source, True)
    model = get_key(preset, "model", str, source, "hybrid")
    if model not in MODELS:
        raise UserError(f"{source}: model must be one of {', '.join(MODELS)}, got '{model}'")
    stage = get_key(preset, "stage_centre", list, source, [0.5, 0.75])
    stage_centre = (round(draw(stage[0], rng) * dims[0], 4), round(draw(stage[1], rng) * dims[1], 4))
    max_order = get_key(preset, "max_order", int, source, -1)
    volume, surface = float(np.prod(dims)), _surface(dims)

    if ("rt60" in preset) == ("materials" in preset):
        raise UserError(f"{source}: give exactly one of 'rt60' or 'materials'")
    if "rt60" in preset:
        value = preset["rt60"]
        rt60 = round(draw(value, rng, f"{source}: rt60"), 4)
        alpha = absorption_for_rt60(rt60, dims, air, source)
        wall_rate = eyring_decay_rate(alpha, volume, surface)
        walls, materials = (alpha,) * 6, ()
        bands = band_rt60s([wall_rate] * len(BAND_CENTRES), air)
    else:
        materials = _resolve_materials(preset["materials"], source, rng)
        coeffs = np.array([_material_coeffs(m, source) for m in materials])  # (6, bands)
        areas = _wall_areas(dims)
        mean_alpha = (areas[:, None] * coeffs).sum(0) / areas.sum()
        bands = band_rt60s([eyring_decay_rate(min(a, 0.99), volume, surface) for a in mean_alpha], air)
        walls = tuple(float(coeffs[w, list(MID_BANDS)].mean()) for w in range(6))
        rt60 = round(float(np.mean([bands[b] for b in MID_BANDS])), 6)
    return RoomSpec(name, dims, rt60, bands, tuple(round(float(a), 6) for a in walls), air, stage_centre,
                    model, max_order, materials)


def _wall_areas(dims) -> np.ndarray:
    x, y, z = dims
    return np.array([y * z, y * z, x * z, x * z, x * y, x * y])  # WALLS order


def _resolve_materials(spec, source: str, rng) -> tuple[str, ...]:
    if isinstance(spec, (str, list)):
        name = _choice(spec, rng)
        return (name,) * 6
    if isinstance(spec, dict):
        unknown = set(spec) - set(WALLS) - {"walls"}
        if unknown:
            raise UserError(f"{source}: materials: unknown walls {sorted(unknown)} (known: walls, {', '.join(WALLS)})")
        default = spec.get("walls")
        names = []
        for wall in WALLS:
            value = spec.get(wall, default)
            if value is None:
                raise UserError(f"{source}: materials: no material for the {wall} wall (give it or 'walls')")
            names.append(_choice(value, rng))
        return tuple(names)
    raise UserError(f"{source}: materials must be a name, a list of names or a table per wall")


def _material_coeffs(name: str, source: str) -> list[float]:
    import pyroomacoustics as pra

    try:
        material = pra.Material(name)
    except (KeyError, TypeError, ValueError):
        known = sorted(k for group in pra.materials_data["absorption"].values() for k in group)
        raise UserError(f"{source}: unknown material '{name}' (pyroomacoustics database: {', '.join(known)})") from None
    coeffs = list(material.energy_absorption["coeffs"])
    return (coeffs + coeffs[-1:] * len(BAND_CENTRES))[: len(BAND_CENTRES)]
