"""The evaluator against museval (computed here), its rules for silence, the report and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.signal

from ensemble_synth.cli import main
from ensemble_synth.evaluation.metrics import (
    METRICS,
    evaluate_sources,
    framewise_sdr,
    si_sdr,
    snr,
)
from ensemble_synth.evaluation.report import (
    TrackResult,
    markdown_table,
    score_arrays,
    summarize,
    write_report,
)
from ensemble_synth.fileio import write_wav

museval = pytest.importorskip("museval")

SR = 8000
TOL_DB = 0.01


def museval_scores(refs, ests, window, hop):
    """museval.evaluate on (src, chan, n) arrays; float64, as museval expects."""
    out = museval.evaluate(
        np.asarray(refs, np.float64).transpose(0, 2, 1), np.asarray(ests, np.float64).transpose(0, 2, 1), win=window, hop=hop
    )
    return dict(zip(METRICS, out))


def assert_agrees(ours, theirs):
    for metric in METRICS:
        finite = np.isfinite(theirs[metric])
        assert finite.any()
        np.testing.assert_allclose(ours.frames[metric][finite], theirs[metric][finite], atol=TOL_DB, rtol=0, err_msg=metric)


def distorted(rng, refs, leak=0.3, noise=0.05):
    """Estimates: each reference filtered, delayed, with its neighbour leaking in and noise."""
    ests = np.empty_like(refs)
    for s in range(len(refs)):
        taps = np.concatenate([[1.0], 0.3 * rng.standard_normal(7)])
        shifted = np.roll(scipy.signal.lfilter(taps, [1.0], refs[s], axis=-1), int(rng.integers(0, 20)), axis=-1)
        ests[s] = shifted + leak * refs[(s + 1) % len(refs)] + noise * rng.standard_normal(refs[s].shape)
    return ests


def harmonic_notes(rng, n, low, high):
    """A melody of decaying harmonic notes, exactly silent nowhere."""
    x = np.zeros(n)
    start = 0
    while start < n:
        length = min(n - start, int(rng.uniform(0.2, 0.8) * SR))
        t = np.arange(length) / SR
        f0 = 440.0 * 2 ** ((rng.integers(low, high) - 69) / 12)
        note = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h for h in range(1, 6) if f0 * h < SR / 2)
        x[start : start + length] = np.minimum(1, t / 0.01) * np.exp(-t / 0.4) * note
        start += length
    return x + 1e-4 * rng.standard_normal(n)


@pytest.mark.parametrize(
    "n_src, n_chan, seconds, window, hop",
    [(4, 1, 3.0, 1.0, 1.0), (2, 2, 2.5, 1.0, 0.5), (3, 1, 1.5, None, None)],
    ids=["mono-1s", "stereo-overlapping", "whole-signal"],
)
def test_agrees_with_museval_on_random_signals(n_src, n_chan, seconds, window, hop):
    rng = np.random.default_rng(7)
    n = int(seconds * SR)
    refs = rng.standard_normal((n_src, n_chan, n))
    ests = distorted(rng, refs)
    ours = evaluate_sources(refs, ests, SR, window=window, hop=hop)
    win = n if window is None else int(window * SR)
    theirs = museval_scores(refs, ests, win, n if hop is None else int(hop * SR))
    assert ours.frames["SDR"].shape == theirs["SDR"].shape
    assert_agrees(ours, theirs)


def test_agrees_with_museval_on_harmonic_notes_with_filtered_delayed_estimates():
    rng = np.random.default_rng(11)
    n = 3 * SR
    refs = np.stack([harmonic_notes(rng, n, lo, lo + 24)[None] for lo in (67, 55, 43)])
    ests = distorted(rng, refs, leak=0.2, noise=0.01)
    ours = evaluate_sources(refs.astype(np.float32), ests.astype(np.float32), SR)
    theirs = museval_scores(refs.astype(np.float32), ests.astype(np.float32), SR, SR)
    assert_agrees(ours, theirs)
    # a delayed estimate is punished by SDR (plain framewise SNR) but not by SAR
    assert np.nanmedian(ours.frames["SAR"]) > np.nanmedian(ours.frames["SDR"]) + 3


def test_silent_reference_windows_are_nan_counted_and_left_out_of_the_median():
    rng = np.random.default_rng(3)
    refs = rng.standard_normal((3, 1, 4 * SR))
    refs[1, :, SR : 2 * SR] = 0.0  # a one-second rest in source 1
    ests = distorted(rng, refs)
    ours = evaluate_sources(refs, ests, SR)
    theirs = museval_scores(refs, ests, SR, SR)
    assert np.isnan(theirs["SDR"][:, 1]).all()  # museval gives up on the window for every source
    assert_agrees(ours, theirs)
    assert list(ours.silent_frames) == [0, 1, 0]
    for metric in METRICS:
        assert np.isnan(ours.frames[metric][1, 1])
        assert np.isfinite(ours.frames[metric][[0, 2], 1]).all()  # the others still count
        row = ours.frames[metric][1]
        assert ours.median(metric)[1] == pytest.approx(np.median(row[[0, 2, 3]]))


def test_fully_silent_source_is_reported_and_spans_nothing():
    rng = np.random.default_rng(5)
    refs = rng.standard_normal((3, 1, 3 * SR))
    refs[2] = 0.0
    ests = distorted(rng, refs)
    with pytest.raises(ValueError):
        museval_scores(refs, ests, SR, SR)  # museval refuses an all-zero reference
    ours = evaluate_sources(refs, ests, SR)
    assert list(ours.silent_sources) == [False, False, True]
    assert ours.silent_frames[2] == ours.n_frames
    for metric in METRICS:
        assert np.isnan(ours.frames[metric][2]).all()
        assert np.isnan(ours.median(metric)[2])
    assert np.isnan(ours.si_sdr[2]) and np.isnan(ours.snr[2])
    theirs = museval_scores(refs[:2], ests[:2], SR, SR)
    for metric in METRICS:
        np.testing.assert_allclose(ours.frames[metric][:2], theirs[metric], atol=TOL_DB, rtol=0)


def test_sdr_only_path_equals_full_sdr_and_plain_framewise_snr():
    rng = np.random.default_rng(9)
    refs = rng.standard_normal((2, 2, 3 * SR + 123))
    ests = distorted(rng, refs)
    full = evaluate_sources(refs, ests, SR)
    fast = evaluate_sources(refs, ests, SR, metrics=("SDR",))
    assert fast.metrics == ("SDR",)
    np.testing.assert_allclose(fast.frames["SDR"], full.frames["SDR"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(framewise_sdr(refs, ests, SR, SR), full.frames["SDR"], rtol=0, atol=1e-9)
    s = refs[:, :, SR : 2 * SR]
    e = ests[:, :, SR : 2 * SR]
    plain = 10 * np.log10((s**2).sum(axis=(1, 2)) / ((e - s) ** 2).sum(axis=(1, 2)))
    np.testing.assert_allclose(full.frames["SDR"][:, 1], plain, rtol=1e-10)


def test_si_sdr_is_scale_invariant_with_known_value():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((1, 1, 20000))
    noise = rng.standard_normal((1, 1, 20000))
    noise -= ref * (noise * ref).sum() / (ref * ref).sum()  # orthogonal to the reference
    noise *= np.sqrt((ref**2).sum() / (noise**2).sum()) / 10  # 20 dB below it
    est = 0.5 * ref + 0.5 * noise
    assert si_sdr(ref, est)[0] == pytest.approx(20.0, abs=1e-6)
    assert si_sdr(ref, 3 * est)[0] == pytest.approx(si_sdr(ref, est)[0], abs=1e-9)
    assert snr(ref, 0.5 * ref)[0] == pytest.approx(10 * np.log10(4), abs=1e-9)
    assert snr(ref, ref)[0] == np.inf


def test_all_zero_estimate_scores_zero_db_sdr():
    rng = np.random.default_rng(2)
    refs = rng.standard_normal((2, 1, 2 * SR))
    ests = refs.copy()
    ests[1] = 0.0
    ours = evaluate_sources(refs, ests, SR)
    np.testing.assert_allclose(ours.frames["SDR"][1], 0.0, atol=1e-12)
    assert (ours.frames["SDR"][0] == np.inf).all()


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        evaluate_sources(np.zeros((2, 100)), np.zeros((2, 99)), SR)
    with pytest.raises(ValueError, match="unknown metrics"):
        evaluate_sources(np.ones((1, 100)), np.ones((1, 100)), SR, metrics=("PESQ",))


def _result(rng, name, insts):
    refs = rng.standard_normal((len(insts), 1, 2 * SR))
    return score_arrays(name, refs, distorted(rng, refs), SR, [f"{i + 1}_{n}" for i, n in enumerate(insts)])


def test_report_aggregates_over_tracks_and_writes_files(tmp_path):
    rng = np.random.default_rng(4)
    results = [_result(rng, f"t{i}", ["violin", "cello"]) for i in range(3)]
    summary = summarize(results)
    assert [row["instrument"] for row in summary] == ["cello", "violin", "all"]
    violin = [r.evaluation.median("SDR")[0] for r in results]
    assert summary[1]["SDR"] == pytest.approx(np.median(violin))
    assert summary[1]["SDR mean"] == pytest.approx(np.mean(violin))
    assert summary[1]["tracks"] == 3
    assert "| violin |" in markdown_table(summary)
    paths = write_report(results, tmp_path)
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "tracks" / "t0.json").read_text())
    assert data["targets"][0]["name"] == "1_violin"
    assert data["targets"][0]["frames"][1]["metrics"]["SDR"] == pytest.approx(results[0].evaluation.frames["SDR"][0, 1], abs=1e-5)
    assert "cello" in (tmp_path / "summary.md").read_text()
    assert isinstance(results[0], TrackResult)


def _write_sources(folder, signals, rate=SR):
    folder.mkdir(parents=True, exist_ok=True)
    for name, audio in signals.items():
        write_wav(folder / f"{name}.wav", audio, rate)


def test_cli_score_prints_table_and_writes_json_and_csv(tmp_path, capsys):
    rng = np.random.default_rng(6)
    refs = rng.standard_normal((2, 1, 3 * SR)).astype(np.float32)
    refs[1, :, :SR] = 0.0
    ests = distorted(rng, refs).astype(np.float32)
    _write_sources(tmp_path / "ref", {"1_violin": refs[0], "2_cello": refs[1]})
    _write_sources(tmp_path / "est", {"1_violin": ests[0], "2_cello": ests[1]})
    code = main(["score", str(tmp_path / "ref"), str(tmp_path / "est"), "--json", str(tmp_path / "o.json"), "--csv", str(tmp_path / "o.csv")])
    out = capsys.readouterr().out
    assert code == 0
    assert "1_violin" in out and "SI-SDR" in out
    expected = evaluate_sources(refs, ests, SR)
    data = json.loads((tmp_path / "o.json").read_text())
    assert data["targets"][1]["silent_frames"] == 1
    assert data["targets"][1]["frames"][0]["metrics"]["SDR"] is None
    assert data["targets"][0]["summary"]["SIR"] == pytest.approx(expected.median("SIR")[0], abs=1e-4)
    assert (tmp_path / "o.csv").read_text().splitlines()[0].startswith("track,part,instrument,SDR")


def test_cli_score_refuses_missing_and_mismatched_estimates(tmp_path, capsys):
    signal = np.random.default_rng(0).standard_normal((1, SR)).astype(np.float32)
    _write_sources(tmp_path / "ref", {"a": signal, "b": signal})
    _write_sources(tmp_path / "est", {"a": signal})
    assert main(["score", str(tmp_path / "ref"), str(tmp_path / "est")]) == 2
    assert "est/b.wav" in capsys.readouterr().err
    _write_sources(tmp_path / "est", {"b": signal[:, :-10]})
    assert main(["score", str(tmp_path / "ref"), str(tmp_path / "est")]) == 2
    assert "est/b.wav" in capsys.readouterr().err
    _write_sources(tmp_path / "est", {"b": signal}, rate=16000)
    assert main(["score", str(tmp_path / "ref"), str(tmp_path / "est")]) == 2
    assert "sample rate" in capsys.readouterr().err
