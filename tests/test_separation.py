"""The bundled ConvTasNet: model, data, training, inference and the train/separate commands.

A tiny corpus in the generator's layout is rendered with real FluidSynth (pretty_midi's
TimGM6mb font) once per module; a tiny model is trained on it once and shared.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from ensemble_synth.cli import main
from ensemble_synth.corpus.format import read_manifest
from ensemble_synth.errors import UserError
from ensemble_synth.fileio import read_wav, write_wav
from ensemble_synth.music import instruments
from ensemble_synth.separation import load_separator, train
from ensemble_synth.separation.checkpoint import (
    model_from_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from ensemble_synth.separation.config import resolve_config
from ensemble_synth.separation.data import SegmentSampler, plan_layout, validation_items
from ensemble_synth.separation.inference import Separator
from ensemble_synth.separation.losses import neg_sdr, neg_sisdr
from ensemble_synth.separation.model import ConvTasNet, build_model
from ensemble_synth.separation import trainer
from ensemble_synth.separation.trainer import evaluate
from ensemble_synth.synthesis import soundfonts
from ensemble_synth.synthesis.fluid_renderer import PartVoice, get_renderer

SR = 16000
QUARTET = [("1_violin", "violin", (67, 79)), ("2_clarinet", "clarinet", (60, 72)),
           ("3_tenor_saxophone", "tenor_saxophone", (52, 64)), ("4_bassoon", "bassoon", (40, 52))]
DUO = [("1_violin", "violin", (67, 79)), ("2_cello", "cello", (45, 57))]
MANIFEST_HEADER = ["track_id", "split", "path", "duration", "sample_rate", "channels", "ensemble", "parts",
                   "instruments", "room", "rt60", "mics", "source"]


def render_track(folder: Path, line_up, rng: np.random.Generator, seconds: float) -> None:
    """Dry stems of a few random notes per part, and their sum as mix.wav."""
    voice_font = soundfonts.resolve("timgm6mb")  # the font pretty_midi ships
    length = int(seconds * SR)
    stems = []
    for _, instrument, (low, high) in line_up:
        onsets = np.sort(rng.uniform(0.0, seconds - 0.4, size=4))
        notes = np.array([[t, min(t + rng.uniform(0.3, 0.9), seconds - 0.05), rng.integers(low, high), 90]
                          for t in onsets])
        audio = get_renderer(SR).render(notes, PartVoice(voice_font, instruments.get(instrument).program))
        stem = np.zeros(length, dtype=np.float32)
        stem[: min(length, len(audio))] = audio[:length]
        stems.append(stem * np.float32(0.05 / (np.sqrt(np.mean(stem**2)) + 1e-9)))
    (folder / "stems").mkdir(parents=True)
    for (part, _, _), stem in zip(line_up, stems):
        write_wav(folder / "stems" / f"{part}.wav", stem[None], SR)
    write_wav(folder / "mix.wav", np.sum(stems, axis=0)[None], SR)


def make_corpus(root: Path, line_ups: list[tuple[str, list, str]], seconds: float = 2.5, seed: int = 0) -> Path:
    """A corpus in the generator's layout; ``line_ups`` are (ensemble name, parts, split) per track."""
    rng = np.random.default_rng(seed)
    rows = []
    for index, (ensemble, line_up, split) in enumerate(line_ups):
        track_id = f"{ensemble}-{index:06d}"
        render_track(root / split / track_id, line_up, rng, seconds)
        rows.append([track_id, split, f"{split}/{track_id}", seconds, SR, 1, ensemble,
                     ";".join(p for p, _, _ in line_up), ";".join(i for _, i, _ in line_up), "dry", 0.0, "none",
                     "test"])
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(MANIFEST_HEADER)
        writer.writerows(rows)
    (root / "corpus.toml").write_text('name = "test"\n')
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    splits = ["train"] * 4 + ["valid"] * 2
    return make_corpus(tmp_path_factory.mktemp("quartet"), [("bach10", QUARTET, s) for s in splits])


@pytest.fixture(scope="module")
def duo_corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("duo"), [("duo", DUO, "train"), ("duo", DUO, "valid")], seed=1)


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory) -> Path:
    """A tiny model, two short epochs (the preset's), shared by the tests below."""
    run = tmp_path_factory.mktemp("runs") / "tiny"
    return train(corpus, run, model="tiny", seed=0, progress=False, device="cpu")


