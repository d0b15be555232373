"""The noise stage: each part's own background, off unless a preset asks for it."""

from __future__ import annotations

import numpy as np
import pytest
import tomli_w

from ensemble_synth.cli import main
from ensemble_synth.corpus.noise import coloured_noise, loud_level
from ensemble_synth.corpus.rendering import render_track
from ensemble_synth.corpus.sampling import sample_track

PRESET = {
    "name": "noisy", "sample_rate": 16000,
    "tracks": {"train": 2, "valid": 0, "test": 0, "per_room": 2},
    "repertoire": {"source": "music21:bach", "part_policy": "skip", "excerpt_seconds": 4},
    "ensemble": {"layout": "bach10"},
    "room": {"enabled": False, "room": "dry_studio", "mics": "mono"},
}


def test_off_unless_asked():
    assert "noise" not in sample_track(PRESET, "train", 0, seed=2)


def test_each_part_gets_its_background_at_the_drawn_level():
    preset = {**PRESET, "noise": {"enabled": True, "level_db": -30.0, "rumble_db": -90.0}}
    spec = sample_track(preset, "train", 0, seed=2)
    assert len(spec["noise"]) == 4 and {n["level_db"] for n in spec["noise"]} == {-30.0}
    quiet = render_track({k: v for k, v in sample_track(PRESET, "train", 0, seed=2).items()})
    noisy = render_track(spec)
    sr = 16000
    for q, n in zip(quiet.images, noisy.images):
        added = n - q * (np.abs(n).max() / max(np.abs(q).max(), 1e-12))  # the same image up to the final loudness gain
        level = 20 * np.log10(np.sqrt(np.mean(added.astype(np.float64) ** 2)) / loud_level(n, sr))
        assert -33.0 < level < -27.0
    np.testing.assert_allclose(noisy.images.sum(0), noisy.mix, atol=1e-6)
    again = render_track(spec)
    assert (again.images == noisy.images).all()


def test_coloured_noise_has_the_asked_slope():
    rng = np.random.default_rng(0)
    x = coloured_noise(rng, (1, 1 << 16), -3.0, 16000)[0]
    freqs, power = __import__("scipy.signal", fromlist=["welch"]).welch(x, 16000, nperseg=4096)
    lo = power[(freqs > 200) & (freqs < 400)].mean()
    hi = power[(freqs > 1600) & (freqs < 3200)].mean()
    assert 10 * np.log10(lo / hi) == pytest.approx(9.0, abs=1.0)  # three octaves at 3 dB each


def test_bad_noise_keys_are_one_line(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(tomli_w.dumps({**PRESET, "noise": {"enabled": True, "levl_db": -30}}))
    assert main(["generate", "--preset", str(path), "-o", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "[noise]" in err and "unknown key(s) levl_db" in err and err.count("\n") == 1
