"""URMP: the loader (annotations, AuMix, native rate, segments) and the benchmark over several
line-ups, on the URMP excerpt in ../shared/real/urmp and URMP-layout folders assembled here
from the Bach10 development stems and their annotations (converted to URMP's formats)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import BACH10, REAL, write_midi

from ensemble_synth.acoustics.seating import (
    ensemble_instruments,
    layout_for,
    load_layout,
)
from ensemble_synth.cli import main
from ensemble_synth.errors import UserError
from ensemble_synth.evaluation.datasets import load_dataset
from ensemble_synth.fileio import read_wav, write_wav
from ensemble_synth.music.repertoire import (
    MUSIC21_BACH,
    Repertoire,
    load_midi_piece,
    load_music21_bach,
    same_melody,
)
from ensemble_synth.presets import list_presets, load_preset, presets_root
from ensemble_synth.synth_vs_real import melody_files, title_exclusions

URMP = REAL / "urmp"
JUPITER = URMP / "01_Jupiter_vn_vc"
BACH10_PIECES = sorted(p for p in BACH10.iterdir() if p.is_dir())
BACH10_STEMS = {"vn": "violin", "cl": "clarinet", "tsx": "saxphone", "bn": "bassoon"}  # URMP abbreviation -> Bach10 file
HOP = 0.01  # s, Bach10's annotation frames

pytestmark = pytest.mark.skipif(not (URMP.is_dir() and BACH10.is_dir()), reason="../shared/real is not available")


def _hz(midi):
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=float) - 69.0) / 12.0)


def _bach10_annotations(piece: Path, part: int) -> tuple[str, str]:
    """A Bach10 part's ground-truth notes and f0 track (MATLAB, 10 ms frames, MIDI pitch) in
    URMP's text formats: onset, pitch (Hz), duration per note; time, f0 (Hz, 0 unvoiced)."""
    from scipy.io import loadmat

    notes = loadmat(piece / f"{piece.name}-GTNotes.mat")["GTNotes"][part, 0]
    lines = []
    for note in notes[:, 0]:
        frames, pitch = note[0], note[1]
        lines.append(f"{(frames[0] - 1) * HOP:.3f}\t\t{_hz(pitch.mean()):.3f}\t\t{len(frames) * HOP:.3f}")
    f0 = loadmat(piece / f"{piece.name}-GTF0s.mat")["GTF0s"][part]
    f0_lines = [f"{i * HOP:.3f}\t{(_hz(m) if m > 0 else 0.0):.3f}" for i, m in enumerate(f0)]
    return "\n".join(lines) + "\n", "\n".join(f0_lines) + "\n"


def urmp_piece(root: Path, source: Path, number: int, title: str, abbrevs: list[str], annotations=False,
               score=True) -> Path:
    """A URMP-layout piece folder from a Bach10 piece's stems (symlinks), its score as Sco_."""
    folder = root / f"{number:02d}_{title}_{'_'.join(abbrevs)}"
    folder.mkdir(parents=True)
    for part, abbrev in enumerate(abbrevs, 1):
        suffix = f"{part}_{abbrev}_{number:02d}_{title}"
        os.symlink(source / f"{source.name}-{BACH10_STEMS[abbrev]}.wav", folder / f"AuSep_{suffix}.wav")
        if annotations:
            index = list(BACH10_STEMS).index(abbrev)
            notes, f0s = _bach10_annotations(source, index)
            (folder / f"Notes_{suffix}.txt").write_text(notes)
            (folder / f"F0s_{suffix}.txt").write_text(f0s)
    if score:
        shutil.copy(source / f"{source.name}.mid", folder / f"Sco_{number:02d}_{title}_{'_'.join(abbrevs)}.mid")
    return folder


# -- the loader -------------------------------------------------------------------------


