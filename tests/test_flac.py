"""FLAC corpora: 24-bit stems, the mix as their exact sum, the same audio as a WAV corpus.

What ``mix == sum(stems)`` means for FLAC (corpus/format.py): each stem is rounded to 24 bits
(by at most half a step, 2**-24) and the mix is the integer sum of the rounded stems, so the
decoded mix equals the sum of the decoded stems exactly; against the float WAV corpus of the
same preset and seed the stems differ by at most 2**-24 and the mix by at most
n_parts * 2**-24 (plus the float32 rounding of the WAV mix itself).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tomli_w

from ensemble_synth.cli import main
from ensemble_synth.corpus import format as corpus_format
from ensemble_synth.corpus.format import TrackEntry, read_manifest, stem_files
from ensemble_synth.corpus.generation import generate
from ensemble_synth.corpus.preset import resolve_preset
from ensemble_synth.errors import UserError
from ensemble_synth.evaluation.datasets import load_dataset
from ensemble_synth.fileio import PCM24_LSB, read_wav, to_pcm24, write_flac
from ensemble_synth.separation.data import check_stems, read_sources

PRESET = {
    "name": "flacy",
    "description": "FLAC test corpus",
    "sample_rate": 16000,
    "write": {"dry": True},
    "tracks": {"train": 2, "valid": 1, "test": 0, "per_room": 2},
    "repertoire": {"source": "music21:bach", "part_policy": "fit", "excerpt_seconds": 3},
    "ensemble": {"layout": ["bach10", "string_trio"]},
    "timbre": {"soundfont": ["timgm6mb", "fluidr3_gm"]},
    "room": {"room": ["small_rooms", "dry_studio"], "mics": ["ortf", "spots"]},
    "mix": {"gain_db": [-2, 2], "loudness_lufs": [-26, -22]},
}
SEED = 5


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def audio_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.suffix in (".wav", ".flac"))


@pytest.fixture(scope="module")
def rir_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("rirs")


@pytest.fixture(scope="module")
def preset_toml(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("preset") / "flacy.toml"
    path.write_text(tomli_w.dumps(PRESET))
    return path


@pytest.fixture(scope="module")
def wav_corpus(tmp_path_factory, rir_cache) -> Path:
    out = tmp_path_factory.mktemp("wav") / "corpus"
    generate(PRESET, out, seed=SEED, jobs=1, rir_cache=rir_cache, progress=False)
    return out


@pytest.fixture(scope="module")
def flac_corpus(tmp_path_factory, rir_cache, wav_corpus) -> Path:
    out = tmp_path_factory.mktemp("flac") / "corpus"
    generate(PRESET, out, seed=SEED, jobs=1, rir_cache=rir_cache, progress=False, audio_format="flac")
    return out


# --- layout and records ---------------------------------------------------------------------


def test_a_flac_corpus_holds_flac_files_only_and_records_its_format(flac_corpus, wav_corpus):
    assert not list(flac_corpus.rglob("*.wav"))
    for track in read_manifest(flac_corpus):
        assert track.audio_format == "flac"
        assert track.mix_path.name == "mix.flac" and track.mix_path.is_file()
        for kind in ("stems", "dry"):
            assert [p.stem for p in stem_files(track.folder, kind)] == sorted(track.parts)
            assert all(p.suffix == ".flac" for p in stem_files(track.folder, kind))
        info = sf.info(str(track.mix_path))
        assert (info.format, info.subtype, info.channels) == ("FLAC", "PCM_24", track.channels)
        assert json.loads((track.folder / "metadata.json").read_text())["rendered"]["format"] == "flac"
    record = tomllib.loads((flac_corpus / "corpus.toml").read_text())
    assert record["preset"]["write"]["format"] == "flac"
    # The manifest is format-blind: the same rows as the WAV corpus.
    assert (flac_corpus / "manifest.csv").read_bytes() == (wav_corpus / "manifest.csv").read_bytes()


def test_a_wav_corpus_records_no_format(wav_corpus):
    """WAV corpora keep the files of every corpus made before FLAC existed."""
    record = tomllib.loads((wav_corpus / "corpus.toml").read_text())
    assert "format" not in record["preset"]["write"]
    track = read_manifest(wav_corpus)[0]
    assert track.audio_format == "wav" and track.stem_path(track.parts[0]).suffix == ".wav"
    assert "format" not in json.loads((track.folder / "metadata.json").read_text())["rendered"]


def test_explicit_wav_gives_the_same_bytes_as_the_default(wav_corpus, preset_toml, rir_cache, tmp_path):
    out = tmp_path / "again"
    assert main(["generate", "--preset", str(preset_toml), "-o", str(out), "--seed", str(SEED), "--jobs", "2",
                 "--rir-cache", str(rir_cache), "--format", "wav", "--quiet"]) == 0
    assert files(out) == files(wav_corpus)


def test_same_preset_and_seed_give_the_same_flac_bytes(flac_corpus, preset_toml, rir_cache, tmp_path):
    # Through the CLI and the preset key this time, with two worker processes.
    toml = tmp_path / "flacy.toml"
    toml.write_text(tomli_w.dumps({**PRESET, "write": {**PRESET["write"], "format": "flac"}}))
    out = tmp_path / "again"
    assert main(["generate", "--preset", str(toml), "-o", str(out), "--seed", str(SEED), "--jobs", "2",
                 "--rir-cache", str(rir_cache), "--quiet"]) == 0
    assert files(out) == files(flac_corpus)


# --- what mix == sum(stems) means ---------------------------------------------------------


def test_decoded_mix_is_exactly_the_sum_of_the_decoded_stems(flac_corpus):
    for track in read_manifest(flac_corpus):
        mix, _ = sf.read(str(track.mix_path), dtype="int32")
        stems = [sf.read(str(track.stem_path(p)), dtype="int32")[0].astype(np.int64) for p in track.parts]
        assert np.array_equal(mix, sum(stems))  # the 24-bit integers (shifted left by 8)
        mix64, _ = sf.read(str(track.mix_path), dtype="float64")
        assert np.array_equal(mix64, sum(sf.read(str(track.stem_path(p)), dtype="float64")[0] for p in track.parts))
        mix32, _ = read_wav(track.mix_path)  # float32, as the trainer reads it
        total32 = np.stack([read_wav(track.stem_path(p))[0] for p in track.parts]).sum(axis=0, dtype=np.float32)
        assert np.array_equal(mix32, total32)


def test_flac_and_wav_corpora_hold_the_same_audio_within_the_bound(flac_corpus, wav_corpus):
    worst_stem = worst_mix = 0.0
    for wav, flac in zip(read_manifest(wav_corpus), read_manifest(flac_corpus)):
        assert (wav.track_id, wav.parts) == (flac.track_id, flac.parts)
        n = len(flac.parts)
        for part in flac.parts:
            for kind in ("stems", "dry"):
                a, _ = sf.read(str(wav.folder / kind / f"{part}.wav"), dtype="float64")
                b, _ = sf.read(str(flac.folder / kind / f"{part}.flac"), dtype="float64")
                assert a.shape == b.shape
                error = float(np.abs(a - b).max())
                assert error <= PCM24_LSB / 2, (flac.track_id, kind, part)  # half a 24-bit step
                worst_stem = max(worst_stem, error)
        a, _ = sf.read(str(wav.mix_path), dtype="float64")
        b, _ = sf.read(str(flac.mix_path), dtype="float64")
        float32_rounding = 4 * np.finfo(np.float32).eps * float(np.abs(a).max())  # of the WAV mix's own sum
        error = float(np.abs(a - b).max())
        assert error <= n * PCM24_LSB / 2 + float32_rounding, flac.track_id
        worst_mix = max(worst_mix, error / n)
    assert 0 < worst_stem and 0 < worst_mix  # really quantised, not a copy of the floats


def test_flac_is_at_most_half_the_disk_of_float_wav(flac_corpus, wav_corpus):
    assert audio_bytes(flac_corpus) <= 0.5 * audio_bytes(wav_corpus)


# --- readers ------------------------------------------------------------------------------


def test_training_data_reads_flac_corpora(flac_corpus, wav_corpus):
    flac, wav = read_manifest(flac_corpus), read_manifest(wav_corpus)
    check_stems(flac)
    groups = [[p] for p in flac[0].parts]
    a = read_sources(flac[0], groups, 0.5, 8000, 8000)
    b = read_sources(wav[0], groups, 0.5, 8000, 8000)
    assert a.shape == b.shape and np.abs(a - b).max() < 1e-5


def test_an_entry_without_a_recorded_format_finds_the_file_that_is_there(flac_corpus):
    track = read_manifest(flac_corpus)[0]
    blind = TrackEntry(track.track_id, track.split, track.folder, track.duration, track.sample_rate,
                       track.channels, track.ensemble, track.parts, track.instruments)
    assert blind.audio_format is None
    assert blind.stem_path(track.parts[0]) == track.stem_path(track.parts[0])
    assert blind.mix_path == track.mix_path == corpus_format.mix_file(track.folder)


def test_render_spec_rebuilds_a_flac_track_bit_for_bit(flac_corpus, tmp_path, capsys):
    track = read_manifest(flac_corpus)[-1]
    out = tmp_path / "again"
    assert main(["render-spec", str(track.folder / "metadata.json"), "-o", str(out), "--dry"]) == 0
    assert files(out) == files(track.folder)
    # and as WAV when asked: the float audio, within half a step of the FLAC stems
    out_wav = tmp_path / "as_wav"
    assert main(["render-spec", str(track.folder / "metadata.json"), "-o", str(out_wav), "--format", "wav"]) == 0
    part = track.parts[0]
    a, _ = sf.read(str(out_wav / "stems" / f"{part}.wav"), dtype="float64")
    b, _ = sf.read(str(track.stem_path(part)), dtype="float64")
    assert np.abs(a - b).max() <= PCM24_LSB / 2


# --- refusals -----------------------------------------------------------------------------


def test_resuming_in_another_format_is_refused(flac_corpus, preset_toml, capsys):
    before = files(flac_corpus)
    rc = main(["generate", "--preset", str(preset_toml), "-o", str(flac_corpus), "--seed", str(SEED), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "write.format: 'flac' there, 'wav' here" in err
    assert files(flac_corpus) == before


def test_an_unknown_format_in_a_preset_is_one_line_and_writes_nothing(tmp_path, capsys):
    toml = tmp_path / "bad.toml"
    toml.write_text(tomli_w.dumps({**PRESET, "write": {"format": "mp3"}}))
    with pytest.raises(UserError, match=r"bad.toml: \[write\] key 'format': expected one of wav, flac, got 'mp3'"):
        resolve_preset(str(toml))
    out = tmp_path / "out"
    assert main(["generate", "--preset", str(toml), "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "[write] key 'format'" in err and not out.exists()
    assert main(["generate", "--preset", "demo", "-o", str(out), "--format", "mp3", "--quiet"]) == 2
    assert "mp3" in capsys.readouterr().err and not out.exists()


def test_24_bit_rounding_and_full_scale(tmp_path):
    x = np.array([0.0, 0.25, -0.5, 1e-9, 3 * PCM24_LSB / 2, -1.0, 1 - PCM24_LSB], dtype=np.float64)
    q = to_pcm24(x)
    assert q.dtype == np.int32 and np.abs(q * PCM24_LSB - x).max() <= PCM24_LSB / 2
    write_flac(tmp_path / "a.flac", q, 8000)
    back, _ = sf.read(str(tmp_path / "a.flac"), dtype="float64")
    assert np.array_equal(back, q * PCM24_LSB)  # stored exactly, read back as q / 2**23
    for bad in (1.0, -1.0 - PCM24_LSB, 1.5):
        with pytest.raises(UserError, match="stems/1_violin.flac: peaks at .* beyond 24-bit full scale"):
            to_pcm24(np.array([0.1, bad]), "track t: stems/1_violin.flac")
    assert not list(tmp_path.glob(".*"))


def test_folder_datasets_read_flac_corpora(flac_corpus, wav_corpus):
    flac, wav = load_dataset(f"folder:{flac_corpus}"), load_dataset(f"folder:{wav_corpus}")
    assert [r.parts for r in flac] == [r.parts for r in wav] and len(flac) == 3
    for a, b in zip(flac, wav):
        assert a.stems.shape == b.stems.shape and np.abs(a.stems - b.stems).max() <= PCM24_LSB / 2


def test_a_dry_stem_beyond_full_scale_is_refused_in_one_line(tmp_path, rir_cache, capsys):
    loud = {**PRESET, "tracks": {"train": 1, "valid": 0, "test": 0}, "mix": {"gain_db": 36},
            "write": {"dry": True, "format": "flac"}}
    toml = tmp_path / "loud.toml"
    toml.write_text(tomli_w.dumps(loud))
    out = tmp_path / "loud"
    rc = main(["generate", "--preset", str(toml), "-o", str(out), "--seed", str(SEED), "--jobs", "1",
               "--rir-cache", str(rir_cache), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert "/dry/1_" in err and ".flac: peaks at" in err and "beyond 24-bit full scale" in err
    assert not list(out.rglob("*.flac")) and not [p for p in out.rglob(".*")]
