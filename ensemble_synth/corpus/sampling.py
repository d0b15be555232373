"""Sampling: a corpus preset and a seed -> one fully resolved track spec per track.

``sample_track`` is a short composition of the stages, each of which owns its spec and its
``sample``: the ensemble and the scene (shared by a room group: :mod:`..acoustics.scene`),
the arrangement (:mod:`..music.arrangement`), the performance (:mod:`..music.performance`),
the timbre (:mod:`..synthesis.timbre`), the mix (:mod:`.mixing`) and the augmentations
(:mod:`.augment`). Every stage draws from its own random stream (:class:`TrackStreams`). The
result is the JSON-safe dict that ``metadata.json`` holds; rendering it is :mod:`.rendering`'s job.
"""

from __future__ import annotations

import json

import numpy as np

from ..acoustics.scene import sample_scene
from ..acoustics.seating import ensemble_instruments, load_layout
from ..distributions import child_rng
from ..errors import UserError
from ..music.arrangement import (
    Arrangement,
    choose_piece,
    draw_transpose,
    octave_to_fit,
    sample_window,
)
from ..music.performance import PartPerformance, PerformanceSpec, sample_tempo
from ..music.repertoire import PITCH, Repertoire, RepertoireChoice, open_repertoire
from ..music.score import part_name
from ..synthesis.timbre import PartTimbre
from . import augment as augment_mod
from .format import SPEC_VERSION
from .mixing import MixSpec
from .noise import sample_noise
from .preset import SPLITS, draw_preset, resolve_preset



class TrackStreams:
    """The random streams of one track, one per stage, keyed by the stage's name.

    The four streams of the first corpora (repertoire, performance, timbre, mix) are the
    children of one ``"track"`` key in that order, and the two added later keep their own
    keys, so that every corpus keeps its bytes; any other stage (an augmentation, a new
    stage such as ``repertoire.source``, the source of a track where the preset gives a
    choice of them) gets ``child_rng(seed, stage, split, index)``.
    """

    SPAWNED = ("repertoire", "performance", "timbre", "mix")
    KEYED = {"performance.expression": "expression", "timbre.pool": "timbre_extra"}

    def __init__(self, seed: int, split: str, index: int):
        self.seed, self.split, self.index = int(seed), split, int(index)
        children = child_rng(seed, "track", split, index).spawn(len(self.SPAWNED))
        self._streams = dict(zip(self.SPAWNED, children))

    def __getitem__(self, stage: str) -> np.random.Generator:
        if stage not in self._streams:
            self._streams[stage] = child_rng(self.seed, self.KEYED.get(stage, stage), self.split, self.index)
        return self._streams[stage]

    def augmentation(self, name: str) -> np.random.Generator:
        return self[f"augment:{name}"]


