"""Per-player EQ: the shelves and peaking bands do what their parameters say."""

import numpy as np
import pytest

from ensemble_synth.synthesis.timbre import apply_eq

SR = 16000


def tone_gain_db(freq: float, **eq) -> float:
    t = np.arange(SR) / SR
    tone = np.sin(2 * np.pi * freq * t).astype(np.float32)
    out = apply_eq(tone, SR, **eq)
    steady = slice(SR // 2, None)  # past the filters' transients
    return 20 * np.log10(np.std(out[steady]) / np.std(tone[steady]))


@pytest.mark.parametrize("gain", [-6.0, 9.0])
def test_a_peaking_band_boosts_its_centre_and_spares_far_frequencies(gain):
    band = [{"hz": 1000.0, "db": gain, "q": 1.4}]
    assert tone_gain_db(1000.0, peaks=band) == pytest.approx(gain, abs=0.05)
    assert abs(tone_gain_db(100.0, peaks=band)) < 0.3
    assert abs(tone_gain_db(6000.0, peaks=band)) < 0.6


def test_shelves_and_bands_add_up_in_db():
    eq = {"low_db": 4.0, "peaks": [{"hz": 2000.0, "db": -5.0, "q": 2.0}, {"hz": 500.0, "db": 3.0, "q": 1.0}]}
    total = tone_gain_db(700.0, **eq)
    parts = (tone_gain_db(700.0, low_db=4.0) + tone_gain_db(700.0, peaks=eq["peaks"][:1])
             + tone_gain_db(700.0, peaks=eq["peaks"][1:]))
    assert total == pytest.approx(parts, abs=0.05)


def test_bands_above_nyquist_are_skipped_and_no_eq_is_identity():
    noise = np.random.default_rng(0).standard_normal(SR).astype(np.float32)
    assert np.array_equal(apply_eq(noise, SR, peaks=[{"hz": 7900.0, "db": 6.0, "q": 1.0}]), noise)
    assert np.array_equal(apply_eq(noise, SR), noise)
