"""Per-player timbre: a gentle low/high shelf EQ (RBJ biquads) on a dry stem."""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

LOW_SHELF_HZ = 250.0
HIGH_SHELF_HZ = 3000.0


def shelf_coefficients(kind: str, gain_db: float, freq: float, sample_rate: int, slope: float = 1.0):
    """Audio EQ Cookbook (R. Bristow-Johnson) shelving biquad -> (b, a)."""
    a_gain = 10 ** (gain_db / 40.0)
    w0 = 2 * np.pi * freq / sample_rate
    cos_w, sin_w = np.cos(w0), np.sin(w0)
    alpha = sin_w / 2 * np.sqrt((a_gain + 1 / a_gain) * (1 / slope - 1) + 2)
    sq = 2 * np.sqrt(a_gain) * alpha
    sign = 1.0 if kind == "low" else -1.0
    b = np.array([
        a_gain * ((a_gain + 1) - sign * (a_gain - 1) * cos_w + sq),
        sign * 2 * a_gain * ((a_gain - 1) - sign * (a_gain + 1) * cos_w),
        a_gain * ((a_gain + 1) - sign * (a_gain - 1) * cos_w - sq),
    ])
    a = np.array([
        (a_gain + 1) + sign * (a_gain - 1) * cos_w + sq,
        -sign * 2 * ((a_gain - 1) + sign * (a_gain + 1) * cos_w),
        (a_gain + 1) + sign * (a_gain - 1) * cos_w - sq,
    ])
    return b / a[0], a / a[0]


def apply_eq(audio: np.ndarray, sample_rate: int, low_db: float = 0.0, high_db: float = 0.0) -> np.ndarray:
    """Low shelf at 250 Hz and high shelf at 3 kHz; returns float32."""
    out = np.asarray(audio, dtype=np.float64)
    if low_db:
        out = lfilter(*shelf_coefficients("low", low_db, LOW_SHELF_HZ, sample_rate), out)
    if high_db:
        out = lfilter(*shelf_coefficients("high", high_db, HIGH_SHELF_HZ, sample_rate), out)
    return out.astype(np.float32)
