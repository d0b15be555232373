"""The mix stage: part levels and the loudness of the mixture.

Every dry stem is first matched to the same loudness (:data:`DRY_LOUDNESS_LUFS`), then given
its part gain (``[mix] gain_db``). With ``balance = "captured"`` the parts are balanced again
after the room and the background noise, as separately recorded tracks are mixed: each image
is matched to the same loudness plus its part gain, so the seat and the microphones change a
part's sound but not its level in the mix (the default, ``"dry"``, leaves the balance the
room gives). Last, the images are scaled together so that the mixture has the drawn loudness
(``loudness_lufs``, pyloudnorm's BS.1770 meter), lowered further if its peak would pass
``peak_ceiling``. One gain for all images keeps ``mix == sum(stems)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..distributions import draw
from ..errors import UserError
from ..schema import Key

DRY_LOUDNESS_LUFS = -30.0  # every dry stem is matched to this before the part gains

# The [mix] table of a corpus preset.
MIX_KEYS = {
    "gain_db": Key(0.0, low=-40.0, high=40.0, unit="dB"),
    "loudness_lufs": Key(-24.0, low=-70.0, high=-6.0, unit="LUFS"),
    "peak_ceiling": Key(0.891, low=0.0, high=1.0, open_low=True, random=False, unit="(full scale)"),
}
# Optional (a preset without it keeps its corpus.toml and track specs as they were).
BALANCES = ("dry", "captured")


def check_balance(mix: dict, where: str) -> None:
    """``[mix] balance``, when given: where the part levels are set."""
    if "balance" in mix and mix["balance"] not in BALANCES:
        raise UserError(f"{where} key 'balance': expected one of {', '.join(BALANCES)}, got {mix['balance']!r}")


@dataclass(frozen=True)
class MixSpec:
    """The mixture's loudness target, peak ceiling and balance (``metadata.json``'s ``mix``)."""

    loudness_lufs: float
    peak_ceiling: float
    balance: str = "dry"

    def to_dict(self) -> dict:
        out = {"loudness_lufs": self.loudness_lufs, "peak_ceiling": self.peak_ceiling}
        return out if self.balance == "dry" else {**out, "balance": self.balance}

    @classmethod
    def from_dict(cls, d: dict) -> "MixSpec":
        return cls(float(d["loudness_lufs"]), float(d["peak_ceiling"]), d.get("balance", "dry"))

    @classmethod
    def sample(cls, config: dict, n_parts: int, rng: np.random.Generator) -> tuple[list[float], "MixSpec"]:
        """The part gains (dB, one per part) and the mixture's spec."""
        gains = [float(draw(config["gain_db"], rng, "gain_db")) for _ in range(n_parts)]
        return gains, cls(float(draw(config["loudness_lufs"], rng, "loudness_lufs")), float(config["peak_ceiling"]),
                          config.get("balance", "dry"))


def loudness(meter, audio: np.ndarray) -> float:
    """Integrated loudness of (n,) or (channels, n) audio; -inf when silent."""
    data = audio.T if audio.ndim == 2 else audio
    if len(data) < meter.rate:  # pyloudnorm needs at least one 400 ms block; pad short clips
        pad = [(0, meter.rate - len(data))] + ([(0, 0)] if data.ndim == 2 else [])
        data = np.pad(data, pad)
    with np.errstate(divide="ignore"):
        return float(meter.integrated_loudness(data.astype(np.float64)))


def meter(sample_rate: int):
    import pyloudnorm

    return pyloudnorm.Meter(sample_rate)


def match_levels(stems: np.ndarray, gains_db: list[float], sample_rate: int, names: list[str], what: str) -> list[float]:
    """Scale each part's stem (in place; dry stems or images) to DRY_LOUDNESS_LUFS plus its part
    gain; returns the gains applied (dB).

    ``what`` names the track and the sound sources, for the error about a silent part.
    """
    bs1770 = meter(sample_rate)
    applied = []
    for i, (name, part_gain) in enumerate(zip(names, gains_db)):
        level = loudness(bs1770, stems[i])
        if not np.isfinite(level):
            raise UserError(f"{what[0]}: part {name} rendered silent with {what[1][i]}")
        gain_db = DRY_LOUDNESS_LUFS - level + part_gain
        stems[i] *= np.float32(10 ** (gain_db / 20))
        applied.append(round(gain_db, 6))
    return applied


def normalise_mixture(images: np.ndarray, spec: MixSpec, sample_rate: int) -> dict:
    """Scale the images (in place) to the spec's loudness under its peak ceiling; returns what was done."""
    mix = images.sum(axis=0, dtype=np.float32)
    level = loudness(meter(sample_rate), mix)
    gain_db = spec.loudness_lufs - level
    peak = float(np.abs(mix).max()) * 10 ** (gain_db / 20)
    if peak > spec.peak_ceiling:
        gain_db += 20 * np.log10(spec.peak_ceiling / peak)
    images *= np.float32(10 ** (gain_db / 20))
    # Loudness is scale-invariant (the gates move with the gain), so no second measurement.
    return {"normalisation_gain_db": round(float(gain_db), 6), "loudness_lufs": round(float(level + gain_db), 3)}
