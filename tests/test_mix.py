"""The mix stage's balance: part levels set before the room (default) or after it, as
separately recorded tracks are mixed."""

from __future__ import annotations

import numpy as np
import tomli_w

from ensemble_synth.cli import main
from ensemble_synth.corpus.mixing import loudness, meter
from ensemble_synth.corpus.rendering import render_track
from ensemble_synth.corpus.sampling import sample_track

PRESET = {
    "name": "balanced", "sample_rate": 16000,
    "tracks": {"train": 2, "valid": 0, "test": 0, "per_room": 2},
    "repertoire": {"source": "music21:bach", "part_policy": "skip", "excerpt_seconds": 4},
    "ensemble": {"layout": "bach10"},
    "room": {"room": "dry_studio", "mics": "mono"},
    "mix": {"gain_db": [-3, 3]},
}


def _level_minus_gain(track) -> np.ndarray:
    bs1770 = meter(16000)
    return np.array([loudness(bs1770, image) - part["gain_db"] for image, part in zip(track.images, track.spec["parts"])])


def test_captured_balance_sets_each_image_to_its_part_gain():
    dry = sample_track(PRESET, "train", 0, seed=5)
    captured = sample_track({**PRESET, "mix": {**PRESET["mix"], "balance": "captured"}}, "train", 0, seed=5)
    assert "balance" not in dry["mix"] and captured["mix"]["balance"] == "captured"
    assert [p["gain_db"] for p in dry["parts"]] == [p["gain_db"] for p in captured["parts"]]
    spread_dry = np.ptp(_level_minus_gain(render_track(dry)))
    rendered = render_track(captured)
    assert np.ptp(_level_minus_gain(rendered)) < 0.01 < spread_dry  # the seats moved the levels; captured undoes it
    assert len(rendered.report["image_gain_db"]) == 4
    np.testing.assert_allclose(rendered.images.sum(0), rendered.mix, atol=1e-6)


def test_captured_balance_without_room_or_noise_changes_nothing():
    preset = {**PRESET, "room": {"enabled": False, "room": "dry_studio", "mics": "mono"}}
    plain = render_track(sample_track(preset, "train", 1, seed=5))
    captured = render_track(sample_track({**preset, "mix": {**PRESET["mix"], "balance": "captured"}}, "train", 1, seed=5))
    assert (plain.images == captured.images).all() and "image_gain_db" not in captured.report


def test_unknown_balance_is_one_line(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(tomli_w.dumps({**PRESET, "mix": {"balance": "wet"}}))
    assert main(["generate", "--preset", str(path), "-o", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and "[mix] key 'balance'" in err and "dry, captured" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
