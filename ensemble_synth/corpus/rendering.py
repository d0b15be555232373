"""Rendering one track: a resolved track spec -> performed notes, dry stems, images, mixture.

``render_track`` is a pure function of the spec (``sample_track``'s dict or a
``metadata.json``): the same spec renders the same samples.
"""

from __future__ import annotations

import numpy as np

from ..acoustics.capture import spatialize
from ..acoustics.scene import Scene
from ..errors import UserError
from ..music.performance import controls, perform
from ..music.score import Part
from ..synthesis.fluid_renderer import PartVoice, render_parts
from ..synthesis.soundfonts import resolve as resolve_soundfont
from ..synthesis.timbre import apply_eq
from . import augment as augment_mod
from .sampling import load_piece

DRY_LOUDNESS_LUFS = -30.0  # every dry stem is matched to this before the part gains



class RenderedTrack:
    """A rendered track: images (the targets), mixture, dry stems and performed notes."""

    def __init__(self, spec_dict, images, dry, notes, report):
        self.spec = spec_dict
        self.images = images  # (n_parts, channels, n) float32
        self.dry = dry  # (n_parts, n_dry) float32
        self.notes = notes  # list of (n, 4) arrays, seconds
        self.report = report  # what rendering measured and decided (gains, loudness)

    @property
    def mix(self) -> np.ndarray:
        return self.images.sum(axis=0, dtype=np.float32)

    @property
    def part_names(self) -> list[str]:
        return [p["name"] for p in self.spec["parts"]]

    def metadata(self) -> dict:
        return {**self.spec, "rendered": self.report}


def _loudness(meter, audio: np.ndarray) -> float:
    """Integrated loudness of (n,) or (channels, n) audio; -inf when silent."""
    data = audio.T if audio.ndim == 2 else audio
    if len(data) < meter.rate:  # pyloudnorm needs at least one 400 ms block; pad short clips
        pad = [(0, meter.rate - len(data))] + ([(0, 0)] if data.ndim == 2 else [])
        data = np.pad(data, pad)
    with np.errstate(divide="ignore"):
        return float(meter.integrated_loudness(data.astype(np.float64)))


def render_track(track: dict, cache=None, augmentations=()) -> RenderedTrack:
    """Render a track spec (as ``sample_track`` returns it, or a ``metadata.json``)."""
    import pyloudnorm

    sr = int(track["sample_rate"])
    records = track.get("augmentations", [])
    augs = augment_mod.resolve(records, list(augmentations))
    piece = load_piece(track["source"])
    notes = perform(piece, track["parts"], track["performance"])
    for record in records:
        if record["stage"] == "score":
            notes = augs[record["name"]].apply(notes, record["params"], sr)
    parts = [Part(p["name"], p["instrument"], n) for p, n in zip(track["parts"], notes)]
    empty = [p.name for p in parts if len(p.notes) == 0]
    if empty:
        raise UserError(f"track {track['track_id']}: no notes for {', '.join(empty)} in the excerpt")
    voices = [PartVoice(resolve_soundfont(p["soundfont"]), p["program"], 0, p["detune_cents"]) for p in track["parts"]]
    duration = max(p.end_time for p in parts)
    dry = render_parts(parts, voices, sr, [controls(p, duration) for p in track["parts"]])
    meter = pyloudnorm.Meter(sr)
    report = {"dry_gain_db": [], "normalisation_gain_db": 0.0}
    for i, p in enumerate(track["parts"]):
        dry[i] = apply_eq(dry[i], sr, p["eq_low_db"], p["eq_high_db"], p.get("eq_peaks", ()))
        loud = _loudness(meter, dry[i])
        if not np.isfinite(loud):
            raise UserError(f"track {track['track_id']}: part {p['name']} rendered silent with {p['soundfont']}")
        gain_db = DRY_LOUDNESS_LUFS - loud + p["gain_db"]
        dry[i] *= np.float32(10 ** (gain_db / 20))
        report["dry_gain_db"].append(round(gain_db, 6))
    for record in records:
        if record["stage"] == "dry":
            dry = augs[record["name"]].apply(dry, record["params"], sr)
    if track.get("scene") is not None:

        images = spatialize(dry, Scene.from_dict(track["scene"]), sr, cache)
    else:
        images = dry[:, None, :].copy()
    for record in records:
        if record["stage"] == "image":
            images = augs[record["name"]].apply(images, record["params"], sr)
    images = np.ascontiguousarray(images, dtype=np.float32)
    mix = images.sum(axis=0, dtype=np.float32)
    loud = _loudness(meter, mix)
    gain_db = track["mix"]["loudness_lufs"] - loud
    peak = float(np.abs(mix).max()) * 10 ** (gain_db / 20)
    if peak > track["mix"]["peak_ceiling"]:
        gain_db += 20 * np.log10(track["mix"]["peak_ceiling"] / peak)
    images *= np.float32(10 ** (gain_db / 20))
    report["normalisation_gain_db"] = round(float(gain_db), 6)
    # Loudness is scale-invariant (the gates move with the gain), so no second measurement.
    report["loudness_lufs"] = round(float(loud + gain_db), 3)
    report["samples"] = int(images.shape[-1])
    report["duration"] = images.shape[-1] / sr
    report["channels"] = int(images.shape[1])
    report["notes"] = [int(len(n)) for n in notes]
    rendered = RenderedTrack(track, images, dry, notes, report)
    check_track(rendered)
    return rendered


def check_track(rendered: RenderedTrack) -> None:
    """Reject a track with NaN, a silent part that has notes, or a clipping mixture."""
    tid = rendered.spec["track_id"]
    if not np.all(np.isfinite(rendered.images)):
        raise UserError(f"track {tid}: rendered audio contains NaN or infinity")
    for name, image, notes in zip(rendered.part_names, rendered.images, rendered.notes):
        if len(notes) and not np.any(image):
            raise UserError(f"track {tid}: part {name} is silent although it has {len(notes)} notes")
    peak = float(np.abs(rendered.mix).max())
    if peak >= 1.0:
        raise UserError(f"track {tid}: mixture clips (peak {peak:.3f})")
