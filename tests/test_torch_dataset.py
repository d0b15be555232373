"""ensemble_synth.torch.CorpusDataset: examples, determinism, DataLoader workers, FLAC, bad input,
and the bundled trainer's training data pinned to what it was before the dataset existed."""

from __future__ import annotations

import csv
import hashlib
import pickle
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

import ensemble_synth
from ensemble_synth.corpus.format import read_manifest
from ensemble_synth.errors import UserError
from ensemble_synth.fileio import write_wav
from ensemble_synth.separation.config import resolve_config
from ensemble_synth.separation.data import SegmentSampler, plan_layout, validation_items
from ensemble_synth.separation.trainer import training_data, training_stream
from ensemble_synth.torch import CorpusDataset

SR = 16000
PARTS = (("1_violin", "violin", 36), ("2_viola", "viola", 54), ("3_cello", "cello", 122))
HEADER = ["track_id", "split", "path", "duration", "sample_rate", "channels", "ensemble", "parts",
          "instruments", "room", "rt60", "mics", "source"]


def make_corpus(root: Path, splits=("train", "train", "train", "valid"), seconds: float = 2.5, channels: int = 1,
                seed: int = 0, audio_format: str = "wav") -> Path:
    """A trio corpus in the generator's layout: sawtooth notes with rests, built from integers
    (the same bits on every machine), at multiples of 2**-16 (exact in 24-bit FLAC too)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    k = np.arange(n)
    rows = []
    for index, split in enumerate(splits):
        track_id = f"trio-{index:03d}"
        folder = root / split / track_id
        (folder / "stems").mkdir(parents=True)
        stems = []
        for part, _, period in PARTS:
            period = period + int(rng.integers(0, 8))
            saw = (k * 7) % period - period // 2
            gate = ((k + int(rng.integers(0, SR))) // (SR // 4)) % 3 != 0  # a rest every third quarter second
            audio = (saw * gate * int(rng.integers(20, 60))).astype(np.float32) / np.float32(2**16)
            audio = np.stack([audio * np.float32(1.0 - 0.25 * c) for c in range(channels)])
            _write(folder / "stems" / part, audio, audio_format)
            stems.append(audio)
        _write(folder / "mix", np.sum(stems, axis=0), audio_format)
        rows.append([track_id, split, f"{split}/{track_id}", seconds, SR, channels, "trio",
                     ";".join(p for p, _, _ in PARTS), ";".join(i for _, i, _ in PARTS), "dry", 0.0, "none", "test"])
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(rows)
    (root / "corpus.toml").write_text('name = "test"\n')
    return root


def _write(stem: Path, audio: np.ndarray, audio_format: str) -> None:
    if audio_format == "wav":
        write_wav(stem.with_suffix(".wav"), audio, SR)
    else:
        sf.write(stem.with_suffix(".flac"), audio.T, SR, subtype="PCM_24")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("trio"))


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


# --- the bundled trainer's data -----------------------------------------------------------

# sha256 of the first three batches of 4 (and of the validation items) the trainer drew before
# it used CorpusDataset, from SegmentSampler and validation_items directly (commit 1eafa10).
PINNED = {
    None: ("f090e91815175a0bf0281a79514f34bcec71b2016321f25994637a05b335f8f0",
           "bb31f518836c597370dfde55a8aadb5fc1bf1e37e0418fda0cf2994b75c7ede5"),
    "violin": ("8bcc93000d069757d10a57b5d950ee47875fad279c8cdefd292b24befe4b51e4",
               "89cea3a5fc460f6479f7a09ceb1752c69c00b264607a3613ca0a20ced9ce2090"),
}


@pytest.mark.parametrize("target", [None, "violin"], ids=["per-part", "target"])
def test_trainer_draws_the_same_examples_as_before_the_dataset(corpus, target):
    config = resolve_config("tiny", {"remix": 0.5, "gain_db": 3.0, "segment_seconds": 1.0})
    layout, tracks = plan_layout(read_manifest(corpus), target, corpus)
    train_tracks = [t for t in tracks if t.split == "train"]
    valid_tracks = [t for t in tracks if t.split == "valid"]
    data, valid = training_data(train_tracks, valid_tracks, layout, config, seed=0)
    rng = training_stream(0)
    batches = [data.batch(rng, 4) for _ in range(3)]
    assert (_digest(*batches), _digest(valid.stack())) == PINNED[target]
    # and they are what the sampling code gives on its own
    sampler = SegmentSampler(train_tracks, layout, SR, SR, 0.5, 3.0)
    rng = np.random.default_rng(np.random.SeedSequence([0, 1]))
    assert all(np.array_equal(sampler.batch(rng, 4), b) for b in batches)
    # and stems read by a thread pool change nothing
    with ThreadPoolExecutor(3) as readers:
        rng = training_stream(0)
        assert all(np.array_equal(data.batch(rng, 4, readers), b) for b in batches)
    assert np.array_equal(valid.stack(), validation_items(valid_tracks, layout, SR, SR, 4))


# --- examples -----------------------------------------------------------------------------


def test_examples_are_mixture_and_sources_tensors(corpus):
    data = CorpusDataset(corpus, segment_seconds=0.5, sample_rate=SR, remix=0.5)
    assert len(data) == round(3 * 2.5 / 0.5) and data.output_names == ("1_violin", "2_viola", "3_cello")
    mixture, sources = data[0]
    assert mixture.dtype == sources.dtype == torch.float32
    assert mixture.shape == (1, SR // 2) and sources.shape == (3, 1, SR // 2)
    assert torch.equal(mixture, sources.sum(0))
    assert sources.abs().amax() > 0
    assert data[-1][1].shape == sources.shape
    with pytest.raises(IndexError):
        data[len(data)]
    assert isinstance(ensemble_synth.CorpusDataset(corpus, segment_seconds=0.5), CorpusDataset)  # the lazy export


def test_target_mode_gives_target_and_accompaniment(corpus):
    data = CorpusDataset(corpus, segment_seconds=0.5, target="violin", split="valid", examples=3)
    assert data.output_names == ("violin", "accompaniment") and data.fixed
    for i in range(3):
        _, sources = data[i]
        whole = CorpusDataset(corpus, segment_seconds=0.5, split="valid", examples=3).example(i)
        np.testing.assert_array_equal(sources[0].numpy(), whole[0])  # the violin part
        np.testing.assert_allclose(sources[1].numpy(), whole[1] + whole[2], atol=1e-7)  # the rest


def test_same_seed_and_epoch_give_the_same_examples_in_any_order(corpus):
    a = CorpusDataset(corpus, segment_seconds=0.5, remix=0.5, seed=3)
    b = CorpusDataset(corpus, segment_seconds=0.5, remix=0.5, seed=3)
    forward = [a.example(i) for i in range(len(a))]
    backward = [b.example(i) for i in reversed(range(len(b)))][::-1]
    assert all(np.array_equal(x, y) for x, y in zip(forward, backward))
    a.set_epoch(1)
    assert not np.array_equal(a.example(0), forward[0])
    assert np.array_equal(a.example(0), b.example(0, epoch=1))
    c = CorpusDataset(corpus, segment_seconds=0.5, remix=0.5, seed=4)
    assert not np.array_equal(c.example(0), forward[0])
    fixed = CorpusDataset(corpus, segment_seconds=0.5, split="valid")
    first = fixed.stack()
    fixed.set_epoch(5)  # fixed segments do not change
    assert np.array_equal(fixed.stack(), first)


def test_dataloader_workers_give_the_batches_of_the_main_process(corpus):
    data = CorpusDataset(corpus, segment_seconds=0.25, remix=0.5, seed=1, examples=12)
    restored = pickle.loads(pickle.dumps(data))  # what a spawn worker receives
    assert np.array_equal(restored.example(5), data.example(5))

    def batches(workers):
        data.set_epoch(2)
        loader = DataLoader(data, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0),
                            num_workers=workers)
        return list(loader)

    alone, with_workers = batches(0), batches(2)
    assert len(alone) == 3
    for (m0, s0), (m2, s2) in zip(alone, with_workers):
        assert m0.shape == (4, 1, SR // 4) and s0.shape == (4, 3, 1, SR // 4)
        assert torch.equal(m0, m2) and torch.equal(s0, s2)


def test_resampled_stereo_examples(tmp_path):
    root = make_corpus(tmp_path / "stereo", splits=("train", "train"), channels=2)
    data = CorpusDataset(root, segment_seconds=0.5, sample_rate=8000)
    mixture, sources = data[0]
    assert data.channels == 2 and mixture.shape == (2, 4000) and sources.shape == (3, 2, 4000)
    assert torch.equal(mixture, sources.sum(0))


def test_flac_corpus_gives_the_same_examples_as_wav(tmp_path):
    wav = make_corpus(tmp_path / "wav")
    flac = make_corpus(tmp_path / "flac", audio_format="flac")
    assert not list((flac / "train").glob("*/stems/*.wav"))
    for split, remix in (("train", 0.5), ("valid", 0.0)):
        a = CorpusDataset(wav, segment_seconds=0.5, remix=remix, split=split, seed=2)
        b = CorpusDataset(flac, segment_seconds=0.5, remix=remix, split=split, seed=2)
        assert all(np.array_equal(a.example(i), b.example(i)) for i in range(len(a)))


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, words", [
    ({"split": "training"}, "split 'training'"),
    ({"split": "test"}, "no tracks in split 'test'"),
    ({"target": "tuba"}, "tuba"),
    ({"segment_seconds": 0.0}, "segment_seconds = 0.0"),
    ({"segment_seconds": float("nan")}, "segment_seconds = nan"),
    ({"remix": 1.5}, "remix = 1.5"),
    ({"sample_rate": 0}, "sample_rate = 0"),
    ({"seed": -1}, "seed = -1"),
    ({"examples": 0}, "examples = 0"),
])
def test_bad_arguments_are_one_line_naming_the_corpus(corpus, kwargs, words):
    with pytest.raises(UserError) as info:
        CorpusDataset(corpus, **{"segment_seconds": 0.5, **kwargs})
    message = str(info.value)
    assert words in message and "\n" not in message
    if kwargs != {"target": "tuba"}:
        assert str(corpus) in message


def test_missing_or_truncated_stems_are_refused_naming_the_file(tmp_path):
    root = make_corpus(tmp_path / "broken")
    stem = root / "train" / "trio-001" / "stems" / "2_viola.wav"
    audio, _ = sf.read(stem, dtype="float32")
    sf.write(stem, audio[: SR // 2], SR, subtype="FLOAT")
    with pytest.raises(UserError, match=f"^{stem}: stem has 8000 frames"):
        CorpusDataset(root, segment_seconds=0.5)
    stem.unlink()
    with pytest.raises(UserError, match=f"^{stem}: stem not found"):
        CorpusDataset(root, segment_seconds=0.5)
    with pytest.raises(UserError, match="not a corpus"):
        CorpusDataset(tmp_path / "nothing", segment_seconds=0.5)
