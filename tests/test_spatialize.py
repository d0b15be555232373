"""Capture: images, mix == sum(stems), determinism, and the spatialize / rir / plan commands."""

import json

import numpy as np
import pytest
import soundfile as sf

from ensemble_synth.acoustics.capture import composite_rirs, mixdown, spatialize
from ensemble_synth.acoustics.rir_cache import RirCache
from ensemble_synth.acoustics.rir_simulation import simulate_rirs
from ensemble_synth.acoustics.scene import sample_scene
from ensemble_synth.cli import main

FS = 16000
QUARTET = [("1_violin", "violin", 659.3), ("2_violin", "violin", 440.0), ("3_viola", "viola", 329.6), ("4_cello", "cello", 130.8)]


def _tone(freq: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * FS)) / FS
    return (0.2 * sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, 6))).astype(np.float32)


@pytest.fixture
def stems_dir(tmp_path):
    folder = tmp_path / "dry"
    folder.mkdir()
    for name, _, freq in QUARTET:
        sf.write(folder / f"{name}.wav", _tone(freq), FS, subtype="FLOAT")
    return folder


def test_images_sum_to_the_mix_and_keep_the_tail():
    scene = sample_scene("chamber_hall", "string_quartet", "decca_tree_spots", [q[1] for q in QUARTET], np.random.default_rng(0))
    dry = np.stack([_tone(q[2]) for q in QUARTET])
    images = spatialize(dry, scene, FS)
    response = composite_rirs(simulate_rirs(scene, FS), scene, FS)
    assert images.dtype == np.float32
    assert images.shape == (4, 2, dry.shape[1] + response.shape[-1] - 1)
    assert np.array_equal(mixdown(images), images.sum(0))
    # Each image is its dry stem through the room: it correlates with its own stem, not much with the others.
    assert np.all(np.abs(images).max(axis=(1, 2)) > 0.01)


def test_cached_and_uncached_spatialize_agree(tmp_path):
    scene = sample_scene("dry_studio", "violin_cello", "ab", ["violin", "cello"], np.random.default_rng(2))
    dry = np.stack([_tone(440.0), _tone(130.8)])
    cache = RirCache(tmp_path / "cache")
    cold = spatialize(dry, scene, FS, cache)
    warm = spatialize(dry, scene, FS, cache)
    assert cache.hits == 1 and np.array_equal(cold, warm)
    assert np.array_equal(cold, spatialize(dry, scene, FS))


def _spatialize_cli(stems_dir, out, seed="4", extra=()):
    return main(["spatialize", str(stems_dir), "-o", str(out), "--room", "chamber_hall", "--layout", "string_quartet",
                 "--mics", "decca_tree_spots", "--seed", seed, *extra])


def test_spatialize_command_writes_mix_stems_metadata(stems_dir, tmp_path):
    out = tmp_path / "wet"
    assert _spatialize_cli(stems_dir, out) == 0
    mix, sr = sf.read(out / "mix.wav", dtype="float32", always_2d=True)
    stems = [sf.read(out / "stems" / f"{name}.wav", dtype="float32", always_2d=True)[0] for name, _, _ in QUARTET]
    assert sr == FS and mix.shape[1] == 2
    assert np.array_equal(mix, np.sum(stems, axis=0, dtype=np.float32))  # mix == sum(stems), bit for bit
    meta = json.loads((out / "metadata.json").read_text())
    assert [p["instrument"] for p in meta["parts"]] == ["violin", "violin", "viola", "cello"]
    assert meta["scene"]["room"]["rt60"] == 0.9 and len(meta["scene"]["mics"]) == 7


def test_same_seed_same_bytes_other_seed_other_bytes(stems_dir, tmp_path):
    for name, seed in [("a", "4"), ("b", "4"), ("c", "5")]:
        assert _spatialize_cli(stems_dir, tmp_path / name, seed) == 0
    read = lambda name: (tmp_path / name / "mix.wav").read_bytes()  # noqa: E731
    assert read("a") == read("b")
    assert read("a") != read("c")


def test_spatialize_reads_metadata_json_when_present(stems_dir, tmp_path):
    parts = [{"name": name, "instrument": inst} for name, inst, _ in QUARTET]
    parts[2]["instrument"] = "va"  # an alias is fine
    (stems_dir / "metadata.json").write_text(json.dumps({"parts": parts}))
    assert _spatialize_cli(stems_dir, tmp_path / "wet") == 0
    meta = json.loads((tmp_path / "wet" / "metadata.json").read_text())
    assert meta["parts"][2]["instrument"] == "viola"


def test_more_parts_than_seats_is_an_error_and_writes_nothing(stems_dir, tmp_path, capsys):
    sf.write(stems_dir / "5_double_bass.wav", _tone(65.4), FS, subtype="FLOAT")
    out = tmp_path / "wet"
    assert _spatialize_cli(stems_dir, out) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "4 seats but the ensemble has 5 parts" in err and "\n" not in err
    assert not out.exists() and not any(p.name.startswith(".wet") for p in tmp_path.iterdir())


@pytest.mark.parametrize("option, value, message", [
    ("--room", "nowhere", "unknown room preset 'nowhere' (known: "),
    ("--mics", "shotgun", "unknown mic preset 'shotgun' (known: "),
])
def test_unknown_preset_on_the_command_line(stems_dir, tmp_path, capsys, option, value, message):
    args = ["spatialize", str(stems_dir), "-o", str(tmp_path / "wet"), "--room", "chamber_hall",
            "--layout", "string_quartet", option, value]
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "wet").exists()


def test_rir_command_writes_part_mic_wavs_and_sidecar(tmp_path):
    out = tmp_path / "rirs"
    assert main(["rir", "--room", "dry_studio", "--layout", "violin_cello", "--mics", "ortf", "-o", str(out),
                 "--sample-rate", str(FS)]) == 0
    names = sorted(p.name for p in out.glob("*.wav"))
    assert names == ["1_violin__L.wav", "1_violin__R.wav", "2_cello__L.wav", "2_cello__R.wav"]
    sidecar = json.loads((out / "rirs.json").read_text())
    assert sidecar["sample_rate"] == FS
    assert all(abs(f["rt60_measured"] - 0.3) <= 0.03 for f in sidecar["files"])


def test_plan_command_draws_a_png(tmp_path):
    out = tmp_path / "plan.png"
    assert main(["plan", "--room", "concert_hall", "--layout", "woodwind_quintet", "--mics", "decca_tree_spots",
                 "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
