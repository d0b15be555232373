"""The evaluator on bad input: empty files, NaN and inf, silent estimates, existing outputs, bad options.

Every refusal is one line on stderr that names the file (or option), exit status 2, and
nothing the user already had is touched.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ensemble_synth.cli import main
from ensemble_synth.errors import UserError
from ensemble_synth.evaluation.metrics import evaluate_sources, framewise_sdr, si_sdr, snr
from ensemble_synth.evaluation.report import score_arrays, score_dirs
from ensemble_synth.fileio import write_wav

SR = 8000


def _write_sources(folder, signals, rate=SR):
    folder.mkdir(parents=True, exist_ok=True)
    for name, audio in signals.items():
        write_wav(folder / f"{name}.wav", audio, rate)


def _pair(tmp_path, seconds=2.0, seed=0):
    rng = np.random.default_rng(seed)
    refs = rng.standard_normal((2, 1, int(seconds * SR))).astype(np.float32)
    ests = (refs + 0.1 * rng.standard_normal(refs.shape)).astype(np.float32)
    return refs, ests


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error: "), captured.err
    assert "\n" not in err and "Traceback" not in err, err
    return err


# --- 1. files with no samples -------------------------------------------------------------


def test_zero_sample_wav_is_one_line_naming_the_file(tmp_path, capsys):
    refs, ests = _pair(tmp_path)
    _write_sources(tmp_path / "ref", {"a": refs[0], "b": np.zeros((1, 0), np.float32)})
    _write_sources(tmp_path / "est", {"a": ests[0], "b": np.zeros((1, 0), np.float32)})
    assert main(["score", str(tmp_path / "ref"), str(tmp_path / "est")]) == 2
    err = _one_error_line(capsys)
    assert str(tmp_path / "ref" / "b.wav") in err and "no samples" in err
    with pytest.raises(UserError, match="b.wav: the file holds no samples"):
        score_dirs(tmp_path / "ref", tmp_path / "est")

    _write_sources(tmp_path / "ref", {"b": refs[1]})  # only the estimate is empty now
    assert main(["score", str(tmp_path / "ref"), str(tmp_path / "est")]) == 2
    err = _one_error_line(capsys)
    assert str(tmp_path / "est" / "b.wav") in err and "no samples" in err


# --- 2. NaN and inf -----------------------------------------------------------------------


def test_nan_in_an_estimate_or_inf_in_a_reference_is_refused_naming_the_file(tmp_path, capsys):
    refs, ests = _pair(tmp_path, seconds=6.0)
    nan_est = ests.copy()
    nan_est[1, 0, 3 * SR : 3 * SR + 10] = np.nan  # ten NaN samples in a 6 s estimate
    _write_sources(tmp_path / "ref", {"a": refs[0], "b": refs[1]})
    _write_sources(tmp_path / "est", {"a": nan_est[0], "b": nan_est[1]})
    assert main(["score", str(tmp_path / "ref"), str(tmp_path / "est"), "--json", str(tmp_path / "o.json")]) == 2
    err = _one_error_line(capsys)
    assert str(tmp_path / "est" / "b.wav") in err and "NaN or infinite" in err and f"sample {3 * SR}" in err
    assert not (tmp_path / "o.json").exists()

    inf_ref = refs.copy()
    inf_ref[0, 0, 5] = np.inf
    _write_sources(tmp_path / "ref", {"a": inf_ref[0]})
    _write_sources(tmp_path / "est", {"b": ests[1]})
    assert main(["score", str(tmp_path / "ref"), str(tmp_path / "est"), "--sdr-only"]) == 2
    err = _one_error_line(capsys)
    assert str(tmp_path / "ref" / "a.wav") in err and "NaN or infinite" in err


def test_library_refuses_nan_and_inf_naming_the_input_and_source():
    rng = np.random.default_rng(1)
    refs = rng.standard_normal((3, 1, SR))
    ests = refs + 0.1 * rng.standard_normal(refs.shape)
    bad_est = ests.copy()
    bad_est[1, 0, 100:110] = np.nan
    for metrics in (("SDR",), ("SDR", "ISR", "SIR", "SAR")):
        with pytest.raises(UserError, match=r"^estimates: source 1 holds NaN or infinite samples \(the first at sample 100\)"):
            evaluate_sources(refs, bad_est, SR, metrics=metrics)
    bad_ref = refs.copy()
    bad_ref[2, 0, 7] = -np.inf
    with pytest.raises(UserError, match="^references: source 2 holds NaN or infinite"):
        evaluate_sources(bad_ref, ests, SR)
    for function in (si_sdr, snr):
        with pytest.raises(UserError, match="^estimates: source 1"):
            function(refs, bad_est)
    with pytest.raises(UserError, match="^references: source 2"):
        framewise_sdr(bad_ref, ests, SR, SR)
    with pytest.raises(UserError, match="^t1: estimate of part 2_cello holds NaN"):
        score_arrays("t1", refs, bad_est, SR, ["1_violin", "2_cello", "3_viola"])
    # float32 input is checked the same way
    with pytest.raises(UserError, match="^estimates: source 1"):
        evaluate_sources(refs.astype(np.float32), bad_est.astype(np.float32), SR, metrics=("SDR",))


# --- 3. all-zero estimates ----------------------------------------------------------------


def test_all_zero_estimate_is_never_plus_inf_in_any_metric():
    rng = np.random.default_rng(2)
    refs = rng.standard_normal((2, 1, 3 * SR))
    ests = refs + 0.1 * rng.standard_normal(refs.shape)
    ests[1] = 0.0
    ev = evaluate_sources(refs, ests, SR)
    assert list(ev.silent_estimates) == [False, True]
    assert ev.si_sdr[1] == -np.inf  # silence holds none of the reference: the worst score, not the best
    assert ev.snr[1] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(ev.frames["SDR"][1], 0.0, atol=1e-12)
    np.testing.assert_allclose(ev.frames["ISR"][1], 0.0, atol=1e-9)
    assert np.isnan(ev.frames["SIR"][1]).all() and np.isnan(ev.frames["SAR"][1]).all()  # undefined (0/0)
    for name, values in ev.summary().items():
        assert not np.isposinf(values[1]), name
        assert np.isfinite(values[0]), name  # the other source is scored as before
    assert si_sdr(refs, ests)[1] == -np.inf and si_sdr(refs, ests, zero_mean=True)[1] == -np.inf
    assert snr(refs, ests)[1] == pytest.approx(0.0, abs=1e-12)
    # a perfect estimate is still +inf, as in museval
    assert si_sdr(refs, refs)[0] == np.inf and snr(refs, refs)[0] == np.inf


def test_score_command_flags_a_silent_estimate(tmp_path, capsys):
    refs, ests = _pair(tmp_path)
    ests[0] = 0.0
    _write_sources(tmp_path / "ref", {"a": refs[0], "b": refs[1]})
    _write_sources(tmp_path / "est", {"a": ests[0], "b": ests[1]})
    assert main(["score", str(tmp_path / "ref"), str(tmp_path / "est"), "--json", str(tmp_path / "o.json"),
                 "--csv", str(tmp_path / "o.csv")]) == 0
    out = capsys.readouterr().out
    assert "note: estimate a is silent throughout" in out
    data = json.loads((tmp_path / "o.json").read_text())
    assert data["targets"][0]["silent_estimate"] is True and data["targets"][1]["silent_estimate"] is False
    assert data["targets"][0]["summary"]["SI-SDR"] is None  # -inf is not a JSON number
    header, first, _ = (tmp_path / "o.csv").read_text().splitlines()
    row = dict(zip(header.split(","), first.split(",")))
    assert row["silent_estimate"] == "True" and float(row["SI-SDR"]) == -math.inf


# --- 4. existing outputs ------------------------------------------------------------------


def test_score_refuses_to_overwrite_json_or_csv_without_overwrite(tmp_path, capsys):
    refs, ests = _pair(tmp_path)
    _write_sources(tmp_path / "ref", {"a": refs[0], "b": refs[1]})
    _write_sources(tmp_path / "est", {"a": ests[0], "b": ests[1]})
    ref, est = str(tmp_path / "ref"), str(tmp_path / "est")
    (tmp_path / "old.json").write_text("mine\n")
    (tmp_path / "old.csv").write_text("mine too\n")

    assert main(["score", ref, est, "--json", str(tmp_path / "old.json")]) == 2
    err = _one_error_line(capsys)
    assert str(tmp_path / "old.json") in err and "--overwrite" in err
    assert (tmp_path / "old.json").read_text() == "mine\n"

    # one output refused: the other is not written either
    assert main(["score", ref, est, "--json", str(tmp_path / "new.json"), "--csv", str(tmp_path / "old.csv")]) == 2
    err = _one_error_line(capsys)
    assert str(tmp_path / "old.csv") in err and "--overwrite" in err
    assert (tmp_path / "old.csv").read_text() == "mine too\n" and not (tmp_path / "new.json").exists()

    assert main(["score", ref, est, "--json", str(tmp_path / "old.json"), "--csv", str(tmp_path / "old.csv"),
                 "--overwrite"]) == 0
    assert json.loads((tmp_path / "old.json").read_text())["targets"][0]["name"] == "a"
    assert (tmp_path / "old.csv").read_text().startswith("track,part,instrument,SDR")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["est", "old.csv", "old.json", "ref"]  # no temporaries

    assert main(["score", ref, est, "--json", str(tmp_path / "no_such_dir" / "o.json")]) == 2
    assert "no_such_dir" in _one_error_line(capsys)


# --- 5. the command's own option errors ---------------------------------------------------


@pytest.mark.parametrize("args, words", [
    (["--window", "0"], "--window"),
    (["--hop", "-1"], "--hop"),
    (["--window", "nan"], "--window"),
    (["--hop", "inf"], "--hop"),
])
def test_score_option_errors_are_one_line(tmp_path, capsys, args, words):
    refs, ests = _pair(tmp_path)
    _write_sources(tmp_path / "ref", {"a": refs[0]})
    _write_sources(tmp_path / "est", {"a": ests[0]})
    assert main(["score", str(tmp_path / "ref"), str(tmp_path / "est"), *args]) == 2
    err = _one_error_line(capsys)
    assert words in err and "positive" in err


def test_score_refuses_json_and_csv_naming_the_same_file(tmp_path, capsys):
    refs, ests = _pair(tmp_path)
    _write_sources(tmp_path / "ref", {"a": refs[0]})
    _write_sources(tmp_path / "est", {"a": ests[0]})
    out = str(tmp_path / "o.txt")
    assert main(["score", str(tmp_path / "ref"), str(tmp_path / "est"), "--json", out, "--csv", out]) == 2
    assert "same file" in _one_error_line(capsys)
    assert not (tmp_path / "o.txt").exists()


def test_score_dirs_says_when_a_folder_is_a_file(tmp_path):
    refs, _ = _pair(tmp_path)
    _write_sources(tmp_path / "ref", {"a": refs[0]})
    (tmp_path / "est").write_text("")
    with pytest.raises(UserError, match="est: is a file, not a folder"):
        score_dirs(tmp_path / "ref", tmp_path / "est")
    with pytest.raises(UserError, match="nothing: folder not found"):
        score_dirs(tmp_path / "nothing", tmp_path / "ref")
