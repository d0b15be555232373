"""The corpus card: `ensemble-synth info CORPUS [-o card.md]`, written by `generate` at the end."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from ensemble_synth.cli import main
from ensemble_synth.corpus import card as card_mod
from ensemble_synth.corpus.card import CorpusStats, write_card
from ensemble_synth.corpus.generation import generate
from ensemble_synth.errors import UserError
from ensemble_synth.synthesis.soundfonts import registry

PRESET = {
    "name": "carded",
    "description": "Card test corpus",
    "sample_rate": 16000,
    "tracks": {"train": 3, "valid": 1, "test": 1, "per_room": 2},
    "repertoire": {"source": "music21:bach", "part_policy": "fit", "excerpt_seconds": 3,
                   "exclude": ["bwv255", "bwv1.6"]},
    "ensemble": {"layout": ["bach10", "string_trio"]},
    "timbre": {"soundfont": ["timgm6mb", "fluidr3_gm"]},
    "room": {"room": ["small_rooms", "dry_studio"], "mics": ["ortf", "spots"]},
    "mix": {"loudness_lufs": [-30, -20]},
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("card") / "corpus"
    generate(PRESET, out, seed=2, jobs=1, rir_cache=tmp_path_factory.mktemp("rirs"), progress=False)
    return out


def rows(corpus: Path) -> list[dict]:
    return list(csv.DictReader(open(corpus / "manifest.csv")))


def section(text: str, title: str) -> str:
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def table_rows(text: str) -> list[list[str]]:
    """The body rows of every Markdown table in ``text`` (headers and rules left out)."""
    lines = text.splitlines()
    body = [line for i, line in enumerate(lines) if line.startswith("| ")
            and not (i + 1 < len(lines) and lines[i + 1].startswith("|---"))]
    return [[c.strip() for c in line.strip("|").split("|")] for line in body]


def test_generate_writes_the_card_and_its_figure(corpus):
    text = (corpus / "card.md").read_text()
    assert text.startswith("# Corpus card: carded\n") and "![overview](card.png)" in text
    png = (corpus / "card.png").read_bytes()
    assert png.startswith(PNG_MAGIC)
    import matplotlib.image

    image = matplotlib.image.imread(str(corpus / "card.png"))
    assert image.shape[0] > 300 and image.shape[1] > 500 and float(np.std(image)) > 0.01


def test_hours_per_split_and_instrument_add_up_to_the_manifest(corpus):
    text = (corpus / "card.md").read_text()
    manifest = rows(corpus)
    splits = {r[0]: (int(r[1]), float(r[2])) for r in table_rows(section(text, "Hours per split"))}
    for split in ("train", "valid", "test"):
        mine = [float(r["duration"]) for r in manifest if r["split"] == split]
        assert splits[split][0] == len(mine) and splits[split][1] == pytest.approx(sum(mine) / 3600, abs=6e-4)
    insts = {r[0]: int(r[1]) for r in table_rows(section(text, "Hours per instrument"))}
    parts = [i for r in manifest for i in r["instruments"].split(";")]
    assert insts == {i: parts.count(i) for i in set(parts)}
    lineups = table_rows(section(text, "Line-ups"))
    assert sum(int(r[2]) for r in lineups) == len(manifest)
    assert {r[0] for r in lineups} == {r["ensemble"] for r in manifest}


def test_rooms_mics_and_histograms_count_every_track(corpus):
    text = (corpus / "card.md").read_text()
    manifest = rows(corpus)
    rooms = table_rows(section(text, "Rooms"))
    room_table = [r for r in rooms if not r[0][0].isdigit()]
    histogram = [r for r in rooms if r[0][0].isdigit()]
    assert {r[0] for r in room_table} == {r["room"] for r in manifest}
    assert sum(int(r[1]) for r in histogram) == len(manifest)  # the RT60 histogram
    rt60s = [float(r["rt60"]) for r in manifest]
    first = float(histogram[0][0].split()[0])
    assert first <= min(rt60s) < first + card_mod.bin_width(rt60s, card_mod.RT60_BIN_S)
    mics = table_rows(section(text, "Microphone setups"))
    assert {r[0]: int(r[1]) for r in mics} == {m: [r["mics"] for r in manifest].count(m) for m in {r["mics"] for r in manifest}}
    loudness = table_rows(section(text, "Loudness"))
    assert sum(int(r[1]) for r in loudness) == len(manifest)
    assert len(CorpusStats(corpus).loudness()) == len(manifest)


def test_soundfonts_licences_and_exclusions(corpus):
    text = (corpus / "card.md").read_text()
    fonts = {r[0]: r for r in table_rows(section(text, "Soundfonts and sample sources"))}
    known = registry()
    assert set(fonts) <= {"timgm6mb", "fluidr3_gm"} and fonts
    for name, row in fonts.items():
        assert row[1:4] == [known[name].file, known[name].source, known[name].licence]
    repertoire = section(text, "Repertoire and exclusions")
    assert "`music21:bach`" in repertoire and "excluded pieces: `bwv255`, `bwv1.6`" in repertoire
    assert "excluded melodies (pieces whose tune matches these MIDI files are left out): none" in repertoire


def test_the_card_is_deterministic(corpus, tmp_path):
    write_card(corpus, tmp_path / "again.md")
    assert (tmp_path / "again.png").read_bytes() == (corpus / "card.png").read_bytes()
    assert (tmp_path / "again.md").read_text() == (corpus / "card.md").read_text().replace("card.png", "again.png")


def test_info_prints_the_card_and_writes_it_with_o(corpus, tmp_path, capsys):
    assert main(["info", str(corpus)]) == 0
    printed = capsys.readouterr().out
    assert printed == (corpus / "card.md").read_text().replace("![overview](card.png)\n\n", "")
    out = tmp_path / "summary.md"
    assert main(["info", str(corpus), "-o", str(out)]) == 0
    assert "summary.png" in capsys.readouterr().out
    assert out.read_text().startswith("# Corpus card") and (tmp_path / "summary.png").read_bytes().startswith(PNG_MAGIC)
    # an existing card is kept without --overwrite
    assert main(["info", str(corpus), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists" in err and "--overwrite" in err
    assert main(["info", str(corpus), "-o", str(out), "--overwrite"]) == 0


def test_info_refuses_what_is_not_a_corpus_in_one_line(tmp_path, capsys):
    assert main(["info", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a corpus" in err
    assert main(["info", str(tmp_path), "-o", str(tmp_path / "card.md")]) == 2
    assert not list(tmp_path.iterdir())


def test_a_missing_track_is_named_and_nothing_is_written(corpus, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.csv").write_text((corpus / "manifest.csv").read_text())
    (broken / "corpus.toml").write_text((corpus / "corpus.toml").read_text())
    with pytest.raises(UserError, match=r"metadata.json: not found \(track carded-train-00000"):
        write_card(broken, tmp_path / "card.md")
    assert not (tmp_path / "card.md").exists() and not (tmp_path / "card.png").exists()


def test_a_dry_run_writes_no_card_and_a_roomless_corpus_has_one(tmp_path):
    dry = {**PRESET, "tracks": {"train": 1, "valid": 0, "test": 0}, "room": {"enabled": False}}
    generate(dry, tmp_path / "specs", seed=2, rir_cache=False, dry_run=True, progress=False)
    assert not (tmp_path / "specs" / "card.md").exists()
    generate(dry, tmp_path / "specs", seed=2, rir_cache=False, progress=False)
    text = (tmp_path / "specs" / "card.md").read_text()
    assert re.search(r"\| none \| 1 \| - \|", section(text, "Rooms"))
    assert "RT60 (mean" not in text and (tmp_path / "specs" / "card.png").is_file()
