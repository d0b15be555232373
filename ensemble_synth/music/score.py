"""Scores: MIDI files -> parts mapped to instruments (notes as arrays)."""

from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import UserError
from . import instruments
from .instruments import escape, quoted

# Note array columns.
START, END, PITCH, VELOCITY = range(4)


@dataclass
class Part:
    """One player's line: notes as an (n, 4) float array of start s, end s, pitch, velocity."""

    name: str
    instrument: str
    notes: np.ndarray
    source: str = ""  # the track name or voice it came from

    @property
    def end_time(self) -> float:
        return float(self.notes[:, END].max()) if len(self.notes) else 0.0

    def with_notes(self, notes: np.ndarray) -> "Part":
        return replace(self, notes=notes)


@dataclass
class Score:
    parts: list[Part]
    source: str
    warnings: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return max((p.end_time for p in self.parts), default=0.0)

    @property
    def instruments(self) -> list[str]:
        return [p.instrument for p in self.parts]


def part_name(index: int, instrument: str) -> str:
    """Part names are 1-based and keep two violins apart: 1_violin, 2_violin."""
    return f"{index}_{instrument}"


def notes_array(notes) -> np.ndarray:
    """pretty_midi notes -> sorted (n, 4) array."""
    arr = np.array([(n.start, n.end, n.pitch, n.velocity) for n in notes], dtype=np.float64).reshape(-1, 4)
    order = np.lexsort((arr[:, PITCH], arr[:, START]))
    return arr[order]


def parse_part_mapping(items) -> dict[int, str]:
    """``["1=violin", "3=vc"]`` -> {1: "violin", 3: "cello"} (1-based part numbers)."""
    mapping = {}
    for item in items or ():
        number, sep, name = str(item).partition("=")
        option = f"--part {escape(item)}"
        if not sep or not re.fullmatch(r"\s*[0-9]+\s*", number):
            raise UserError(f"{option}: expected N=INSTRUMENT, e.g. 1=violin")
        mapping[int(number)] = instruments.get(name.strip(), option).name
    return mapping


# --- limits ------------------------------------------------------------------------------

# What one score may ask for. A few bytes of MIDI can ask for hours of audio: a chorale
# whose header says 1 tick per beat instead of 960 lasts 6 h (3.8 GB as one 44.1 kHz float
# stem), a tempo event of 16.7 s per beat or a lost note-off makes notes of hours. Limits
# turn those into one clear error before anything is allocated or rendered.
# - 30 minutes per score: the longest single movements this tool is for (string quartets,
#   wind quintets, sonatas) run 15-25 minutes, a Bach chorale about one; 30 minutes at
#   44.1 kHz is 318 MB per float stem on disk (rendering streams, so memory stays small).
# - 60 s per note: a written note at a playable tempo lasts seconds; even several tied
#   bars of a slow fermata stay under 30 s. Longer notes are stuck notes or a broken
#   tempo map, and a wind or bowed sample held for minutes is not a performance anyway.
# Both are options (``render --max-minutes / --max-note-seconds``) and keyword arguments.
MAX_SCORE_MINUTES = 30.0
MAX_NOTE_SECONDS = 60.0
LIMIT_OPTIONS = ("--max-minutes", "--max-note-seconds")


def _span(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def check_limit_values(max_minutes: float, max_note_seconds: float, options=LIMIT_OPTIONS) -> None:
    """Both limits must be positive numbers (``inf`` switches a limit off)."""
    for value, option in zip((max_minutes, max_note_seconds), options or ("max_minutes", "max_note_seconds")):
        try:
            ok = float(value) > 0  # False for NaN
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise UserError(f"{option} {escape(value)}: must be a positive number")


def check_notes(
    notes: np.ndarray,
    where: str,
    max_minutes: float = MAX_SCORE_MINUTES,
    max_note_seconds: float = MAX_NOTE_SECONDS,
    options=LIMIT_OPTIONS,
) -> None:
    """Refuse notes (an (n, 4) array, seconds) that end past ``max_minutes`` or last longer
    than ``max_note_seconds``; ``where`` starts the message (file and part). ``options``:
    the option names to suggest (None for none)."""
    check_limit_values(max_minutes, max_note_seconds, options)
    notes = np.asarray(notes, dtype=np.float64)
    if notes.size == 0:
        return
    notes = notes.reshape(len(notes), -1)
    times = notes[:, [START, END]]
    if not np.all(np.isfinite(times)):
        raise UserError(f"{where}: note times are not finite numbers")
    if times.min() < 0:
        raise UserError(f"{where}: a note starts before 0 s ({times.min():.3f} s)")
    score_option, note_option = (f" (raise it with {o})" for o in options) if options else ("", "")
    end = float(times[:, 1].max())
    if end > float(max_minutes) * 60:
        raise UserError(
            f"{where}: ends at {_span(end)}, past the limit of {float(max_minutes):g} minutes per score{score_option}"
        )
    lengths = times[:, 1] - times[:, 0]
    longest = int(np.argmax(lengths))
    if lengths[longest] > float(max_note_seconds):
        raise UserError(
            f"{where}: the note at {_span(times[longest, 0])} lasts {_span(float(lengths[longest]))}, "
            f"past the limit of {float(max_note_seconds):g} s per note{note_option}"
        )


def part_label(source: str, part: Part) -> str:
    """``file.mid: part 2_clarinet ('Instrument 2')`` for messages."""
    track = f" ({quoted(part.source)})" if part.source else ""
    return f"{escape(source)}: part {escape(part.name)}{track}" if source else f"part {escape(part.name)}{track}"


def check_limits(
    parts: list[Part],
    source: str,
    max_minutes: float = MAX_SCORE_MINUTES,
    max_note_seconds: float = MAX_NOTE_SECONDS,
    options=LIMIT_OPTIONS,
) -> None:
    """:func:`check_notes` for every part, naming the file and the part."""
    check_limit_values(max_minutes, max_note_seconds, options)
    for part in parts:
        check_notes(part.notes, part_label(source, part), max_minutes, max_note_seconds, options)


# --- reading MIDI ------------------------------------------------------------------------

# Scores of whole operas are a few MB of MIDI; a bigger file is something else, and is read
# whole into memory.
MAX_MIDI_BYTES = 64 * 2**20


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long, or one the OS refuses
        return False


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, EOFError):
        return "the file ends early: truncated, or a chunk length is wrong"
    text = str(exc).strip()
    return escape(text.splitlines()[0][:200]) if text else type(exc).__name__


