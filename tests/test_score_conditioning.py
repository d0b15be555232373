"""Score-conditioned separation (prototype): the roll, the zero-initialised score layer,
conditioned data, training and separation, and Bach10's note annotations.

A violin-cello corpus is rendered with the corpus machinery (real FluidSynth, performed MIDI
written with ``write_midi``) from a small score once per module; tiny models train on it.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from helpers import BACH10, write_midi
from scipy.io import savemat

from ensemble_synth.corpus.format import read_manifest
from ensemble_synth.corpus.generation import generate
from ensemble_synth.errors import UserError
from ensemble_synth.evaluation.datasets import load_dataset, read_bach10_notes
from ensemble_synth.fileio import read_wav, write_wav
from ensemble_synth.separation import load_separator, read_checkpoint, train
from ensemble_synth.separation.model import ConvTasNet
from ensemble_synth.separation.score_roll import ACTIVE, FEATURES, FRAME_RATE, hz_to_midi, score_roll, track_midi_notes
from ensemble_synth.torch import CorpusDataset

SR = 16000
PARTS = ["1_violin", "2_cello"]
BACH10_01 = BACH10 / "01-AchGottundHerr"
needs_bach10 = pytest.mark.skipif(not BACH10_01.is_dir(), reason="Bach10 development pieces not present")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Five 3 s renditions (3 train, 2 valid) of an 8 s duo score with rests, MIDI written."""
    root = tmp_path_factory.mktemp("score")
    rng = np.random.default_rng(0)
    parts = []
    for name, program, low in (("violin", 40, 67), ("cello", 42, 45)):
        starts = np.arange(0.0, 8.0, 0.5)
        keep = rng.random(len(starts)) < 0.6  # rests between notes
        parts.append((name, program, [(t, t + 0.4, int(low + rng.integers(0, 12))) for t in starts[keep]]))
    score = write_midi(root / "duo.mid", parts)
    preset = {"name": "duo", "sample_rate": SR, "tracks": {"train": 3, "valid": 2, "test": 0, "per_room": 5},
              "repertoire": {"source": f"midi:{score}", "part_policy": "skip", "excerpt_seconds": 3},
              "ensemble": {"layout": "violin_cello"},
              "room": {"enabled": False, "room": "dry_studio", "mics": "mono"}}
    generate(preset, root / "corpus", seed=2, rir_cache=False, progress=False, write_midi=True, card=False)
    return root / "corpus"


@pytest.fixture(scope="module")
def plain(corpus, tmp_path_factory):
    return train(corpus, tmp_path_factory.mktemp("plain") / "run", model="tiny", max_steps=2, progress=False,
                 device="cpu")


@pytest.fixture(scope="module")
def conditioned(corpus, plain, tmp_path_factory):
    run = tmp_path_factory.mktemp("conditioned") / "run"
    train(corpus, run, model="tiny", init_from=plain, score_features=FEATURES, max_steps=6, progress=False,
          device="cpu", lr=0.03)
    return run


def _frame_energy(audio: np.ndarray, frames: int) -> np.ndarray:
    hop = int(SR / FRAME_RATE)
    audio = np.pad(audio, (0, max(0, frames * hop - len(audio))))[: frames * hop]
    return (audio.reshape(frames, hop) ** 2).mean(axis=1)


def test_roll_of_a_corpus_track_sounds_where_its_stem_sounds(corpus):
    track = read_manifest(corpus)[0]
    notes = track_midi_notes(track.folder, PARTS)
    frames = int(track.duration * FRAME_RATE)
    roll = score_roll(notes, 0.0, frames)
    assert roll.shape == (2, FEATURES, frames)
    for part, rows in enumerate(notes):
        assert len(rows) > 0
        middle = ((rows[:, 0] + rows[:, 2] / 2) * FRAME_RATE).astype(int)
        inside = middle < frames
        assert roll[part, ACTIVE, middle[inside]].all()
        assert (roll[part, 1 + hz_to_midi(rows[inside, 1]) % 12, middle[inside]] == 1).all()
        assert (roll[part, 1:13].sum(axis=0) == roll[part, ACTIVE]).all()  # one pitch class where active
        energy = _frame_energy(read_wav(track.stem_path(PARTS[part]))[0][0], frames)
        active = roll[part, ACTIVE] > 0
        assert 0 < active.sum() < frames
        assert energy[active].mean() > 5 * energy[~active].mean()  # the MIDI is aligned to the audio


def test_conditioned_examples_carry_the_rolls_of_the_tracks_they_came_from(corpus):
    data = CorpusDataset(corpus, segment_seconds=1.0, sample_rate=SR, remix=1.0, seed=3, score=True, examples=24)
    assert data[0][2].shape == (2, FEATURES, 100)
    on, off = [], []
    for index in range(len(data)):
        sources, roll = data.example(index)
        for output in range(2):
            energy = _frame_energy(sources[output, 0], roll.shape[-1])
            on.extend(energy[roll[output, ACTIVE] > 0])
            off.extend(energy[roll[output, ACTIVE] == 0])
    assert np.mean(on) > 5 * np.mean(off)  # each output's roll follows that output's own audio
    fixed = CorpusDataset(corpus, segment_seconds=1.0, sample_rate=SR, split="valid", score=True)
    items, rolls = fixed.stack()
    assert rolls.shape == (len(items), 2, FEATURES, 100) and np.array_equal(rolls, fixed.stack()[1])