def test_urmp_excerpt_native_rate_title_score_and_no_annotations():
    (track,) = load_dataset(f"urmp:{URMP}")
    assert track.parts == ["1_violin", "2_cello"] and track.instruments == ["violin", "cello"]
    assert track.sample_rate == 48000 and track.stems.shape == (2, 1, 720000)
    assert track.title == "Jupiter" and track.path == JUPITER
    assert track.score == JUPITER / "Sco_01_Jupiter_vn_vc.mid"
    assert track.notes is None and track.f0s is None  # the excerpt ships no Notes_/F0s_ files
    np.testing.assert_array_equal(track.mixture, track.stems.sum(axis=0))
    # the study's 15 s segments: the excerpt is one
    (segment,) = load_dataset(f"urmp:{URMP}", segment=15)
    assert segment.name == "01_Jupiter_vn_vc_seg00" and segment.sample_rate == 48000


def test_notes_and_f0s_are_attached_per_part_and_follow_segments(tmp_path):
    folder = urmp_piece(tmp_path, BACH10_PIECES[0], 1, "AchGott", ["vn", "cl"], annotations=True)
    # part 2 without an F0s file: its entry is None, the others stay
    (folder / "F0s_2_cl_01_AchGott.txt").unlink()
    (track,) = load_dataset(f"urmp:{tmp_path}")
    assert track.instruments == ["violin", "clarinet"] and track.sample_rate == 44100
    assert [n.shape[1] for n in track.notes] == [3, 3] and track.f0s[1] is None and track.f0s[0].shape[1] == 2
    violin_notes = track.notes[0]
    assert len(violin_notes) == 34  # the Bach10 violin part of piece 01
    first_onset = 220 / 1000  # the alignment file: first audio onset 220 ms, MIDI pitch 72 (C5)
    assert violin_notes[0, 0] == pytest.approx(first_onset, abs=0.03)
    assert violin_notes[0, 1] == pytest.approx(_hz(72), rel=0.01)
    assert (violin_notes[:, 2] > 0).all() and np.isfinite(track.f0s[0]).all()
    voiced = track.f0s[0][track.f0s[0][:, 1] > 0, 1]
    assert 180 < voiced.min() and voiced.max() < 1100  # a violin's register, in Hz

    segments = load_dataset(f"urmp:{tmp_path}", segment=10)
    assert len(segments) == 2 and all(s.stems.shape[-1] == 441000 for s in segments)
    second = segments[1]
    expected = violin_notes[(violin_notes[:, 0] >= 10) & (violin_notes[:, 0] < 20)]
    np.testing.assert_allclose(second.notes[0][:, 0], expected[:, 0] - 10)
    np.testing.assert_array_equal(second.notes[0][:, 1:], expected[:, 1:])
    assert second.f0s[1] is None and second.f0s[0][:, 0].min() >= 0 and second.f0s[0][:, 0].max() < 10


@pytest.mark.parametrize("kind, lines, message", [
    ("Notes", ["0.5 440.0 0.4", "1.0 440.0", ""], "line 2: expected 3 numbers (onset_s, pitch_hz, duration_s), got 2"),
    ("Notes", ["", "0.5 440.0 0.4", "1.0 A4 0.3"], "line 3: 'A4' is not a number"),
    ("Notes", ["0.5 -440.0 0.4"], "line 1: pitch_hz -440 must be positive"),
    ("Notes", ["0.5 440.0 -0.4"], "line 1: duration_s -0.4 is negative"),
    ("Notes", ["nan 440.0 0.4"], "line 1: values must be finite"),
    ("F0s", ["0.00 440.0", "0.01 0.0", "0.005 441.0"], "line 3: time_s 0.005 comes before the previous line's 0.01"),
    ("F0s", ["0.00 440.0 1"], "line 1: expected 2 numbers (time_s, f0_hz), got 3"),
    ("F0s", ["-0.01 440.0"], "line 1: time_s -0.01 is negative"),
])
def test_malformed_annotation_is_one_line_naming_the_file_and_line(tmp_path, kind, lines, message):
    folder = urmp_piece(tmp_path, BACH10_PIECES[0], 1, "AchGott", ["vn", "cl"])
    path = folder / f"{kind}_2_cl_01_AchGott.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError) as info:
        load_dataset(f"urmp:{tmp_path}")
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_annotation_of_no_stem_and_binary_annotation_are_refused(tmp_path):
    folder = urmp_piece(tmp_path, BACH10_PIECES[0], 1, "AchGott", ["vn", "cl"])
    stray = folder / "Notes_3_vc_01_AchGott.txt"
    stray.write_text("0.5 440 0.4\n")
    with pytest.raises(UserError, match=r"Notes_3_vc_01_AchGott\.txt: URMP annotation for no stem .*Notes_1_vn_01_AchGott\.txt"):
        load_dataset(f"urmp:{tmp_path}")
    stray.unlink()
    binary = folder / "F0s_1_vn_01_AchGott.txt"
    binary.write_bytes(b"\x00\xff\xfe0.1 440\n")
    with pytest.raises(UserError, match=r"F0s_1_vn_01_AchGott\.txt: not a text file"):
        load_dataset(f"urmp:{tmp_path}")


