"""[timbre.envelope]: attack skip (sampled recordings) and release scale (both renderers)."""

from __future__ import annotations

import numpy as np
import pytest

from ensemble_synth.corpus.preset import resolve_preset
from ensemble_synth.corpus.sampling import sample_track
from ensemble_synth.errors import UserError
from ensemble_synth.evaluation.realism import decay_times
from ensemble_synth.synthesis import sample_library, sampler, soundfonts
from ensemble_synth.synthesis.fluid_renderer import PartVoice, get_renderer
from ensemble_synth.synthesis.sampler import SampledVoice
from ensemble_synth.synthesis.timbre import PartTimbre, check_envelope

SR = 22050
NOTES = np.array([[0.1, 0.9, 62, 100], [1.6, 2.4, 65, 100]], dtype=float)


def envelope_db(x: np.ndarray, hop: int = 110) -> np.ndarray:
    n = len(x) // hop
    return 20 * np.log10(np.sqrt(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1)) + 1e-9)


def early_level_db(x: np.ndarray, onset: float, duration: float) -> float:
    """The level of the note's first 60 ms relative to its median level (dB)."""
    env = envelope_db(x)
    first, early, last = (int(t * SR / 110) for t in (onset, onset + 0.06, onset + duration))
    return float(np.mean(env[first:early]) - np.median(env[first:last]))


def test_release_scale_shortens_the_fluidsynth_release():
    font = soundfonts.resolve("fluidr3_gm")
    renderer = get_renderer(SR)
    plain = renderer.render(NOTES, PartVoice(font, 40))
    short = renderer.render(NOTES, PartVoice(font, 40, release_scale=0.5))
    a, b = np.median(decay_times(plain, SR)), np.median(decay_times(short, SR))
    assert b == pytest.approx(0.5 * a, rel=0.1)
    assert np.array_equal(plain, renderer.render(NOTES, PartVoice(font, 40, release_scale=1.0)))


def test_sampler_release_scale_and_attack_skip():
    package = sample_library.package_for("tonejs", "clarinet")
    plain = sampler.render(NOTES, SampledVoice(package, 0.0, 3), SR)
    short = sampler.render(NOTES, SampledVoice(package, 0.0, 3, release_scale=0.5), SR)
    assert len(short) < len(plain)
    skipped = sampler.render(NOTES, SampledVoice(package, 0.0, 3, attack_skip_s=0.2), SR)
    assert early_level_db(skipped, 0.1, 0.8) > early_level_db(plain, 0.1, 0.8) + 3.0
    assert np.array_equal(plain, sampler.render(NOTES, SampledVoice(package, 0.0, 3, 0.0, 1.0), SR))


def config(envelope) -> dict:
    preset = resolve_preset({**resolve_preset("demo"), "_resolved": False,
                             "timbre": {**resolve_preset("demo")["timbre"], "soundfont": ["fluidr3_gm", "tonejs"],
                                        "envelope": envelope}})
    return preset


def test_envelope_is_drawn_for_the_instrument_that_plays_and_recorded():
    timbre = config({"clarinet": {"attack_skip_ms": [50, 100]}, "strings": {"release_scale": 0.5}})["timbre"]
    seen = set()
    for seed in range(20):
        rngs = [np.random.default_rng(seed + k) for k in (0, 100, 200)]
        clarinet = PartTimbre.sample(timbre, "clarinet", *rngs)
        env = clarinet.extras()["envelope"]
        assert env["release_scale"] == 1.0
        if clarinet.sampler is not None:  # the skip applies to sampled recordings only
            assert 50 <= env["attack_skip_ms"] <= 100
        else:
            assert "attack_skip_ms" not in env
        seen.add(clarinet.sampler is not None)
        assert PartTimbre.sample(timbre, "viola", *rngs).extras()["envelope"] == {"release_scale": 0.5}
        assert "envelope" not in PartTimbre.sample(timbre, "bassoon", *rngs).extras()
    assert seen == {True, False}


def test_a_preset_without_the_table_draws_no_envelope():
    preset = resolve_preset("demo")
    assert "envelope" not in preset["timbre"]
    spec = sample_track(preset, "train", 0, seed=3)
    assert all("envelope" not in part for part in spec["parts"])


@pytest.mark.parametrize("envelope, message", [
    ({"kazoo": {"release_scale": 0.5}}, "'kazoo' is neither an instrument nor a family"),
    ({"strings": {"release_scale": 0.0}}, "outside the valid range"),
    ({"strings": {"attack": 1}}, "unknown key"),
    ("fast", "expected a table"),
])
def test_bad_envelope_tables_are_one_line(envelope, message):
    with pytest.raises(UserError, match=message) as err:
        check_envelope(envelope, "x.toml: [timbre.envelope]")
    assert "\n" not in str(err.value) and "x.toml" in str(err.value)