# --- training -----------------------------------------------------------------------------


def test_two_tiny_epochs_lower_the_validation_loss(corpus, trained):
    run = trained.parent
    assert {p.name for p in run.iterdir()} >= {"model.pt", "last.pt", "metrics.csv", "config.toml"}
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]

    config = resolve_config("tiny")
    config["model"]["channels"] = 1
    tracks = read_manifest(corpus)
    layout, tracks = plan_layout(tracks, None, corpus)
    items = validation_items([t for t in tracks if t.split == "valid"], layout, SR, SR, 4)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the trainer's initialisation for seed 0
        untrained = ConvTasNet(4, 1, **{k: v for k, v in config["model"].items() if k != "channels"})
    before, _ = evaluate(untrained, items, "sisdr", 4, torch.device("cpu"))
    after, sdr = evaluate(load_separator(trained, "cpu").model, items, "sisdr", 4, torch.device("cpu"))
    print(f"validation loss before {before:.2f}, after {after:.2f}")
    assert after < before - 1.0, (before, after)
    assert np.isfinite(sdr)


def test_resume_continues_to_the_same_weights_as_an_uninterrupted_run(corpus, trained, tmp_path):
    run = tmp_path / "resumed"
    train(corpus, run, model="tiny", epochs=1, seed=0, progress=False, device="cpu")
    train(corpus, run, model="tiny", epochs=2, seed=0, progress=False, device="cpu", resume=True)
    resumed = read_checkpoint(run / "last.pt")
    straight = read_checkpoint(trained.parent / "last.pt")
    assert resumed["epoch"] == straight["epoch"] == 2
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key


def test_prefetched_batches_train_and_resume_to_the_weights_of_batches_drawn_when_needed(corpus, trained, tmp_path,
                                                                                       monkeypatch):
    threads = set(threading.enumerate())
    monkeypatch.setattr(trainer, "training_plan", lambda on_cpu: (3, 2))  # a GPU's: 3 ahead, 2 readers
    run = tmp_path / "prefetched"
    train(corpus, run, model="tiny", epochs=1, seed=0, progress=False, device="cpu")
    train(corpus, run, model="tiny", epochs=2, seed=0, progress=False, device="cpu", resume=True)
    prefetched = read_checkpoint(run / "last.pt")
    synchronous = read_checkpoint(trained.parent / "last.pt")  # the CPU's plan: each batch drawn when needed
    assert prefetched["rng"] == synchronous["rng"]  # the state after the last batch trained on
    for key, value in synchronous["state_dict"].items():
        assert torch.equal(value, prefetched["state_dict"][key]), key
    assert set(threading.enumerate()) == threads


def test_a_stem_lost_after_the_check_stops_training_with_one_line_and_no_thread_left(corpus, tmp_path, monkeypatch):
    root = tmp_path / "corpus"
    shutil.copytree(corpus, root)
    lost = sorted((root / "train").glob("*/stems/1_violin.wav"))  # every example reads one of them
    checked = trainer.check_stems

    def check_then_lose(tracks):
        checked(tracks)
        for stem in lost:
            stem.unlink()

    monkeypatch.setattr(trainer, "check_stems", check_then_lose)
    monkeypatch.setattr(trainer, "training_plan", lambda on_cpu: (3, 2))  # a GPU's, with a reader pool
    threads = set(threading.enumerate())
    with pytest.raises(UserError, match=r"1_violin\.wav: cannot read stem") as error:
        train(root, tmp_path / "run", model="tiny", seed=0, progress=False, device="cpu")
    assert "\n" not in str(error.value)
    assert set(threading.enumerate()) == threads
    assert not (tmp_path / "run").exists()


def test_wall_clock_budget_stops_after_one_step_and_keeps_a_model(corpus, tmp_path):
    best = train(corpus, tmp_path / "run", model="tiny", max_minutes=0.0, seed=0, progress=False, device="cpu")
    assert read_checkpoint(best)["step"] == 1


def test_target_mode_separates_one_instrument_from_the_rest(corpus, tmp_path):
    best = train(corpus, tmp_path / "run", model="tiny", target="tenor sax", max_steps=2, seed=0, progress=False,
                 device="cpu")
    sep = load_separator(best, "cpu")
    assert sep.output_names == ["tenor_saxophone", "accompaniment"]
    assert sep.instruments == ["tenor_saxophone", "accompaniment"]