def test_aumix_is_checked_against_the_stems_but_not_used(tmp_path):
    folder = urmp_piece(tmp_path, BACH10_PIECES[0], 1, "AchGott", ["vn", "cl"])
    stems = [read_wav(p)[0] for p in sorted(folder.glob("AuSep_*.wav"))]
    mix = folder / "AuMix_01_AchGott_vn_cl.wav"
    write_wav(mix, 0.5 * (stems[0] + stems[1]), 44100)  # a scaled mix of the right length: accepted
    (track,) = load_dataset(f"urmp:{tmp_path}")
    np.testing.assert_array_equal(track.mixture, track.stems.sum(axis=0))  # the sum of the stems, not AuMix
    write_wav(mix, stems[0][:, :-100], 44100)
    with pytest.raises(UserError, match=rf"{mix.name}: {stems[0].shape[1] - 100} samples at 44100 Hz, but the stems "
                                        rf"have {stems[0].shape[1]} samples"):
        load_dataset(f"urmp:{tmp_path}")
    write_wav(mix, stems[0], 48000)
    with pytest.raises(UserError, match=rf"{mix.name}: .* at 48000 Hz"):
        load_dataset(f"urmp:{tmp_path}")


# -- presets ----------------------------------------------------------------------------

URMP_LINEUPS = {  # URMP's 44 pieces as their stems name them (sax: alto saxophone)
    "vn vc", "vn vn", "fl cl", "fl fl", "tpt tpt", "sax sax", "tpt tbn", "fl vn", "tpt vn", "tpt sax", "ob vc",
    "vn vn vc", "vn vn va", "fl fl cl", "tpt tpt tpt", "tpt tpt sax", "vn fl cl", "vn fl tpt", "cl vn vc",
    "tpt vn vc", "cl tbn tba", "sax tbn tba", "cl sax tba", "vn vn va vc", "vn vn va sax", "fl ob cl bn",
    "fl fl ob cl", "fl fl ob sax", "tpt tpt hn tbn", "vn vn va db", "fl vn va cl", "vn vn va vc db",
    "vn vn va sax db", "fl fl ob cl bn", "fl fl ob sax bn", "tpt tpt hn tbn tba", "vn vn va va vc",
}


def test_every_urmp_lineup_has_an_ensemble_preset_and_a_corpus_preset():
    from ensemble_synth.music import instruments

    by_count = {2: "urmp_duos", 3: "urmp_trios", 4: "urmp_quartets", 5: "urmp_quintets"}
    for lineup in URMP_LINEUPS:
        names = [instruments.get(a).name for a in lineup.split()]
        layout = layout_for(names)
        assert ensemble_instruments(load_layout(layout)) == names
        if lineup != "tpt tpt tpt":  # URMP 15's files name its trombone tpt: seated, in no corpus preset
            assert layout in load_preset("corpora", by_count[len(names)])["ensemble"]["layout"], lineup
            assert layout in load_preset("corpora", "urmp_like")["ensemble"]["layout"], lineup
    for name in [*by_count.values(), "urmp_like"]:
        preset = load_preset("corpora", name)
        assert preset["repertoire"]["part_policy"] == "fit" and preset["repertoire"]["source"] == MUSIC21_BACH
    assert {"urmp_duos", "urmp_trios", "urmp_quintets", "urmp_like"} <= set(list_presets("corpora"))


