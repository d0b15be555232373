"""Scores for reports: per-track results, museval-style JSON, aggregation across tracks and
instruments, text and Markdown tables, CSV, and a per-instrument SDR box plot (PNG)."""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import soundfile as sf

from .._version import __version__
from ..errors import UserError
from ..fileio import write_bytes_atomic, write_json_atomic, write_text_atomic
from ..music import instruments
from .metrics import METRICS, Evaluation, evaluate_sources, nonfinite_samples

SUMMARY_METRICS = ("SDR", "ISR", "SIR", "SAR", "SI-SDR", "SNR")


@dataclass
class TrackResult:
    """The evaluation of one track, with the names of its parts and their instruments."""

    name: str
    parts: list[str]
    instruments: list[str | None]
    evaluation: Evaluation

    def rows(self) -> list[dict]:
        """One row per part: track, part, instrument, frame medians, SI-SDR, SNR, frame counts."""
        summary = self.evaluation.summary()
        out = []
        for i, part in enumerate(self.parts):
            row = {"track": self.name, "part": part, "instrument": self.instruments[i]}
            row.update({m: float(summary[m][i]) for m in SUMMARY_METRICS if m in summary})
            row["frames"] = self.evaluation.n_frames
            row["silent_frames"] = int(self.evaluation.silent_frames[i])
            row["silent"] = bool(self.evaluation.silent_sources[i])
            row["silent_estimate"] = bool(self.evaluation.silent_estimates[i])
            out.append(row)
        return out

    def to_json(self) -> dict:
        """museval-style per-track scores (targets -> frames -> metrics), plus our summaries.

        Values are rounded to 5 decimals as museval does; NaN and infinities become null.
        """
        ev = self.evaluation
        times = ev.frame_times
        duration = ev.window / ev.sample_rate
        summary = ev.summary()
        targets = []
        for i, part in enumerate(self.parts):
            frames = [
                {
                    "time": _q(times[t]),
                    "duration": _q(duration),
                    "metrics": {m: _q(ev.frames[m][i, t]) for m in ("SDR", "SIR", "SAR", "ISR") if m in ev.frames},
                }
                for t in range(ev.n_frames)
            ]
            targets.append(
                {
                    "name": part,
                    "instrument": self.instruments[i],
                    "silent": bool(ev.silent_sources[i]),
                    "silent_estimate": bool(ev.silent_estimates[i]),
                    "silent_frames": int(ev.silent_frames[i]),
                    "summary": {m: _q(v[i]) for m, v in summary.items()},
                    "frames": frames,
                }
            )
        return {
            "track": self.name,
            "evaluator": f"ensemble_synth {__version__}, BSSEval v4 images mode (museval-compatible)",
            "sample_rate": ev.sample_rate,
            "window": duration,
            "hop": ev.hop / ev.sample_rate,
            "frames_agg": "median",
            "targets": targets,
        }


def score_arrays(
    name: str,
    references: np.ndarray,
    estimates: np.ndarray,
    sample_rate: int,
    parts: Sequence[str],
    part_instruments: Sequence[str | None] | None = None,
    window: float | None = 1.0,
    hop: float | None = 1.0,
    metrics: Sequence[str] = METRICS,
) -> TrackResult:
    """Evaluate estimates (parts, channels, samples) against references of one track.

    NaN or infinite samples are refused with a :class:`UserError` naming the track and the part.
    """
    for label, signals in (("reference", references), ("estimate", estimates)):
        bad = nonfinite_samples(signals)
        if bad:
            index, sample = bad[0]
            part = parts[index] if index < len(parts) else f"source {index}"
            raise UserError(f"{name}: {label} of part {part} holds NaN or infinite samples "
                            f"(the first at sample {sample}); it cannot be scored")
    evaluation = evaluate_sources(references, estimates, sample_rate, window=window, hop=hop, metrics=metrics)
    insts = list(part_instruments) if part_instruments is not None else [guess_instrument(p) for p in parts]
    return TrackResult(name, list(parts), insts, evaluation)


def score_track(track, estimates: np.ndarray, window: float | None = 1.0, hop: float | None = 1.0,
                metrics: Sequence[str] = METRICS) -> TrackResult:
    """Evaluate estimates of a :class:`ensemble_synth.evaluation.datasets.Recording`'s stems, in part order."""
    if np.shape(estimates) != track.stems.shape:
        raise UserError(f"{track.name}: estimates {np.shape(estimates)} do not match the stems {track.stems.shape}")
    return score_arrays(track.name, track.stems, estimates, track.sample_rate, track.parts, track.instruments,
                        window, hop, metrics)


