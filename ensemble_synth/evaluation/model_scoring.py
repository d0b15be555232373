"""Scoring a trained separator on a dataset: separate every track, score every part."""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from .metrics import METRICS
from .report import TrackResult, score_arrays, summarize


def references_for(separator, track) -> tuple[list[str], list[str], np.ndarray]:
    """(output names, instruments, references (k, channels, n)) of the parts the model separates.

    Fixed-ensemble models: each output takes the first unused part of its instrument.
    Target models: the target part, and the sum of the other parts as the accompaniment.
    """
    stems = track.stems
    if separator.target is not None:
        hits = [i for i, inst in enumerate(track.instruments) if inst == separator.target]
        if not hits:
            return [], [], np.zeros((0,) + stems.shape[1:], np.float32)
        own = hits[0]
        rest = stems.sum(axis=0) - stems[own]
        return list(separator.output_names), [separator.target, "accompaniment"], np.stack([stems[own], rest])
    matched = output_parts(separator, track)
    used = {i for i in matched if i is not None}
    names, insts, refs = [], [], []
    for name, inst, i in zip(separator.output_names, separator.instruments, matched):
        if i is not None:
            names.append(name)
            insts.append(inst)
            refs.append(stems[i])
    if len(used) != len(track.instruments):
        missing = [track.instruments[i] for i in range(len(track.instruments)) if i not in used]
        raise UserError(f"track {track.name}: the model separates {', '.join(separator.instruments)}, "
                        f"not {', '.join(missing)}")
    return names, insts, np.stack(refs)


def output_parts(separator, track) -> list[int | None]:
    """For each output of a fixed-ensemble model, the index of the track's part it separates:
    the first part of its instrument not taken by an earlier output (None where there is none)."""
    used: set[int] = set()
    matched: list[int | None] = []
    for inst in separator.instruments:
        hit = next((i for i, part_inst in enumerate(track.instruments) if part_inst == inst and i not in used), None)
        if hit is not None:
            used.add(hit)
        matched.append(hit)
    return matched


def notes_for(separator, track) -> list:
    """The track's notes (``track.notes``, per part) in the order of the model's outputs, for a
    score-conditioned model; a track without notes is refused naming it."""
    if track.notes is None:
        raise UserError(f"track {track.name}: the model is score-conditioned but the data set gives no notes "
                        "for this track (Bach10 -GTNotes.mat, URMP Notes_*.txt)")
    return [None if i is None else track.notes[i] for i in output_parts(separator, track)]


def evaluate_model(separator, tracks, metrics=METRICS, progress: bool = False) -> list[TrackResult]:
    """Separate every track with ``separator`` and score the parts it separates.

    A track whose mixture has no samples or holds NaN or infinite samples is refused
    (:class:`UserError` naming the track), as are NaN or infinite stems. A score-conditioned
    model is given each track's notes (:func:`notes_for`).
    """
    from tqdm import tqdm

    results = []
    for track in tqdm(tracks, desc="evaluate", unit="track", disable=not progress):
        outputs, insts, refs = references_for(separator, track)
        if not outputs:
            continue
        score = {"notes": notes_for(separator, track)} if getattr(separator, "conditioned", False) else {}
        estimated = separator.separate(track.mixture, track.sample_rate, adapt_channels=True,
                                       name=f"track {track.name}", **score)
        ests = np.stack([estimated[name] for name in outputs])
        results.append(score_arrays(track.name, refs, ests, track.sample_rate, outputs, insts, metrics=metrics))
    return results


def evaluate_mixture(tracks, metrics=("SDR",)) -> list[TrackResult]:
    """The do-nothing reference: every part estimated as the mixture divided by the number of parts.

    A separator that scores below it has made the parts worse than the mixture already was.
    """
    results = []
    for track in tracks:
        k = len(track.stems)
        estimates = np.repeat(track.mixture[None] / k, k, axis=0).astype(np.float32)
        results.append(score_arrays(track.name, track.stems, estimates, track.sample_rate, list(track.parts),
                                    list(track.instruments), metrics=metrics))
    return results


def mean_sdr(results: list[TrackResult]) -> dict:
    """Per instrument the mean over tracks of each part's frame-median SDR, and their mean
    over instruments (an accompaniment output is left out of that mean)."""
    rows = [r for r in summarize(results, metrics=("SDR",)) if r["instrument"] != "all"]
    per_inst = {r["instrument"]: {"mean": r["SDR mean"], "median": r["SDR"], "tracks": r["tracks"]} for r in rows}
    means = [v["mean"] for k, v in per_inst.items() if k != "accompaniment" and np.isfinite(v["mean"])]
    return {"instruments": per_inst, "mean": float(np.mean(means)) if means else None}