def test_melody_exclusion_checks_every_voice_of_a_urmp_score(tmp_path):
    real = tmp_path / "real"
    urmp_piece(real, BACH10_PIECES[0], 1, "AchGott", ["vn", "cl"])
    files = melody_files([f"urmp:{real}", f"urmp:{URMP}", f"bach10:{BACH10}"], tmp_path / "melodies")
    names = [re.sub(r"_[0-9a-f]{16}_", "_", Path(f).name) for f in files]  # named by the score's digest
    assert names[:6] == [*(f"Sco_01_AchGott_vn_cl_voice{i}.mid" for i in range(1, 5)),
                         "Sco_01_Jupiter_vn_vc_voice1.mid", "Sco_01_Jupiter_vn_vc_voice2.mid"]
    assert files[6:] == [str(p) for p in sorted(BACH10.glob("*/*.mid"))]  # Bach10: the chorale scores as they are
    assert all(Path(f).parent == tmp_path / "melodies" for f in files[:6])
    assert melody_files([f"urmp:{URMP}"], tmp_path / "melodies") == files[4:6]  # the same paths again
    files = files[:6]
    jupiter = load_midi_piece(str(JUPITER / "Sco_01_Jupiter_vn_vc.mid"))
    np.testing.assert_array_equal(load_midi_piece(files[-1]).soprano(), jupiter.voices[1][:, 2])
    # a chorale whose tune is Bach10 01's is out by melody, through the score's top voice
    repertoire = Repertoire(MUSIC21_BACH, [], files)
    assert repertoire.melody_exclusion(load_music21_bach("bwv255")) is not None
    assert repertoire.melody_exclusion(load_music21_bach("bwv1.6")) is None
    # a piece whose top line is the tune of Jupiter's cello (its lower part) is out too
    cello = [(0.5 * b, 0.5 * (b + max(length, 0.1)), int(p)) for b, length, p, _ in jupiter.voices[1]]
    tunes = tmp_path / "tunes"
    tunes.mkdir()
    write_midi(tunes / "cello_tune.mid", [("tune", 40, [(s, e, p + 24) for s, e, p in cello])])
    write_midi(tunes / "other.mid", [("other", 40, [(i * 0.5, i * 0.5 + 0.4, 60 + (i * 5) % 12) for i in range(40)])])
    midi_repertoire = Repertoire(f"midi:{tunes}", [], files)
    assert midi_repertoire.excluded_by_melody() == [str(tunes / "cello_tune.mid")]


def test_title_exclusion_for_midi_repertoires(tmp_path):
    for name in ("Holst_JUPITER-arr.mid", "jupiter.mid", "saturn.mid"):
        shutil.copy(JUPITER / "Sco_01_Jupiter_vn_vc.mid", tmp_path / name)
    assert sorted(Path(f).name for f in title_exclusions(f"midi:{tmp_path}", ["Jupiter", "K5"])) == [
        "Holst_JUPITER-arr.mid", "jupiter.mid"]
    assert title_exclusions(MUSIC21_BACH, ["Jupiter"]) == []  # no titles to match there
    choice = {"choice": [MUSIC21_BACH, f"midi:{tmp_path}"], "weights": [3, 1]}  # each midi: source of a choice
    assert sorted(Path(f).name for f in title_exclusions(choice, ["Jupiter"])) == ["Holst_JUPITER-arr.mid", "jupiter.mid"]


# -- the benchmark over several line-ups ------------------------------------------------


def violin_duet(root: Path) -> Path:
    """Two real violins: the Bach10 violin parts of pieces 01 and 03 (cut to the shorter)."""
    folder = root / "04_Duet_vn_vn"
    folder.mkdir(parents=True)
    first, second = (read_wav(p / f"{p.name}-violin.wav")[0] for p in (BACH10_PIECES[0], BACH10_PIECES[2]))
    n = min(first.shape[1], second.shape[1])
    write_wav(folder / "AuSep_1_vn_04_Duet.wav", first[:, :n], 44100)
    write_wav(folder / "AuSep_2_vn_04_Duet.wav", second[:, :n], 44100)
    return folder


