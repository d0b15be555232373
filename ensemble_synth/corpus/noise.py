"""The noise stage: each part's own background, as separately recorded stems have it.

Real stems are never digitally silent between notes: each holds the room tone, a low
rumble and the self-noise of its microphones (the realism report measures the quietest
frames of Bach10's stems at about -26 dB (winds) to -38 dB (violin) below their loud
frames; FluidSynth's stems fall to -80 dB and below). This stage adds to each part's image
a coloured broadband noise (a slope in dB per octave: -3 is pink) and a rumble below
``RUMBLE_HZ``, each at a level relative to the part's loud frames (the 95th percentile of its
50 ms frame levels), independent per output channel. The noise belongs to the part, so it is
in the part's target and ``mix == sum(stems)`` still holds.

Off unless a corpus preset has a ``[noise]`` table with ``enabled = true``; the drawn levels
and a seed per part are recorded in the track spec.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..distributions import draw
from ..schema import Key

RUMBLE_HZ = 150.0
FRAME_SECONDS = 0.05
LOUD_PERCENTILE = 95.0

# The [noise] table of a corpus preset.
NOISE_KEYS = {
    "enabled": Key(False, "bool", random=False),
    "level_db": Key(-35.0, low=-100.0, high=-6.0, unit="dB below the part's loud frames"),
    "slope_db_per_octave": Key(-3.0, low=-12.0, high=6.0, unit="dB/octave (0 white, -3 pink, -6 brown)"),
    "rumble_db": Key(-40.0, low=-100.0, high=-6.0, unit="dB below the part's loud frames"),
}


@dataclass(frozen=True)
class PartNoise:
    """One part's background: broadband level and colour, rumble level, and the noise seed."""

    level_db: float
    slope_db_per_octave: float
    rumble_db: float
    seed: int

    def to_dict(self) -> dict:
        return {"level_db": self.level_db, "slope_db_per_octave": self.slope_db_per_octave,
                "rumble_db": self.rumble_db, "seed": self.seed}

    @classmethod
    def sample(cls, config: dict, rng: np.random.Generator) -> "PartNoise":
        return cls(float(draw(config["level_db"], rng, "level_db")),
                   float(draw(config["slope_db_per_octave"], rng, "slope_db_per_octave")),
                   float(draw(config["rumble_db"], rng, "rumble_db")),
                   int(rng.integers(0, 2**31 - 1)))


def sample_noise(config: dict, n_parts: int, rng: np.random.Generator) -> list[dict] | None:
    """The track spec's ``noise`` record (one entry a part), or None when the stage is off."""
    if not config.get("enabled", False):
        return None
    return [PartNoise.sample(config, rng).to_dict() for _ in range(n_parts)]


def coloured_noise(rng: np.random.Generator, shape: tuple[int, ...], slope_db_per_octave: float,
                   sample_rate: int) -> np.ndarray:
    """Gaussian noise whose power spectrum falls by ``slope_db_per_octave`` per octave, unit RMS."""
    n = shape[-1]
    spectrum = np.fft.rfft(rng.standard_normal(shape), axis=-1)
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    ref = 1000.0
    gain = np.ones_like(freqs)
    nonzero = freqs > 0
    gain[nonzero] = (np.maximum(freqs[nonzero], 20.0) / ref) ** (slope_db_per_octave / (20 * np.log10(2)))
    gain[0] = 0.0
    out = np.fft.irfft(spectrum * gain, n=n, axis=-1)
    rms = np.sqrt(np.mean(out**2, axis=-1, keepdims=True))
    return out / np.maximum(rms, 1e-12)


def loud_level(image: np.ndarray, sample_rate: int) -> float:
    """RMS of the part's loud frames (the 95th percentile of its 50 ms frame RMS, over channels)."""
    frame = max(1, int(FRAME_SECONDS * sample_rate))
    mono = np.mean(image.astype(np.float64) ** 2, axis=0)
    usable = len(mono) // frame * frame
    if usable == 0:
        return float(np.sqrt(np.mean(mono))) if len(mono) else 0.0
    frames = np.sqrt(mono[:usable].reshape(-1, frame).mean(axis=1))
    return float(np.percentile(frames, LOUD_PERCENTILE))


def add_noise(images: np.ndarray, noise: list[dict], sample_rate: int) -> np.ndarray:
    """Add each part's background to its image (parts, channels, samples), in place; returns it."""
    import scipy.signal  # where used: a second at start-up otherwise

    sos = scipy.signal.butter(2, RUMBLE_HZ, btype="lowpass", fs=sample_rate, output="sos")
    for image, spec in zip(images, noise):
        level = loud_level(image, sample_rate)
        if level <= 0:
            continue
        rng = np.random.default_rng(int(spec["seed"]))
        broadband = coloured_noise(rng, image.shape, spec["slope_db_per_octave"], sample_rate)
        rumble = scipy.signal.sosfilt(sos, rng.standard_normal(image.shape), axis=-1)
        rumble /= np.maximum(np.sqrt(np.mean(rumble**2, axis=-1, keepdims=True)), 1e-12)
        image += (level * (10 ** (spec["level_db"] / 20) * broadband + 10 ** (spec["rumble_db"] / 20) * rumble)).astype(np.float32)
    return images
