"""The music21 repertoire sources beyond the chorales: the string quartets of music21's corpus.

Real corpus files, parsed by music21 (no mocks). Only small movements are parsed here (the
whole-quartet files take seconds each); every curated file's part count is read from its
header instead, without parsing.
"""

from __future__ import annotations

import json
import zipfile
from xml.etree import ElementTree
from pathlib import Path

import numpy as np
import pytest

from ensemble_synth.corpus.generation import generate
from ensemble_synth.corpus.preset import resolve_preset
from ensemble_synth.errors import UserError
from ensemble_synth.music.arrangement import load_piece
from ensemble_synth.music.repertoire import (
    BEAT,
    LENGTH,
    MUSIC21_QUARTET_FILES,
    PITCH,
    QUARTET_PARTS,
    Repertoire,
    load_music21_quartet,
    music21_quartet_ids,
)

# Fast to parse (under a second each): the generation test draws only from these.
FAST_WORKS = ("haydn/opus1no1", "mozart/k80", "mozart/k156")


def _header_parts(path: Path) -> int:
    """The part count a corpus file declares: MusicXML <score-part>s, Humdrum **kern spines."""
    if path.suffix == ".mxl":
        with zipfile.ZipFile(path) as archive:
            container = ElementTree.fromstring(archive.read("META-INF/container.xml"))
            name = container.find("rootfiles/rootfile").get("full-path")
            with archive.open(name) as xml:  # (some are UTF-16) read up to the part list only
                for _, element in ElementTree.iterparse(xml):
                    if element.tag == "part-list":
                        return len(element.findall("score-part"))
    if path.suffix == ".krn":
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("**"):
                return line.split("\t").count("**kern")
    raise AssertionError(f"unexpected corpus file {path}")


def test_every_curated_quartet_file_is_in_the_corpus_with_four_parts():
    from music21 import common

    root = Path(common.getCorpusFilePath())
    for name in MUSIC21_QUARTET_FILES:
        assert (root / name).is_file(), name
        assert _header_parts(root / name) == QUARTET_PARTS, name
    ids = music21_quartet_ids()
    assert len(ids) == len(set(ids)) == len(MUSIC21_QUARTET_FILES) == 50
    assert "haydn/opus74no1/movement1" in ids and "beethoven/opus18no1/movement1" in ids


def test_the_sources_list_pieces():
    quartets = Repertoire("music21:quartets")
    assert quartets.ids == list(music21_quartet_ids())
    assert {pid.split("/")[0] for pid in quartets.ids} == {"beethoven", "haydn", "mozart", "schumann_robert"}
    assert len(Repertoire("music21:bach").ids) > 300  # the chorales are still there


@pytest.mark.parametrize("pid", ["mozart/k458/movement2", "haydn/opus1no1/movement1", "beethoven/opus18no1/movement1"])
def test_a_quartet_loads_four_voices_high_to_low_in_string_ranges(pid):
    piece = load_music21_quartet(pid)
    assert piece.id == pid and piece.title
    assert len(piece.voices) == QUARTET_PARTS
    means = [float(np.mean(v[:, PITCH])) for v in piece.voices]
    assert means == sorted(means, reverse=True)
    # violin, violin, viola, cello: lowest open strings G3, G3, C3, C2; nothing above C8
    for voice, lowest in zip(piece.voices, (55, 55, 48, 36)):
        assert voice.shape[1] == 4 and len(voice) > 50
        assert lowest <= voice[:, PITCH].min() and voice[:, PITCH].max() <= 108
        assert np.all(voice[:, LENGTH] > 0)  # grace notes are left out
        assert np.all(np.diff(voice[:, BEAT]) > 0)  # one note an onset, in order
    assert piece.beats > 100


def test_tempo_comes_from_a_metronome_mark_when_the_score_keeps_one():
    assert load_music21_quartet("beethoven/opus18no1/movement1").tempo_bpm == pytest.approx(132.0)  # *MM132
    assert "Op. 18, No. 1" in load_music21_quartet("beethoven/opus18no1/movement1").title
    assert load_music21_quartet("mozart/k458/movement2").tempo_bpm is None  # no mark: the corpus draws one


