"""Repertoire sources: the Bach chorales or the string quartets of music21's corpus, or a
folder/glob of MIDI files; or a choice among them, drawn per track (:class:`RepertoireChoice`).

A piece is a list of voices, each an (n, 4) array of start beat, length in beats, MIDI
pitch and a fermata flag, ordered from the highest voice to the lowest.
"""

from __future__ import annotations

import functools
import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import distributions
from ..errors import UserError
from .instruments import escape, quoted
from .score import (
    MAX_NOTE_SECONDS,
    MAX_SCORE_MINUTES,
    check_limit_values,
    check_notes,
    read_midi,
)

BEAT, LENGTH, PITCH, FERMATA = range(4)
MUSIC21_BACH = "music21:bach"
MUSIC21_QUARTETS = "music21:quartets"
MUSIC21_SOURCES = (MUSIC21_BACH, MUSIC21_QUARTETS)
KNOWN_SOURCES = f"{', '.join(MUSIC21_SOURCES)}, midi:PATH_OR_GLOB"


@dataclass
class Piece:
    id: str
    title: str
    voices: list[np.ndarray]
    tempo_bpm: float | None = None  # the score's own tempo, when it has one

    @property
    def beats(self) -> float:
        return max(float((v[:, BEAT] + v[:, LENGTH]).max()) for v in self.voices if len(v))

    def soprano(self) -> np.ndarray:
        return self.voices[0][:, PITCH]


def melody_intervals(pitches: np.ndarray) -> np.ndarray:
    """Interval sequence of a melody with repeated notes merged (transposition-free)."""
    pitches = np.asarray(pitches, dtype=int)
    if len(pitches) == 0:
        return pitches
    keep = np.concatenate([[True], np.diff(pitches) != 0])
    return np.diff(pitches[keep])


def _longest_common_run(a: np.ndarray, b: np.ndarray) -> int:
    if len(a) == 0 or len(b) == 0:
        return 0
    eq = a[:, None] == b[None, :]
    best = 0
    run = np.zeros(len(b) + 1, dtype=int)
    for row in eq:
        run[1:] = np.where(row, run[:-1] + 1, 0)
        best = max(best, int(run.max()))
    return best


def same_melody(a: np.ndarray, b: np.ndarray) -> bool:
    """Two soprano lines are the same tune when a long stretch of their intervals agrees.

    Harmonisations of one chorale tune differ in passing notes and cadences, so the test
    is a common run of intervals covering half of the shorter line (at least 8 intervals).
    """
    ia, ib = melody_intervals(a), melody_intervals(b)
    shorter = min(len(ia), len(ib))
    if shorter < 4:
        return False
    return _longest_common_run(ia, ib) >= max(8, int(0.5 * shorter)) or _longest_common_run(ia, ib) == shorter


# --- music21 Bach chorales -------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def music21_bach_ids() -> tuple[str, ...]:
    """Ids (file stems, e.g. 'bwv255') of the four-part Bach scores in music21's corpus."""
    from music21 import corpus

    paths = corpus.getComposer("bach")
    return tuple(sorted({Path(p).stem for p in paths if str(p).endswith((".mxl", ".xml"))}, key=_natural_key))