# --- data and losses ----------------------------------------------------------------------


def test_examples_sum_to_their_mixture_and_validation_items_are_fixed(corpus):
    tracks = read_manifest(corpus)
    layout, tracks = plan_layout(tracks, None, corpus)
    assert layout.output_names == tuple(p for p, _, _ in QUARTET)
    sampler = SegmentSampler([t for t in tracks if t.split == "train"], layout, 8000, 8000, remix=1.0, gain_db=3.0)
    a = sampler.batch(np.random.default_rng(5), 3)
    b = sampler.batch(np.random.default_rng(5), 3)
    assert a.shape == (3, 4, 1, 8000) and np.array_equal(a, b)
    assert np.abs(a).max() > 1e-3
    valid = [t for t in tracks if t.split == "valid"]
    assert np.array_equal(validation_items(valid, layout, SR, SR, 4), validation_items(valid, layout, SR, SR, 4))


def test_silent_targets_give_a_finite_loss_that_rewards_silence():
    torch.manual_seed(0)
    targets = torch.zeros(1, 2, 1, 4000)
    targets[:, 0] = torch.randn(1, 1, 4000)
    mixture = targets.sum(1)
    for loss in (neg_sdr, neg_sisdr):
        quiet = targets.clone()
        quiet[:, 1] = 1e-3 * torch.randn(1, 1, 4000)
        loud = targets.clone()
        loud[:, 1] = 0.5 * torch.randn(1, 1, 4000)
        q, l = loss(quiet, targets, mixture), loss(loud, targets, mixture)
        assert torch.isfinite(q).all() and torch.isfinite(l).all()
        assert q[0, 1] < l[0, 1]
        assert q[0, 1] >= -30.0 - 1e-3  # floored at -SNR_MAX


# --- model and checkpoints ----------------------------------------------------------------


def _tiny(causal: bool, norm: str, sources: int = 2, channels: int = 1) -> ConvTasNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        model = ConvTasNet(sources, channels, N=16, L=16, B=16, H=32, P=3, X=4, R=2, norm=norm, causal=causal)
        # Non-trivial norm weights so that a broken norm cannot hide.
        for p in model.parameters():
            p.data.add_(0.05 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("causal,norm,channels", [(False, "gLN", 1), (True, "cLN", 2)])
def test_load_of_save_gives_identical_outputs(tmp_path, causal, norm, channels):
    model = _tiny(causal, norm, channels=channels)
    config = {"name": "t", "model": {**resolve_config("tiny")["model"], "N": 16, "L": 16, "B": 16, "H": 32,
                                     "X": 4, "R": 2, "norm": norm, "causal": causal, "channels": channels},
              "training": {}}
    layout = {"output_names": ["a", "b"], "instruments": ["violin", "cello"], "target": None}
    save_checkpoint(tmp_path / "m.pt", model, config, layout)
    loaded = model_from_checkpoint(read_checkpoint(tmp_path / "m.pt"))
    x = torch.randn(2, channels, 3001)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_causal_output_ignores_the_future_beyond_one_encoder_window():
    t = 1200
    x = torch.randn(1, 1, 4000)
    later = x.clone()
    later[..., t + 16:] += torch.randn(1, 1, 4000 - t - 16)  # L = 16: the encoder window is the only look-ahead
    with torch.no_grad():
        causal = _tiny(True, "cLN")
        a, b = causal(x), causal(later)
        assert torch.allclose(a[..., : t + 1], b[..., : t + 1], atol=1e-6, rtol=0)
        assert not torch.allclose(a[..., t + 16:], b[..., t + 16:])
        non_causal = _tiny(False, "gLN")
        assert not torch.allclose(non_causal(x)[..., : t + 1], non_causal(later)[..., : t + 1], atol=1e-6, rtol=0)


def _snr(reference: np.ndarray, estimate: np.ndarray) -> float:
    return 10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2))


