"""Scenes: a room, seated players and microphones with every random choice written down.

:func:`sample_scene` resolves a room, a seating and a microphone setup into a
:class:`Scene`; ``Scene.to_dict``/``from_dict`` is its JSON form in ``metadata.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from .mics import Mic, Mixdown, load_mics, sample_mics
from .rooms import MIN_WALL_DISTANCE, RoomSpec, load_room, sample_room
from .seating import Player, load_layout, sample_players

SCENE_ATTEMPTS = 50  # draws of a room, seating and microphones before a scene that does not fit is an error

SCENE_VERSION = 1


@dataclass(frozen=True)
class Scene:
    """A room, seated players, microphones and their mix-down: everything resolved."""

    room: RoomSpec
    players: tuple[Player, ...]
    mics: tuple[Mic, ...]
    mixdown: Mixdown
    seed: int  # seeds the random parts of the impulse responses (the diffuse tail)

    @property
    def output_channels(self) -> int:
        return self.mixdown.channels

    def to_dict(self) -> dict:
        return {
            "version": SCENE_VERSION,
            "room": self.room.to_dict(),
            "players": [p.to_dict() for p in self.players],
            "mics": [m.to_dict() for m in self.mics],
            "mixdown": self.mixdown.to_dict(),
            "seed": int(self.seed),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Scene":
        return cls(
            room=RoomSpec.from_dict(d["room"]),
            players=tuple(Player.from_dict(p) for p in d["players"]),
            mics=tuple(Mic.from_dict(m) for m in d["mics"]),
            mixdown=Mixdown.from_dict(d["mixdown"]),
            seed=int(d["seed"]),
        )


def sample_scene(room, layout, mics, instruments: list[str], rng: np.random.Generator) -> Scene:
    """Resolve room, seating and microphones (presets, TOML paths or dicts) for these parts."""
    if not instruments:
        raise UserError("an ensemble needs at least one part")
    room_preset, layout_preset, mic_preset = load_room(room), load_layout(layout), load_mics(mics)
    # Ranges can combine into a scene that does not fit (a tall microphone array in a low
    # room): draw again from the same stream. Presets that never fit still fail, naming why.
    for attempt in range(SCENE_ATTEMPTS):
        room_spec = sample_room(room_preset, rng)
        players = sample_players(layout_preset, list(instruments), room_spec.stage_centre, rng)
        mic_list, mixdown = sample_mics(mic_preset, players, room_spec.stage_centre, rng)
        try:
            room_source = room_preset.get("_source", "room")
            check_inside(room_spec, players, f"{room_source} with the seating of {layout_preset.get('_source', 'layout')}")
            check_inside(room_spec, mic_list, f"{room_source} with the microphones of {mic_preset.get('_source', 'mics')}")
            break
        except UserError:
            if attempt == SCENE_ATTEMPTS - 1:
                raise
    seed = int(rng.integers(0, 2**31 - 1))
    return Scene(room_spec, tuple(players), tuple(mic_list), mixdown, seed)


def check_inside(room: RoomSpec, things, source: str) -> None:
    """Players and microphones must be in the room and not against a wall."""
    for thing in things:
        pos = np.array(thing.position)
        gap = float(min(pos.min(), (np.array(room.dimensions) - pos).min()))
        if gap < 0:
            raise UserError(f"{source}: {thing.name} at {_fmt(pos)} is outside the room {_fmt(room.dimensions)} m")
        if gap < MIN_WALL_DISTANCE:
            raise UserError(f"{source}: {thing.name} at {_fmt(pos)} is {gap:.2f} m from a wall of the room "
                            f"{_fmt(room.dimensions)} m (minimum {MIN_WALL_DISTANCE} m)")


def _fmt(xyz) -> str:
    return "(" + ", ".join(f"{float(v):.2f}" for v in xyz) + ")"
