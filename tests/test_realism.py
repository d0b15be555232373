"""The realism report: the real Bach10 pieces against a tiny generated corpus.

The estimators are first checked on signals whose answer is known (a tone with 6 Hz
vibrato of 30 cents, an exponential decay of known RT, a ramp of known rise time), then the
whole report is run from the command line: its files, a finite distance per statistic and
instrument, a set against itself at distance 0, and bad input as one line with exit 2.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from helpers import BACH10

from ensemble_synth.cli import main
from ensemble_synth.corpus.generation import generate
from ensemble_synth.evaluation import realism
from ensemble_synth.synthesis.timbre import played_by

SR = 16000
TINY_BACH10 = {
    "name": "tiny_realism",
    "description": "realism test corpus",
    "sample_rate": SR,
    "write": {"dry": True},
    "tracks": {"train": 4, "valid": 0, "test": 0, "per_room": 2},
    "repertoire": {"source": "music21:bach", "part_policy": "skip", "excerpt_seconds": 3,
                   "exclude": ["bwv255", "bwv48.3", "bwv256", "bwv274", "bwv62.6"]},
    "ensemble": {"layout": "bach10"},
    "performance": {"tempo_bpm": [60, 70], "fermata_beats": [1.0, 2.0], "onset_jitter_ms": [5, 15],
                    "level_db": [-3, 3], "dynamics_db": 2.0, "articulation": [0.8, 0.95],
                    "vibrato": {"integers": [20, 64]}},
    "timbre": {"soundfont": ["timgm6mb", "fluidr3_gm"], "detune_cents": {"normal": [0, 4]}},
    "room": {"room": ["small_rooms", "dry_studio"], "mics": ["ortf", "spots"]},
    "mix": {"gain_db": [-2, 2], "loudness_lufs": [-26, -22]},
}
REAL = f"bach10:{BACH10}"
QUICK = ["--max-seconds", "10", "--pyin-seconds", "6"]  # the test's budget per stem


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus") / "tiny"
    generate(TINY_BACH10, out, seed=3, jobs=1, rir_cache=tmp_path_factory.mktemp("rirs"), progress=False)
    return out


@pytest.fixture(scope="module")
def report_dir(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "realism"
    assert main(["realism", str(corpus), "--real", REAL, "-o", str(out), *QUICK, "--jobs", "2"]) == 0
    return out


# --- the estimators on signals with a known answer ----------------------------------------


def _tone(f0: np.ndarray, sr: int = SR) -> np.ndarray:
    phase = 2 * np.pi * np.cumsum(f0) / sr
    return (0.3 * np.sin(phase) + 0.1 * np.sin(2 * phase) + 0.05 * np.sin(3 * phase)).astype(np.float32)


def test_vibrato_rate_and_depth_of_a_known_tone():
    t = np.arange(int(3.0 * SR)) / SR
    f0 = 440.0 * 2 ** (30.0 * np.sin(2 * np.pi * 6.0 * t) / 1200)
    fmin, fmax = realism.pitch_range("violin")
    track, usable = realism.f0_track(_tone(f0), SR, fmin, fmax)
    stats = realism.vibrato_statistics(track, usable)
    assert stats["vibrato_rate"].size >= 1
    assert abs(np.median(stats["vibrato_rate"]) - 6.0) < 0.3
    assert abs(np.median(stats["vibrato_depth"]) - 30.0) < 4.0
    steady = realism.vibrato_statistics(*realism.f0_track(_tone(np.full(t.size, 440.0)), SR, fmin, fmax))
    assert np.median(steady["vibrato_depth"]) < 3.0


@pytest.mark.parametrize("rt", [0.4, 1.5])
def test_decay_time_of_an_exponential_release(rt):
    rng = np.random.default_rng(0)
    notes = []
    for _ in range(3):  # 0.5 s of noise at full level, then a free decay of 60 dB per rt seconds
        sustain = rng.standard_normal(int(0.5 * SR))
        tail_t = np.arange(int(1.2 * rt * SR)) / SR
        tail = rng.standard_normal(tail_t.size) * 10 ** (-3 * tail_t / rt)
        notes.append(np.concatenate([sustain, tail]))
    x = (0.1 * np.concatenate(notes)).astype(np.float32)
    found = realism.decay_times(x, SR)
    assert found.size >= 2
    assert abs(np.median(found) - rt) < 0.15 * rt


def test_attack_time_of_a_linear_ramp():
    sr, rise = SR, 0.08
    x = np.zeros(int(3.0 * sr), np.float32)
    t = np.arange(int(0.8 * sr)) / sr
    note = np.minimum(np.minimum(t / rise, 1.0), (t[-1] - t) / 0.03) * np.sin(2 * np.pi * 330 * t)  # 30 ms release
    for start in (0.2, 1.1, 2.0):  # 0.1 s apart
        i = int(start * sr)
        x[i:i + note.size] += note[: x.size - i]
    stats = realism.note_statistics(x, sr, realism.onset_times(x, sr))
    # 90 % of a linear ramp's peak is at 0.9 * rise; the onset may land up to a frame early
    assert stats["attack"].size == 3
    assert np.all(np.abs(stats["attack"] - 0.9 * rise * 1000) < 25)


def test_ltas_is_level_normalised():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(4 * SR).astype(np.float32) * 0.05
    bands = realism.third_octave_bands(SR)
    quiet = realism.spectral_statistics(x, SR, bands, 100)["ltas"]
    loud = realism.spectral_statistics(10 * x, SR, bands, 100)["ltas"]
    assert np.allclose(quiet, loud, atol=1e-3)
    assert abs(10 * np.log10(np.sum(10 ** (quiet / 10)))) < 1e-3  # 0 dB in all
    assert bands[-1] * 2 ** (1 / 6) < SR / 2


# --- the report on the real pieces --------------------------------------------------------


def test_report_files_and_a_finite_distance_per_statistic_and_instrument(report_dir):
    names = {p.name for p in report_dir.iterdir()}
    expected = {"report.md", "report.json", "overview.png", *(f"{s}.png" for s in realism.STAT_NAMES)}
    assert expected <= names
    for name in expected - {"report.md", "report.json"}:
        assert (report_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((report_dir / "report.json").read_text())
    assert report["instruments"] == ["violin", "clarinet", "tenor_saxophone", "bassoon"]
    assert set(report["sets"]) == {"real", "synthetic", "synthetic_dry"}  # the corpus has dry stems
    assert len(report["sets"]["real"]["tracks"]) == 3
    for stat in realism.STAT_NAMES:
        for inst in report["instruments"]:
            row = report["distances"][stat][inst]
            for key in ("synthetic", "synthetic_dry", "real_spread"):
                assert row[key] is not None and math.isfinite(row[key]) and row[key] >= 0, (stat, inst, key, row)
    assert [r["statistic"] for r in report["ranking"]] and len(report["ranking"]) == len(realism.STAT_NAMES)
    text = (report_dir / "report.md").read_text()
    assert "## Which statistics differ most" in text and "synthetic (dry stems)" in text
    # the anechoic stems decay faster than the captured ones
    dry, wet = (report["summaries"]["decay_rt"]["violin"][k]["median"] for k in ("synthetic_dry", "synthetic"))
    assert dry < wet


def test_by_source_files_each_part_under_the_sound_that_played_it(report_dir, corpus):
    report = json.loads((report_dir / "report.json").read_text())
    assert report["by_source"]["set"] == "synthetic_dry"  # a source's own sound: the dry stems
    played = {}
    for meta in corpus.glob("*/*/metadata.json"):
        for part in json.loads(meta.read_text())["parts"]:
            played.setdefault(part["instrument"], set()).add(f"{part['soundfont']}:{played_by(part)}")
    attack = report["by_source"]["statistics"]["attack"]
    assert set(attack) == set(report["instruments"])
    for inst, sounds in attack.items():
        assert sounds and set(sounds) <= played[inst], (inst, sounds, played[inst])
        for row in sounds.values():
            assert row["n"] == 0 or (row["distance"] is not None and row["distance"] >= 0)
    assert "## By sound source" in (report_dir / "report.md").read_text()


def test_a_set_against_itself_is_at_distance_zero():
    cfg = realism.AnalysisConfig(sample_rate=SR, pyin_seconds=6.0, max_seconds=10.0)
    real = realism.collect(realism.open_sources(REAL), "real", cfg, progress=False)
    report = realism.build_report({realism.REAL: real, realism.SYNTHETIC: real}, cfg)
    for stat, per_inst in report["distances"].items():
        for inst, row in per_inst.items():
            assert row["synthetic"] == pytest.approx(0.0, abs=1e-9), (stat, inst)
            # while the pieces differ from each other
            assert row["real_spread"] is not None and row["real_spread"] > 0, (stat, inst)


def test_overwrite_replaces_the_report(report_dir, corpus, capsys):
    piece = min(BACH10.iterdir())
    args = ["realism", str(corpus), "--real", f"bach10:{piece}", "-o", str(report_dir), "--max-tracks", "2",
            "--no-dry", *QUICK]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--overwrite" in err
    assert main([*args, "--overwrite"]) == 0
    report = json.loads((report_dir / "report.json").read_text())
    assert report["sets"]["real"]["tracks"] == [piece.name]
    assert set(report["sets"]) == {"real", "synthetic"} and len(report["sets"]["synthetic"]["tracks"]) == 2


# --- bad input: one line, exit 2, nothing written -----------------------------------------


@pytest.mark.parametrize("case", ["not_a_corpus", "unknown_kind", "unknown_corpus_kind", "missing_real",
                                  "zero_tracks", "no_dry"])
def test_bad_input_is_one_line(case, corpus, tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not audio")
    corpus_arg, real, extra = str(corpus), REAL, []
    if case == "not_a_corpus":
        corpus_arg = str(tmp_path / "notes")
    elif case == "unknown_kind":
        real = f"musicnet:{BACH10}"
    elif case == "unknown_corpus_kind":
        corpus_arg = f"musicnet:{corpus}"
    elif case == "missing_real":
        real = f"bach10:{tmp_path / 'nowhere'}"
    elif case == "zero_tracks":
        extra = ["--max-tracks", "0"]
    out = tmp_path / "out"
    if case == "no_dry":
        piece = min(BACH10.iterdir())
        corpus_arg, extra = f"bach10:{piece}", ["--dry"]
    assert main(["realism", corpus_arg, "--real", real, "-o", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    expected = {"not_a_corpus": "not a corpus", "unknown_kind": "unknown dataset kind 'musicnet'",
                "unknown_corpus_kind": "unknown dataset kind 'musicnet'", "missing_real": "not found",
                "zero_tracks": "--max-tracks", "no_dry": "no dry stems"}[case]
    assert expected in err
    assert not out.exists()


def test_existing_output_is_refused_before_any_work(corpus, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert main(["realism", str(corpus), "--real", REAL, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists" in err and "--overwrite" in err
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