def test_double_stops_keep_their_top_note():
    from music21 import corpus

    piece = load_music21_quartet("mozart/k458/movement1")
    score = corpus.parse("mozart/k458/movement1.mxl")
    part = score.parts[1]  # 2nd violin: 65 double stops
    chords = [c for c in part.flatten().getElementsByClass("Chord")
              if c.duration.quarterLength > 0 and not (c.tie and c.tie.type in ("stop", "continue"))]
    assert len(chords) > 10  # (a chord tied from the one before is merged into it)
    voice = piece.voices[1]
    for chord in chords[:20]:
        row = voice[np.isclose(voice[:, BEAT], float(chord.offset))]
        assert len(row) == 1 and row[0, PITCH] == max(p.midi for p in chord.pitches)


def test_exclusion_by_id_work_or_composer():
    everything = music21_quartet_ids()
    kept = Repertoire("music21:quartets", exclude=["Haydn/Opus74no1/Movement1", "mozart/k458"]).ids
    assert set(everything) - set(kept) == {"haydn/opus74no1/movement1", *(f"mozart/k458/movement{m}" for m in range(1, 5))}
    assert "haydn/opus74no1/movement2" in kept
    assert not any(pid.startswith("beethoven/") for pid in Repertoire("music21:quartets", exclude=["beethoven"]).ids)
    # a movement's name alone, or a partial name, is no id: it leaves everything in
    assert Repertoire("music21:quartets", exclude=["movement1", "mozart/k4", "bach/mozart/k80/movement1"]).ids == list(everything)


def test_an_unknown_source_is_one_line_naming_the_known_sources():
    with pytest.raises(UserError) as err:
        Repertoire("music21:quartet")
    message = str(err.value)
    assert "\n" not in message and "music21:quartet'" in message
    for known in ("music21:bach", "music21:quartets", "midi:PATH_OR_GLOB"):
        assert known in message
    with pytest.raises(UserError) as err:
        resolve_preset({"name": "bad", "repertoire": {"source": "music21:chamber"}, "room": {"enabled": False}})
    assert "\n" not in str(err.value) and "[repertoire] key 'source'" in str(err.value)
    assert "music21:quartets" in str(err.value)
    with pytest.raises(UserError, match="no quartet"):
        load_music21_quartet("bach/bwv255")


QUARTET_CORPUS = {
    "name": "tiny_quartets",
    "description": "test corpus: music21 string quartets",
    "sample_rate": 16000,
    "tracks": {"train": 2, "valid": 0, "test": 0, "per_room": 2},
    "repertoire": {"source": "music21:quartets", "part_policy": "skip", "excerpt_seconds": 2,
                   "exclude": [w for w in {pid.rsplit("/", 1)[0] for pid in music21_quartet_ids()} if w not in FAST_WORKS]},
    "ensemble": {"layout": "string_quartet"},
    "performance": {"tempo_bpm": [80, 100], "transpose": 0},
    "timbre": {"soundfont": "timgm6mb"},
    "room": {"enabled": False},
}


def test_a_tiny_string_quartet_corpus_from_the_quartets(tmp_path):
    out = tmp_path / "tiny_quartets"
    summary = generate(QUARTET_CORPUS, out, seed=3, jobs=1, progress=False)
    assert (summary.tracks, summary.rendered) == (2, 2)
    metas = [json.loads(p.read_text()) for p in sorted(out.glob("train/*/metadata.json"))]
    assert len(metas) == 2
    for meta in metas:
        source = meta["source"]
        assert source["kind"] == "music21" and source["id"].rsplit("/", 1)[0] in FAST_WORKS
        assert load_piece(source) is load_music21_quartet(source["id"])  # what render-spec reads back
        assert [p["instrument"] for p in meta["parts"]] == ["violin", "violin", "viola", "cello"]
        assert all(n > 0 for n in meta["rendered"]["notes"])
        assert len(list((out / "train" / meta["track_id"] / "stems").glob("*.wav"))) == 4