def score_dirs(ref_dir: Path, est_dir: Path, window: float | None = 1.0, hop: float | None = 1.0,
               metrics: Sequence[str] = METRICS) -> TrackResult:
    """Evaluate ``est_dir/<name>.wav`` against ``ref_dir/<name>.wav``, one file per source."""
    ref_dir, est_dir = Path(ref_dir), Path(est_dir)
    for folder in (ref_dir, est_dir):
        if not folder.is_dir():
            raise UserError(f"{folder}: " + ("is a file, not a folder" if folder.exists() else "folder not found"))
    ref_paths = sorted(ref_dir.glob("*.wav"))
    if not ref_paths:
        raise UserError(f"{ref_dir}: no .wav files")
    extra = sorted({p.name for p in est_dir.glob("*.wav")} - {p.name for p in ref_paths})
    if extra:
        raise UserError(f"{est_dir / extra[0]}: estimate has no reference in {ref_dir}")
    # headers first: every missing, empty or mismatched file is refused before any audio is read
    pairs, rate, shape = [], None, None
    for ref_path in ref_paths:
        est_path = est_dir / ref_path.name
        if not est_path.is_file():
            raise UserError(f"{est_path}: estimate is missing (reference {ref_path} has none)")
        ref_info, est_info = _info(ref_path), _info(est_path)
        rate = rate or ref_info[0]
        for path, (sr, _, _) in ((ref_path, ref_info), (est_path, est_info)):
            if sr != rate:
                raise UserError(f"{path}: sample rate {sr} Hz differs from {rate} Hz of {ref_paths[0]}")
        if est_info[1:] != ref_info[1:]:
            raise UserError(f"{est_path}: {est_info[2]} samples x {est_info[1]} channels, "
                            f"but the reference has {ref_info[2]} x {ref_info[1]}")
        if shape is not None and ref_info[1:] != shape:
            raise UserError(f"{ref_path}: {ref_info[2]} samples x {ref_info[1]} channels differs from "
                            f"{shape[1]} x {shape[0]} of {ref_paths[0]}")
        shape = ref_info[1:]
        pairs.append((ref_path, est_path))
    # then the audio, read straight into the arrays that are scored
    refs = np.empty((len(pairs), *shape), dtype=np.float32)
    ests = np.empty_like(refs)
    for index, (ref_path, est_path) in enumerate(pairs):
        for path, out in ((ref_path, refs[index]), (est_path, ests[index])):
            _read_into(path, out)
            _check_signal(path, out, rate)
    parts = [p.stem for p in ref_paths]
    evaluation = evaluate_sources(refs, ests, rate, window=window, hop=hop, metrics=metrics)
    return TrackResult(ref_dir.name, parts, [guess_instrument(p) for p in parts], evaluation)


def guess_instrument(part: str) -> str | None:
    """Canonical instrument of a part name like "1_violin" or "cello", or None."""
    label = re.sub(r"^\d+[_\-\s]*", "", part)
    inst = instruments.find(label) or instruments.from_track_name(label)
    return inst.name if inst else None


# -- aggregation -----------------------------------------------------------------------


def all_rows(results: Iterable[TrackResult]) -> list[dict]:
    return [row for result in results for row in result.rows()]


def summarize(results: Sequence[TrackResult], metrics: Sequence[str] = SUMMARY_METRICS) -> list[dict]:
    """Per instrument, then "all": the median over tracks of each part's frame median
    (museval's aggregation), plus the mean SDR over tracks; silent parts are left out."""
    rows = all_rows(results)
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["instrument"] or row["part"], []).append(row)
    out = [_summary_row(name, groups[name], metrics) for name in sorted(groups)]
    if len(groups) > 1:
        out.append(_summary_row("all", rows, metrics))
    return out


def _summary_row(name: str, rows: list[dict], metrics: Sequence[str]) -> dict:
    summary = {"instrument": name, "tracks": sum(1 for r in rows if not r["silent"])}
    for metric in metrics:
        values = np.array([r.get(metric, np.nan) for r in rows], dtype=float)
        values = values[~np.isnan(values)]
        summary[metric] = float(np.median(values)) if values.size else math.nan
        if metric == "SDR":
            summary["SDR mean"] = float(np.mean(values)) if values.size else math.nan
    return summary


# -- output ----------------------------------------------------------------------------


def text_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """Aligned plain-text table; floats with 2 decimals, missing values as '-'."""
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(columns, widths)))]
    for row in cells:
        lines.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)


