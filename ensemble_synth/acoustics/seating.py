"""Stage layouts: where the players sit, which way they face, how their instruments radiate.

Positions in presets are in the *stage frame*: origin at the stage centre on the floor,
x toward the audience's right, y toward the audience, z up (metres). Angles are degrees,
counter-clockwise seen from above; a player's ``facing`` of 0 looks at the audience.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import UserError
from ..music import instruments
from ..music.score import part_name
from ..presets import get_key, list_presets, load_preset, presets_root
from ..schema import Key, check_table

MIN_PLAYER_SPACING = 0.6  # m between two players' instruments; closer is an overlap

# Source directivity per family: pyroomacoustics cardioid-family parameter p
# (1 omni, 0.5 cardioid), elevation of the main lobe (deg, + up) and its azimuth
# relative to the player's facing (+ toward the player's right, the stage frame's CCW for a
# player facing the audience). Horns radiate from a bell pointing back and right.
FAMILY_DIRECTIVITY = {
    "strings": (0.7, 30.0, 0.0),
    "woodwinds": (0.8, -15.0, 0.0),
    "brass": (0.45, 0.0, 0.0),
}
INSTRUMENT_DIRECTIVITY = {
    "horn": (0.5, 0.0, 150.0),
    "flute": (0.8, 0.0, 60.0),  # the embouchure hole radiates to the player's right
}


@dataclass(frozen=True)
class Player:
    """A resolved player: world position of the instrument and its radiation pattern."""

    name: str  # part name, e.g. "1_violin"
    instrument: str
    position: tuple[float, float, float]  # world frame, metres
    azimuth: float  # world-frame azimuth of the main lobe, degrees
    colatitude: float  # degrees from +z
    p: float  # cardioid-family parameter (1 = omni)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Player":
        return cls(d["name"], d["instrument"], tuple(float(v) for v in d["position"]),
                   float(d["azimuth"]), float(d["colatitude"]), float(d["p"]))


ENSEMBLE_KEYS = {
    "instruments": Key(None, "list", random=False),
    "seats": Key(None, "list", random=False),
    "jitter": Key(0.0, low=0.0, high=5.0, random=False, unit="m"),
    "facing_jitter": Key(0.0, low=0.0, high=180.0, random=False, unit="degrees"),
    "focus": Key(4.0, low=0.1, high=100.0, random=False, unit="m"),
}
SEAT_KEYS = {
    "position": Key(None, "list", random=False),
    "height": Key(None, low=0.0, high=10.0, random=False, unit="m"),
    "facing": Key(None, low=-360.0, high=360.0, random=False, unit="degrees"),
}


def check_layout(preset: dict) -> dict:
    """Every key of an ensemble preset known and in range; errors name the file and the key."""
    source = preset.get("_source", "ensemble")
    check_table(preset, ENSEMBLE_KEYS, source, extra=("name", "description"))
    for i, seat in enumerate(preset.get("seats") or []):
        where = f"{source}: seats[{i}]"
        if not isinstance(seat, dict):
            raise UserError(f"{where}: expected a table with 'position' [x, y]")
        check_table(seat, SEAT_KEYS, where)
    ensemble_instruments(preset)
    return preset


def load_layout(layout) -> dict:
    """A layout preset name, a TOML path, or an already-loaded dict, checked."""
    return check_layout(load_preset("ensembles", layout))


def ensemble_instruments(layout: dict) -> list[str]:
    """The canonical instrument names of an ensemble preset, one per part, in score order."""
    source = layout.get("_source", "ensemble")
    names = layout.get("instruments")
    if not isinstance(names, list) or not names:
        raise UserError(f"{source}: key 'instruments': expected a non-empty list of instrument names, got {names!r}")
    out = []
    for name in names:
        try:
            out.append(instruments.get(name).name)
        except UserError as exc:
            raise UserError(f"{source}: key 'instruments': {exc}") from None
    return out


def layout_for(instrument_names: list[str]) -> str:
    """The ensemble preset whose instruments are these, in this order."""
    for name in list_presets("ensembles"):
        if ensemble_instruments(load_layout(name)) == list(instrument_names):
            return name
    raise UserError(f"no ensemble preset seats {', '.join(instrument_names)} "
                    f"(presets in {presets_root() / 'ensembles'}); add one")


def stage_to_world(stage_centre: tuple[float, float], xyz) -> np.ndarray:
    """Stage frame (x right, y toward the audience) -> room frame (the stage is at large y)."""
    x, y, z = xyz
    return np.array([stage_centre[0] + x, stage_centre[1] - y, z], dtype=float)


def stage_azimuth_to_world(angle_deg: float) -> float:
    """Stage-frame azimuth (0 = toward the audience, CCW) -> world azimuth (0 = +x, CCW)."""
    # Toward the audience is world -y (azimuth -90); mirroring y keeps CCW as CW, so negate.
    return (-90.0 - angle_deg + 180.0) % 360.0 - 180.0


def part_names(instrument_names: list[str]) -> list[str]:
    return [part_name(i, name) for i, name in enumerate(instrument_names, 1)]


def sample_players(layout: dict, instrument_names: list[str], stage_centre, rng: np.random.Generator) -> list[Player]:
    """Seat the parts (in order) on the layout's seats, with the layout's random jitter."""
    source = layout.get("_source", "layout")
    seats = get_key(layout, "seats", list, source)
    if len(seats) < len(instrument_names):
        raise UserError(f"{source}: layout has {len(seats)} seats but the ensemble has {len(instrument_names)} parts")
    jitter = get_key(layout, "jitter", float, source, 0.0)
    facing_jitter = get_key(layout, "facing_jitter", float, source, 0.0)
    focus = get_key(layout, "focus", float, source, 4.0)
    players = []
    for index, (name, seat) in enumerate(zip(part_names(instrument_names), seats)):
        where = f"{source}: seats[{index}]"
        inst = instruments.get(instrument_names[index])
        pos = get_key(seat, "position", list, where)
        if len(pos) != 2:
            raise UserError(f"{where}: position must be [x, y] in metres, got {pos!r}")
        height = get_key(seat, "height", float, where, _default_height(inst))
        x = float(pos[0]) + (rng.uniform(-jitter, jitter) if jitter else 0.0)
        y = float(pos[1]) + (rng.uniform(-jitter, jitter) if jitter else 0.0)
        if "facing" in seat:
            facing = get_key(seat, "facing", float, where)
        else:  # turned toward a point on the audience side, as a semicircle does
            facing = math.degrees(math.atan2(x, focus - y))
        if facing_jitter:
            facing += rng.uniform(-facing_jitter, facing_jitter)
        p, elevation, lobe_offset = INSTRUMENT_DIRECTIVITY.get(inst.name, FAMILY_DIRECTIVITY[inst.family])
        world = stage_to_world(stage_centre, (x, y, height))
        players.append(Player(
            name=name,
            instrument=inst.name,
            position=tuple(round(float(v), 6) for v in world),
            azimuth=round(stage_azimuth_to_world(facing + lobe_offset), 6),
            colatitude=round(90.0 - elevation, 6),
            p=p,
        ))
    check_spacing(players, source)
    return players


def _default_height(inst: instruments.Instrument) -> float:
    return {"cello": 0.7, "double_bass": 0.9, "bassoon": 0.9, "tuba": 0.9}.get(inst.name, 1.15)


def check_spacing(players: list[Player], source: str) -> None:
    for i, a in enumerate(players):
        for b in players[i + 1:]:
            d = float(np.linalg.norm(np.subtract(a.position, b.position)))
            if d < MIN_PLAYER_SPACING:
                raise UserError(f"{source}: players {a.name} and {b.name} overlap ({d:.2f} m apart, "
                                f"minimum {MIN_PLAYER_SPACING} m)")
