"""The physical-model source (STK): renderer, tuning, determinism, timbre pools, track specs.

Every test runs the real STK renderer that ``make setup`` builds (scripts/install-stk.sh).
A missing renderer is tested by pointing the resolver at empty folders.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import fundamental, pool_corpus_twice, pool_spec, timbre_config

from ensemble_synth.corpus.preset import resolve_preset
from ensemble_synth.corpus.rendering import render_track
from ensemble_synth.corpus.sampling import sample_track
from ensemble_synth.errors import UserError
from ensemble_synth.synthesis import physical
from ensemble_synth.synthesis.physical import PhysicalVoice
from ensemble_synth.synthesis.sampler import measure_f0
from ensemble_synth.synthesis.timbre import PartTimbre, PhysicalModels, resolve_source, source_versions

NAME = physical.NAME


def voice(instrument: str, seed: int = 0, detune: float = 0.0) -> PhysicalVoice:
    return PhysicalVoice.from_record(physical.draw_voice(instrument, np.random.default_rng(seed)), detune)


def cents_off(x: np.ndarray, sr: int, pitch: float, start: float, seconds: float = 0.4) -> float:
    a = int(start * sr)
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    return 1200 * np.log2(measure_f0(x[a:a + int(seconds * sr)].astype(np.float64), sr, f0, 150.0) / f0)


# --- renderer ----------------------------------------------------------------------------------


def test_a_missing_renderer_is_one_line_naming_the_build_command(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(physical.STK_ENV, str(tmp_path / "empty"))
    with pytest.raises(UserError) as err:
        physical.renderer()
    assert "\n" not in str(err.value) and "scripts/install-stk.sh" in str(err.value)
    with pytest.raises(UserError, match="install-stk.sh"):
        resolve_source(NAME)


def test_render_spec_of_a_modelled_track_without_the_renderer_exits_2_in_one_line(tmp_path):
    spec = pool_spec([NAME, NAME, NAME, "fluidr3_gm"], seed=3)
    assert any(p["soundfont"] == NAME for p in spec["parts"])
    path = tmp_path / "metadata.json"
    path.write_text(json.dumps(spec))
    env = {**os.environ, "HOME": str(tmp_path), physical.STK_ENV: str(tmp_path / "none")}
    script = "import sys; from ensemble_synth.cli import main; sys.exit(main())"
    done = subprocess.run([sys.executable, "-c", script, "render-spec", str(path), "-o", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "install-stk.sh" in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("instrument,pitches,sr", [
    ("violin", (55, 67, 79, 86), 16000), ("violin", (60, 76), 44100), ("cello", (38, 50), 16000),
    ("clarinet", (52, 64, 76), 16000), ("tenor_saxophone", (45, 57, 69), 16000),
    ("alto_saxophone", (50, 62, 74), 44100), ("flute", (62, 74, 86), 16000),
])
def test_notes_sound_at_their_midi_pitch_after_tuning(instrument, pitches, sr):
    v = voice(instrument)
    notes = np.array([[1.0 * i, 1.0 * i + 0.9, p, 100] for i, p in enumerate(pitches)], dtype=float)
    x = physical.render(notes, v, sr)
    for i, p in enumerate(pitches):
        assert abs(cents_off(x, sr, p, i + 0.4)) < 12, (instrument, p)


@pytest.mark.parametrize("instrument", ["violin", "clarinet", "tenor_saxophone", "flute"])
def test_every_drawn_player_speaks_every_note(instrument):
    """Reeds near their limits stop oscillating (STK's clarinet at a reed stiffness of 20 fell
    silent at some pressures): the drawn controls keep clear of that, soft or loud, with vibrato."""
    low, high = physical.RANGES[physical.model_for(instrument)]
    pitches = np.linspace(max(low, 50), min(high, 82), 4)
    notes = np.array([[0.6 * i, 0.6 * i + 0.55, p, v] for i, (p, v) in enumerate(zip(pitches, (40, 127, 64, 96)))])
    for seed in range(10):
        x = physical.render(notes, voice(instrument, seed=seed), 16000, np.array([[0.0, 1, 64]]))
        for i in range(len(notes)):
            part = x[int((0.6 * i + 0.2) * 16000):int((0.6 * i + 0.5) * 16000)].astype(np.float64)
            assert np.sqrt(np.mean(part ** 2)) > 1e-3, (instrument, seed, i)


def test_detuning_moves_the_pitch():
    notes = np.array([[0.0, 1.5, 67, 100]])
    plain = physical.render(notes, voice("clarinet"), 16000)
    sharp = physical.render(notes, voice("clarinet", detune=30.0), 16000)
    assert cents_off(sharp, 16000, 67, 0.6, 0.8) - cents_off(plain, 16000, 67, 0.6, 0.8) == pytest.approx(30, abs=4)


def test_renders_are_deterministic_and_the_seed_draws_the_noise():
    notes = np.array([[0.0, 0.6, 60, 90], [0.6, 1.2, 62, 70], [1.2, 2.0, 64, 110]])
    v = voice("tenor_saxophone", seed=4)
    a, b = physical.render(notes, v, 16000), physical.render(notes, v, 16000)
    assert a.dtype == np.float32 and np.array_equal(a, b)
    other = physical.render(notes, PhysicalVoice(v.model, v.controls, v.vibrato_hz, v.lowpass_hz, 0.0, v.seed + 1),
                            16000)
    assert len(other) == len(a) and not np.array_equal(other, a)


def test_level_follows_velocity_and_expression():
    v = voice("violin", seed=2)
    soft = physical.render(np.array([[0.0, 1.0, 67, 50]]), v, 16000)
    loud = physical.render(np.array([[0.0, 1.0, 67, 120]]), v, 16000)
    level = lambda x: 20 * np.log10(np.sqrt(np.mean(x[4000:14000].astype(np.float64) ** 2)))
    assert level(loud) - level(soft) > 8
    swell = np.array([[0.0, 11, 127], [1.0, 11, 127], [1.05, 11, 40]])
    shaped = physical.render(np.array([[0.0, 2.0, 67, 100]]), v, 16000, swell)
    assert level(shaped[20000:]) < level(shaped[:16000]) - 12


def test_modulation_is_a_pitch_vibrato_on_the_bowed_string():
    notes = np.array([[0.0, 2.5, 69, 100]])
    v = voice("violin", seed=1)
    plain = physical.render(notes, v, 16000)
    shaking = physical.render(notes, v, 16000, np.array([[0.0, 1, 64]]))

    def spread(x):
        frames = [fundamental(x[a:a + 640].astype(np.float64), 16000, 300, 700) for a in range(8000, 36000, 320)]
        return float(np.std(1200 * np.log2(np.array(frames) / 440.0)))
    assert spread(plain) < 3 and spread(shaking) > 10


def test_bad_notes_are_refused_in_one_line():
    v = voice("clarinet")
    with pytest.raises(UserError, match="not finite") as err:
        physical.render(np.array([[0.0, np.nan, 60, 90]]), v, 16000, where="x.mid: part 1")
    assert "x.mid: part 1" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UserError, match="past the limit"):
        physical.render(np.array([[0.0, 120.0, 60, 90]]), v, 16000, where="x.mid: part 1")
    assert physical.render(np.zeros((0, 4)), v, 16000).size == 0


# --- timbre pools and track specs ----------------------------------------------------------------


def test_a_pool_draws_the_models_per_part_and_records_the_player():
    config = timbre_config(["fluidr3_gm", NAME])
    drawn = [PartTimbre.sample(config, "violin", np.random.default_rng(s), np.random.default_rng(100 + s))
             for s in range(12)]
    modelled = [t for t in drawn if t.soundfont == NAME]
    assert modelled and len(modelled) < len(drawn)
    for t in modelled:
        table = t.extras()["physical"]
        assert table["model"] == "Bowed" and t.voice()["soundfont_file"] == "stk:Bowed"
        assert set(table["controls"]) == {"2", "4"} and isinstance(table["seed"], int)
        low, high = physical.MODELS["Bowed"][3]
        assert low <= table["lowpass_hz"] <= high
    assert len({json.dumps(t.physical, sort_keys=True) for t in modelled}) == len(modelled)
    assert all("physical" not in t.extras() for t in drawn if t.soundfont != NAME)


@pytest.mark.parametrize("instrument", ["oboe", "horn", "bassoon"])
def test_an_instrument_stk_lacks_redraws_its_source(instrument):
    config = timbre_config([NAME, NAME, "fluidr3_gm"])
    for seed in range(6):
        t = PartTimbre.sample(config, instrument, np.random.default_rng(seed), np.random.default_rng(seed + 50))
        assert t.soundfont == "fluidr3_gm" and t.physical is None
    with pytest.raises(UserError, match=f"does not play {instrument}"):
        PartTimbre.sample(timbre_config(NAME), instrument, np.random.default_rng(0), np.random.default_rng(0))


def test_the_source_resolves_and_is_recorded_for_the_corpus():
    assert isinstance(resolve_source(NAME), PhysicalModels)
    record = source_versions(["fluidr3_gm", NAME])[NAME]
    assert record["library"] == NAME and len(record["renderer_sha256"]) == 64 and "stk" in record["stk"]


def test_an_instrument_pool_replaces_the_soundfont_pool_for_its_parts_only():
    config = {**timbre_config(["fluidr3_gm", "timgm6mb"]), "pools": {"clarinet": [NAME, "fluidr3_gm"]}}
    clarinets = [PartTimbre.sample(config, "clarinet", np.random.default_rng(s), np.random.default_rng(s + 9)).soundfont
                 for s in range(16)]
    violins = [PartTimbre.sample(config, "violin", np.random.default_rng(s), np.random.default_rng(s + 9)).soundfont
               for s in range(16)]
    assert set(clarinets) == {NAME, "fluidr3_gm"} and set(violins) == {"fluidr3_gm", "timgm6mb"}
    # without pools, the same streams draw what they drew before
    plain = timbre_config(["fluidr3_gm", "timgm6mb"])
    assert [PartTimbre.sample(plain, "violin", np.random.default_rng(s), np.random.default_rng(s + 9)) for s in range(4)] \
        == [PartTimbre.sample(config, "violin", np.random.default_rng(s), np.random.default_rng(s + 9)) for s in range(4)]


@pytest.mark.parametrize("pools,message", [
    ({"kazoo": [NAME]}, "kazoo"), ({"clarinet": ["no_such_font"]}, "[timbre.pools] clarinet"),
    ({"clarinet": [3]}, "expected source names"), ("stk", "expected a table"),
])
def test_a_bad_instrument_pool_is_one_line_naming_it(pools, message):
    preset = copy.deepcopy(resolve_preset("demo"))
    preset.pop("_resolved", None)
    preset["timbre"]["pools"] = pools
    with pytest.raises(UserError) as err:
        resolve_preset(preset)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bach10_like_gives_stk_to_the_clarinet_only_and_records_it():
    drawn = [p for i in range(24) for p in sample_track("bach10_like", split="train", index=i, seed=3)["parts"]]
    assert {p["instrument"] for p in drawn if p["soundfont"] == NAME} == {"clarinet"}
    assert all(p["physical"]["model"] in physical.MODELS for p in drawn if p["soundfont"] == NAME)


def test_a_track_with_modelled_and_soundfont_parts_renders_deterministically_from_its_metadata():
    spec = pool_spec([NAME, "fluidr3_gm"], seed=2)
    kinds = {p["soundfont"] for p in spec["parts"]}
    assert kinds == {NAME, "fluidr3_gm"}, kinds
    track = render_track(spec)
    again = render_track(json.loads(json.dumps(spec)))
    assert np.array_equal(track.images, again.images) and np.array_equal(track.dry, again.dry)
    for dry, notes in zip(track.dry, track.notes):
        assert len(notes) and np.any(dry)
    assert json.loads(json.dumps(track.metadata()))["parts"] == spec["parts"]


def test_a_corpus_preset_pool_naming_stk(tmp_path):
    parts = pool_corpus_twice(tmp_path, "stk_pool", {"choice": ["fluidr3_gm", NAME], "weights": [1, 3]})
    assert any(p["soundfont"] == NAME and p["physical"]["model"] for p in parts)
    card = (tmp_path / "a" / "card.md").read_text()
    row = next(line for line in card.splitlines() if line.startswith(f"| {NAME} |"))
    assert physical.SOURCE in row and "STK physical models" in row and physical.LICENCE in row