def markdown_table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """GitHub Markdown table of summary rows (dB values with 2 decimals)."""
    columns = list(columns or (rows[0].keys() if rows else ()))
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def write_csv(rows: Sequence[dict], path: str | Path) -> None:
    """Rows as CSV (atomically); NaN as an empty cell."""
    write_text_atomic(path, csv_text(rows))


def csv_text(rows: Sequence[dict]) -> str:
    """Rows as CSV text; NaN as an empty cell."""
    buffer = io.StringIO()
    columns = list(rows[0].keys()) if rows else []
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    return buffer.getvalue()


def sdr_boxplot(results: Sequence[TrackResult], path: str | Path, title: str = "SDR per instrument") -> Path:
    """Box plot of the per-track SDR (frame median) for each instrument, as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups: dict[str, list[float]] = {}
    for row in all_rows(results):
        if not math.isnan(row.get("SDR", math.nan)):
            groups.setdefault(row["instrument"] or row["part"], []).append(row["SDR"])
    names = sorted(groups)
    fig = Figure(figsize=(max(4.0, 1.2 * len(names) + 1.5), 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if names:
        ax.boxplot([groups[n] for n in names], showmeans=True)
        ax.set_xticks(range(1, len(names) + 1), [f"{n}\n(n={len(groups[n])})" for n in names])
    ax.axhline(0.0, color="0.7", linewidth=0.8)
    ax.set_ylabel("SDR (dB, median over 1 s frames)")
    ax.set_title(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    write_bytes_atomic(path, buffer.getvalue())
    return Path(path)


def write_report(results: Sequence[TrackResult], out_dir: str | Path, title: str = "SDR per instrument") -> dict[str, Path]:
    """Write into an existing folder: tracks/<name>.json (museval style), scores.csv (one
    row per track and part), summary.csv, summary.md and sdr_boxplot.png."""
    out_dir = Path(out_dir)
    (out_dir / "tracks").mkdir(parents=True, exist_ok=True)
    for result in results:
        write_json_atomic(out_dir / "tracks" / f"{result.name}.json", result.to_json())
    summary = summarize(results)
    paths = {
        "scores": out_dir / "scores.csv",
        "summary_csv": out_dir / "summary.csv",
        "summary_md": out_dir / "summary.md",
        "plot": out_dir / "sdr_boxplot.png",
    }
    write_csv(all_rows(results), paths["scores"])
    write_csv(summary, paths["summary_csv"])
    write_text_atomic(paths["summary_md"], f"# {title}\n\n" + markdown_table(summary))
    sdr_boxplot(results, paths["plot"], title)
    return paths


def _info(path: Path) -> tuple[int, int, int]:
    """(sample rate, channels, frames) of an audio file, refusing one with no samples."""
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises several types for unreadable files
        raise UserError(f"{path}: cannot read audio ({_one_line(exc)})") from None
    if info.frames == 0:
        raise UserError(f"{path}: the file holds no samples (0 frames); there is nothing to score")
    return int(info.samplerate), int(info.channels), int(info.frames)


def _read_into(path: Path, out: np.ndarray) -> None:
    """Read a whole file into ``out`` (channels, frames), float32."""
    channels, frames = out.shape
    # soundfile reads interleaved frames; a mono file goes straight into place
    buffer = out.reshape(frames, 1) if channels == 1 else np.empty((frames, channels), dtype=np.float32)
    try:
        with sf.SoundFile(str(path)) as f:
            got = f.read(frames, dtype="float32", always_2d=True, out=buffer)
    except Exception as exc:  # soundfile raises several types for unreadable files
        raise UserError(f"{path}: cannot read audio ({_one_line(exc)})") from None
    if len(got) != frames:
        raise UserError(f"{path}: cannot read audio (the header gives {frames} frames, the file holds {len(got)})")
    if channels > 1:
        out[...] = buffer.T


def _check_signal(path: Path, audio: np.ndarray, rate: int) -> None:
    """Refuse a file that cannot be scored: no samples, or NaN or infinite samples."""
    if audio.shape[-1] == 0:
        raise UserError(f"{path}: the file holds no samples (0 frames); there is nothing to score")
    bad = nonfinite_samples(audio[None])
    if bad:
        sample = bad[0][1]
        raise UserError(f"{path}: holds NaN or infinite samples (the first at sample {sample}, "
                        f"{sample / rate:.3f} s); it cannot be scored")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__


def _q(value) -> float | None:
    value = float(value)
    return round(value, 5) if math.isfinite(value) else None


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.2f}"
    return str(value)
