"""Room impulse responses: simulation (image sources + a statistical late tail) and RT60 measurement.

The "hybrid" model computes the early part with pyroomacoustics' image-source method (with
source and microphone directivities, walls absorbing as the room asks) up to the mixing
time, and continues with a diffuse tail, as gpuRIR does: per octave band, Gaussian noise
that decays at exactly the room's RT60 for that band (air absorption included), at the
diffuse-field level of the room (4*pi*c / (V*fs) per sample for pyroomacoustics' 1/r image
amplitudes, times the diffuse-field energy of the source's and the microphone's patterns).
The tail is coherent between microphones as a diffuse field is: sinc(k*d) times the
correlation of their polar patterns. So the RT60 asked is the RT60 measured, by
construction, and it costs a small fraction of a full high-order image-source run.

The "ism" model is plain pyroomacoustics (image sources up to the order that
``pyroomacoustics.inverse_sabine`` gives, air absorption as the room says); it is the
reference, and its RT60 is not calibrated.

pyroomacoustics places every impulse at ``distance / c`` plus half its fractional delay
filter; that global delay is removed, so sample ``n`` of an RIR is time ``n / fs``.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft

from .physics import SPEED_OF_SOUND
from .rooms import BAND_CENTRES, MID_BANDS, WALLS
from .scene import Scene

SIMULATOR_VERSION = "hybrid-1"
FADE = 0.01  # s, cross-fade between the image-source part and the tail
TAIL_MARGIN = 1.05  # RIRs last this many times the longest band RT60 (down to about -63 dB)


def mixing_time(volume: float) -> float:
    """Seconds after the direct sound from which the tail takes over (~sqrt(V) ms, Polack)."""
    return float(np.clip(math.sqrt(volume) * 1e-3, 0.02, 0.08))


def distances(scene: Scene) -> np.ndarray:
    """(n_players, n_mics) source-microphone distances in metres."""
    src = np.array([p.position for p in scene.players])
    mic = np.array([m.position for m in scene.mics])
    return np.linalg.norm(src[:, None, :] - mic[None, :, :], axis=-1)


def simulate_rirs(scene: Scene, sample_rate: int) -> np.ndarray:
    """Impulse responses from every player to every microphone: (n_players, n_mics, n) float32."""
    # pyroomacoustics and scipy.signal are imported where used: they cost about a second at
    # start-up, which every command would pay.
    import pyroomacoustics as pra

    room = scene.room
    rt60_max = max(room.rt60_bands)
    if room.model == "ism":
        order = room.max_order if room.max_order >= 0 else pra.inverse_sabine(room.rt60, room.dimensions)[1]
        return _ism(scene, sample_rate, order, room.air_absorption)
    t_mix = mixing_time(room.volume)
    dist = distances(scene)
    crossover = dist / SPEED_OF_SOUND + t_mix  # (P, M) seconds
    reach = float(dist.max()) + SPEED_OF_SOUND * (t_mix + FADE)
    # Every image closer than `reach` must be included: an image of order n can be as close as
    # n * min(dims) / sqrt(3) (reflections spread over the three axes).
    order = int(math.ceil(math.sqrt(3.0) * reach / min(room.dimensions))) + 1
    n = int(math.ceil(sample_rate * max(rt60_max * TAIL_MARGIN, float(crossover.max()) + 2 * FADE)))
    early = _ism(scene, sample_rate, order, air_absorption=False, length=n)
    tail = _diffuse_tail(scene, sample_rate, n)
    # Energy-preserving cross-fade (the two parts are uncorrelated): cos for the early part, sin for the tail.
    width = max(int(round(FADE * sample_rate)), 1)
    ramp = (np.arange(width) + 0.5) / width * (np.pi / 2)
    fade_in, fade_out = np.sin(ramp).astype(np.float32), np.cos(ramp).astype(np.float32)
    for s, m in np.ndindex(crossover.shape):
        start = int(round((crossover[s, m] - FADE / 2) * sample_rate))
        early[s, m, start:start + width] *= fade_out
        early[s, m, start + width:] = 0.0
        tail[s, m, :start] = 0.0
        tail[s, m, start:start + width] *= fade_in
    return early + tail


def _directivity(p: float, azimuth: float, colatitude: float):
    import pyroomacoustics as pra

    if p >= 1.0:
        return None
    orientation = pra.directivities.DirectionVector(azimuth=azimuth, colatitude=colatitude, degrees=True)
    return pra.directivities.CardioidFamily(orientation=orientation, p=p)


def _ism(scene: Scene, fs: int, order: int, air_absorption: bool, length: int | None = None) -> np.ndarray:
    import pyroomacoustics as pra

    room = scene.room
    materials = {wall: pra.Material(float(a)) for wall, a in zip(WALLS, room.wall_absorption)}
    shoebox = pra.ShoeBox(list(room.dimensions), fs=fs, materials=materials, max_order=int(order),
                          air_absorption=air_absorption, ray_tracing=False)
    for player in scene.players:
        shoebox.add_source(list(player.position), directivity=_directivity(player.p, player.azimuth, player.colatitude))
    positions = np.array([m.position for m in scene.mics]).T
    shoebox.add_microphone_array(positions, directivity=[_directivity(m.p, m.azimuth, m.colatitude) for m in scene.mics])
    shoebox.compute_rir()
    offset = pra.constants.get("frac_delay_length") // 2
    if length is None:
        length = max(len(shoebox.rir[m][s]) for m in range(len(scene.mics)) for s in range(len(scene.players))) - offset
    out = np.zeros((len(scene.players), len(scene.mics), length), dtype=np.float32)
    for m in range(len(scene.mics)):
        for s in range(len(scene.players)):
            h = np.asarray(shoebox.rir[m][s][offset:offset + length], dtype=np.float32)
            out[s, m, : len(h)] = h
    return out


def _diffuse_energy(p: float) -> float:
    """Mean of (p + (1-p) cos)^2 over the sphere: what a pattern picks up of a diffuse field."""
    return p * p + (1.0 - p) ** 2 / 3.0


def _unit(azimuth: float, colatitude: float) -> np.ndarray:
    az, col = math.radians(azimuth), math.radians(colatitude)
    return np.array([math.cos(az) * math.sin(col), math.sin(az) * math.sin(col), math.cos(col)])


def band_masks(n: int, fs: int) -> np.ndarray:
    """Octave-band amplitude masks on the rfft bins that sum to one (raised-cosine crossovers)."""
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    log_f = np.log2(np.maximum(freqs, 1.0))
    steps = []
    for low, high in zip(BAND_CENTRES[:-1], BAND_CENTRES[1:]):
        edge = 0.5 * (math.log2(low) + math.log2(high))
        x = np.clip((log_f - edge) / 0.5 + 0.5, 0.0, 1.0)  # one octave-wide transition
        steps.append(np.sin(x * np.pi / 2) ** 2)
    steps = [np.ones_like(freqs)] + steps + [np.zeros_like(freqs)]
    return np.array([steps[b] - steps[b + 1] for b in range(len(BAND_CENTRES))])


def _coherence_roots(scene: Scene) -> np.ndarray:
    """Per band, a square root of the diffuse-field coherence matrix between the microphones."""
    mics = scene.mics
    pos = np.array([m.position for m in mics])
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    axes = np.array([_unit(m.azimuth, m.colatitude) for m in mics])
    p = np.array([m.p for m in mics])
    energy = np.array([_diffuse_energy(v) for v in p])
    pattern = (np.outer(p, p) + np.outer(1 - p, 1 - p) * (axes @ axes.T) / 3.0) / np.sqrt(np.outer(energy, energy))
    roots = []
    for centre in BAND_CENTRES:
        gamma = pattern * np.sinc(2.0 * centre * d / SPEED_OF_SOUND)  # np.sinc(x) = sin(pi x)/(pi x)
        w, v = np.linalg.eigh(gamma)
        roots.append((v * np.sqrt(np.clip(w, 0.0, None))) @ v.T)
    return np.array(roots)


def _diffuse_tail(scene: Scene, fs: int, n: int) -> np.ndarray:
    room = scene.room
    n_mics = len(scene.mics)
    n_fft = scipy.fft.next_fast_len(n, real=True)
    masks = band_masks(n_fft, fs).astype(np.float32)
    roots = _coherence_roots(scene).astype(np.float32)
    t = np.arange(n, dtype=np.float64) / fs
    envelopes = np.array([np.exp(-0.5 * math.log(1e6) / rt * t) for rt in room.rt60_bands], dtype=np.float32)
    level = 4.0 * math.pi * SPEED_OF_SOUND / (room.volume * fs)
    mic_energy = np.array([_diffuse_energy(m.p) for m in scene.mics])
    out = np.zeros((len(scene.players), n_mics, n), dtype=np.float32)
    for s, player in enumerate(scene.players):
        rng = np.random.default_rng(np.random.SeedSequence([scene.seed, s]))
        spectrum = scipy.fft.rfft(rng.standard_normal((n_mics, n_fft), dtype=np.float32), axis=-1)
        for b in range(len(BAND_CENTRES)):
            band = scipy.fft.irfft(spectrum * masks[b], n=n_fft, axis=-1)[:, :n]
            out[s] += (roots[b] @ band) * envelopes[b]
        gain = np.sqrt(level * _diffuse_energy(player.p) * mic_energy).astype(np.float32)
        out[s] *= gain[:, None]
    return out


# --- measurement ----------------------------------------------------------------------------

def measure_rt60(rir: np.ndarray, sample_rate: int, band: str | int = "mid") -> float:
    """T30 (Schroeder, pyroomacoustics) of one RIR.

    band: "mid" (ISO 3382's T30,mid: the mean of the 500 Hz and 1 kHz octave values, what a
    room's "RT60" means here), an octave centre frequency in Hz, or "broadband".
    """
    import pyroomacoustics as pra
    import scipy.signal

    h = np.asarray(rir, dtype=np.float64)
    if band == "mid":
        return float(np.mean([measure_rt60(h, sample_rate, BAND_CENTRES[b]) for b in MID_BANDS]))
    if band != "broadband":
        centre = float(band)
        sos = scipy.signal.butter(4, [centre / math.sqrt(2), centre * math.sqrt(2)], btype="bandpass",
                                  fs=sample_rate, output="sos")
        h = scipy.signal.sosfiltfilt(sos, h)
    return float(pra.experimental.measure_rt60(h, fs=sample_rate, decay_db=30))