def plan(preset: dict) -> list[tuple[str, int, int]]:
    """(split, index in split, room group) for every track, in corpus order."""
    per_room = preset["tracks"]["per_room"]
    return [(split, i, i // per_room) for split in SPLITS for i in range(preset["tracks"][split])]


def track_id(preset: dict, split: str, index: int) -> str:
    return f"{preset['name']}-{split}-{index:05d}"


def ensemble_for_group(preset: dict, seed: int, split: str, group: int) -> tuple[str | dict, list[str]]:
    """The layout preset (name or inline table) and its instruments for a room group."""
    rng = child_rng(seed, "ensemble", split, group)
    layout = draw_preset(preset["ensemble"]["layout"], rng, "[ensemble] layout")
    return layout, ensemble_instruments(load_layout(layout))


def scene_for_group(preset: dict, seed: int, split: str, group: int, layout, names: list[str]):
    """The room, seating and microphones shared by the tracks of one room group, and their labels."""
    room = preset["room"]
    if not room.get("enabled", True):
        return None, {"room": "none", "mics": "none"}
    rng = child_rng(seed, "scene", split, group)
    room_choice = draw_preset(room["room"], rng, "[room] room")
    mics_choice = draw_preset(room["mics"], rng, "[room] mics")
    scene = sample_scene(room_choice, layout, mics_choice, names, rng)
    return scene, {"room": _preset_label(room_choice), "mics": _preset_label(mics_choice)}


def _preset_label(choice) -> str:
    return choice if isinstance(choice, str) else str(choice.get("name", "custom"))


def repertoire_of(preset: dict) -> Repertoire | RepertoireChoice:
    """The repertoire a resolved corpus preset draws from (one source or a choice of them)."""
    rep = preset["repertoire"]
    return open_repertoire(rep["source"], rep["exclude"], rep["exclude_melodies"], preset.get("_source", "<preset>"))


def sample_arrangement(config: dict, repertoire: Repertoire | RepertoireChoice, names: list[str], perf_config: dict,
                       streams: TrackStreams) -> tuple[Arrangement, float, int]:
    """The piece, voices, octaves and excerpt, with the tempo and transposition that decide them.

    A choice of sources is drawn first, from the ``repertoire.source`` stream: a preset of one
    source never touches that stream, and the piece is drawn from the ``repertoire`` stream
    either way.
    """
    rng = streams["repertoire"]
    drawn = isinstance(repertoire, RepertoireChoice)
    source = repertoire.draw(streams["repertoire.source"]) if drawn else repertoire
    try:
        piece, voices = choose_piece(source, names, config["part_policy"], rng)
    except UserError as exc:
        if not drawn:
            raise
        raise UserError(f"{repertoire.where}: {exc}") from None  # names the file; the message names the source
    tempo = sample_tempo(perf_config, piece.tempo_bpm, streams["performance"])
    window = sample_window(piece, voices, float(config["excerpt_seconds"]), tempo, rng)
    octaves = [octave_to_fit(piece.voices[v][:, PITCH], name) for v, name in zip(voices, names)]
    transpose = draw_transpose(perf_config["transpose"], piece, voices, names, octaves, streams["performance"])
    arrangement = Arrangement(piece, tuple(voices), tuple(octaves), window, source.source, drawn)
    return arrangement, tempo, transpose


def sample_track(
    preset: str | dict,
    split: str,
    index: int,
    seed: int,
    repertoire: Repertoire | RepertoireChoice | None = None,
    augmentations=(),
    scene=None,
) -> dict:
    """Draw every random choice of one track; returns the JSON-safe track spec.

    ``scene``: the (scene, labels) pair of the track's room group, when the caller has
    sampled it already (tracks of one group share it).
    """
    preset = resolve_preset(preset)
    from_preset = augment_mod.from_preset(preset.get("augment", []), preset.get("_source", "<preset>"))
    augmentations = augment_mod.check([*from_preset, *augmentations])
    rep_cfg, perf_cfg = preset["repertoire"], preset["performance"]
    repertoire = repertoire or repertoire_of(preset)
    group = index // preset["tracks"]["per_room"]
    layout, names = ensemble_for_group(preset, seed, split, group)
    scene, scene_labels = scene if scene is not None else scene_for_group(preset, seed, split, group, layout, names)
    streams = TrackStreams(seed, split, index)

    arrangement, tempo, transpose = sample_arrangement(rep_cfg, repertoire, names, perf_cfg, streams)
    performance = PerformanceSpec.sample(perf_cfg, streams["performance"], tempo, arrangement.window, transpose)
    span = arrangement.window[1] - arrangement.window[0]
    seconds = span * 60.0 / tempo + 2.0
    players = [PartPerformance.sample(perf_cfg, streams["performance"], streams["performance.expression"], seconds)
               for _ in names]
    timbres = [PartTimbre.sample(preset["timbre"], name, streams["timbre"], streams["timbre.pool"],
                                 streams["timbre.envelope"]) for name in names]
    gains, mix = MixSpec.sample(preset["mix"], len(names), streams["mix"])
    noise = sample_noise(preset.get("noise", {}), len(names), streams["noise"])
    context = {"instruments": names, "sample_rate": preset["sample_rate"], "split": split}
    parts = [
        {"name": part_name(i, name), "instrument": name, "voice": voice, "octave": octave,
         **timbre.voice(), **player.timing(), "gain_db": gain, **timbre.extras(), **player.expression()}
        for i, (name, voice, octave, timbre, player, gain) in enumerate(
            zip(names, arrangement.voices, arrangement.octaves, timbres, players, gains), 1)
    ]
    track = {
        "spec_version": SPEC_VERSION,
        "track_id": track_id(preset, split, index),
        "split": split,
        "index": index,
        "room_group": group,
        "corpus": preset["name"],
        "root_seed": int(seed),
        "sample_rate": preset["sample_rate"],
        "source": arrangement.source(),
        "ensemble": layout if isinstance(layout, str) else layout.get("name", "custom"),
        "performance": performance.to_dict(),
        "parts": parts,
        "room": scene_labels,
        "scene": scene.to_dict() if scene is not None else None,
        "mix": mix.to_dict(),
        **({"noise": noise} if noise is not None else {}),
        "augmentations": augment_mod.sample_records(augmentations, streams.augmentation, context),
    }
    # Exactly what metadata.json will hold (tuples become lists), so a spec in memory and
    # the same spec read back from disk are equal and render the same.
    return json.loads(json.dumps(track))