@pytest.mark.parametrize("norm,min_snr", [("chanLN", 60.0), ("gLN", 25.0)])
def test_chunked_separation_matches_a_single_pass_away_from_chunk_edges(corpus, norm, min_snr):
    mix, rate = read_wav(next((corpus / "train").iterdir()) / "mix.wav")
    long = np.tile(mix, 5)  # 12.5 s
    config = {"model": {"sample_rate": SR, "channels": 1, "causal": False}}
    sep = Separator(_tiny(False, norm, sources=4), config, {"output_names": list("abcd"), "instruments": list("abcd")},
                    torch.device("cpu"))
    single = sep.separate(long, rate, chunk_seconds=100.0)
    chunked = sep.separate(long, rate, chunk_seconds=3.0, overlap_seconds=0.5)
    edge = int(0.5 * SR)
    for name in single:
        assert chunked[name].shape == long.shape
        snr = _snr(single[name][:, edge:-edge], chunked[name][:, edge:-edge])
        print(f"{norm} {name}: chunked vs single pass {snr:.1f} dB")
        assert snr > min_snr


# --- inference and the commands -----------------------------------------------------------


def test_separate_command_writes_one_wav_per_part_at_the_input_rate(corpus, trained, tmp_path):
    mix, rate = read_wav(next((corpus / "valid").iterdir()) / "mix.wav")
    from ensemble_synth.separation.data import resample

    mix22 = resample(mix, rate, 22050)
    write_wav(tmp_path / "mix.wav", mix22, 22050)
    out = tmp_path / "out"
    assert main(["separate", str(tmp_path / "mix.wav"), "--model", str(trained), "-o", str(out)]) == 0
    names = sorted(p.stem for p in out.iterdir())
    assert names == sorted(p for p, _, _ in QUARTET)
    estimates = [read_wav(out / f"{n}.wav") for n in names]
    assert all(r == 22050 and a.shape == mix22.shape for a, r in estimates)
    library = load_separator(trained, "cpu").separate(mix22, 22050)
    for (audio, _), name in zip(estimates, names):
        assert np.abs(audio).max() > 1e-4
        np.testing.assert_allclose(audio, library[name], atol=1e-6)


