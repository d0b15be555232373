"""The synth-vs-real benchmark, smoke budget, end to end on the development recordings."""

import json
import os

import pytest
import tomli_w
from helpers import BACH10

from ensemble_synth.cli import main
from ensemble_synth.music.repertoire import (
    load_midi_piece,
    load_music21_bach,
    same_melody,
)
from ensemble_synth.errors import UserError
from ensemble_synth.separation.config import resolve_config
from ensemble_synth.synth_vs_real import BUDGETS, VARIANTS, check_finished_runs, training_overrides

BACH10_EXCLUDED = {"bwv255", "bwv48.3", "bwv256", "bwv274", "bwv62.6", "bwv275", "bwv296", "bwv297",
                   "bwv326", "bwv327", "bwv364", "bwv385"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    old = os.environ.get("ENSEMBLE_SYNTH_CACHE")
    os.environ["ENSEMBLE_SYNTH_CACHE"] = str(out / "cache")
    try:
        status = main(["bench", "--real", f"bach10:{BACH10}", "--budget", "smoke", "-o", str(out / "run"), "--jobs", "2"])
    finally:
        if old is None:
            os.environ.pop("ENSEMBLE_SYNTH_CACHE")
        else:
            os.environ["ENSEMBLE_SYNTH_CACHE"] = old
    assert status == 0
    return out / "run"


def test_every_variant_is_trained_and_scored(smoke):
    results = json.loads((smoke / "results.json").read_text())
    assert [row["variant"] for row in results["variants"]] == list(VARIANTS)
    assert results["budget"]["name"] == "smoke" and results["seed"] == 0
    assert results["ensemble"]["instruments"] == ["violin", "clarinet", "tenor_saxophone", "bassoon"]
    for row in results["variants"]:
        assert (smoke / "runs" / row["variant"] / "model.pt").is_file()
        for side in ("synthetic", "real"):
            assert isinstance(row[side]["mean"], float)
            assert set(row[side]["instruments"]) == {"violin", "clarinet", "tenor_saxophone", "bassoon"}
        assert row["real"]["instruments"]["violin"]["tracks"] == 3
        assert row["gap"] == pytest.approx(row["synthetic"]["mean"] - row["real"]["mean"])
    reference = results["mixture_reference"]["real"]
    # four uncorrelated parts of equal level: the mixture over four scores about 10 log10(4/3) = 1.25 dB
    assert 0.5 < reference["mean"] < 2.0
    assert results["preset"] == "bach10_like"
    # two workers on a machine with two or more cores: variants train side by side, one process each
    assert results["training_workers"]["models_at_a_time"] == min(2, os.cpu_count())
    # the training processes preload jemalloc (installed with the package's system dependencies)
    assert {row["training_process"]["allocator"] for row in results["variants"]} == {"jemalloc"}
    # scored as `separate` and `evaluate` separate by default
    assert all(row["separation"] == {"shifts": 4, "consistency": True} for row in results["variants"])


def test_table_and_plot_are_written(smoke):
    text = (smoke / "results.md").read_text()
    table = text.splitlines()
    head = table.index(next(line for line in table if line.startswith("| variant")))
    rows = [line for line in table[head + 2:] if line.startswith("| ")][:len(VARIANTS) + 1]
    assert [r.split("|")[1].strip() for r in rows] == [*VARIANTS, "*mixture / parts (no model)*"]
    assert all(len(r.split("|")) == len(table[head].split("|")) for r in rows)
    # one line-up: a table per piece, a column per variant and the no-model column
    pieces = text.split("## Per piece")[1].splitlines()
    assert pieces[2] == "| piece | " + " | ".join(VARIANTS) + " | no model |"
    piece_rows = [line for line in pieces[4:] if line.startswith("| ")]
    assert len(piece_rows) == 3 and all(len(r.split("|")) == len(VARIANTS) + 4 for r in piece_rows)
    results = json.loads((smoke / "results.json").read_text())
    assert set(results["variants"][0]["pieces"]) == set(results["mixture_reference"]["pieces"]) == set(results["real_tracks"])
    assert (smoke / "gap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_real_pieces_are_absent_from_every_training_corpus(smoke):
    real_melodies = [load_midi_piece(str(p)).soprano() for p in sorted(BACH10.glob("*/*.mid"))]
    assert len(real_melodies) == 3
    for variant in VARIANTS:
        metas = sorted((smoke / "corpora" / variant).glob("*/*/metadata.json"))
        assert metas
        for path in metas:
            meta = json.loads(path.read_text())
            piece_id = meta["source"]["id"].split("/", 1)[1]
            assert piece_id not in BACH10_EXCLUDED
            soprano = load_music21_bach(piece_id).soprano()
            assert not any(same_melody(soprano, melody) for melody in real_melodies), path


def test_dry_variant_has_no_room_and_one_soundfont(smoke):
    for path in (smoke / "corpora" / "dry").glob("*/*/metadata.json"):
        meta = json.loads(path.read_text())
        assert meta["scene"] is None
        assert {p["soundfont"] for p in meta["parts"]} == {"fluidr3_gm"}
        assert all(p["onset_jitter_ms"] == 0 for p in meta["parts"])


def test_unknown_budget_and_missing_real_set(tmp_path, capsys):
    assert main(["bench", "--real", f"bach10:{tmp_path / 'nope'}", "-o", str(tmp_path / "o")]) == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.parametrize("args, expected", [
    (["--variants", "dry,ful"], "unknown variant(s) ful"),
    (["--model", "no_such_model"], "no_such_model"),
    (["--preset", "no_such_corpus"], "no_such_corpus"),
    (["--jobs", "-1"], "--jobs -1: must be at least 1"),
])
def test_bad_options_fail_before_any_work(tmp_path, capsys, args, expected):
    out = tmp_path / "o"
    assert main(["bench", "--real", f"bach10:{BACH10}", "-o", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1
    assert not out.exists()


def test_score_informed_rows_are_apart_from_the_blind_ones(smoke, tmp_path, capfd):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(smoke, run)  # the trained variants are reused; only the adaptation runs
    status = main(["bench", "--real", f"bach10:{BACH10}", "--budget", "smoke", "-o", str(run), "--jobs", "2",
                   "--variants", "timbre", "--score-informed"])
    assert status == 0
    assert f"reusing the finished run in {run / 'runs' / 'timbre'}" in capfd.readouterr().err
    results = json.loads((run / "results.json").read_text())
    [row] = results["score_adapted"]
    assert row["variant"] == "timbre" and len(row["pieces"]) == 3
    for piece, scores in row["pieces"].items():
        assert (run / "adapted" / "timbre" / piece / "model.pt").is_file()
        assert isinstance(scores["general"]["mean"], float) and isinstance(scores["adapted"]["mean"], float)
    # the blind row is unchanged by the adaptation
    blind = json.loads((smoke / "results.json").read_text())
    assert {r["variant"]: r["real"]["mean"] for r in results["variants"]}["timbre"] == pytest.approx(
        {r["variant"]: r["real"]["mean"] for r in blind["variants"]}["timbre"])
    assert "## Score-adapted" in (run / "results.md").read_text()


def test_background_noise_belongs_to_the_recording_chain():
    from ensemble_synth.corpus.preset import resolve_preset
    from ensemble_synth.synth_vs_real import BASE_PRESET, BUDGETS, variant_preset

    base = resolve_preset(BASE_PRESET)
    assert base["noise"]["enabled"]
    for variant in VARIANTS:
        preset = resolve_preset(variant_preset(base, variant, BUDGETS["smoke"], "bach10", []))
        assert preset.get("noise", {}).get("enabled", False) == (variant in ("room", "full")), variant


def test_a_finished_run_trained_otherwise_is_refused_before_any_work(smoke, capsys):
    before = sorted(str(p) for p in smoke.rglob("*"))
    assert main(["bench", "--real", f"bach10:{BACH10}", "--budget", "smoke", "--variants", "dry", "--seed", "1",
                 "-o", str(smoke)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(smoke / "runs" / "dry") in err and "seed=0 vs 1" in err
    assert sorted(str(p) for p in smoke.rglob("*")) == before


def test_finished_runs_are_reused_only_as_trained_and_keys_added_since_take_their_defaults(tmp_path):
    budget = BUDGETS["smoke"]
    config = resolve_config(budget.model, training_overrides(budget, False))
    run = tmp_path / "runs" / "timbre"
    run.mkdir(parents=True)
    (run / "done").write_text("trained\n")
    # written before [training] gain_db existed (a key added since takes the default it had then)
    older = {**config, "training": {k: v for k, v in config["training"].items() if k != "gain_db"}, "data": {"seed": 0}}
    (run / "config.toml").write_text(tomli_w.dumps(older))
    check_finished_runs([run], budget, False, seed=0)
    with pytest.raises(UserError, match="timbre: a finished run trained otherwise .*seed=0 vs 1"):
        check_finished_runs([run], budget, False, seed=1)
