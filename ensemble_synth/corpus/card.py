"""The corpus card: a human-readable summary of a corpus, Markdown with a PNG figure beside it.

``write_card(corpus_dir, path)`` writes ``path`` (Markdown) and ``path`` with ``.png``:
hours per split and per instrument, line-ups, rooms and their RT60s, microphone setups,
mixture loudness, soundfonts with their sources and licences (``soundfonts.txt``), the
repertoire and its exclusions. Everything is read from ``corpus.toml``, ``manifest.csv``
and the tracks' ``metadata.json``; the same corpus gives the same card (no dates; the PNG
carries no software stamp), so a card does not make two equal corpora differ.
"""

from __future__ import annotations

import io
import json
import math
import os
import tomllib
from collections import Counter, defaultdict
from pathlib import Path

from .. import distributions
from ..errors import UserError
from ..fileio import write_bytes_atomic, write_text_atomic
from ..synthesis import physical, sample_library
from ..synthesis.soundfonts import registry
from . import format as corpus_format
from .preset import SPLITS

RT60_BIN_S = 0.1  # the narrowest bins; wider (x2, x5, x10 ...) when there would be more than MAX_BINS
LOUDNESS_BIN_LU = 1.0
MAX_BINS = 16


class CorpusStats:
    """What a card reports, gathered once from the corpus files."""

    def __init__(self, corpus_dir: str | os.PathLike):
        self.root = Path(corpus_dir)
        self.entries = corpus_format.read_manifest(self.root)
        record_path = self.root / corpus_format.CORPUS_RECORD
        try:
            self.record = tomllib.loads(record_path.read_text())
        except FileNotFoundError:
            self.record = {}
        except (OSError, ValueError) as exc:
            raise UserError(f"{record_path}: unreadable corpus record ({exc})") from None
        self.preset = self.record.get("preset", {})
        self.metas = []
        for entry in self.entries:
            path = entry.folder / corpus_format.METADATA
            try:
                self.metas.append(json.loads(path.read_text()))
            except FileNotFoundError:
                raise UserError(f"{path}: not found (track {entry.track_id} is in the manifest)") from None
            except (OSError, ValueError) as exc:
                raise UserError(f"{path}: unreadable track metadata ({exc})") from None

    @property
    def audio_format(self) -> str:
        return corpus_format.corpus_audio_format(self.root) or corpus_format.DEFAULT_FORMAT

    def hours_per_split(self) -> dict[str, tuple[int, float]]:
        out = {}
        for split in SPLITS:
            durations = [e.duration for e in self.entries if e.split == split]
            if durations:
                out[split] = (len(durations), sum(durations) / 3600)
        return out

    def hours_per_instrument(self) -> dict[str, tuple[int, float]]:
        """instrument -> (parts, hours): a track with two violins counts twice."""
        parts, seconds = Counter(), defaultdict(float)
        for entry in self.entries:
            for inst in entry.instruments:
                parts[inst] += 1
                seconds[inst] += entry.duration
        return {inst: (parts[inst], seconds[inst] / 3600) for inst in sorted(parts, key=lambda i: (-seconds[i], i))}

    def lineups(self) -> dict[tuple[str, str], tuple[int, float]]:
        """(ensemble, instruments) -> (tracks, hours)."""
        count, seconds = Counter(), defaultdict(float)
        for entry in self.entries:
            key = (entry.ensemble or "-", ", ".join(entry.instruments))
            count[key] += 1
            seconds[key] += entry.duration
        return {k: (count[k], seconds[k] / 3600) for k in sorted(count, key=lambda k: (-count[k], k))}

    def rooms(self) -> dict[str, list[float]]:
        """room label -> RT60s (s) of its tracks (empty for tracks without a room)."""
        out = defaultdict(list)
        for meta in self.metas:
            room = ((meta.get("scene") or {}).get("room") or {})
            label = (meta.get("room") or {}).get("room", "none")
            out[label].extend([float(room["rt60"])] if "rt60" in room else [])
            out.setdefault(label, [])
        return dict(sorted(out.items()))

    def room_tracks(self) -> Counter:
        return Counter((m.get("room") or {}).get("room", "none") for m in self.metas)

    def rt60s(self) -> list[float]:
        return [t for values in self.rooms().values() for t in values]

    def mics(self) -> dict[str, tuple[int, list[int]]]:
        """mic setup -> (tracks, output channel counts)."""
        count, channels = Counter(), defaultdict(set)
        for meta, entry in zip(self.metas, self.entries):
            label = (meta.get("room") or {}).get("mics", "none")
            count[label] += 1
            channels[label].add(entry.channels)
        return {k: (count[k], sorted(channels[k])) for k in sorted(count)}

    def loudness(self) -> list[float]:
        values = [(m.get("rendered") or {}).get("loudness_lufs") for m in self.metas]
        return [float(v) for v in values if v is not None and math.isfinite(float(v))]

    def soundfonts(self) -> dict[str, int]:
        """soundfont name -> parts it played."""
        return dict(sorted(Counter(p.get("soundfont", "?") for m in self.metas for p in m.get("parts", [])).items()))

    def pieces(self) -> Counter:
        return Counter((m.get("source") or {}).get("id", "?") for m in self.metas)

    def sources(self) -> Counter:
        """Tracks per source drawn (corpora with a choice of sources record it per track)."""
        return Counter(m["source"]["repertoire"] for m in self.metas if "repertoire" in (m.get("source") or {}))

    def audio_bytes(self) -> int:
        """Bytes of every audio file of the tracks (mix, stems, dry stems)."""
        total = 0
        for entry in self.entries:
            files = [corpus_format.mix_file(entry.folder), *corpus_format.stem_files(entry.folder),
                     *corpus_format.stem_files(entry.folder, corpus_format.DRY)]
            total += sum(p.stat().st_size for p in files if p.is_file())
        return total


