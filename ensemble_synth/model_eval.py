"""Scoring a trained separator on a dataset: separate every track, score every part."""

from __future__ import annotations

import numpy as np

from .errors import UserError
from .evaluation import METRICS, evaluate_sources


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
    used: set[int] = set()
    names, insts, refs = [], [], []
    for name, inst in zip(separator.output_names, separator.instruments):
        for i, part_inst in enumerate(track.instruments):
            if part_inst == inst and i not in used:
                used.add(i)
                names.append(name)
                insts.append(inst)
                refs.append(stems[i])
                break
    if len(used) != len(track.instruments):
        missing = [track.instruments[i] for i in range(len(track.instruments)) if i not in used]
        raise UserError(f"track {track.name}: the model separates {', '.join(separator.instruments)}, "
                        f"not {', '.join(missing)}")
    return names, insts, np.stack(refs) if refs else np.zeros((0,) + stems.shape[1:], np.float32)


def track_record(name: str, outputs: list[str], insts: list[str], evaluation) -> dict:
    """museval-style per-track result: targets with per-frame metrics, plus medians."""
    targets = []
    summary = evaluation.summary()
    for k, (output, inst) in enumerate(zip(outputs, insts)):
        frames = []
        for f, start in enumerate(evaluation.frame_times):
            values = {m: _num(evaluation.frames[m][k, f]) for m in evaluation.metrics}
            frames.append({"time": float(start), "duration": evaluation.window / evaluation.sample_rate, "metrics": values})
        targets.append({
            "name": output,
            "instrument": inst,
            "frames": frames,
            "median": {m: _num(summary[m][k]) for m in summary},
            "silent_frames": int(evaluation.silent_frames[k]),
            "silent_source": bool(evaluation.silent_sources[k]),
        })
    return {"name": name, "targets": targets}


def _num(x) -> float | None:
    x = float(x)
    return None if not np.isfinite(x) else x


def evaluate_model(separator, tracks, metrics=METRICS, progress: bool = False) -> list[dict]:
    """Separate and score every track; returns the museval-style records."""
    from tqdm import tqdm

    records = []
    for track in tqdm(tracks, desc="evaluate", unit="track", disable=not progress):
        outputs, insts, refs = references_for(separator, track)
        if not outputs:
            continue
        estimated = separator.separate(track.mixture, track.sample_rate, adapt_channels=True)
        ests = np.stack([estimated[name] for name in outputs])
        evaluation = evaluate_sources(refs, ests, track.sample_rate, metrics=metrics)
        records.append(track_record(track.name, outputs, insts, evaluation))
    return records


def summarise(records: list[dict], metric: str = "SDR") -> dict:
    """Per instrument: mean and median over tracks of the per-track frame medians; plus the
    mean over instruments (accompaniment outputs left out of the mean)."""
    by_inst: dict[str, list[float]] = {}
    for record in records:
        for target in record["targets"]:
            value = target["median"].get(metric)
            if value is not None:
                by_inst.setdefault(target["instrument"], []).append(value)
    per_inst = {
        inst: {"mean": float(np.mean(v)), "median": float(np.median(v)), "tracks": len(v)}
        for inst, v in sorted(by_inst.items())
    }
    means = [s["mean"] for inst, s in per_inst.items() if inst != "accompaniment"]
    return {"metric": metric, "instruments": per_inst, "mean": float(np.mean(means)) if means else None}
