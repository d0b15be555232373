"""The instrument catalogue: canonical names, aliases, General MIDI programs, ranges, families."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UserError


@dataclass(frozen=True)
class Instrument:
    name: str
    program: int  # General MIDI program, 0-based
    low: int  # lowest playable MIDI pitch
    high: int  # highest playable MIDI pitch
    family: str  # strings, woodwinds or brass
    aliases: tuple[str, ...] = ()

    def in_range(self, pitch: int) -> bool:
        return self.low <= pitch <= self.high


CATALOGUE: tuple[Instrument, ...] = (
    Instrument("violin", 40, 55, 103, "strings", ("vn", "vln", "violino", "violine")),
    Instrument("viola", 41, 48, 91, "strings", ("va", "vla", "bratsche")),
    Instrument("cello", 42, 36, 84, "strings", ("vc", "vlc", "violoncello")),
    Instrument("double_bass", 43, 28, 67, "strings", ("db", "cb", "contrabass", "bass", "kontrabass")),
    Instrument("flute", 73, 60, 98, "woodwinds", ("fl", "flauto", "flote")),
    Instrument("oboe", 68, 58, 91, "woodwinds", ("ob", "oboe d'amore")),
    Instrument("clarinet", 71, 50, 94, "woodwinds", ("cl", "clarinetto", "klarinette", "bb clarinet")),
    Instrument("bassoon", 70, 34, 75, "woodwinds", ("bn", "bsn", "fagott", "fagotto")),
    Instrument("alto_saxophone", 65, 49, 81, "woodwinds", ("sax", "asx", "alto sax", "alto saxophone", "saxophone")),
    Instrument("tenor_saxophone", 66, 44, 76, "woodwinds", ("tsx", "tenor sax", "tenor saxophone", "saxphone")),
    Instrument("horn", 60, 34, 77, "brass", ("hn", "french horn", "corno", "cor")),
    Instrument("trumpet", 56, 54, 86, "brass", ("tpt", "tp", "tromba")),
    Instrument("trombone", 57, 40, 77, "brass", ("tbn", "tb", "posaune")),
    Instrument("tuba", 58, 28, 65, "brass", ("tba",)),
)
# Notes: URMP's "sax" covers soprano to tenor; it maps to alto here. Bach10's "saxphone"
# (its own spelling) is the tenor saxophone of its line-up.

_BY_KEY: dict[str, Instrument] = {}
for _inst in CATALOGUE:
    for _key in (_inst.name, *_inst.aliases):
        _BY_KEY[re.sub(r"[\s_\-]+", " ", _key.lower()).strip()] = _inst
_BY_PROGRAM = {inst.program: inst for inst in CATALOGUE}


def _normalise(text: str) -> str:
    return re.sub(r"[\s_\-]+", " ", text.lower()).strip()


def names() -> list[str]:
    return [inst.name for inst in CATALOGUE]


def escape(text) -> str:
    """``text`` safe inside a one-line message: control and other unprintable characters
    (newline, tab, NUL, escape, C1 codes) written as Python escapes (``\\n``, ``\\x00``)."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def quoted(text) -> str:
    """``'text'`` with :func:`escape`'s escaping, for names inside messages."""
    return f"'{escape(text)}'"


def known_list() -> str:
    """The canonical names, for messages (aliases such as vn or vc are accepted too)."""
    return f"known: {', '.join(names())}"


def get(name: str, where: str | None = None) -> Instrument:
    """Look up by canonical name or alias; an unknown name lists the known ones.

    ``where``: where the value came from (an option, a file and key), put first in the message.
    """
    prefix = f"{where}: " if where else ""
    if not isinstance(name, str):
        raise UserError(f"{prefix}instrument {escape(repr(name))}: expected an instrument name ({known_list()})")
    inst = _BY_KEY.get(_normalise(name))
    if inst is None:
        if not name.strip():
            raise UserError(f"{prefix}empty instrument name ({known_list()})")
        raise UserError(f"{prefix}unknown instrument {quoted(name)} ({known_list()})")
    return inst


def find(name: str) -> Instrument | None:
    """Like :func:`get` but returns None for unknown names."""
    if not isinstance(name, str):
        return None
    return _BY_KEY.get(_normalise(name))


def from_program(program: int) -> Instrument | None:
    return _BY_PROGRAM.get(program)


def from_track_name(track_name: str) -> Instrument | None:
    """Guess an instrument from a MIDI track name ("Violin I", "Clarinet in Bb", "vc")."""
    text = _normalise(track_name)
    if not text:
        return None
    if text in _BY_KEY:
        return _BY_KEY[text]
    words = re.findall(r"[a-z']+", text)
    # Longest alias first so "tenor sax" wins over "sax".
    for key in sorted(_BY_KEY, key=len, reverse=True):
        if len(key) <= 3:
            if key in words:
                return _BY_KEY[key]
        elif key in text:
            return _BY_KEY[key]
    return None