def _natural_key(text: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


@functools.lru_cache(maxsize=512)
def load_music21_bach(piece_id: str) -> Piece:
    from music21 import corpus, expressions

    try:
        score = corpus.parse(f"bach/{piece_id}")
    except Exception as exc:
        raise UserError(f"music21 corpus: cannot parse bach/{piece_id} ({exc})") from None
    voices = []
    for part in score.parts:
        rows = []
        part.stripTies(inPlace=True)  # in place: a copy costs more than the parse (idempotent)
        for note in part.flatten().notes:
            fermata = any(isinstance(e, expressions.Fermata) for e in note.expressions)
            pitches = [note.pitch.midi] if note.isNote else [max(p.midi for p in note.pitches)]
            for pitch in pitches:
                rows.append((float(note.offset), float(note.duration.quarterLength), pitch, float(fermata)))
        if rows:
            voices.append(np.array(rows, dtype=np.float64))
    voices.sort(key=lambda v: -float(np.mean(v[:, PITCH])))
    title = score.metadata.title if score.metadata and score.metadata.title else piece_id
    return Piece(f"bach/{piece_id}", str(title), voices)


# --- music21 string quartets ------------------------------------------------------------

# The string quartet movements of music21's corpus (as of music21 10.5), as corpus paths.
# Chosen by listing corpus.getComposer() for every composer in the corpus and parsing every
# candidate with two to five parts: these are all the four-part quartets (violin I and II,
# viola, cello; some files name them "Acoustic Grand Piano" or "String Ensemble 1", but they
# are the quartets). Where the corpus holds a movement twice (Beethoven op. 18 no. 1 as .mxl
# and .krn) the Humdrum file is kept, for its title and metronome marks. Beethoven op. 18
# nos. 3-5 and op. 74 are whole quartets in one file (excerpts are drawn from any
# movement); op. 133 is the Grosse Fuge. Left out: Beethoven op. 132 (one file of 30.2
# minutes at 120 bpm, past the 30 minute limit the MIDI loader applies too), and, too few
# for a source of their own, the one other instrumental chamber piece with single-line
# parts (Corelli's trio sonata op. 3 no. 1, grave, 19 bars) and Clara Schumann's piano trio
# op. 17/iii (its piano staves mostly chords); the rest of the corpus is keyboard, song,
# vocal polyphony or single tunes. A test checks each file's part count.
MUSIC21_QUARTET_FILES = (
    "beethoven/opus18no1/movement1.krn",
    "beethoven/opus18no1/movement2.krn",
    "beethoven/opus18no1/movement3.krn",
    "beethoven/opus18no1/movement4.krn",
    "beethoven/opus18no3.mxl",
    "beethoven/opus18no4.mxl",
    "beethoven/opus18no5.mxl",
    *(f"beethoven/opus59no{n}/movement{m}.mxl" for n in (1, 2, 3) for m in (1, 2, 3, 4)),
    "beethoven/opus74.mxl",
    "beethoven/opus133.mxl",
    *(f"haydn/opus1no1/movement{m}.mxl" for m in (1, 2, 3, 4, 5)),
    *(f"haydn/opus74no1/movement{m}.mxl" for m in (1, 2, 3, 4)),
    *(f"mozart/k80/movement{m}.mxl" for m in (1, 2, 3, 4)),
    *(f"mozart/k155/movement{m}.mxl" for m in (1, 2, 3)),
    *(f"mozart/k156/movement{m}.mxl" for m in (1, 2, 3, 4)),
    *(f"mozart/k458/movement{m}.mxl" for m in (1, 2, 3, 4)),
    *(f"schumann_robert/opus41no1/movement{m}.mxl" for m in (1, 2, 3, 4, 5)),
)
QUARTET_PARTS = 4


def _corpus_id(path: str) -> str:
    """'haydn/opus74no1/movement1.mxl' -> 'haydn/opus74no1/movement1'."""
    return path.rsplit(".", 1)[0]


@functools.lru_cache(maxsize=1)
def _quartet_files() -> dict[str, str]:
    """Id -> corpus path of the curated quartets this music21 installation holds (no parsing)."""
    from music21 import common

    root = Path(common.getCorpusFilePath())
    return {_corpus_id(f): f for f in MUSIC21_QUARTET_FILES if (root / f).is_file()}


def music21_quartet_ids() -> tuple[str, ...]:
    """Ids (corpus paths without the suffix, e.g. 'haydn/opus74no1/movement1') of the quartets."""
    return tuple(_quartet_files())


def _music21_title(score, piece_id: str) -> str:
    """The work's title (and movement name) from the metadata, else the id.

    music21 fills movementName with the file's name when a score has none; that is ignored.
    """
    meta = score.metadata
    title = (meta.title or "") if meta else ""
    movement = (meta.movementName or "") if meta else ""
    if movement == Path(piece_id).name or re.search(r"\.(mxl|xml|musicxml|krn)$", movement):
        movement = ""
    if title and movement:
        return f"{title}: {movement}"
    return str(title or movement or piece_id)


def _score_tempo(score) -> float | None:
    """Quarter notes per minute of a score that keeps one tempo, else None.

    That is a metronome mark (with a number) at or before the first note and no mark with
    another tempo later. A file that holds a whole quartet changes tempo between movements
    and often has its first mark in a later movement: one number would be wrong for most
    of it, so such a score has no tempo of its own and the corpus draws one.
    """
    from music21 import tempo

    flat = score.flatten()
    notes = flat.notes
    first_note = float(notes[0].offset) if len(notes) else 0.0
    marks = [(float(m.offset), m.getQuarterBPM()) for m in flat.getElementsByClass(tempo.MetronomeMark)
             if m.number is not None]
    marks = [(at, float(bpm)) for at, bpm in marks if bpm is not None and np.isfinite(bpm) and bpm > 0]
    if not marks or marks[0][0] > first_note or any(abs(bpm - marks[0][1]) > 1e-6 for _, bpm in marks):
        return None
    return marks[0][1]


def _top_line(part) -> np.ndarray:
    """One part as (n, 4) rows: top note of each onset, tied notes merged, no grace notes.

    The ties are merged here rather than by ``stripTies``, which takes several times as
    long as parsing a quartet: a note tied onward is extended by the next one at its pitch
    that starts where it ends.
    """
    from music21 import expressions

    top: dict[float, tuple[float, int, bool, bool]] = {}  # onset -> (length, pitch, fermata, tied on)
    for note in part.flatten().notes:
        length = float(note.duration.quarterLength)
        if length <= 0:  # grace notes
            continue
        if note.isNote:
            pitch, tie = note.pitch.midi, note.tie
        else:  # a double stop: its top note
            high = max(note.notes, key=lambda n: n.pitch.midi)
            pitch, tie = high.pitch.midi, high.tie or note.tie
        onset = float(note.offset)
        if onset not in top or pitch > top[onset][1]:
            fermata = any(isinstance(e, expressions.Fermata) for e in note.expressions)
            top[onset] = (length, pitch, fermata, tie is not None and tie.type in ("start", "continue"))
    rows: list[list[float]] = []
    tied_on = False
    for onset, (length, pitch, fermata, tied) in sorted(top.items()):
        last = rows[-1] if rows else None
        if tied_on and last[PITCH] == pitch and abs(last[BEAT] + last[LENGTH] - onset) < 1e-6:
            last[LENGTH] += length
            last[FERMATA] = max(last[FERMATA], float(fermata))
        else:
            rows.append([onset, length, float(pitch), float(fermata)])
        tied_on = tied
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def _checked_high_to_low(voices: list[np.ndarray], names: list[str], tempo_bpm: float,
                         max_minutes: float, max_note_seconds: float) -> list[np.ndarray]:
    """The voices, highest first, after the score limits are checked in seconds at ``tempo_bpm``
    (``names[i]`` says where voice i is, for the message)."""
    seconds_per_beat = 60.0 / tempo_bpm
    for voice, where in zip(voices, names):
        start = voice[:, BEAT] * seconds_per_beat
        seconds = np.stack([start, start + voice[:, LENGTH] * seconds_per_beat, voice[:, PITCH], voice[:, FERMATA]], axis=1)
        check_notes(seconds, where, max_minutes, max_note_seconds, options=None)
    return sorted(voices, key=lambda v: -float(np.mean(v[:, PITCH])))


@functools.lru_cache(maxsize=64)
def load_music21_quartet(
    piece_id: str,
    max_minutes: float = MAX_SCORE_MINUTES,
    max_note_seconds: float = MAX_NOTE_SECONDS,
) -> Piece:
    """A quartet of music21's corpus by id, one voice a part, sorted high to low.

    Ties are merged, double stops (chords) and notes that share an onset in one part (a
    staff written in two voices) keep their top note, and grace notes (no length) are left
    out. The tempo is the score's when it keeps one (:func:`_score_tempo`), else None. The
    limits of :func:`load_midi_piece` apply, in seconds at that tempo (120 bpm without one).
    """
    from music21 import corpus

    check_limit_values(max_minutes, max_note_seconds, ("max_minutes", "max_note_seconds"))
    path = _quartet_files().get(piece_id)
    if path is None:
        raise UserError(f"music21 corpus: no quartet '{escape(piece_id)}' (see music21_quartet_ids())")
    try:
        score = corpus.parse(path)
    except Exception as exc:
        raise UserError(f"music21 corpus: cannot parse {path} ({exc})") from None
    voices, names = [], []
    for number, part in enumerate(score.parts, 1):
        voice = _top_line(part)
        if len(voice):
            voices.append(voice)
            names.append(f"music21 corpus {path}: part {number} ({quoted(part.partName or '')})")
    tempo_bpm = _score_tempo(score)
    voices = _checked_high_to_low(voices, names, tempo_bpm or 120.0, max_minutes, max_note_seconds)
    return Piece(piece_id, _music21_title(score, piece_id), voices, tempo_bpm)


def load_music21(piece_id: str) -> Piece:
    """A music21 corpus piece by its :attr:`Piece.id` ('bach/bwv255', 'haydn/opus74no1/movement1')."""
    if piece_id.startswith("bach/"):
        return load_music21_bach(piece_id[len("bach/"):])
    return load_music21_quartet(piece_id)


# --- MIDI files -------------------------------------------------------------------------


def midi_files(pattern: str) -> tuple[str, ...]:
    """The MIDI files of a folder (recursively, by suffix) or of a glob pattern (files only)."""
    path = Path(pattern).expanduser()
    try:
        if path.is_dir():
            files = [str(p) for p in sorted(path.rglob("*")) if p.suffix.lower() in (".mid", ".midi") and p.is_file()]
        else:
            files = sorted(f for f in glob.glob(os.path.expanduser(pattern), recursive=True) if os.path.isfile(f))
    except OSError as exc:
        raise UserError(f"{escape(pattern)}: cannot list MIDI files ({exc.strerror or exc})") from None
    if not files:
        raise UserError(f"{escape(pattern)}: no MIDI files found")
    return tuple(files)


@functools.lru_cache(maxsize=512)
def load_midi_piece(
    path: str,
    max_minutes: float = MAX_SCORE_MINUTES,
    max_note_seconds: float = MAX_NOTE_SECONDS,
) -> Piece:
    """A MIDI file as a piece in beats (drum tracks skipped), voices sorted high to low.

    The limits of :func:`~ensemble_synth.music.score.load_midi` apply, in seconds at the
    piece's own (first) tempo, the one corpora perform it at: a corrupt file that asks for
    hours is refused here, naming the file and voice, before any excerpt is drawn.
    """
    check_limit_values(max_minutes, max_note_seconds, ("max_minutes", "max_note_seconds"))
    midi, _ = read_midi(path, max_minutes, options=None)
    shown = escape(path)
    voices = []
    names = []
    for track in midi.instruments:
        if track.is_drum or not track.notes:
            continue
        rows = []
        for n in sorted(track.notes, key=lambda n: (n.start, n.pitch)):
            on = midi.time_to_tick(n.start) / midi.resolution
            off = midi.time_to_tick(n.end) / midi.resolution
            rows.append((on, off - on, n.pitch, 0.0))
        voices.append(np.array(rows, dtype=np.float64))
        names.append(f"{shown}: part {len(voices)} ({quoted(track.name)})")
    if not voices:
        if any(t.is_drum and t.notes for t in midi.instruments):
            raise UserError(f"{shown}: only drum parts, no voices")
        raise UserError(f"{shown}: the score has no notes")
    tempi = midi.get_tempo_changes()[1]
    tempo = float(tempi[0]) if len(tempi) else 120.0
    return Piece(path, Path(path).stem, _checked_high_to_low(voices, names, tempo, max_minutes, max_note_seconds), tempo)


# --- sources ----------------------------------------------------------------------------


class Repertoire:
    """The pieces a corpus draws from, after exclusions (by id/title and by melody)."""

    def __init__(self, source: str, exclude: list[str] | None = None, exclude_melodies: list[str] | None = None):
        self.source = source
        if source == MUSIC21_BACH:
            self.ids = list(music21_bach_ids())
            self._load = lambda pid: load_music21_bach(pid)
        elif source == MUSIC21_QUARTETS:
            self.ids = list(music21_quartet_ids())
            self._load = lambda pid: load_music21_quartet(pid)
        elif source.startswith("midi:"):
            self.ids = list(midi_files(source[len("midi:"):]))
            self._load = load_midi_piece
        else:
            raise UserError(f"unknown repertoire source '{escape(source)}' (known: {KNOWN_SOURCES})")
        self.exclude = [e.lower() for e in (exclude or [])]
        self.ids = [pid for pid in self.ids if not self._excluded_by_name(pid)]
        self.melodies = []
        for pattern in exclude_melodies or []:
            for path in midi_files(pattern):
                self.melodies.append((path, load_midi_piece(path).soprano()))
        if not self.ids:
            raise UserError(f"repertoire '{source}': no pieces left after exclusions")

    def _excluded_by_name(self, pid: str) -> bool:
        """Matches the id ('bwv48.3', a MIDI path), 'bach/<id>' (as in metadata), or a file's name.

        A quartet ('haydn/opus74no1/movement1') matches its id or a leading part of it cut at
        a '/': 'haydn/opus74no1' leaves out every movement of the work, 'haydn' the composer.
        """
        if self.source == MUSIC21_QUARTETS:
            parts = pid.lower().split("/")
            return any(e.strip("/") in {"/".join(parts[:i]) for i in range(1, len(parts) + 1)} for e in self.exclude)
        names = {pid.lower(), f"bach/{pid}".lower(), Path(pid).name.lower()}
        if Path(pid).suffix.lower() in (".mid", ".midi"):
            names.add(Path(pid).stem.lower())  # not for music21 ids: 'bwv48.3' has no suffix
        return any(e in names for e in self.exclude)

    def load(self, pid: str) -> Piece:
        return self._load(pid)

    def melody_exclusion(self, piece: Piece) -> str | None:
        """The excluded score whose tune this piece shares, if any."""
        for path, melody in self.melodies:
            if same_melody(piece.soprano(), melody):
                return path
        return None

    def excluded_by_melody(self) -> list[str]:
        """Every candidate whose soprano matches an excluded melody (parses all candidates)."""
        return [pid for pid in self.ids if self.melody_exclusion(self.load(pid))]


def is_source_choice(value) -> bool:
    """A ``[repertoire] source`` that is a choice among sources (a list or a distribution), not one name."""
    return not isinstance(value, str)


class RepertoireChoice:
    """A choice among repertoire sources, ``source = {choice = [...], weights = [...]}`` (or a list).

    One :class:`Repertoire` per source, each with the same exclusions (an id excludes the
    piece of whichever source holds it). A track draws its source with :meth:`draw` from a
    stream of its own, then its piece from that source as a single-source corpus would.
    Errors name ``where`` (the preset file) and the source.
    """

    def __init__(self, choice, exclude: list[str] | None = None, exclude_melodies: list[str] | None = None,
                 where: str = "<preset>"):
        self.source = choice  # the preset's value, as written
        self.where = f"{where}: [repertoire] key 'source'"
        distributions.check(choice, self.where)
        self.repertoires: dict[str, Repertoire] = {}
        for name in distributions.support(choice):
            if not isinstance(name, str):
                raise UserError(f"{self.where}: expected source names in the choice, got {name!r}")
            if name in self.repertoires:
                continue
            try:
                self.repertoires[name] = Repertoire(name, exclude, exclude_melodies)
            except UserError as exc:  # the message names the source; this names the file
                raise UserError(f"{self.where}: {exc}") from None

    def draw(self, rng: np.random.Generator) -> Repertoire:
        """The source of one track, drawn from ``rng`` by the choice's weights."""
        return self.repertoires[distributions.draw(self.source, rng, self.where)]


def open_repertoire(source, exclude: list[str] | None = None, exclude_melodies: list[str] | None = None,
                    where: str = "<preset>") -> Repertoire | RepertoireChoice:
    """The repertoire of a ``[repertoire]`` table: one source, or a choice among sources."""
    if is_source_choice(source):
        return RepertoireChoice(source, exclude, exclude_melodies, where)
    return Repertoire(source, exclude, exclude_melodies)
