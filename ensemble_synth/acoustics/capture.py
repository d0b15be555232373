"""Capture: dry stems -> per-part images at the output channels (the separation targets).

The mix-down (gains and delays per microphone) is linear, so it is folded into the impulse
responses first: one composite response per (part, output channel), and each dry stem is
convolved once per output channel (batched float32 FFT overlap-add) instead of once per
microphone. The mixture is the sum of the images, so ``mix == images.sum(0)`` exactly.
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from .rir_cache import RirCache
from .rir_simulation import simulate_rirs
from .scene import Scene


def composite_rirs(rirs: np.ndarray, scene: Scene, sample_rate: int) -> np.ndarray:
    """(n_parts, n_mics, n) RIRs -> (n_parts, n_outputs, n') responses at the output channels.

    Normalised by one scalar per scene so that the mean energy of a response is one: the
    images keep the dry stems' level on average and the balance between parts that the room
    and the microphones give.
    """
    gains = np.asarray(scene.mixdown.gains, dtype=np.float32)  # (C, M)
    shifts = np.round(np.asarray(scene.mixdown.delays) * sample_rate).astype(int)  # (M,)
    n_parts, n_mics, n = rirs.shape
    out = np.zeros((n_parts, gains.shape[0], n + int(shifts.max(initial=0))), dtype=np.float32)
    for m in range(n_mics):
        out[:, :, shifts[m]:shifts[m] + n] += gains[None, :, m, None] * rirs[:, m, None, :]
    energy = float(np.mean(np.sum(out.astype(np.float64) ** 2, axis=-1)))
    if energy > 0:
        out *= np.float32(1.0 / np.sqrt(energy))
    return out


def convolve(dry: np.ndarray, responses: np.ndarray) -> np.ndarray:
    """(P, N) dry x (P, C, L) responses -> (P, C, N + L - 1), float32 FFT overlap-add."""
    import scipy.signal  # where used: a second at start-up otherwise

    return scipy.signal.oaconvolve(dry[:, None, :], responses, axes=-1).astype(np.float32, copy=False)


def spatialize(dry: np.ndarray, scene: Scene, sample_rate: int, cache: RirCache | None = None) -> np.ndarray:
    """Dry stems (n_parts, n_samples) -> images (n_parts, output_channels, n_samples + tail), float32.

    The reverberation tail is kept whole: n_out = n_samples + len(composite response) - 1.
    """
    dry = np.asarray(dry, dtype=np.float32)
    if dry.ndim != 2 or dry.shape[0] != len(scene.players):
        raise UserError(f"dry stems shaped {dry.shape} do not match the scene's {len(scene.players)} players")
    rirs = cache.get(scene, sample_rate) if cache is not None else simulate_rirs(scene, sample_rate)
    return convolve(dry, composite_rirs(rirs, scene, sample_rate))


def mixdown(images: np.ndarray) -> np.ndarray:
    """The mixture: the sum of the part images."""
    return images.sum(axis=0, dtype=np.float32)