# --- Markdown ------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def bin_width(values: list[float], narrowest: float) -> float:
    """``narrowest`` times 1, 2, 5, 10, 20 ... : the first that spans the values in MAX_BINS bins."""
    span = (max(values) - min(values)) if values else 0.0
    for scale in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000):
        if span / (narrowest * scale) < MAX_BINS - 1:
            return narrowest * scale
    return narrowest * 1000


def _bins(values: list[float], narrowest: float) -> list[tuple[float, int]]:
    """(left edge, count) of fixed-width bins spanning the values."""
    if not values:
        return []
    width = bin_width(values, narrowest)
    lo = math.floor(min(values) / width)
    hi = math.floor(max(values) / width)
    counts = Counter(math.floor(v / width) for v in values)
    return [(round(i * width, 6), counts.get(i, 0)) for i in range(lo, hi + 1)]


def _histogram(values: list[float], narrowest: float, unit: str, digits: int) -> list[str]:
    rows = []
    width = bin_width(values, narrowest)
    most = max((n for _, n in _bins(values, narrowest)), default=1) or 1
    for left, n in _bins(values, narrowest):
        bar = "#" * max(1 if n else 0, round(20 * n / most))
        rows.append([f"{left:.{digits}f} to {left + width:.{digits}f} {unit}", n, f"`{bar}`" if bar else ""])
    return _table(["range", "tracks", ""], rows)