def _check_note_ends(data, shown: str, max_minutes: float, options) -> None:
    """Refuse a file whose (non-drum) note events run past ``max_minutes``, from mido's
    messages, before pretty_midi allocates its table of every tick's time (8 bytes a tick,
    and up to three such arrays at once: 240 MB for the 10 million ticks it accepts)."""
    resolution = data.ticks_per_beat
    scales = [(0, 0.5 / resolution)]  # (tick, seconds per tick), 120 bpm until told; as pretty_midi
    tick = 0
    for msg in data.tracks[0]:  # pretty_midi takes tempo from the first track only
        tick += msg.time
        if msg.type == "set_tempo":
            scale = msg.tempo / 1e6 / resolution
            if tick == 0:
                scales = [(0, scale)]
            elif scale != scales[-1][1]:
                scales.append((tick, scale))

    def seconds(t: int) -> float:
        total, (start, scale) = 0.0, scales[0]
        for next_start, next_scale in scales[1:]:
            if next_start >= t:
                break
            total += (next_start - start) * scale
            start, scale = next_start, next_scale
        return total + (t - start) * scale

    limit = float(max_minutes) * 60
    for number, track in enumerate(data.tracks, 1):
        tick, last, name = 0, None, None
        for msg in track:
            tick += msg.time
            if msg.type in ("note_on", "note_off") and msg.channel != 9:
                last = tick
            elif msg.type == "track_name" and name is None:
                name = msg.name
        if last is not None and seconds(last) > limit:
            hint = f" (raise it with {options[0]})" if options else ""
            label = f"track {number} ({quoted(name)})" if name else f"track {number}"
            raise UserError(
                f"{shown}: {label}: ends at {_span(seconds(last))}, past the limit of {limit / 60:g} minutes per score{hint}"
            )


def _drop_events_after_the_notes(data) -> None:
    """Drop the events after the last note event of the file (notes stay as they are).

    pretty_midi's tick table runs to the file's last event, so a stray event far after
    the music (an end of track hours later) would cost memory for nothing.
    """
    ends = []
    for track in data.tracks:
        tick, last = 0, None
        for msg in track:
            tick += msg.time
            if msg.type in ("note_on", "note_off"):
                last = tick
        ends.append(last)
    if all(end is None for end in ends):
        return
    import mido

    end = max(e for e in ends if e is not None)
    for track in data.tracks:
        tick = 0
        for i, msg in enumerate(track):
            if tick + msg.time > end:
                # the track ends with the music (a track left empty would stop pretty_midi)
                del track[i:]
                track.append(mido.MetaMessage("end_of_track", time=end - tick))
                break
            tick += msg.time


