"""Corpus generation: determinism, resume, refusal, checks, render-spec, repertoire.

Every corpus here is tiny (3 s excerpts at 16 kHz in small rooms) and uses its own RIR
cache under tmp_path, never the user's.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tomli_w
from helpers import BACH10_01_MIDI

from ensemble_synth.cli import main
from ensemble_synth.corpus.generation import generate
from ensemble_synth.corpus.rendering import RenderedTrack, check_track, render_track
from ensemble_synth.corpus.sampling import sample_track
from ensemble_synth.music.arrangement import assign_voices
from ensemble_synth.errors import UserError
from ensemble_synth.fileio import read_wav
from ensemble_synth.music.repertoire import (
    Repertoire,
    load_midi_piece,
    load_music21_bach,
    music21_bach_ids,
    same_melody,
)

# The installed console script; the same entry point through python -c where it is missing.
_SCRIPT = Path(sys.executable).with_name("ensemble-synth")
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-c", "import sys; from ensemble_synth.cli import main; sys.exit(main())"]

TINY = {
    "name": "tiny",
    "description": "test corpus",
    "sample_rate": 16000,
    "write": {"dry": True, "midi": True},
    "tracks": {"train": 3, "valid": 1, "test": 1, "per_room": 2},
    "repertoire": {"source": "music21:bach", "part_policy": "fit", "excerpt_seconds": 3, "exclude": ["bwv255"]},
    "ensemble": {"layout": ["bach10", "string_trio"]},
    "performance": {
        "tempo_bpm": [70, 90],
        "rubato": 0.05,
        "fermata_beats": [0.5, 1.0],
        "onset_jitter_ms": [5, 15],
        "level_db": [-3, 3],
        "dynamics_db": 2.0,
        "articulation": [0.85, 1.0],
        "transpose": {"integers": [-2, 2]},
    },
    "timbre": {"soundfont": ["timgm6mb", "fluidr3_gm"], "detune_cents": {"normal": [0, 4]}, "eq_low_db": [-3, 3]},
    "room": {"room": ["small_rooms", "dry_studio"], "mics": ["ortf", "spots"]},
    "mix": {"gain_db": [-2, 2], "loudness_lufs": [-26, -22]},
}
N_TRACKS = 5


def corpus_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_same_corpus(a: Path, b: Path) -> None:
    files_a, files_b = corpus_files(a), corpus_files(b)
    assert sorted(files_a) == sorted(files_b)
    different = [name for name in files_a if files_a[name] != files_b[name]]
    assert not different, f"files differ: {different}"


def tracks(root: Path) -> list[Path]:
    """Finished track folders; pathlib's glob would also match a run's hidden temporaries."""
    return sorted(p.parent for p in root.glob("*/*/metadata.json") if not p.parent.name.startswith("."))


@pytest.fixture(scope="module")
def rir_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("rirs")


@pytest.fixture(scope="module")
def preset_toml(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("preset") / "tiny.toml"
    path.write_text(tomli_w.dumps(TINY))
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, rir_cache) -> Path:
    """The reference corpus: Python API, one job, cold RIR cache."""
    out = tmp_path_factory.mktemp("corpus") / "tiny"
    summary = generate(TINY, out, seed=11, jobs=1, rir_cache=rir_cache, progress=False)
    assert (summary.tracks, summary.rendered, summary.skipped) == (N_TRACKS, N_TRACKS, 0)
    return out


# --- layout and content -------------------------------------------------------------------


def test_corpus_has_the_documented_layout(corpus):
    assert (corpus / "corpus.toml").is_file()
    rows = list(csv.DictReader(open(corpus / "manifest.csv")))
    assert [r["split"] for r in rows] == ["train", "train", "train", "valid", "test"]
    for row in rows:
        folder = corpus / row["path"]
        meta = json.loads((folder / "metadata.json").read_text())
        names = row["parts"].split(";")
        assert [p["name"] for p in meta["parts"]] == names
        for sub in ("stems", "dry"):
            assert sorted(p.stem for p in (folder / sub).glob("*.wav")) == sorted(names)
        assert sorted(p.stem for p in (folder / "midi").glob("*.mid")) == sorted(names)
        mix, sr = read_wav(folder / "mix.wav")
        assert sr == 16000 and mix.shape[1] == meta["rendered"]["samples"]
        assert float(row["duration"]) == pytest.approx(mix.shape[1] / sr, abs=1e-3)
    assert {r["ensemble"] for r in rows} <= {"bach10", "string_trio"}


def test_mix_is_the_sum_of_the_stems_on_every_track(corpus):
    for folder in tracks(corpus):
        mix, _ = read_wav(folder / "mix.wav")
        stems = np.stack([read_wav(p)[0] for p in sorted((folder / "stems").glob("*.wav"))])
        assert stems.shape[1:] == mix.shape
        total = stems.sum(axis=0, dtype=np.float32)
        np.testing.assert_allclose(total, mix, rtol=0, atol=4 * np.finfo(np.float32).eps * float(np.abs(mix).max()))


def test_every_track_passed_the_checks(corpus):
    import pyloudnorm

    for folder in tracks(corpus):
        meta = json.loads((folder / "metadata.json").read_text())
        mix, _ = read_wav(folder / "mix.wav")
        assert np.all(np.isfinite(mix)) and 0.01 < np.abs(mix).max() <= meta["mix"]["peak_ceiling"] + 1e-6
        for part, notes in zip(meta["parts"], meta["rendered"]["notes"]):
            stem, _ = read_wav(folder / "stems" / f"{part['name']}.wav")
            assert notes > 0 and np.sqrt(np.mean(stem**2)) > 1e-4, part["name"]
        assert np.isfinite(meta["rendered"]["normalisation_gain_db"])
        measured = pyloudnorm.Meter(16000).integrated_loudness(mix.T.astype(np.float64))
        assert measured == pytest.approx(meta["rendered"]["loudness_lufs"], abs=0.01)
        assert measured <= meta["mix"]["loudness_lufs"] + 0.01  # the target, or less where the peak ceiling rules


def test_performed_midi_is_aligned_to_the_dry_audio(corpus):
    import pretty_midi

    folder = tracks(corpus)[0]
    meta = json.loads((folder / "metadata.json").read_text())
    for part, count in zip(meta["parts"], meta["rendered"]["notes"]):
        notes = pretty_midi.PrettyMIDI(str(folder / "midi" / f"{part['name']}.mid")).instruments[0].notes
        assert len(notes) == count
        dry, sr = read_wav(folder / "dry" / f"{part['name']}.wav")
        first_sound = np.argmax(np.abs(dry[0]) > 1e-4 * np.abs(dry[0]).max()) / sr
        assert abs(first_sound - min(n.start for n in notes)) < 0.02


def test_metadata_records_every_choice(corpus):
    meta = json.loads((tracks(corpus)[0] / "metadata.json").read_text())
    perf = meta["performance"]
    assert {"tempo_bpm", "window", "transpose", "rubato_knots", "dynamics_knots_db", "seed"} <= set(perf)
    for part in meta["parts"]:
        assert {"soundfont", "program", "detune_cents", "eq_low_db", "onset_jitter_ms", "gain_db", "articulation"} <= set(part)
    assert meta["scene"]["room"]["rt60"] > 0 and meta["scene"]["mics"]
    assert meta["source"]["id"].startswith("bach/") and meta["source"]["id"] != "bach/bwv255"


# --- determinism, resume, refusal ---------------------------------------------------------


def test_jobs_2_gives_the_same_bytes_as_jobs_1(corpus, preset_toml, rir_cache, tmp_path):
    # Through the CLI, with two worker processes and a warm RIR cache; the caller's environment
    # (thread variables that a later subprocess of a library user would inherit) is left alone.
    out = tmp_path / "tiny"
    environment = dict(os.environ)
    rc = main(["generate", "--preset", str(preset_toml), "-o", str(out), "--seed", "11", "--jobs", "2",
               "--rir-cache", str(rir_cache), "--quiet"])
    assert rc == 0
    assert dict(os.environ) == environment
    assert_same_corpus(corpus, out)


def test_killed_run_resumes_to_identical_bytes(corpus, preset_toml, tmp_path):
    out = tmp_path / "tiny"
    command = [*CLI, "generate", "--preset", str(preset_toml), "-o", str(out), "--seed", "11", "--jobs", "2",
               "--rir-cache", str(tmp_path / "rirs"), "--quiet"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 60
    while not tracks(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: the CLI and its workers
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = len(tracks(out))  # hidden half-written folders are not counted: the rerun removes them
    assert 1 <= done < N_TRACKS and not (out / "manifest.csv").exists()

    rerun = subprocess.run(command[:-1], capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{N_TRACKS - done} rendered, {done} already there" in rerun.stdout
    assert "h of audio" in rerun.stdout and "real time" in rerun.stdout
    assert_same_corpus(corpus, out)
    assert not [p for p in out.rglob(".*")], "the rerun left temporaries behind"


def test_rerun_skips_finished_tracks(corpus, rir_cache):
    before = {p: p.stat().st_mtime_ns for p in corpus.rglob("*.wav")}
    summary = generate(TINY, corpus, seed=11, rir_cache=rir_cache, progress=False)
    assert (summary.rendered, summary.skipped) == (0, N_TRACKS)
    assert {p: p.stat().st_mtime_ns for p in corpus.rglob("*.wav")} == before


@pytest.mark.parametrize("change", ["seed", "preset"])
def test_another_preset_or_seed_is_refused(corpus, preset_toml, tmp_path, capsys, change):
    before = corpus_files(corpus)
    preset, seed = str(preset_toml), "11"
    if change == "seed":
        seed = "12"
    else:
        other = tmp_path / "other.toml"
        other.write_text(tomli_w.dumps({**TINY, "mix": {**TINY["mix"], "loudness_lufs": -20}}))
        preset = str(other)
    rc = main(["generate", "--preset", preset, "-o", str(corpus), "--seed", seed, "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "another preset or seed" in err
    assert ("seed: 11 there, 12 here" if change == "seed" else "loudness_lufs") in err
    assert corpus_files(corpus) == before


def test_a_non_corpus_folder_is_refused(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["generate", "--preset", "demo", "-o", str(tmp_path), "--quiet"]) == 2
    assert "not a corpus" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_dry_run_writes_specs_and_a_real_run_completes_the_corpus(corpus, rir_cache, tmp_path):
    out = tmp_path / "tiny"
    generate(TINY, out, seed=11, rir_cache=rir_cache, dry_run=True, progress=False)
    specs = sorted(out.glob("*/*/spec.json"))
    assert len(specs) == N_TRACKS and not list(out.rglob("*.wav")) and not (out / "manifest.csv").exists()
    first = json.loads(specs[0].read_text())
    reference = json.loads((corpus / specs[0].parent.relative_to(out) / "metadata.json").read_text())
    reference.pop("rendered")
    assert first == reference

    # Completed on an executor the caller owns (the path a Dask Client takes).
    with ProcessPoolExecutor(2) as pool:
        summary = generate(TINY, out, seed=11, rir_cache=rir_cache, executor=pool, progress=False)
    assert summary.rendered == N_TRACKS
    assert_same_corpus(corpus, out)


def test_render_spec_round_trip_is_bit_identical(corpus, tmp_path, capsys):
    # Without the RIR cache: a fresh simulation must give the cached bytes too.
    folder = tracks(corpus)[-1]
    out = tmp_path / "again"
    assert main(["render-spec", str(folder / "metadata.json"), "-o", str(out), "--dry", "--midi"]) == 0
    assert "stems" in capsys.readouterr().out
    assert_same_corpus(folder, out)


def test_render_spec_refuses_a_non_spec(tmp_path, capsys):
    bad = tmp_path / "metadata.json"
    bad.write_text('{"track_id": "x"}')
    assert main(["render-spec", str(bad), "-o", str(tmp_path / "out")]) == 2
    assert "not a track spec" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --- bad presets --------------------------------------------------------------------------

BAD_PRESETS = {
    "tracks_not_int": ('[tracks]\ntrain = "many"\n', "[tracks] key 'train'", "expected an integer"),
    "tempo_not_number": ('[performance]\ntempo_bpm = "fast"\n', "[performance] key 'tempo_bpm'", "expected a number"),
    "reversed_range": ("[performance]\ntempo_bpm = [90, 60]\n", "[performance] key 'tempo_bpm'", "reversed"),
    "unknown_table": ("[perfomance]\ntempo_bpm = 60\n", "perfomance", "known:"),
    "unknown_room": ('[room]\nroom = ["halls", "ballroom"]\n', "[room] key 'room'", "unknown room preset 'ballroom'"),
    "unknown_mics": ('[room]\nmics = "binaural"\n', "[room] key 'mics'", "unknown mic preset 'binaural'"),
    "unknown_soundfont": ('[timbre]\nsoundfont = "nofont"\n', "[timbre] key 'soundfont'", "unknown soundfont 'nofont'"),
    "unknown_layout": ('[ensemble]\nlayout = "kazoo_trio"\n', "[ensemble] key 'layout'", "unknown ensemble preset"),
    "unknown_instrument": (
        '[ensemble.layout]\ninstruments = ["violin", "kazoo"]\nseats = [{position = [0, 0]}, {position = [1, 0]}]\n',
        "[ensemble] key 'layout'", "unknown instrument 'kazoo'"),
    "bad_policy": ('[repertoire]\npart_policy = "drop"\n', "[repertoire] key 'part_policy'", "expected one of"),
    "no_midi_files": ('[repertoire]\nsource = "midi:/nonexistent/*.mid"\n', "[repertoire] key 'source'", "no MIDI files"),
    "toml_syntax": ("[tracks\n", "malformed TOML", "Expected ']'"),
    "unknown_program_instrument": ('[timbre.programs]\nviolin = ["viola", "kazoo"]\n', "[timbre] key 'programs' violin",
                                   "unknown instrument 'kazoo'"),
    "unknown_program_part": ('[timbre.programs]\nkazoo = ["violin"]\n', "[timbre] key 'programs'", "unknown instrument 'kazoo'"),
    "programs_not_a_table": ('[timbre]\nprograms = "viola"\n', "[timbre] key 'programs'", "expected a table"),
    "eq_bands_not_number": ('[timbre]\neq_bands = "many"\n', "[timbre] key 'eq_bands'", "expected an integer"),
    # misspelt keys are refused in every table, not ignored
    "misspelt_table_key": ('[room]\nrooom = "church"\n', "[room]", "unknown key(s) rooom"),
    "misspelt_top_level_key": ('layuot = "bach10"\n', "unknown key(s) layuot", "known: name"),
    "misspelt_inline_room_key": ('[room]\nroom = {dimensions = [8, 9, 3.5], rt6 = 0.4}\n', "[room] key 'room'", "unknown key(s) rt6"),
    # typed wrong, once tracebacks
    "excerpt_range": ("[repertoire]\nexcerpt_seconds = [4, 8]\n", "[repertoire] key 'excerpt_seconds'", "expected a fixed number"),
    "room_dimensions_not_numbers": ('[room]\nroom = {dimensions = ["a", "b", "c"], rt60 = 0.4}\n', "key 'dimensions' x", "expected a number"),
    # numbers outside their valid range, once accepted or a ZeroDivisionError
    "tempo_zero": ("[performance]\ntempo_bpm = 0\n", "[performance] key 'tempo_bpm'", "outside the valid range [10, 400] bpm"),
    "tempo_negative": ("[performance]\ntempo_bpm = -60\n", "[performance] key 'tempo_bpm'", "outside the valid range"),
    "tempo_factor_zero": ("[performance]\ntempo_factor = 0\n", "[performance] key 'tempo_factor'", "outside the valid range"),
    "onset_jitter_negative": ("[performance]\nonset_jitter_ms = -50\n", "[performance] key 'onset_jitter_ms'", "outside the valid range"),
    "articulation_zero": ("[performance]\narticulation = 0\n", "[performance] key 'articulation'", "outside the valid range (0, 2]"),
    "articulation_negative": ("[performance]\narticulation = [-1, 1]\n", "[performance] key 'articulation'", "outside the valid range"),
    "excerpt_negative": ("[repertoire]\nexcerpt_seconds = -5\n", "[repertoire] key 'excerpt_seconds'", "outside the valid range"),
    "eq_bands_negative": ("[timbre]\neq_bands = -2\n", "[timbre] key 'eq_bands'", "outside the valid range"),
    "loudness_positive": ("[mix]\nloudness_lufs = 50\n", "[mix] key 'loudness_lufs'", "outside the valid range"),
    "peak_ceiling_zero": ("[mix]\npeak_ceiling = 0\n", "[mix] key 'peak_ceiling'", "outside the valid range (0, 1]"),
    "normal_negative_std": ("[timbre]\ndetune_cents = {normal = [0, -5]}\n", "[timbre] key 'detune_cents'", "non-negative standard deviation"),
    "max_order_negative": ("[room]\nroom = {dimensions = [8, 9, 3.5], rt60 = 0.4, max_order = -5}\n", "key 'max_order'", "outside the valid range"),
    # valid keys whose scene cannot exist: refused before corpus.toml is written
    "rt60_unreachable": ("[room]\nroom = {dimensions = [3, 3, 2.5], rt60 = 10}\n", "the scene of train room group 0", "not reachable"),
    "rt60_too_short_for_hall": ("[room]\nroom = {dimensions = [100, 150, 40], rt60 = 0.05}\n", "room group 0", "not reachable"),
    "players_outside_room": ("[room]\nroom = {dimensions = [3, 3, 3], rt60 = 0.3}\n", "with the seating of", "outside the room"),
    "room_too_small": ("[room]\nroom = {dimensions = [2, 2, 1], rt60 = 0.4}\n", "key 'dimensions' z", "outside the valid range"),
}


@pytest.mark.parametrize("case", sorted(BAD_PRESETS))
def test_a_malformed_preset_is_one_line_and_writes_nothing(tmp_path, capsys, case):
    text, key, expected = BAD_PRESETS[case]
    path = tmp_path / "bad.toml"
    path.write_text('name = "bad"\n' + text)
    out = tmp_path / "out"
    rc = main(["generate", "--preset", str(path), "-o", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith(f"error: {path}") and err.count("\n") == 1
    assert key in err and expected in err
    assert not out.exists()


# --- the checks ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(corpus, rir_cache) -> RenderedTrack:
    from ensemble_synth.acoustics.rir_cache import RirCache

    meta = json.loads((tracks(corpus)[0] / "metadata.json").read_text())
    meta.pop("rendered")
    return render_track(meta, RirCache(rir_cache))


def _with_images(track: RenderedTrack, images: np.ndarray) -> RenderedTrack:
    return RenderedTrack(track.spec, images.astype(np.float32), track.dry, track.notes, track.report)


def test_check_track_accepts_a_rendered_track(rendered):
    check_track(rendered)


def test_check_track_rejects_nan(rendered):
    images = rendered.images.copy()
    images[1, 0, 100] = np.nan
    with pytest.raises(UserError, match="NaN"):
        check_track(_with_images(rendered, images))


def test_check_track_rejects_a_silent_part_with_notes(rendered):
    images = rendered.images.copy()
    images[2] = 0.0
    with pytest.raises(UserError, match=f"part {rendered.part_names[2]} is silent"):
        check_track(_with_images(rendered, images))


def test_check_track_rejects_clipping(rendered):
    with pytest.raises(UserError, match="clips"):
        check_track(_with_images(rendered, rendered.images * 4.0 / np.abs(rendered.mix).max()))


# --- sampling and repertoire --------------------------------------------------------------


def test_sample_track_is_a_function_of_its_arguments():
    a = sample_track(TINY, "train", 2, seed=5)
    assert a == sample_track(TINY, "train", 2, seed=5)
    assert a != sample_track(TINY, "train", 2, seed=6)
    assert a["performance"] != sample_track(TINY, "train", 3, seed=5)["performance"]
    json.dumps(a)  # JSON-safe as it is


def test_timbre_extras_are_drawn_recorded_and_rendered(rir_cache):
    preset = {**TINY, "ensemble": {"layout": "bach10"}, "room": {"enabled": False, "room": "dry_studio", "mics": "mono"},
              "timbre": {"soundfont": "timgm6mb", "programs": {"violin": ["viola"], "bassoon": ["cello", "bassoon"]},
                         "eq_bands": 3, "eq_band_db": {"normal": [0, 6]}, "eq_band_q": [0.7, 2.0]}}
    spec = sample_track(preset, "train", 0, seed=3)
    parts = {p["instrument"]: p for p in spec["parts"]}
    assert parts["violin"]["program"] == 41 and parts["violin"]["program_instrument"] == "viola"
    assert parts["bassoon"]["program_instrument"] in ("cello", "bassoon")
    assert "program_instrument" not in parts["clarinet"] and parts["clarinet"]["program"] == 71
    assert all(len(p["eq_peaks"]) == 3 and all(150 <= b["hz"] <= 6000 for b in p["eq_peaks"]) for p in spec["parts"])
    plain = sample_track(TINY, "train", 0, seed=3)  # presets without the extras keep their specs
    assert all("eq_peaks" not in p and "program_instrument" not in p for p in plain["parts"])
    rendered = render_track(spec)
    check_track(rendered)
    assert rendered.metadata()["parts"][0]["eq_peaks"] == spec["parts"][0]["eq_peaks"]


def test_part_policy():
    class Piece:
        def __init__(self, n):
            self.voices = [None] * n

    assert assign_voices(Piece(4), ["a"] * 4, "skip") == [0, 1, 2, 3]
    assert assign_voices(Piece(4), ["a"] * 3, "skip") is None
    assert assign_voices(Piece(4), ["a"] * 3, "fit") == [0, 1, 3]  # drop the inner voice
    assert assign_voices(Piece(4), ["a"] * 2, "fit") == [0, 3]  # outer voices
    assert assign_voices(Piece(4), ["a"] * 5, "fit") == [0, 0, 1, 2, 3]  # double one


def test_music21_exclusion_by_name():
    everything = music21_bach_ids()
    assert len(everything) > 300 and {"bwv255", "bwv48.3"} <= set(everything)
    kept = Repertoire("music21:bach", exclude=["BWV255", "bach/bwv48.3"]).ids
    assert "bwv255" not in kept and "bwv48.3" not in kept
    assert "bwv48.7" in kept  # a catalogue number does not exclude its neighbours
    assert len(kept) == len(everything) - 2


def test_music21_exclusion_by_melody():
    """The Bach10 'Ach Gott und Herr' tune is harmonised in BWV 255 and BWV 48.3."""
    bach10 = load_midi_piece(str(BACH10_01_MIDI)).soprano()
    assert same_melody(load_music21_bach("bwv255").soprano(), bach10)
    assert same_melody(load_music21_bach("bwv48.3").soprano(), bach10)
    for other in ("bwv66.6", "bwv256", "bwv26.6"):
        assert not same_melody(load_music21_bach(other).soprano(), bach10), other

    keep = {"bwv255", "bwv48.3", "bwv66.6"}
    excluded = [pid for pid in music21_bach_ids() if pid not in keep]
    rep = Repertoire("music21:bach", exclude=excluded, exclude_melodies=[str(BACH10_01_MIDI)])
    assert sorted(rep.excluded_by_melody()) == ["bwv255", "bwv48.3"]
    preset = {**TINY, "repertoire": {**TINY["repertoire"], "exclude": excluded, "exclude_melodies": [str(BACH10_01_MIDI)]}}
    chosen = {sample_track(preset, "train", i, seed=1, repertoire=rep)["source"]["id"] for i in range(6)}
    assert chosen == {"bach/bwv66.6"}


def test_inline_layout_and_room_tables():
    preset = {
        **TINY,
        "ensemble": {"layout": {"name": "vc_duo", "instruments": ["violin", "cello"],
                                "seats": [{"position": [-0.6, 0.0]}, {"position": [0.6, 0.0]}]}},
        "room": {"room": {"name": "box", "dimensions": [8.0, 9.0, 3.5], "rt60": 0.4}, "mics": "xy"},
    }
    track = sample_track(preset, "train", 0, seed=3)
    assert track["ensemble"] == "vc_duo" and [p["instrument"] for p in track["parts"]] == ["violin", "cello"]
    assert track["room"] == {"room": "box", "mics": "xy"} and track["scene"]["room"]["dimensions"] == [8.0, 9.0, 3.5]


def test_transposition_never_pushes_notes_out_of_range():
    from ensemble_synth.music.arrangement import load_piece
    from ensemble_synth.music import instruments
    from ensemble_synth.music.performance import perform

    def outside(track, transpose):
        perf = {**track["performance"], "transpose": transpose}
        notes = perform(load_piece(track["source"]), track["parts"], perf)
        total = 0
        for part, n in zip(track["parts"], notes):
            inst = instruments.get(part["instrument"])
            total += int(np.count_nonzero((n[:, 2] < inst.low) | (n[:, 2] > inst.high)))
        return total

    preset = {**TINY, "performance": {**TINY["performance"], "transpose": {"integers": [-9, 9]}}}
    transposes = set()
    for index in range(6):
        track = sample_track(preset, "train", index, seed=2)
        transposes.add(track["performance"]["transpose"])
        assert outside(track, track["performance"]["transpose"]) <= outside(track, 0)
    assert len(transposes) > 1