def _hours(h: float) -> str:
    return f"{h:.3f}"


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def markdown(stats: CorpusStats, figure_name: str | None = None) -> str:
    preset = stats.preset
    name = preset.get("name", stats.root.name)
    lines = [f"# Corpus card: {name}", ""]
    if preset.get("description"):
        lines += [preset["description"], ""]
    total_h = sum(e.duration for e in stats.entries) / 3600
    version = (stats.record.get("versions") or {}).get("ensemble_synth", "")
    rate = sorted({e.sample_rate for e in stats.entries})
    fmt = stats.audio_format
    lines += [
        f"- tracks: {len(stats.entries)}, {_hours(total_h)} h of audio",
        f"- seed: {stats.record.get('seed', '?')}; track spec version {stats.record.get('spec_version', 1)}"
        + (f"; made by ensemble_synth {version}" if version else ""),
        (f"- audio: {'24-bit FLAC' if fmt == 'flac' else 'float32 WAV'}, "
         f"{', '.join(f'{r} Hz' for r in rate)}, {_megabytes(stats.audio_bytes())} on disk "
         "(mix, stems and dry stems)"),
        "- any track is rebuilt bit for bit by `ensemble-synth render-spec <track>/metadata.json -o OUT`",
        "",
    ]
    if figure_name:
        lines += [f"![overview]({figure_name})", ""]

    lines += ["## Hours per split", ""]
    lines += _table(["split", "tracks", "hours"], [[s, n, _hours(h)] for s, (n, h) in stats.hours_per_split().items()])
    lines += ["## Hours per instrument", "", "A part is counted for its track's whole duration.", ""]
    lines += _table(["instrument", "parts", "hours"],
                    [[i, n, _hours(h)] for i, (n, h) in stats.hours_per_instrument().items()])
    lines += ["## Line-ups", ""]
    lines += _table(["ensemble", "instruments", "tracks", "hours"],
                    [[e, insts, n, _hours(h)] for (e, insts), (n, h) in stats.lineups().items()])

    lines += ["## Rooms", ""]
    room_tracks = stats.room_tracks()
    rows = []
    for label, rt60s in stats.rooms().items():
        span = f"{min(rt60s):.2f} to {max(rt60s):.2f}" if rt60s else "-"
        rows.append([label, room_tracks[label], span])
    lines += _table(["room", "tracks", "RT60 (s)"], rows)
    rt60s = stats.rt60s()
    if rt60s:
        lines += ["RT60 (mean of the 500 Hz and 1 kHz octave bands, T30) over the tracks:", ""]
        lines += _histogram(rt60s, RT60_BIN_S, "s", 1)
    lines += ["## Microphone setups", ""]
    lines += _table(["setup", "tracks", "channels"],
                    [[k, n, ", ".join(map(str, ch))] for k, (n, ch) in stats.mics().items()])
    loud = stats.loudness()
    if loud:
        lines += ["## Loudness", "",
                  f"Integrated loudness of the mixtures (BS.1770), {min(loud):.1f} to {max(loud):.1f} LUFS:", ""]
        lines += _histogram(loud, LOUDNESS_BIN_LU, "LUFS", 0)

    lines += ["## Soundfonts and sample sources", ""]
    known = registry()
    recorded = stats.record.get("soundfonts") or {}
    rows = []
    for font, parts in stats.soundfonts().items():
        entry, record = known.get(font), recorded.get(font) or {}
        sha = record.get("sha256") or record.get("renderer_sha256") or (entry.sha256 if entry else None) or "-"
        if record.get("library"):
            rows.append([font, *_library_row(record), parts, f"`{sha[:12]}`" if sha != "-" else "-"])
        elif entry is None:
            rows.append([font, "-", "not in soundfonts.txt", "unknown", parts, "-"])
        else:
            rows.append([font, entry.file, entry.source, entry.licence, parts, f"`{sha[:12]}`" if sha != "-" else "-"])
    lines += _table(["soundfont", "file", "source", "licence", "parts", "sha256"], rows)

    rep = preset.get("repertoire", {})
    pieces = stats.pieces()
    most = ", ".join(f"{p} x{n}" for p, n in sorted(pieces.items(), key=lambda kv: (-kv[1], kv[0]))[:5])
    source = rep.get("source", "?")
    if isinstance(source, str):
        source = f"`{source}`"
    else:  # a choice of sources: how many tracks each gave
        drawn = stats.sources()
        source = "a choice of " + ", ".join(f"`{name}` ({drawn[name]} track{'' if drawn[name] == 1 else 's'})"
                                            for name in dict.fromkeys(distributions.support(source)))
    lines += ["## Repertoire and exclusions", "",
              f"- source: {source}; {len(pieces)} distinct pieces (most used: {most})"]
    if rep.get("excerpt_seconds"):
        lines.append(f"- excerpts of {rep['excerpt_seconds']} s")
    exclude, melodies = rep.get("exclude") or [], rep.get("exclude_melodies") or []
    lines.append(f"- excluded pieces: {', '.join(f'`{x}`' for x in exclude) if exclude else 'none'}")
    lines.append("- excluded melodies (pieces whose tune matches these MIDI files are left out): "
                 + (", ".join(f"`{x}`" for x in melodies) if melodies else "none"))
    augs = stats.record.get("augmentations") or []
    if augs:
        lines.append(f"- custom augmentations: {', '.join(str(a.get('name', a.get('class', '?'))) for a in augs)}")
    lines.append("")
    return "\n".join(lines)


