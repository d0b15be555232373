"""Small builders shared by the tests (real MIDI files written with pretty_midi)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

REAL = Path(__file__).resolve().parents[2] / "shared" / "real"
BACH10 = REAL / "bach10"
BACH10_01_MIDI = BACH10 / "01-AchGottundHerr" / "01-AchGottundHerr.mid"


def write_midi(path: Path, parts: list[tuple[str, int, list[tuple[float, float, int]]]], drum: bool = False) -> Path:
    """parts: (track name, GM program 0-based, [(start, end, pitch), ...])."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    for name, program, notes in parts:
        inst = pretty_midi.Instrument(program=program, name=name, is_drum=drum)
        for start, end, pitch in notes:
            inst.notes.append(pretty_midi.Note(velocity=90, pitch=pitch, start=start, end=end))
        midi.instruments.append(inst)
    midi.write(str(path))
    return path


def fundamental(signal: np.ndarray, sample_rate: int, fmin: float = 50.0, fmax: float = 2000.0) -> float:
    """Fundamental frequency by autocorrelation with parabolic interpolation."""
    x = signal - signal.mean()
    spectrum = np.fft.rfft(x, 2 * len(x))
    ac = np.fft.irfft(np.abs(spectrum) ** 2)[: len(x)]
    lo, hi = int(sample_rate / fmax), int(sample_rate / fmin)
    lag = lo + int(np.argmax(ac[lo:hi]))
    a, b, c = ac[lag - 1], ac[lag], ac[lag + 1]
    lag = lag + 0.5 * (a - c) / (a - 2 * b + c)
    return sample_rate / lag


# --- timbre pools: track specs and small corpora drawn from a given source pool ---------------


def timbre_config(pool, programs=None) -> dict:
    """The demo preset's [timbre] table with ``pool`` as its sources and ``programs`` as its program pools."""
    from ensemble_synth.corpus.preset import resolve_preset

    config = dict(resolve_preset("demo")["timbre"])
    config["soundfont"] = pool
    config["programs"] = programs or {}
    return config


def pool_spec(pool, seed=1, index=0, programs=None) -> dict:
    """A demo track spec whose parts' timbres are drawn from ``pool`` (as sample_track draws them)."""
    from ensemble_synth.corpus.sampling import sample_track
    from ensemble_synth.synthesis.timbre import PartTimbre

    spec = sample_track("demo", split="train", index=index, seed=seed)
    config = timbre_config(pool, programs)
    rng, rng_pool = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    for part in spec["parts"]:
        drawn = PartTimbre.sample(config, part["instrument"], rng, rng_pool)
        for key in ("soundfont", "soundfont_file", "program", "program_instrument", "sampler", "physical", "eq_peaks"):
            part.pop(key, None)
        part.update(drawn.voice())
        part.update(drawn.extras())
    return spec


def pool_corpus_twice(tmp_path: Path, name: str, pool) -> list[dict]:
    """A 2-track demo corpus at 16 kHz with the source ``pool``, generated twice with the same
    seed into ``tmp_path/a`` and ``tmp_path/b``: asserts each track's metadata and WAVs are the
    same bytes, and returns the parts of every track of ``a``."""
    import copy
    import json

    from ensemble_synth.corpus.generation import generate
    from ensemble_synth.corpus.preset import resolve_preset

    preset = copy.deepcopy(resolve_preset("demo"))
    preset.pop("_resolved", None)
    preset.update(name=name, sample_rate=16000)
    preset["tracks"] = {"train": 2, "valid": 0, "test": 0, "per_room": 2}
    preset["repertoire"]["excerpt_seconds"] = 3
    preset["timbre"]["soundfont"] = pool
    generate(preset, tmp_path / "a", seed=5, jobs=1, rir_cache=tmp_path / "rirs", progress=False)
    generate(preset, tmp_path / "b", seed=5, jobs=1, rir_cache=tmp_path / "rirs", progress=False)
    metas = sorted((tmp_path / "a").rglob("metadata.json"))
    for m in metas:
        other = tmp_path / "b" / m.relative_to(tmp_path / "a")
        assert m.read_bytes() == other.read_bytes()
        for wav in m.parent.rglob("*.wav"):
            assert wav.read_bytes() == (other.parent / wav.relative_to(m.parent)).read_bytes()
    return [p for m in metas for p in json.loads(m.read_text())["parts"]]
