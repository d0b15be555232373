"""Rendering one track: a resolved track spec -> performed notes, dry stems, images, mixture.

``render_track`` is a pure function of the spec (``sample_track``'s dict or a
``metadata.json``): the same spec renders the same samples.
"""

from __future__ import annotations

import numpy as np

from ..acoustics.capture import spatialize
from ..acoustics.scene import Scene
from ..errors import UserError
from ..music.arrangement import load_piece
from ..music.performance import controls, perform
from ..music.score import Part
from ..synthesis import physical, sample_library, sampler
from ..synthesis.fluid_renderer import PartVoice, pad_stack, render_parts
from ..synthesis.soundfonts import resolve as resolve_soundfont
from ..synthesis.timbre import apply_eq
from . import augment as augment_mod
from .mixing import MixSpec, match_levels, normalise_mixture
from .noise import add_noise


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


def render_track(track: dict, cache=None, augmentations=()) -> RenderedTrack:
    """Render a track spec (as ``sample_track`` returns it, or a ``metadata.json``).

    The pipeline: perform the arrangement -> score augmentations -> FluidSynth, one dry stem
    a part -> timbre EQ -> dry levels -> dry augmentations -> the scene's impulse responses
    (images at the output channels) -> image augmentations -> each part's background noise
    (:mod:`.noise`, when the preset asks for it) -> the image levels (``[mix] balance =
    "captured"``) -> the mixture's loudness.
    """
    sr = int(track["sample_rate"])
    records = track.get("augmentations", [])
    augs = augment_mod.resolve(records, list(augmentations))
    part_specs = track["parts"]
    notes = perform(load_piece(track["source"]), part_specs, track["performance"],
                    onsets_after_holds=track.get("spec_version", 1) >= 2)
    notes = augment_mod.apply_stage("score", notes, records, augs, sr)
    parts = [Part(p["name"], p["instrument"], n) for p, n in zip(part_specs, notes)]
    empty = [p.name for p in parts if len(p.notes) == 0]
    if empty:
        raise UserError(f"track {track['track_id']}: no notes for {', '.join(empty)} in the excerpt")
    duration = max(p.end_time for p in parts)
    dry, out_of_range = render_dry(parts, part_specs, sr, [controls(p, duration) for p in part_specs],
                                   f"track {track['track_id']}")
    for i, p in enumerate(part_specs):
        dry[i] = apply_eq(dry[i], sr, p["eq_low_db"], p["eq_high_db"], p.get("eq_peaks", ()))
    gains, names = [p["gain_db"] for p in part_specs], [p["name"] for p in part_specs]
    what = (f"track {track['track_id']}", [p["soundfont"] for p in part_specs])
    dry_gains = match_levels(dry, gains, sr, names, what)
    dry = augment_mod.apply_stage("dry", dry, records, augs, sr)
    if track.get("scene") is not None:
        images = spatialize(dry, Scene.from_dict(track["scene"]), sr, cache)
    else:
        images = dry[:, None, :].copy()
    images = augment_mod.apply_stage("image", images, records, augs, sr)
    images = np.ascontiguousarray(images, dtype=np.float32)
    if track.get("noise"):
        add_noise(images, track["noise"], sr)
    mix = MixSpec.from_dict(track["mix"])
    balanced = {}
    if mix.balance == "captured" and (track.get("scene") is not None or track.get("noise")):
        # (without a room or noise the images are the dry stems, balanced already)
        balanced["image_gain_db"] = match_levels(images, gains, sr, names, what)
    report = {"dry_gain_db": dry_gains, **balanced, **normalise_mixture(images, mix, sr),
              "samples": int(images.shape[-1]), "duration": images.shape[-1] / sr, "channels": int(images.shape[1]),
              "notes": [int(len(n)) for n in notes]}
    if out_of_range:
        report["out_of_range_notes"] = out_of_range
    rendered = RenderedTrack(track, images, dry, notes, report)
    check_track(rendered)
    return rendered


def render_dry(parts: list[Part], part_specs: list[dict], sr: int, part_controls: list, source: str):
    """The dry stems, (n_parts, n) float32: FluidSynth for soundfont parts, the sampler for
    parts whose spec has a ``sampler`` table, STK for those with a ``physical`` table; and
    ``{part: count}`` of sampled or modelled notes outside their source's range (empty when
    none). A track of soundfont parts only renders exactly as before."""
    others = [i for i, p in enumerate(part_specs) if p.get("sampler") or p.get("physical")]
    if not others:
        return render_parts(parts, [_fluid_voice(p) for p in part_specs], sr, part_controls), {}
    fluid = [i for i in range(len(parts)) if i not in others]
    stems: list = [None] * len(parts)
    if fluid:
        voices = [_fluid_voice(part_specs[i]) for i in fluid]
        rendered = render_parts([parts[i] for i in fluid], voices, sr, [part_controls[i] for i in fluid])
        for row, i in enumerate(fluid):
            stems[i] = rendered[row]
    out_of_range = {}
    for i in others:
        where = f"{source}: part {parts[i].name}"
        if part_specs[i].get("physical"):
            voice = physical.PhysicalVoice.from_record(part_specs[i]["physical"], float(part_specs[i]["detune_cents"]))
            stems[i] = physical.render(parts[i].notes, voice, sr, part_controls[i], where)
            count = physical.out_of_range(parts[i].notes, voice.model)
        else:
            table = part_specs[i]["sampler"]
            package = sample_library.resolve_package(table["library"], table["package"], table["version"])
            voice = sampler.SampledVoice(package, float(part_specs[i]["detune_cents"]), int(table["seed"]),
                                         **_envelope(part_specs[i]))
            stems[i] = sampler.render(parts[i].notes, voice, sr, part_controls[i], where)
            count = sampler.out_of_range(parts[i].notes, package, sr)
        if count:
            out_of_range[parts[i].name] = count
    return pad_stack(stems), out_of_range


def _fluid_voice(part_spec: dict) -> PartVoice:
    """The FluidSynth voice of a soundfont part's spec."""
    return PartVoice(resolve_soundfont(part_spec["soundfont"]), part_spec["program"], 0, part_spec["detune_cents"],
                     release_scale=_envelope(part_spec)["release_scale"])


def _envelope(part_spec: dict) -> dict:
    """A part spec's ``envelope`` (see :mod:`..synthesis.timbre`) as voice arguments."""
    env = part_spec.get("envelope") or {}
    return {"attack_skip_s": env.get("attack_skip_ms", 0.0) / 1000.0, "release_scale": env.get("release_scale", 1.0)}


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
