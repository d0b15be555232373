"""The runnable examples in examples/ run, and do what they say."""

from __future__ import annotations

import json
import tomllib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ensemble_synth.fileio import read_wav

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, tmp_path: Path, *args: str) -> str:
    env = {**os.environ, "ENSEMBLE_SYNTH_CACHE": str(tmp_path / "cache")}  # never the user's RIR cache
    result = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_custom_augmentation_example(tmp_path):
    out = tmp_path / "augmented"
    stdout = run_example("custom_augmentation.py", tmp_path, "-o", str(out))
    assert "identical mixture" in stdout
    folders = sorted((out / "train").iterdir())
    assert len(folders) == 3
    lags = set()
    for folder in folders:
        meta = json.loads((folder / "metadata.json").read_text())
        records = {r["name"]: r for r in meta["augmentations"]}
        assert records["late_entry"]["stage"] == "score" and records["tremolo"]["stage"] == "dry"
        assert 10 <= records["late_entry"]["params"]["lag_ms"] <= 60
        assert len(records["tremolo"]["params"]["depth"]) == len(meta["parts"])
        lags.add(records["late_entry"]["params"]["lag_ms"])
        mix, _ = read_wav(folder / "mix.wav")
        stems = sum(read_wav(p)[0] for p in (folder / "stems").glob("*.wav"))
        np.testing.assert_allclose(stems, mix, atol=1e-6)
    assert len(lags) == 3  # drawn per track
    record = tomllib.loads((out / "corpus.toml").read_text())
    assert {a["name"]: a["args"] for a in record["augmentations"]}["late_entry"] == {"max_lag_ms": 60.0}


def test_build_corpus_example(tmp_path):
    out = tmp_path / "duos"
    stdout = run_example("build_corpus.py", tmp_path, "-o", str(out), "--jobs", "2")
    assert "4 tracks (4 rendered" in stdout
    assert len(list(out.glob("*/*/mix.wav"))) == 4
    assert (out / "manifest.csv").read_text().count("\n") == 5


def test_adapt_to_score_example(tmp_path):
    from helpers import BACH10_01_MIDI

    if not BACH10_01_MIDI.is_file():
        pytest.skip("Bach10 scores not present")
    out = tmp_path / "adapted"
    stdout = run_example("adapt_to_score.py", tmp_path, str(BACH10_01_MIDI), "-o", str(out), "--ensemble",
                         "violin,clarinet,tenor_saxophone,bassoon", "--renditions", "8", "--steps", "2")
    assert "best validation SDR" in stdout and "separated" in stdout
    assert (out / "model.pt").is_file()


def test_train_other_model_example(tmp_path):
    torch = pytest.importorskip("torch")
    from test_torch_dataset import make_corpus

    corpus = make_corpus(tmp_path / "trio")
    stdout = run_example("train_other_model.py", tmp_path, str(corpus), "--steps", "2", "--batch-size", "2",
                         "--segment-seconds", "0.5", "--workers", "2", "-o", str(tmp_path / "net.pt"))
    assert "outputs 1_violin, 2_viola, 3_cello" in stdout
    assert "step 2 (epoch 0): loss" in stdout and "valid: SDR" in stdout
    saved = torch.load(tmp_path / "net.pt")
    assert saved["outputs"] == ["1_violin", "2_viola", "3_cello"] and saved["sample_rate"] == 16000