def test_a_corpus_without_midi_is_one_line_naming_it(corpus, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(corpus, bare)
    for folder in bare.glob("*/*/midi"):
        shutil.rmtree(folder)
    with pytest.raises(UserError) as error:
        CorpusDataset(bare, segment_seconds=1.0, score=True)
    assert str(bare) in str(error.value) and "--midi" in str(error.value) and "\n" not in str(error.value)


def test_a_zero_initialised_score_layer_leaves_the_output_of_the_plain_model(plain):
    payload = read_checkpoint(plain)
    cfg = {k: v for k, v in payload["config"]["model"].items() if k != "channels"}
    base = ConvTasNet(sources=2, **cfg).eval()
    base.load_state_dict(payload["state_dict"])
    with_score = ConvTasNet(sources=2, score_features=FEATURES, **cfg).eval()
    missing, unexpected = with_score.load_state_dict(payload["state_dict"], strict=False)
    assert sorted(missing) == ["score_proj.bias", "score_proj.weight"] and not unexpected
    mixture = torch.randn(2, 1, 8000) * 0.1
    roll = torch.rand(2, 2, FEATURES, 50)
    with torch.no_grad():
        assert torch.equal(base(mixture), with_score(mixture, roll))
        with_score.score_proj.weight.fill_(0.1)  # the layer is wired in: nonzero weights change the output
        assert not torch.allclose(base(mixture), with_score(mixture, roll))


def test_conditioned_fine_tuning_starts_from_the_plain_model_and_trains_the_score_layer(conditioned, plain):
    last = read_checkpoint(conditioned / "last.pt")
    assert last["config"]["model"]["score_features"] == FEATURES
    assert last["state_dict"]["score_proj.weight"].abs().sum() > 0  # changed from its zero start
    start = [line.split(",") for line in (conditioned / "metrics.csv").read_text().splitlines()[1:]][0]
    plain_valid = read_checkpoint(plain)["valid_sdr"]
    assert start[0] == "0" and abs(float(start[4]) - plain_valid) < 1e-4  # the plain model's score, same items
    assert "score_features" not in read_checkpoint(plain)["config"]["model"]  # unconditioned configs unchanged


def test_separation_needs_the_notes_of_a_conditioned_model_and_a_plain_one_ignores_them(corpus, conditioned, plain):
    track = [t for t in read_manifest(corpus) if t.split == "valid"][0]
    mixture, rate = read_wav(track.mix_path)
    notes = track_midi_notes(track.folder, PARTS)
    separator = load_separator(conditioned / "last.pt", device="cpu")
    whole = separator.separate(mixture, rate, notes=notes)
    chunked = separator.separate(mixture, rate, notes=notes, chunk_seconds=1.0, overlap_seconds=0.2)
    assert [a.shape for a in whole.values()] == [mixture.shape] * 2
    assert all(np.isfinite(a).all() for a in chunked.values())
    shifted = [np.column_stack([rows[:, 0] + 0.7, rows[:, 1], rows[:, 2]]) for rows in notes]
    assert not np.allclose(whole["1_violin"], separator.separate(mixture, rate, notes=shifted)["1_violin"])
    with pytest.raises(UserError) as error:
        separator.separate(mixture, rate, name="mix.wav")
    assert "score-conditioned" in str(error.value) and "\n" not in str(error.value)
    plain_separator = load_separator(plain, device="cpu")
    assert np.array_equal(plain_separator.separate(mixture, rate)["2_cello"],
                          plain_separator.separate(mixture, rate, notes=shifted)["2_cello"])


@needs_bach10
def test_bach10_notes_load_per_part_with_plausible_pitches():
    (track,) = load_dataset(f"bach10:{BACH10_01}")
    assert track.notes is not None and len(track.notes) == len(track.parts) == 4
    medians = [float(np.median(hz_to_midi(rows[:, 1]))) for rows in track.notes]
    assert all(len(rows) > 20 for rows in track.notes)
    assert medians == sorted(medians, reverse=True) and 62 < medians[0] < 80 and 36 < medians[3] < 58
    assert all(0 <= rows[:, 0].min() and (rows[:, 0] + rows[:, 2]).max() <= track.duration for rows in track.notes)
    assert track.notes[0][0, 1] == pytest.approx(440 * 2 ** ((72 - 69) / 12), rel=0.01)  # first note C5, per the .txt


def test_malformed_bach10_notes_are_refused_naming_the_file(tmp_path):
    piece = tmp_path / "01-Test"
    piece.mkdir()
    for spelling in ("violin", "clarinet", "saxphone", "bassoon"):
        write_wav(piece / f"01-Test-{spelling}.wav", np.zeros((1, 800), np.float32), SR)
    bad = piece / "01-Test-GTNotes.mat"
    for content in (b"not a mat file", None):
        if content is None:
            savemat(bad, {"GTNotes": np.zeros((3, 1))})  # not a cell per part
        else:
            bad.write_bytes(content)
        with pytest.raises(UserError) as error:
            load_dataset(f"bach10:{piece}")
        assert str(bad) in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(UserError, match="GTNotes"):
        read_bach10_notes(bad)
