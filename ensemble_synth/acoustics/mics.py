"""Microphone setups: main arrays and spots, polar patterns, and the mix-down recipe.

A mic preset (``presets/mics/*.toml``) places a main array in front of the ensemble
(``[array]``: distance from the stage centre toward the audience, height), lists its
microphones (``[[mics]]``: name, pattern, offset in the stage frame, aim, output gains)
and optionally adds a spot microphone per player (``[spots]``), panned to the player's
place in the stereo image and delayed to line up with the main array, as an engineer
would. ``output`` is ``"stereo"`` (2 channels) or ``"mono"``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .. import distributions
from ..errors import UserError
from ..presets import get_key, load_preset
from ..schema import Key, check_table
from .physics import SPEED_OF_SOUND
from .seating import Player, stage_to_world

# First-order polar patterns: gain(theta) = p + (1 - p) cos(theta).
PATTERNS = {
    "omni": 1.0,
    "subcardioid": 0.75,
    "cardioid": 0.5,
    "supercardioid": 0.37,
    "hypercardioid": 0.25,
    "figure8": 0.0,
}
OUTPUTS = {"mono": 1, "stereo": 2}
PAN_SPREAD_DEG = 40.0  # a player this far off-axis (seen from the array) is panned hard


@dataclass(frozen=True)
class Mic:
    name: str
    position: tuple[float, float, float]  # world frame, metres
    azimuth: float  # world azimuth of the main axis, degrees
    colatitude: float  # degrees from +z
    pattern: str

    @property
    def p(self) -> float:
        return PATTERNS[self.pattern]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Mic":
        return cls(d["name"], tuple(float(v) for v in d["position"]), float(d["azimuth"]),
                   float(d["colatitude"]), d["pattern"])


@dataclass(frozen=True)
class Mixdown:
    """Output channel c = sum over mics m of gains[c][m] * (mic m delayed by delays[m] seconds)."""

    gains: tuple[tuple[float, ...], ...]  # (n_outputs, n_mics)
    delays: tuple[float, ...]  # (n_mics,) seconds

    @property
    def channels(self) -> int:
        return len(self.gains)

    def to_dict(self) -> dict:
        return {"gains": [list(row) for row in self.gains], "delays": list(self.delays)}

    @classmethod
    def from_dict(cls, d: dict) -> "Mixdown":
        return cls(tuple(tuple(float(g) for g in row) for row in d["gains"]), tuple(float(t) for t in d["delays"]))


def load_mics(mics) -> dict:
    """A mic preset name, a TOML path, or an already-loaded dict."""
    return check_mics(load_preset("mics", mics))


def draw(value, rng: np.random.Generator, where: str = "value") -> float:
    """A number drawn from a fixed value or any distribution (:mod:`...distributions`)."""
    return float(distributions.draw(value, rng, where))


MIC_KEYS = {
    "output": Key("stereo", "name", random=False),
    "array": Key({}, "table", random=False),
    "mics": Key([], "list", random=False),
    "spots": Key(None, "any"),
}
ARRAY_KEYS = {
    "distance": Key(3.0, low=0.0, high=100.0, unit="m"),
    "height": Key(3.0, low=0.0, high=50.0, unit="m"),
    "lateral": Key(0.0, low=-100.0, high=100.0, unit="m"),
    "target_height": Key(1.1, low=0.0, high=50.0, random=False, unit="m"),
    "fit_room": Key(False, "bool", random=False),
}
MIC_ENTRY_KEYS = {
    "name": Key(None, "name", random=False),
    "pattern": Key("omni", "name", random=False),
    "offset": Key([0.0, 0.0, 0.0], "list", random=False),
    "aim": Key(0.0, low=-360.0, high=360.0, random=False, unit="degrees"),
    "gains": Key(None, "any"),
}
SPOT_KEYS = {
    "pattern": Key("cardioid", "name", random=False),
    "distance": Key(0.9, low=0.1, high=20.0, unit="m"),
    "height": Key(1.8, low=0.0, high=50.0, unit="m"),
    "gain_db": Key(-6.0, low=-60.0, high=20.0, random=False, unit="dB"),
    "delay": Key(True, "bool", random=False),
}


def check_mics(preset: dict) -> dict:
    """Every key of a mic preset known and in range; errors name the file and the key."""
    source = preset.get("_source", "mics")
    check_table(preset, MIC_KEYS, source, extra=("name", "description"))
    check_table(preset.get("array", {}), ARRAY_KEYS, f"{source}: [array]")
    for i, mic in enumerate(preset.get("mics", [])):
        check_table(mic, MIC_ENTRY_KEYS, f"{source}: mics[{i}]")
    if preset.get("spots") is not None:
        check_table(preset["spots"], SPOT_KEYS, f"{source}: [spots]")
    return preset


def direction_angles(vector) -> tuple[float, float]:
    """World azimuth and colatitude (degrees) of a direction vector."""
    x, y, z = vector
    azimuth = math.degrees(math.atan2(y, x))
    colatitude = math.degrees(math.atan2(math.hypot(x, y), z))
    return azimuth, colatitude


def pattern_p(name: str, source: str) -> float:
    if name not in PATTERNS:
        raise UserError(f"{source}: unknown polar pattern '{name}' (known: {', '.join(PATTERNS)})")
    return PATTERNS[name]


def constant_power_pan(position: float) -> tuple[float, float]:
    """position -1 (hard left) .. +1 (hard right) -> (left, right) gains."""
    angle = (np.clip(position, -1.0, 1.0) + 1.0) * math.pi / 4.0
    return math.cos(angle), math.sin(angle)


def sample_mics(preset: dict, players: list[Player], stage_centre, rng: np.random.Generator) -> tuple[list[Mic], Mixdown]:
    """Resolve a mic preset against the seated players: positions, aims, gains and delays."""
    source = preset.get("_source", "mics")
    output = get_key(preset, "output", str, source, "stereo")
    if output not in OUTPUTS:
        raise UserError(f"{source}: output must be one of {', '.join(OUTPUTS)}, got '{output}'")
    n_out = OUTPUTS[output]
    array = get_key(preset, "array", dict, source, {})
    where = f"{source}: [array]"
    distance = draw(array.get("distance", 3.0), rng, f"{where} key 'distance'")
    height = draw(array.get("height", 3.0), rng, f"{where} key 'height'")
    lateral = draw(array.get("lateral", 0.0), rng, f"{where} key 'lateral'")
    target_height = get_key(array, "target_height", float, where, 1.1)
    if get_key(array, "fit_room", bool, where, False):  # stay 1 m clear of the front wall in short rooms
        distance = min(distance, float(stage_centre[1]) - 1.0)
    centre = stage_to_world(stage_centre, (lateral, distance, height))
    target = stage_to_world(stage_centre, (0.0, 0.0, target_height))

    mics: list[Mic] = []
    gains: list[list[float]] = []
    delays: list[float] = []
    for index, spec in enumerate(get_key(preset, "mics", list, source, [])):
        where = f"{source}: mics[{index}]"
        name = get_key(spec, "name", str, where)
        pattern = get_key(spec, "pattern", str, where, "omni")
        pattern_p(pattern, where)
        offset = get_key(spec, "offset", list, where, [0.0, 0.0, 0.0])
        if len(offset) != 3:
            raise UserError(f"{where}: offset must be [x, y, z] in metres, got {offset!r}")
        # Offsets are in the stage frame; y toward the audience is world -y.
        position = centre + np.array([offset[0], -offset[1], offset[2]], dtype=float)
        azimuth, colatitude = direction_angles(target - position)
        azimuth += get_key(spec, "aim", float, where, 0.0)  # + turns toward the audience's left
        mic_gains = get_key(spec, "gains", list, where, [1.0 / n_out] * n_out if n_out == 1 else None)
        if mic_gains is None or len(mic_gains) != n_out:
            raise UserError(f"{where}: gains must list one gain per output channel ({n_out} for {output})")
        mics.append(_mic(name, position, azimuth, colatitude, pattern))
        gains.append([float(g) for g in mic_gains])
        delays.append(0.0)

    spots = get_key(preset, "spots", dict, source, None)
    if spots is not None:
        where = f"{source}: [spots]"
        pattern = get_key(spots, "pattern", str, where, "cardioid")
        pattern_p(pattern, where)
        spot_distance = draw(spots.get("distance", 0.9), rng, f"{where} key 'distance'")
        spot_height = draw(spots.get("height", 1.8), rng, f"{where} key 'height'")
        gain = 10.0 ** (get_key(spots, "gain_db", float, where, -6.0) / 20.0)
        align = get_key(spots, "delay", bool, where, True)
        for player in players:
            instrument = np.array(player.position)
            toward_array = centre[:2] - instrument[:2]
            toward_array /= max(np.linalg.norm(toward_array), 1e-9)
            position = np.array([*(instrument[:2] + spot_distance * toward_array), spot_height])
            azimuth, colatitude = direction_angles(instrument - position)
            mics.append(_mic(f"spot_{player.name}", position, azimuth, colatitude, pattern))
            if n_out == 2:
                seen = instrument - centre  # world; the audience's right is +x
                angle = math.degrees(math.atan2(seen[0], max(seen[1], 1e-9)))
                left, right = constant_power_pan(angle / PAN_SPREAD_DEG)
                gains.append([gain * left, gain * right])
            else:
                gains.append([gain])
            lag = (np.linalg.norm(instrument - centre) - np.linalg.norm(instrument - position)) / SPEED_OF_SOUND
            delays.append(round(max(float(lag), 0.0), 9) if align else 0.0)

    if not mics:
        raise UserError(f"{source}: no microphones (add [[mics]] or [spots])")
    names = [m.name for m in mics]
    if len(set(names)) != len(names):
        raise UserError(f"{source}: microphone names must be unique, got {names}")
    by_channel = tuple(tuple(row[c] for row in gains) for c in range(n_out))
    return mics, Mixdown(by_channel, tuple(delays))


def _mic(name, position, azimuth, colatitude, pattern) -> Mic:
    return Mic(name, tuple(round(float(v), 6) for v in position),
               round((azimuth + 180.0) % 360.0 - 180.0, 6), round(colatitude, 6), pattern)