def read_midi(path: str | os.PathLike, max_minutes: float | None = None, options=LIMIT_OPTIONS):
    """A MIDI file as ``(pretty_midi.PrettyMIDI, warnings)``; any unreadable file is a UserError.

    mido reads the file and the header is checked before pretty_midi builds its tick
    table: a time division of 0 or SMPTE (negative) ticks and tempo events of 0 us per
    beat are refused by name, and tracks without a single event (not even the end of
    track) are dropped (pretty_midi cannot take them). With ``max_minutes``, a score whose
    notes run past it is refused here too, naming the track. pretty_midi's and mido's
    Python warnings come back as one-line warnings instead of being printed.
    """
    import mido
    import pretty_midi

    path = Path(path)
    shown = escape(path)
    if not _is_file(path):
        raise UserError(f"{shown}: file not found")
    try:
        size = path.stat().st_size
        if size > MAX_MIDI_BYTES:
            raise UserError(f"{shown}: {size / 2**20:.0f} MB is not a MIDI score (the limit is {MAX_MIDI_BYTES // 2**20} MB)")
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{shown}: cannot read the file ({_first_line(exc)})") from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            # From memory, not the file: mido reads the header chunk with one read of the
            # length the file states, and a file object allocates that much (4 GB) up front.
            data = mido.MidiFile(file=io.BytesIO(raw))
            if data.ticks_per_beat <= 0:
                kind = "SMPTE time code" if data.ticks_per_beat < 0 else "0 ticks per beat"
                raise UserError(f"{shown}: header: time division {data.ticks_per_beat} ({kind}) is not supported")
            data.tracks = [track for track in data.tracks if len(track)]
            if not data.tracks:
                raise UserError(f"{shown}: the file has no tracks")
            for number, track in enumerate(data.tracks, 1):
                if any(msg.type == "set_tempo" and msg.tempo <= 0 for msg in track):
                    raise UserError(f"{shown}: track {number}: tempo event of 0 microseconds per beat")
            if max_minutes is not None:
                _check_note_ends(data, shown, max_minutes, options)
            _drop_events_after_the_notes(data)
            midi = pretty_midi.PrettyMIDI(mido_object=data)
        except UserError:
            raise
        except Exception as exc:  # mido/pretty_midi raise many types for corrupt files
            raise UserError(f"{shown}: not a readable MIDI file ({_first_line(exc)})") from None
    notes = []
    for w in caught:
        text = f"{shown}: {_first_line(Exception(w.message))}"
        if text not in notes:
            notes.append(text)
    return midi, notes


def _guess_instrument(track) -> str | None:
    inst = instruments.from_track_name(track.name or "")
    if inst is None:
        inst = instruments.from_program(track.program)
    return inst.name if inst else None


def load_midi(
    path: str | os.PathLike,
    part_instruments: dict[int, str] | None = None,
    ensemble: list[str] | None = None,
    max_minutes: float = MAX_SCORE_MINUTES,
    max_note_seconds: float = MAX_NOTE_SECONDS,
) -> Score:
    """Read a MIDI score; each non-drum track with notes becomes a part.

    Instruments come from ``part_instruments`` (1-based), else the track name, else the
    General MIDI program, else ``ensemble`` (one instrument per part, in order).
    A score ending after ``max_minutes`` or with a note longer than ``max_note_seconds``
    is refused (see :data:`MAX_SCORE_MINUTES`), before anything is rendered.
    """
    check_limit_values(max_minutes, max_note_seconds)
    path = Path(path)
    shown = escape(path)
    midi, messages = read_midi(path, max_minutes)
    tracks = []
    for number, track in enumerate(midi.instruments, 1):
        if not track.notes:
            continue
        if track.is_drum:
            messages.append(f"{shown}: skipped drum track {number} ({quoted(track.name)})")
            continue
        tracks.append(track)
    if not tracks:
        if any(t.is_drum and t.notes for t in midi.instruments):
            raise UserError(f"{shown}: only drum parts, nothing to render")
        raise UserError(f"{shown}: the score has no notes")
    part_instruments = part_instruments or {}
    for number in part_instruments:
        if not 1 <= number <= len(tracks):
            raise UserError(f"{shown}: --part {number}: the score has {len(tracks)} parts")
    if ensemble is not None and len(ensemble) != len(tracks):
        raise UserError(f"{shown}: the score has {len(tracks)} parts but the ensemble has {len(ensemble)} instruments")
    parts = []
    for index, track in enumerate(tracks, 1):
        name = part_instruments.get(index)
        if name is not None:
            name = instruments.get(name, f"{shown}: --part {index}").name
        if name is None and ensemble is not None:
            name = instruments.get(ensemble[index - 1], f"{shown}: ensemble instrument {index}").name
        if name is None:
            name = _guess_instrument(track)
        # An unmapped part is named by its number until the limits are checked: a score
        # asking for hours of audio is the first thing to report.
        label = part_name(index, name) if name else str(index)
        parts.append(Part(label, name or "", notes_array(track.notes), track.name or f"track {index}"))
    check_limits(parts, str(path), max_minutes, max_note_seconds)
    for index, (part, track) in enumerate(zip(parts, tracks), 1):
        if not part.instrument:
            raise UserError(
                f"{shown}: part {index} ({quoted(track.name)}, program {track.program}) has no known instrument; "
                f"map it with --part {index}=INSTRUMENT or --ensemble"
            )
    messages += range_warnings(parts, shown)
    return Score(parts, str(path), messages)


def range_warnings(parts: list[Part], source: str) -> list[str]:
    out = []
    for part in parts:
        inst = instruments.get(part.instrument)
        pitches = part.notes[:, PITCH]
        outside = int(np.count_nonzero((pitches < inst.low) | (pitches > inst.high)))
        if outside:
            out.append(f"{source}: part {escape(part.name)}: {outside} notes outside the {inst.name}'s range {inst.low}-{inst.high}")
    return out
