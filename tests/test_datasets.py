"""Real-recording loaders on ../shared/real, our corpus layout, and their refusals."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from ensemble_synth.corpus import format as corpus_format
from ensemble_synth.errors import UserError
from ensemble_synth.evaluation.datasets import Recording, load_dataset
from ensemble_synth.fileio import read_wav, write_wav

REAL = Path(__file__).resolve().parents[2] / "shared" / "real"
BACH10 = REAL / "bach10"
URMP = REAL / "urmp"
PIECE = BACH10 / "01-AchGottundHerr"

needs_real = pytest.mark.skipif(not BACH10.is_dir(), reason="../shared/real is not available")


@needs_real
def test_bach10_native_layout():
    tracks = load_dataset(f"bach10:{BACH10}")
    assert [t.name for t in tracks][:1] == ["01-AchGottundHerr"]
    assert len(tracks) >= 3
    for track in tracks:
        assert track.parts == ["1_violin", "2_clarinet", "3_tenor_saxophone", "4_bassoon"]
        assert track.instruments == ["violin", "clarinet", "tenor_saxophone", "bassoon"]
        assert track.sample_rate == 44100
        assert track.stems.dtype == np.float32 and track.stems.shape[:2] == (4, 1)
        assert np.array_equal(track.mixture, track.stems.sum(axis=0))
    supplied, _ = read_wav(PIECE / f"{PIECE.name}.wav")
    mixture = tracks[0].mixture
    assert np.abs(mixture).max() > 1.0  # the supplied mix clips here; ours is the true sum
    unclipped = np.abs(mixture) < 0.99
    np.testing.assert_allclose(supplied[unclipped], mixture[unclipped], atol=2e-4)


@needs_real
def test_bach10_single_piece_folder_and_segments():
    (whole,) = load_dataset(f"bach10:{PIECE}")
    segments = load_dataset(f"bach10:{PIECE}", segment=10.0)
    assert [s.name for s in segments] == [f"{PIECE.name}_seg00", f"{PIECE.name}_seg01"]
    assert all(s.stems.shape[-1] == 441000 for s in segments)
    np.testing.assert_array_equal(segments[1].stems, whole.stems[..., 441000:882000])
    assert segments[0].instruments == whole.instruments


@needs_real
def test_urmp_native_layout_and_resampling():
    (track,) = load_dataset(f"urmp:{URMP}")
    assert track.name == "01_Jupiter_vn_vc"
    assert track.parts == ["1_violin", "2_cello"]
    assert track.instruments == ["violin", "cello"]
    assert track.sample_rate == 48000 and track.stems.shape == (2, 1, 720000)
    (low,) = load_dataset(f"urmp:{URMP / track.name}", sample_rate=16000)
    assert low.sample_rate == 16000 and low.stems.shape == (2, 1, 240000) and low.stems.dtype == np.float32
    # the energy survives resampling (the stems have little content above 8 kHz)
    ratio = (low.stems.astype(float) ** 2).sum() * 3 / (track.stems.astype(float) ** 2).sum()
    assert 0.9 < ratio < 1.01


def _corpus_track(folder: Path, parts: dict[str, np.ndarray], rate=8000, mix=True):
    (folder / "stems").mkdir(parents=True)
    for name, audio in parts.items():
        write_wav(folder / "stems" / f"{name}.wav", audio, rate)
    if mix:
        write_wav(folder / "mix.wav", sum(parts.values()), rate)


def _tone(n=4000, channels=2, seed=0):
    return np.random.default_rng(seed).standard_normal((channels, n)).astype(np.float32) * 0.1


def test_folder_layout_corpus_with_splits_and_manifest(tmp_path):
    for split, track in (("train", "a"), ("test", "b")):
        _corpus_track(tmp_path / split / track, {"2_cello": _tone(seed=1), "10_flute": _tone(seed=2), "1_violin": _tone(seed=3)})
    tracks = load_dataset(f"folder:{tmp_path}")
    assert [t.name for t in tracks] == ["a", "b"]
    assert tracks[0].parts == ["1_violin", "2_cello", "10_flute"]
    assert tracks[0].instruments == ["violin", "cello", "flute"]
    assert tracks[0].stems.shape == (3, 2, 4000)
    np.testing.assert_array_equal(tracks[0].stems[2], _tone(seed=2))
    # The manifest as generation writes it (it lists only b): the folder loader follows it.
    row = {"track_id": "b", "split": "test", "path": "test/b", "duration": "0.25", "sample_rate": 16000,
           "channels": 2, "ensemble": "custom", "parts": "1_violin;2_cello;10_flute", "instruments": "violin;cello;flute",
           "room": "none", "rt60": "", "mics": "none", "source": "x"}
    with open(tmp_path / corpus_format.MANIFEST, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=corpus_format.MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerow(row)
    assert [t.name for t in load_dataset(f"folder:{tmp_path}")] == ["b"]
    assert [t.name for t in load_dataset(f"folder:{tmp_path / 'train' / 'a'}")] == ["a"]
    assert isinstance(tracks[0], Recording)


def test_unknown_kind_lists_the_kinds(tmp_path):
    with pytest.raises(UserError, match="bach10, urmp, folder"):
        load_dataset(f"musdb:{tmp_path}")
    with pytest.raises(UserError, match="not found"):
        load_dataset(f"folder:{tmp_path / 'nowhere'}")


@needs_real
def test_missing_bach10_stem_names_the_file(tmp_path):
    piece = tmp_path / PIECE.name
    piece.mkdir()
    for path in PIECE.glob("*.wav"):
        if not path.name.endswith("saxphone.wav"):
            os.symlink(path, piece / path.name)
    with pytest.raises(UserError, match=r"01-AchGottundHerr-saxphone\.wav: stem file is missing"):
        load_dataset(f"bach10:{tmp_path}")


def test_mismatched_lengths_rates_and_mix_name_the_file(tmp_path):
    _corpus_track(tmp_path / "len", {"1_violin": _tone(4000), "2_viola": _tone(3999)}, mix=False)
    with pytest.raises(UserError, match=r"2_viola\.wav: 3999 samples"):
        load_dataset(f"folder:{tmp_path / 'len'}")
    _corpus_track(tmp_path / "rate", {"1_violin": _tone()}, mix=False)
    write_wav(tmp_path / "rate" / "stems" / "2_viola.wav", _tone(), 16000)
    with pytest.raises(UserError, match=r"2_viola\.wav: sample rate 16000"):
        load_dataset(f"folder:{tmp_path / 'rate'}")
    _corpus_track(tmp_path / "mix", {"1_violin": _tone()}, mix=False)
    write_wav(tmp_path / "mix" / "mix.wav", _tone(100), 8000)
    with pytest.raises(UserError, match=r"mix\.wav: 100 samples"):
        load_dataset(f"folder:{tmp_path / 'mix'}")
    _corpus_track(tmp_path / "inst", {"1_theremin": _tone()}, mix=False)
    with pytest.raises(UserError, match=r"1_theremin\.wav: cannot tell the instrument"):
        load_dataset(f"folder:{tmp_path / 'inst'}")
