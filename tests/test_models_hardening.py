"""train / separate / evaluate on bad input: damaged or empty checkpoints, bad mixtures, bad
options, truncated stems. Each refusal is one line naming the file or option, exit status 2,
and nothing is left behind.

The corpus here is written directly (decaying tones, no FluidSynth) to keep the module fast;
the model is the real ``tiny`` ConvTasNet trained for one step.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ensemble_synth.cli import main
from ensemble_synth.corpus.format import read_manifest
from ensemble_synth.errors import UserError
from ensemble_synth.fileio import read_wav, write_wav
from ensemble_synth.separation import load_separator, train
from ensemble_synth.separation.checkpoint import CHECKSUM_KEY, read_checkpoint, weights_sha256
from ensemble_synth.separation.data import check_stems

SR = 16000
SECONDS = 1.5
PARTS = [("1_violin", "violin", 660.0), ("2_cello", "cello", 130.0)]
MANIFEST_HEADER = ["track_id", "split", "path", "duration", "sample_rate", "channels", "ensemble", "parts",
                   "instruments", "room", "rt60", "mics", "source"]


def make_corpus(root: Path, splits=("train", "train", "valid"), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    n = int(SECONDS * SR)
    t = np.arange(n) / SR
    rows = []
    for index, split in enumerate(splits):
        track_id = f"duo-{index:06d}"
        folder = root / split / track_id
        (folder / "stems").mkdir(parents=True)
        stems = []
        for part, _, f0 in PARTS:
            f = f0 * 2 ** (rng.integers(0, 12) / 12)
            stem = (0.1 * np.sin(2 * np.pi * f * t) * np.exp(-t / 0.7)).astype(np.float32)
            stems.append(stem)
            write_wav(folder / "stems" / f"{part}.wav", stem[None], SR)
        write_wav(folder / "mix.wav", np.sum(stems, axis=0)[None], SR)
        rows.append([track_id, split, f"{split}/{track_id}", f"{SECONDS:.3f}", SR, 1, "duo",
                     ";".join(p for p, _, _ in PARTS), ";".join(i for _, i, _ in PARTS), "dry", 0.0, "none", "test"])
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(MANIFEST_HEADER)
        writer.writerows(rows)
    (root / "corpus.toml").write_text('name = "test"\n')
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("duo"))


@pytest.fixture(scope="module")
def model_path(corpus, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "tiny"
    return train(corpus, run, model="tiny", max_steps=1, seed=0, progress=False, device="cpu")


@pytest.fixture
def mix(corpus, tmp_path) -> Path:
    audio, rate = read_wav(corpus / "valid" / "duo-000002" / "mix.wav")
    path = tmp_path / "mix.wav"
    write_wav(path, audio, rate)
    return path


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error: "), captured.err
    assert "\n" not in err and "Traceback" not in err, err
    return err


# --- 6. empty checkpoint -----------------------------------------------------------------


def test_empty_checkpoint_is_one_line_naming_the_file(mix, tmp_path, capsys):
    empty = tmp_path / "model.pt"
    empty.write_bytes(b"")
    assert main(["separate", str(mix), "--model", str(empty), "-o", str(tmp_path / "o")]) == 2
    err = _one_error_line(capsys)
    assert str(empty) in err and "not a readable checkpoint" in err
    assert not (tmp_path / "o").exists()
    assert main(["evaluate", "--model", str(tmp_path), "--dataset", f"folder:{tmp_path}", "-o", str(tmp_path / "r")]) == 2
    assert str(empty) in _one_error_line(capsys)
    with pytest.raises(UserError, match="model.pt: not a readable checkpoint"):
        read_checkpoint(empty)


def test_a_truncated_or_foreign_checkpoint_is_one_line(model_path, mix, tmp_path, capsys):
    blob = model_path.read_bytes()
    for name, data in (("half.pt", blob[: len(blob) // 2]), ("text.pt", b"\n"), ("zeros.pt", bytes(4096))):
        (tmp_path / name).write_bytes(data)
        assert main(["separate", str(mix), "--model", str(tmp_path / name), "-o", str(tmp_path / "o")]) == 2
        assert str(tmp_path / name) in _one_error_line(capsys)
    # ours in form, but with the layout missing
    payload = torch.load(model_path, weights_only=True)
    del payload["layout"]
    torch.save(payload, tmp_path / "nolayout.pt")
    assert main(["separate", str(mix), "--model", str(tmp_path / "nolayout.pt"), "-o", str(tmp_path / "o")]) == 2
    assert "damaged checkpoint" in _one_error_line(capsys)


# --- 11. checksum of the weights -----------------------------------------------------------


def test_checkpoint_stores_the_sha256_of_its_weights(model_path):
    payload = read_checkpoint(model_path)
    assert payload[CHECKSUM_KEY] == weights_sha256(payload["state_dict"])
    last = read_checkpoint(model_path.parent / "last.pt")
    assert last[CHECKSUM_KEY] == payload[CHECKSUM_KEY]  # one step, one epoch: the same weights
    state = dict(payload["state_dict"])
    first = sorted(state)[0]
    changed = {**state, first: state[first].clone().add_(1.0)}
    assert weights_sha256(changed) != payload[CHECKSUM_KEY]
    assert weights_sha256(dict(reversed(list(state.items())))) == payload[CHECKSUM_KEY]  # order-independent


def test_flipped_bytes_in_the_weights_are_refused_as_a_damaged_checkpoint(model_path, mix, tmp_path, capsys):
    blob = bytearray(model_path.read_bytes())
    state = read_checkpoint(model_path)["state_dict"]
    key, tensor = max(state.items(), key=lambda kv: kv[1].numel())
    offset = bytes(blob).find(tensor.numpy().tobytes())
    assert offset > 0, key
    nbytes = tensor.numel() * tensor.element_size()
    for i in range(100):  # 100 distinct flipped bytes inside the largest weight tensor
        blob[offset + (i * 37) % nbytes] ^= 0xFF
    damaged = tmp_path / "model.pt"
    damaged.write_bytes(bytes(blob))
    assert main(["separate", str(mix), "--model", str(damaged), "-o", str(tmp_path / "o")]) == 2
    err = _one_error_line(capsys)
    assert str(damaged) in err and "damaged checkpoint" in err
    assert not (tmp_path / "o").exists()
    with pytest.raises(UserError, match="damaged checkpoint"):
        load_separator(damaged, "cpu")


def test_flipped_bytes_anywhere_never_load(model_path, mix, tmp_path, capsys):
    rng = np.random.default_rng(0)
    original = model_path.read_bytes()
    for trial in range(6):
        blob = bytearray(original)
        for i in rng.choice(len(blob), 100, replace=False):
            blob[i] ^= 0xFF
        damaged = tmp_path / f"m{trial}.pt"
        damaged.write_bytes(bytes(blob))
        assert main(["separate", str(mix), "--model", str(damaged), "-o", str(tmp_path / "o")]) == 2
        assert str(damaged) in _one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_a_checkpoint_written_before_checksums_still_loads(model_path, mix, tmp_path):
    payload = torch.load(model_path, weights_only=True)
    del payload[CHECKSUM_KEY]
    old = tmp_path / "old.pt"
    torch.save(payload, old)
    audio, rate = read_wav(mix)
    before = load_separator(model_path, "cpu").separate(audio, rate)
    after = load_separator(old, "cpu").separate(audio, rate)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])


# --- 8, 9. mixtures that cannot be separated -----------------------------------------------


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_mixture_with_nan_or_inf_is_refused(model_path, mix, tmp_path, capsys, value):
    audio, rate = read_wav(mix)
    audio[0, 1000:1010] = value
    bad = tmp_path / "bad.wav"
    write_wav(bad, audio, rate)
    assert main(["separate", str(bad), "--model", str(model_path), "-o", str(tmp_path / "o")]) == 2
    err = _one_error_line(capsys)
    assert str(bad) in err and "NaN or infinite" in err and "sample 1000" in err
    assert not (tmp_path / "o").exists()
    with pytest.raises(UserError, match="^mixture: the mixture holds 10 NaN or infinite"):
        load_separator(model_path, "cpu").separate(audio, rate)


def test_a_mixture_with_no_samples_is_refused(model_path, tmp_path, capsys):
    empty = tmp_path / "empty.wav"
    write_wav(empty, np.zeros((1, 0), np.float32), SR)
    assert main(["separate", str(empty), "--model", str(model_path), "-o", str(tmp_path / "o")]) == 2
    err = _one_error_line(capsys)
    assert str(empty) in err and "no samples" in err
    assert not (tmp_path / "o").exists()
    with pytest.raises(UserError, match="no samples"):
        load_separator(model_path, "cpu").separate(np.zeros((1, 0), np.float32), SR)


def test_very_short_mixtures_still_separate(model_path):
    separator = load_separator(model_path, "cpu")
    for n in (1, 7, 100):
        outputs = separator.separate(np.full((1, n), 0.1, np.float32), 22050)
        assert all(v.shape == (1, n) and np.isfinite(v).all() for v in outputs.values())


# --- 10. chunk length -----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-3", "nan", "inf"])
def test_chunk_seconds_must_be_positive_and_finite(model_path, mix, tmp_path, capsys, value):
    assert main(["separate", str(mix), "--model", str(model_path), "-o", str(tmp_path / "o"),
                 "--chunk-seconds", value]) == 2
    err = _one_error_line(capsys)
    assert "--chunk-seconds" in err and "greater than 0" in err
    assert not (tmp_path / "o").exists()


def test_library_refuses_chunk_and_overlap_that_are_not_positive(model_path, mix):
    audio, rate = read_wav(mix)
    separator = load_separator(model_path, "cpu")
    with pytest.raises(UserError, match="chunk_seconds = 0"):
        separator.separate(audio, rate, chunk_seconds=0)
    with pytest.raises(UserError, match="overlap_seconds = -1"):
        separator.separate(audio, rate, overlap_seconds=-1)
    assert set(separator.separate(audio, rate, chunk_seconds=0.01)) == {"1_violin", "2_cello"}  # lengthened


def test_separate_refuses_an_existing_output_before_the_work(model_path, mix, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["separate", str(mix), "--model", str(model_path), "-o", str(out)]) == 2
    assert "--overwrite" in _one_error_line(capsys)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


# --- 7. step budget -------------------------------------------------------------------------


@pytest.mark.parametrize("steps", ["0", "-2"])
def test_max_steps_below_one_is_refused_up_front_and_leaves_nothing(corpus, tmp_path, capsys, steps):
    run = tmp_path / "run"
    assert main(["train", str(corpus), "-o", str(run), "--model", "tiny", "--max-steps", steps, "--quiet"]) == 2
    err = _one_error_line(capsys)
    assert "--max-steps" in err and "at least 1" in err
    assert not run.exists()
    with pytest.raises(UserError, match="max_steps"):
        train(corpus, run, model="tiny", max_steps=int(steps), progress=False, device="cpu")
    assert not run.exists()


def test_a_fresh_run_that_fails_before_its_first_checkpoint_leaves_no_run_directory(corpus, tmp_path, capsys):
    run = tmp_path / "runs" / "run"
    assert main(["train", str(corpus), "-o", str(run), "--model", "tiny", "--device", "tpu", "--quiet"]) == 2
    assert "tpu" in _one_error_line(capsys)
    assert not run.parent.exists()  # nor the folder made for it
    # a directory the user made is kept (only what this call made is removed)
    run.mkdir(parents=True)
    assert main(["train", str(corpus), "-o", str(run), "--model", "tiny", "--device", "tpu", "--quiet"]) == 2
    assert run.is_dir()


# --- 12. stems that do not match the manifest -------------------------------------------------


def _copy(corpus: Path, dest: Path) -> Path:
    shutil.copytree(corpus, dest)
    return dest


def test_training_refuses_a_truncated_stem_naming_it(corpus, tmp_path, capsys):
    copy = _copy(corpus, tmp_path / "corpus")
    stem = copy / "train" / "duo-000001" / "stems" / "2_cello.wav"
    audio, rate = read_wav(stem)
    write_wav(stem, audio[:, : audio.shape[1] - 800], rate)  # 50 ms short
    run = tmp_path / "run"
    assert main(["train", str(copy), "-o", str(run), "--model", "tiny", "--max-steps", "1", "--quiet"]) == 2
    err = _one_error_line(capsys)
    assert str(stem) in err and "23200 frames" in err and "1.500 s" in err
    assert not run.exists()


def test_training_refuses_a_stem_of_another_rate_or_channel_count_or_a_missing_one(corpus, tmp_path):
    copy = _copy(corpus, tmp_path / "corpus")
    tracks = read_manifest(copy)
    stem = copy / "valid" / "duo-000002" / "stems" / "1_violin.wav"
    audio, rate = read_wav(stem)
    write_wav(stem, np.concatenate([audio, audio]), rate)
    with pytest.raises(UserError, match="1_violin.wav: stem has 2 channel"):
        check_stems(tracks)
    sf.write(str(stem), audio[0], 8000, subtype="FLOAT")
    with pytest.raises(UserError, match="1_violin.wav: stem sample rate 8000 Hz"):
        check_stems(tracks)
    stem.unlink()
    with pytest.raises(UserError, match="1_violin.wav: stem not found"):
        train(copy, tmp_path / "run", model="tiny", max_steps=1, progress=False, device="cpu")
    assert not (tmp_path / "run").exists()


def test_stem_lengths_within_a_millisecond_of_the_manifest_are_accepted(corpus, tmp_path):
    copy = _copy(corpus, tmp_path / "corpus")
    stem = copy / "train" / "duo-000000" / "stems" / "1_violin.wav"
    audio, rate = read_wav(stem)
    write_wav(stem, np.pad(audio, [(0, 0), (0, 8)]), rate)  # 0.5 ms long: manifest rounding
    check_stems(read_manifest(copy))
    write_wav(stem, np.pad(audio, [(0, 0), (0, 20)]), rate)  # 1.25 ms long
    with pytest.raises(UserError, match="1_violin.wav: stem has 24020 frames"):
        check_stems(read_manifest(copy))


def test_evaluate_model_refuses_a_track_it_cannot_separate_naming_it(model_path):
    from ensemble_synth.evaluation.datasets import Recording
    from ensemble_synth.evaluation.model_scoring import evaluate_model

    separator = load_separator(model_path, "cpu")
    stems = np.random.default_rng(0).standard_normal((2, 1, SR)).astype(np.float32) * 0.1
    good = Recording("good", ["1_violin", "2_cello"], ["violin", "cello"], stems, SR)
    assert len(evaluate_model(separator, [good], metrics=("SDR",))) == 1
    bad = stems.copy()
    bad[1, 0, 50] = np.nan
    with pytest.raises(UserError, match="^track t1: the mixture holds 1 NaN or infinite"):
        evaluate_model(separator, [good, Recording("t1", good.parts, good.instruments, bad, SR)], metrics=("SDR",))
    empty = Recording("t2", good.parts, good.instruments, stems[..., :0], SR)
    with pytest.raises(UserError, match="^track t2: the mixture holds no samples"):
        evaluate_model(separator, [empty], metrics=("SDR",))
