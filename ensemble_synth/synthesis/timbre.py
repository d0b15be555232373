"""Per-player timbre: low/high shelves and random peaking bands (RBJ biquads) on a dry stem."""

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


def peak_coefficients(gain_db: float, freq: float, q: float, sample_rate: int):
    """Audio EQ Cookbook peaking biquad -> (b, a)."""
    a_gain = 10 ** (gain_db / 40.0)
    w0 = 2 * np.pi * freq / sample_rate
    alpha = np.sin(w0) / (2 * q)
    cos_w = np.cos(w0)
    b = np.array([1 + alpha * a_gain, -2 * cos_w, 1 - alpha * a_gain])
    a = np.array([1 + alpha / a_gain, -2 * cos_w, 1 - alpha / a_gain])
    return b / a[0], a / a[0]


def apply_eq(audio: np.ndarray, sample_rate: int, low_db: float = 0.0, high_db: float = 0.0,
             peaks: list[dict] = ()) -> np.ndarray:
    """Low shelf at 250 Hz, high shelf at 3 kHz and peaking bands ``{"hz", "db", "q"}``; returns float32.

    Bands at or above Nyquist are skipped (a corpus may be rendered at a lower rate than it was drawn for).
    """
    sections = []
    if low_db:
        sections.append(shelf_coefficients("low", low_db, LOW_SHELF_HZ, sample_rate))
    if high_db:
        sections.append(shelf_coefficients("high", high_db, HIGH_SHELF_HZ, sample_rate))
    for band in peaks:
        if band["db"] and band["hz"] < 0.45 * sample_rate:
            sections.append(peak_coefficients(band["db"], band["hz"], band["q"], sample_rate))
    out = np.asarray(audio, dtype=np.float64)
    for b, a in sections:
        out = lfilter(b, a, out)
    return out.astype(np.float32)