def assembled_urmp(root: Path) -> Path:
    """Four line-ups: two duos (violin, clarinet), a quartet (violin, clarinet, tenor sax,
    bassoon) from the Bach10 stems, two violins, and the real URMP excerpt (violin, cello)."""
    urmp_piece(root, BACH10_PIECES[0], 1, "AchGott", ["vn", "cl"], annotations=True)
    urmp_piece(root, BACH10_PIECES[1], 2, "AchLieben", ["vn", "cl"])
    urmp_piece(root, BACH10_PIECES[2], 3, "Christe", ["vn", "cl", "tsx", "bn"])
    violin_duet(root)
    os.symlink(JUPITER, root / JUPITER.name)
    return root


LAYOUTS = ["vn_cl", "violin_cello", "bach10", "vn_vn"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("rirs")
    old = os.environ.get("ENSEMBLE_SYNTH_CACHE")
    os.environ["ENSEMBLE_SYNTH_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("ENSEMBLE_SYNTH_CACHE")
    else:
        os.environ["ENSEMBLE_SYNTH_CACHE"] = old


@pytest.fixture(scope="module")
def grouped(tmp_path_factory, cache):
    real = assembled_urmp(tmp_path_factory.mktemp("urmp_real"))
    out = tmp_path_factory.mktemp("bench") / "run"
    status = main(["bench", "--real", f"urmp:{real}", "--budget", "smoke", "--variants", "dry,timbre",
                   "--segment", "15", "-o", str(out), "--jobs", "2"])
    assert status == 0
    return real, out, json.loads((out / "results.json").read_text())


def test_groups_by_lineup_with_corpora_models_and_scores_per_group(grouped):
    _, out, results = grouped
    groups = results["groups"]
    # in the order the line-ups first appear among the pieces (sorted by folder name)
    assert [g["layout"] for g in groups] == LAYOUTS
    assert [g["instruments"] for g in groups] == [["violin", "clarinet"], ["violin", "cello"],
                                                  ["violin", "clarinet", "tenor_saxophone", "bassoon"],
                                                  ["violin", "violin"]]
    assert groups[0]["pieces"] == ["01_AchGott_vn_cl", "02_AchLieben_vn_cl"]
    assert results["preset"] == "urmp_like" and results["segment_seconds"] == 15
    assert results["ensemble"]["layout"] == LAYOUTS
    # 15 s segments: the Bach10 pieces (25-40 s) give one or two, the 15 s excerpt one
    assert "01_Jupiter_vn_vc_seg00" in results["real_tracks"] and all("_seg" in t for t in results["real_tracks"])
    for group in groups:
        assert [r["variant"] for r in group["variants"]] == ["dry", "timbre"]
        # the model's outputs are the real parts in part order
        assert group["outputs"] == {p: p for p in group["parts"]}
        for row in group["variants"]:
            run = out / "runs" / group["layout"] / row["variant"]
            assert (run / "model.pt").is_file()
            assert (out / "scores" / group["layout"] / f"{row['variant']}.json").is_file()
            meta = next((out / "corpora" / group["layout"] / row["variant"]).glob("train/*/metadata.json"))
            assert json.loads(meta.read_text())["ensemble"] == group["layout"]
            assert set(row["parts"]) == set(group["parts"]) and set(row["pieces"]) == set(group["pieces"])
            assert all(isinstance(v, float) for v in [*row["parts"].values(), *row["pieces"].values()])
            assert isinstance(row["real"]["mean"], float) and isinstance(row["synthetic"]["mean"], float)
        reference = group["mixture_reference"]
        assert set(reference["pieces"]) == set(group["pieces"])
    # two parts of similar level: the mixture over two scores about 10 log10(2/1) = 3 dB; four about 1.25 dB
    duo, quartet = groups[0]["mixture_reference"]["real"]["mean"], groups[2]["mixture_reference"]["real"]["mean"]
    assert 1.5 < duo < 4.5 and 0.5 < quartet < 2.0


def test_two_violins_stay_apart(grouped):
    _, out, results = grouped
    violins = results["groups"][3]
    assert violins["parts"] == ["1_violin", "2_violin"]
    assert violins["outputs"] == {"1_violin": "1_violin", "2_violin": "2_violin"}
    for row in violins["variants"]:
        scores = json.loads((out / "scores" / "vn_vn" / f"{row['variant']}.json").read_text())
        for track in scores["real"]:  # each output scored against its own part
            assert [t["name"] for t in track["targets"]] == ["1_violin", "2_violin"]
            per_part = [t["summary"]["SDR"] for t in track["targets"]]
            assert per_part[0] != per_part[1]
        assert row["parts"]["1_violin"] != row["parts"]["2_violin"]
    # the overall violin pools every violin part of every line-up
    assert results["variants"][0]["real"]["instruments"]["violin"]["tracks"] == sum(
        len(g["tracks"]) * g["instruments"].count("violin") for g in results["groups"])
    table = (out / "results.md").read_text()
    assert "| variant | synthetic SDR | real SDR | gap | real 1_violin | real 2_violin |" in table


def test_a_moved_grouped_run_resumes_its_corpora_and_models(grouped, tmp_path):
    real, out, results = grouped
    moved = tmp_path / "moved"
    shutil.copytree(out, moved, symlinks=True)
    stamps = {p: p.stat().st_mtime_ns for p in moved.glob("corpora/*/timbre/*/*/metadata.json")}
    assert main(["bench", "--real", f"urmp:{real}", "--budget", "smoke", "--variants", "timbre",
                 "--segment", "15", "-o", str(moved), "--jobs", "2"]) == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing regenerated
    again = json.loads((moved / "results.json").read_text())
    for before, after in zip(results["groups"], again["groups"]):
        [row] = after["variants"]
        assert row["real"]["mean"] == pytest.approx(next(r for r in before["variants"] if r["variant"] == "timbre")["real"]["mean"])


def test_overall_rows_pool_every_piece_and_instrument(grouped):
    _, _, results = grouped
    groups = results["groups"]
    for row in results["variants"]:
        per_group = [next(r for r in g["variants"] if r["variant"] == row["variant"]) for g in groups]
        pieces = [v for r in per_group for v in r["pieces"].values()]
        assert row["real"]["pieces_mean"] == pytest.approx(np.mean(pieces))
        assert set(row["real"]["instruments"]) == {"violin", "clarinet", "tenor_saxophone", "bassoon", "cello"}
        assert len(per_group) == 4 and len(pieces) == 5
        assert row["real"]["mean"] == pytest.approx(np.mean([v["mean"] for v in row["real"]["instruments"].values()]))
        # the cello is only in the excerpt's line-up: its pooled score is that group's
        assert row["real"]["instruments"]["cello"]["mean"] == pytest.approx(
            per_group[1]["real"]["instruments"]["cello"]["mean"])
    reference = results["mixture_reference"]["real"]
    assert isinstance(reference["mean"], float) and isinstance(reference["pieces_mean"], float)


def test_grouped_tables(grouped):
    _, out, _results = grouped
    table = (out / "results.md").read_text()
    assert "## Overall: 4 line-ups, 5 pieces" in table
    for section in ("## Line-up violin, clarinet (preset vn_cl", "## Line-up violin, cello (preset violin_cello",
                    "## Per piece", "Model outputs in part order: 1_violin -> part 1_violin, 2_clarinet -> part 2_clarinet"):
        assert section in table
    blocks = table.split("\n## ")
    for block in blocks[1:6]:  # the overall table and one a line-up: the variants and the no-model row
        rows = [line for line in block.splitlines() if line.startswith("| ") and not line.startswith("| variant")]
        assert [r.split("|")[1].strip() for r in rows] == ["dry", "timbre", "*mixture / parts (no model)*"]
        header = next(line for line in block.splitlines() if line.startswith("| variant"))
        assert all(len(r.split("|")) == len(header.split("|")) for r in rows)
    per_piece = [line for line in blocks[6].splitlines() if line.startswith("| ") and not line.startswith("| piece")]
    assert [r.split("|")[1].strip() for r in per_piece] == [
        "01_AchGott_vn_cl", "02_AchLieben_vn_cl", "01_Jupiter_vn_vc", "03_Christe_vn_cl_tsx_bn", "04_Duet_vn_vn"]
    assert (out / "gap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_real_tunes_are_excluded_from_every_group_corpus(grouped, cache):
    _, out, results = grouped
    voices = results["excluded"]["melody_files"]
    assert "every voice" in voices["note"] and len(voices["files"]) == 3 * 4 + 2
    assert all(Path(f).parent == cache / "melodies" for f in voices["files"])
    assert results["excluded"]["titles"]["of_real_pieces"] == ["AchGott", "AchLieben", "Christe", "Duet", "Jupiter"]
    real_melodies = [load_midi_piece(str(p)).soprano() for piece in BACH10_PIECES for p in piece.glob("*.mid")]
    corpora = sorted((out / "corpora").glob("*/*"))
    assert len(corpora) == 8
    for corpus in corpora:
        toml = (corpus / "corpus.toml").read_text()
        assert all(f in toml for f in voices["files"])
        for path in corpus.glob("*/*/metadata.json"):
            piece_id = json.loads(path.read_text())["source"]["id"].split("/", 1)[1]
            soprano = load_music21_bach(piece_id).soprano()
            assert not any(same_melody(soprano, melody) for melody in real_melodies), path


def test_urmp_excerpt_alone_keeps_the_single_lineup_layout(tmp_path, cache):
    out = tmp_path / "run"
    assert main(["bench", "--real", f"urmp:{URMP}", "--budget", "smoke", "--variants", "dry", "-o", str(out),
                 "--jobs", "2"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert "groups" not in results and results["ensemble"] == {"layout": "violin_cello", "instruments": ["violin", "cello"]}
    assert (out / "runs" / "dry" / "model.pt").is_file() and (out / "scores" / "dry.json").is_file()
    [row] = results["variants"]
    assert set(row["real"]["instruments"]) == {"violin", "cello"}
    # a violin and a cello of similar level: doing nothing scores about 3 dB
    assert 1.5 < results["mixture_reference"]["real"]["mean"] < 4.5
    text = (out / "results.md").read_text()
    rows = [line for line in text.split("## Per piece")[0].splitlines()
            if line.startswith("| ") and not line.startswith("| variant")]
    assert [r.split("|")[1].strip() for r in rows] == ["dry", "*mixture / parts (no model)*"]
    assert "| piece | dry | no model |" in text  # the excerpt's own row follows
    # target models in the same folder: the corpus is reused, the voice-ordered results stay as they were
    before = (out / "results.json").read_bytes()
    assert main(["bench", "--real", f"urmp:{URMP}", "--budget", "smoke", "--variants", "dry", "--outputs", "targets",
                 "-o", str(out), "--jobs", "2"]) == 0
    assert (out / "results.json").read_bytes() == before
    [target_row] = json.loads((out / "results-targets.json").read_text())["variants"]
    assert set(target_row["models"]) == {"violin", "cello"} == set(target_row["real"]["instruments"])
    assert all((out / "runs" / "targets" / "dry" / i / "model.pt").is_file() for i in ("violin", "cello"))


# -- refusals before any corpus ----------------------------------------------------------


def test_lineup_no_preset_seats_is_one_line_before_any_corpus(tmp_path, capsys):
    real = tmp_path / "real"
    urmp_piece(real, BACH10_PIECES[0], 1, "AchGott", ["vn", "cl"])
    urmp_piece(real, BACH10_PIECES[1], 2, "AchLieben", ["cl", "bn"])  # clarinet, bassoon: no preset
    out = tmp_path / "o"
    assert main(["bench", "--real", f"urmp:{real}", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "seats the line-up clarinet, bassoon (in 02_AchLieben_cl_bn)" in err
    assert f"no ensemble preset in {presets_root() / 'ensembles'} seats" in err
    assert not out.exists()


def test_instrument_no_preset_seats_names_it_and_the_presets_folder(tmp_path, capsys, monkeypatch):
    presets = tmp_path / "presets"
    for kind in ("corpora", "models", "rooms", "mics"):
        shutil.copytree(presets_root() / kind, presets / kind)
    (presets / "ensembles").mkdir()
    shutil.copy(presets_root() / "ensembles" / "violin_cello.toml", presets / "ensembles")  # no clarinet seated
    monkeypatch.setenv("ENSEMBLE_SYNTH_PRESETS", str(presets))
    real = tmp_path / "real"
    urmp_piece(real, BACH10_PIECES[0], 1, "AchGott", ["vn", "cl"])
    os.symlink(JUPITER, real / JUPITER.name)
    out = tmp_path / "o"
    assert main(["bench", "--real", f"urmp:{real}", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"no ensemble preset in {presets / 'ensembles'} seats clarinet (in 01_AchGott_vn_cl)" in err
    assert not out.exists()


@pytest.mark.parametrize("args, expected", [
    (["--segment", "0"], "--segment 0.0: must be a positive number of seconds"),
    (["--segment", "15", "--score-informed"], "--score-informed adapts to and scores whole pieces"),
])
def test_bad_segment_options_fail_before_any_work(tmp_path, capsys, args, expected):
    out = tmp_path / "o"
    assert main(["bench", "--real", f"urmp:{URMP}", "-o", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1
    assert not out.exists()


def test_a_piece_given_twice_is_refused(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["bench", "--real", f"urmp:{URMP}", "--real", f"urmp:{JUPITER}", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "track '01_Jupiter_vn_vc' is also in" in err and err.count("\n") == 1
    assert not out.exists()


# -- target models: one per instrument, against voice-ordered models ---------------------


@pytest.fixture(scope="module")
def targets(tmp_path_factory, cache):
    real = tmp_path_factory.mktemp("urmp_targets")
    urmp_piece(real, BACH10_PIECES[0], 1, "AchGott", ["vn", "cl"])
    os.symlink(JUPITER, real / JUPITER.name)
    out = tmp_path_factory.mktemp("bench") / "run"
    assert main(["bench", "--real", f"urmp:{real}", "--budget", "smoke", "--variants", "dry", "--segment", "15",
                 "--outputs", "targets", "-o", str(out), "--jobs", "2"]) == 0
    return out, json.loads((out / "results-targets.json").read_text())


def test_target_models_one_per_instrument_scored_as_the_real_parts(targets):
    out, results = targets
    assert results["outputs"] == "targets" and not (out / "results.json").exists()
    groups = {g["layout"]: g for g in results["groups"]}
    assert set(groups) == {"vn_cl", "violin_cello"}
    for layout, group in groups.items():
        [row] = group["variants"]
        assert set(row["models"]) == set(group["instruments"]) and set(row["parts"]) == set(group["parts"])
        assert group["outputs"] == dict(zip(group["instruments"], group["parts"]))
        for instrument, part in zip(group["instruments"], group["parts"]):
            run = out / "runs" / "targets" / layout / "dry" / instrument
            assert row["models"][instrument] == str(run / "model.pt") and (run / "model.pt").is_file()
            # each part's score is its own target model's score of the target output on that part
            scores = json.loads((out / "scores" / "targets" / layout / "dry" / f"{instrument}.json").read_text())
            own = [t["summary"]["SDR"] for track in scores["real"] for t in track["targets"] if t["name"] == instrument]
            assert len(own) == len(group["tracks"])
            # the score files hold 5 decimals
            assert row["parts"][part] == pytest.approx(np.mean(own), abs=1e-5)
            assert row["real"]["instruments"][instrument]["mean"] == pytest.approx(np.mean(own), abs=1e-5)
    # the violin pools both line-ups' violin parts, each scored by its own line-up's violin model
    overall = results["variants"][0]["real"]["instruments"]["violin"]
    assert overall["tracks"] == sum(len(g["tracks"]) for g in groups.values())
    table = (out / "results-targets.md").read_text()
    assert "(smoke budget, target models)" in table
    assert "One target model per part: violin -> part 1_violin, clarinet -> part 2_clarinet" in table
    assert (out / "gap-targets.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_target_models_refuse_two_parts_of_one_instrument(tmp_path, capsys):
    real = tmp_path / "real"
    violin_duet(real)
    out = tmp_path / "o"
    assert main(["bench", "--real", f"urmp:{real}", "--outputs", "targets", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "04_Duet_vn_vn has 2 violin parts, which one target model cannot tell apart; use --outputs voices" in err
    assert err.count("\n") == 1 and not out.exists()
    assert main(["bench", "--real", f"urmp:{URMP}", "--outputs", "targets", "--score-informed", "-o", str(out)]) == 2
    assert "leave out --outputs targets" in capsys.readouterr().err and not out.exists()