def test_separate_refuses_a_mixture_with_the_wrong_channel_count(trained, tmp_path, capsys):
    write_wav(tmp_path / "stereo.wav", np.zeros((2, 8000), np.float32) + 0.1, SR)
    code = main(["separate", str(tmp_path / "stereo.wav"), "--model", str(trained), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error:") and "2 channel(s)" in err and "\n" not in err
    assert not (tmp_path / "o").exists()
    # ... unless asked to adapt: the mono model then runs on each channel.
    assert main(["separate", str(tmp_path / "stereo.wav"), "--model", str(trained), "-o", str(tmp_path / "o"),
                 "--adapt-channels"]) == 0
    assert read_wav(tmp_path / "o" / "1_violin.wav")[0].shape == (2, 8000)


def test_separate_refuses_a_file_that_is_not_a_checkpoint(tmp_path, capsys):
    write_wav(tmp_path / "mix.wav", np.zeros((1, 800), np.float32), SR)
    (tmp_path / "model.pt").write_bytes(b"not a checkpoint")
    code = main(["separate", str(tmp_path / "mix.wav"), "--model", str(tmp_path / "model.pt"), "-o", str(tmp_path / "o")])
    assert code == 2 and "not a readable checkpoint" in capsys.readouterr().err


def test_train_refuses_a_corpus_with_several_ensembles(corpus, duo_corpus, tmp_path, capsys):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for source in (corpus, duo_corpus):
        for split in ("train", "valid"):
            for track in (source / split).iterdir():
                (mixed / split).mkdir(exist_ok=True)
                (mixed / split / track.name).symlink_to(track)
    lines = (corpus / "manifest.csv").read_text().splitlines() + (duo_corpus / "manifest.csv").read_text().splitlines()[1:]
    (mixed / "manifest.csv").write_text("\n".join(lines) + "\n")
    code = main(["train", str(mixed), "-o", str(tmp_path / "run"), "--model", "tiny", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "2 different ensembles" in err and "--target" in err


def test_resume_refuses_another_ensemble_or_another_config(duo_corpus, corpus, trained, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes((trained.parent / "last.pt").read_bytes())
    code = main(["train", str(duo_corpus), "-o", str(run), "--model", "tiny", "--resume", "--quiet"])
    assert code == 2 and "does not match the model" in capsys.readouterr().err
    code = main(["train", str(corpus), "-o", str(run), "--model", "small", "--resume", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "checkpoint of another config" in err and "N=" in err
    code = main(["train", str(corpus), "-o", str(run), "--model", "tiny", "--quiet"])
    assert code == 2 and "--resume" in capsys.readouterr().err
    (run / "last.pt").unlink()  # a run that died before its first checkpoint starts afresh
    (run / "config.toml").write_text("")
    assert main(["train", str(corpus), "-o", str(run), "--model", "tiny", "--max-steps", "1", "--quiet"]) == 0


def test_without_torch_the_package_imports_and_the_command_says_how_to_install(tmp_path):
    # A finder that refuses torch, as an environment without it does (sys.modules['torch'] = None
    # would also break scipy's array-API probing, which a really missing torch does not).
    script = ("import sys\n"
              "class NoTorch:\n"
              "    def find_spec(self, name, path=None, target=None):\n"
              "        if name.split('.')[0] == 'torch':\n"
              "            raise ImportError('No module named torch')\n"
              "sys.meta_path.insert(0, NoTorch())\n"
              "import ensemble_synth\n"
              "from ensemble_synth.cli import main\n"
              "sys.exit(main(['train', '.', '-o', 'x']))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert "pip install 'ensemble_synth[train]'" in proc.stderr


def test_unknown_model_preset_and_bad_override_are_user_errors():
    with pytest.raises(UserError, match="unknown model preset"):
        resolve_config("no_such_model")
    with pytest.raises(UserError, match="cannot use gLN"):
        resolve_config("tiny", {"causal": True})


def test_encoder_stride_is_kept_by_checkpoints_and_left_out_of_configs_at_its_default(tmp_path):
    assert "stride" not in resolve_config("tiny")["model"]  # configs of L/2 models are as they were
    with pytest.raises(UserError, match="stride = 40 must be between 1 and L = 32"):
        resolve_config("tiny", {"L": 32, "stride": 40})
    model_cfg = {**resolve_config("tiny", {"N": 16, "L": 16, "B": 16, "H": 32, "X": 4, "R": 2, "stride": 16})["model"],
                 "channels": 1}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        model = build_model(model_cfg, 2).eval()
    assert model.stride == 16
    layout = {"output_names": ["a", "b"], "instruments": ["violin", "cello"], "target": None}
    save_checkpoint(tmp_path / "m.pt", model, {"name": "t", "model": model_cfg, "training": {}}, layout)
    loaded = model_from_checkpoint(read_checkpoint(tmp_path / "m.pt"))
    x = torch.randn(1, 1, 3001)
    with torch.no_grad():
        assert loaded.stride == 16 and torch.equal(model(x), loaded(x))
        assert model(x).shape == (1, 2, 1, 3001)


def test_shifts_average_passes_delayed_within_one_hop_and_consistency_sums_to_the_mixture():
    config = {"model": {"sample_rate": SR, "channels": 1, "causal": False}}
    layout = {"output_names": list("ab"), "instruments": list("ab")}
    model = _tiny(False, "gLN")  # L = 16: hop 8
    mix = np.random.default_rng(0).standard_normal((1, 4000)).astype(np.float32)

    def one_pass(delay: int) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(np.pad(mix, [(0, 0), (delay, 0)])[None])
            return model(x)[0, :, 0, delay:].numpy()

    plain = Separator(model, config, layout, torch.device("cpu"), shifts=1, consistency=False).separate(mix, SR)
    np.testing.assert_allclose(np.stack([plain["a"][0], plain["b"][0]]), one_pass(0), atol=1e-6)
    shifted = Separator(model, config, layout, torch.device("cpu"), shifts=2, consistency=False).separate(mix, SR)
    np.testing.assert_allclose(np.stack([shifted["a"][0], shifted["b"][0]]), (one_pass(0) + one_pass(4)) / 2,
                               atol=1e-6)
    consistent = Separator(model, config, layout, torch.device("cpu")).separate(mix, SR)
    np.testing.assert_allclose(consistent["a"] + consistent["b"], mix, atol=1e-5)
    with pytest.raises(UserError, match="shifts = 0"):
        Separator(model, config, layout, torch.device("cpu"), shifts=0)


def test_separate_command_refuses_zero_shifts_in_one_line(trained, tmp_path, capsys):
    assert main(["separate", str(tmp_path / "mix.wav"), "--model", str(trained), "-o", str(tmp_path / "o"),
                 "--shifts", "0"]) == 2
    assert "--shifts" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