# --- the figure ----------------------------------------------------------------------------


def figure_png(stats: CorpusStats) -> bytes:
    """A 2x2 overview: hours per instrument, hours per split, RT60 and loudness histograms."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(10, 7), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2)
    inst = stats.hours_per_instrument()
    ax = axes[0][0]
    ax.barh(list(inst)[::-1], [h for _, h in list(inst.values())[::-1]], color="tab:blue")
    ax.set_xlabel("hours")
    ax.set_title("hours per instrument")
    splits = stats.hours_per_split()
    ax = axes[0][1]
    ax.bar(list(splits), [h for _, h in splits.values()], color="tab:green")
    ax.set_ylabel("hours")
    ax.set_title("hours per split")
    for ax, values, width, label, title in (
        (axes[1][0], stats.rt60s(), RT60_BIN_S, "RT60 (s)", "RT60 of the tracks' rooms"),
        (axes[1][1], stats.loudness(), LOUDNESS_BIN_LU, "loudness (LUFS)", "mixture loudness"),
    ):
        bins = _bins(values, width)
        width = bin_width(values, width)
        if bins:
            ax.bar([b + width / 2 for b, _ in bins], [n for _, n in bins], width=width * 0.9, color="tab:orange")
        else:
            ax.text(0.5, 0.5, "none (no room)", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(label)
        ax.set_ylabel("tracks")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
    fig.suptitle(f"{stats.preset.get('name', stats.root.name)}: {len(stats.entries)} tracks, "
                 f"{sum(e.duration for e in stats.entries) / 3600:.3f} h")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _library_row(record: dict) -> list[str]:
    """file, source and licence of a sample library or the physical models, as recorded."""
    if "packages" in record:
        known = sample_library.packages(record["library"]) if sample_library.is_library(record["library"]) else []
        packages = [p for p in known if p.package in record["packages"]]
        sources = sorted({p.sources.replace(",", ", ") for p in packages})
        licences = sorted({p.licence for p in packages})
        return [f"{len(record['packages'])} npm packages", "; ".join(sources) or "samples.txt",
                ", ".join(licences) or "unknown"]
    return [physical.SOURCE, f"STK physical models ({record.get('stk', 'libstk')})", physical.LICENCE]


def write_card(corpus_dir: str | os.PathLike, path: str | os.PathLike | None = None) -> Path:
    """Write the card of ``corpus_dir`` to ``path`` (default ``CORPUS/card.md``) and its figure
    beside it (same name, ``.png``); returns the Markdown's path. Both are written atomically."""
    stats = CorpusStats(corpus_dir)
    path = Path(path) if path is not None else Path(corpus_dir) / corpus_format.CARD
    figure = path.with_suffix(".png")
    write_bytes_atomic(figure, figure_png(stats))
    write_text_atomic(path, markdown(stats, figure.name))
    return path
