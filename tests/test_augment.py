"""Augmentations as stages: constructor arguments recorded and restored, own streams, p, presets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomli_w
from augmentations import Delay, Gain

from ensemble_synth.cli import main
from ensemble_synth.corpus import augment
from ensemble_synth.corpus.generation import generate
from ensemble_synth.corpus.rendering import render_track
from ensemble_synth.corpus.sampling import sample_track
from ensemble_synth.errors import UserError

PRESET = {
    "name": "aug", "sample_rate": 16000,
    "tracks": {"train": 2, "valid": 0, "test": 0, "per_room": 2},
    "repertoire": {"source": "music21:bach", "part_policy": "fit", "excerpt_seconds": 2},
    "ensemble": {"layout": "bach10"},
    "room": {"enabled": False, "room": "dry_studio", "mics": "mono"},
}


def test_constructor_arguments_are_recorded_and_restored_on_re_render():
    spec = sample_track(PRESET, "train", 0, seed=3, augmentations=[Gain(max_db=6.0)])
    record = spec["augmentations"][0]
    assert record["class"] == "augmentations:Gain" and record["args"] == {"max_db": 6.0, "p": 1.0}
    assert abs(record["params"]["db"]) <= 6.0
    rebuilt = augment.resolve(spec["augmentations"], [])["gain"]
    assert isinstance(rebuilt, Gain) and rebuilt.max_db == 6.0
    given = render_track(spec, augmentations=[Gain(max_db=6.0)])
    restored = render_track(json.loads(json.dumps(spec)))  # as render-spec does, from metadata.json alone
    assert (given.images == restored.images).all()


def test_each_augmentation_draws_from_its_own_stream():
    alone = sample_track(PRESET, "train", 0, seed=3, augmentations=[Gain()])
    with_other = sample_track(PRESET, "train", 0, seed=3, augmentations=[Delay(), Gain()])
    gain = {r["name"]: r for r in with_other["augmentations"]}["gain"]
    assert gain["params"] == alone["augmentations"][0]["params"]
    # and the track's own draws do not move when an augmentation is added
    plain = sample_track(PRESET, "train", 0, seed=3)
    assert plain["parts"] == alone["parts"] and plain["performance"] == alone["performance"]


def test_probability_p_decides_per_track_and_is_recorded():
    never = sample_track(PRESET, "train", 0, seed=3, augmentations=[Gain(p=0.0)])["augmentations"][0]
    assert never["applied"] is False and never["params"] is None
    applied = [sample_track(PRESET, "train", i, seed=s, augmentations=[Gain(p=0.5)])["augmentations"][0]["applied"]
               for s in range(6) for i in range(2)]
    assert 0 < sum(applied) < len(applied)
    with pytest.raises(UserError, match="p must be a probability"):
        augment.check([Gain(p=1.5)])


def test_resume_with_other_augmentation_settings_is_refused(tmp_path):
    out = tmp_path / "corpus"
    generate(PRESET, out, seed=1, augmentations=[Gain(max_db=2.0)], rir_cache=False, progress=False)
    with pytest.raises(UserError, match="another preset or seed"):
        generate(PRESET, out, seed=1, augmentations=[Gain(max_db=4.0)], rir_cache=False, progress=False)
    generate(PRESET, out, seed=1, augmentations=[Gain(max_db=2.0)], rir_cache=False, progress=False)  # same: fine


def test_augment_tables_in_a_corpus_preset(tmp_path):
    preset = {**PRESET, "augment": [{"class": "augmentations:Delay", "args": {"max_ms": 5.0}}]}
    path = tmp_path / "aug.toml"
    path.write_text(tomli_w.dumps(preset))
    out = tmp_path / "corpus"
    assert main(["generate", "--preset", str(path), "-o", str(out), "--quiet", "--jobs", "1"]) == 0
    meta = json.loads(next((out / "train").glob("*/metadata.json")).read_text())
    assert meta["augmentations"][0]["args"] == {"max_ms": 5.0} and meta["augmentations"][0]["params"]["ms"] <= 5.0


@pytest.mark.parametrize("table, message", [
    ({"class": "augmentations:Nope"}, "cannot import augmentations:Nope"),
    ({"class": "no_colon"}, "expected 'module:QualName'"),
    ({"class": "augmentations:Delay", "args": {"max_mss": 1}}, "failed"),
    ({"class": "augmentations:Delay", "arg": {}}, "unknown key(s) arg"),
])
def test_bad_augment_tables_are_one_line_and_write_nothing(tmp_path, capsys, table, message):
    path = tmp_path / "bad.toml"
    path.write_text(tomli_w.dumps({**PRESET, "augment": [table]}))
    out = tmp_path / "out"
    assert main(["generate", "--preset", str(path), "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: [[augment]] 1") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_a_loaded_preset_dict_with_its_source_gets_its_defaults(tmp_path):
    # Once a KeyError: a dict carrying _source was taken as already resolved.
    spec = sample_track({**PRESET, "_source": str(tmp_path / "x.toml")}, "train", 0, seed=3)
    assert spec["performance"]["tempo_bpm"] > 0


def test_requires_python_matches_the_code():
    import tomllib  # the code reads TOML with the standard library (3.11+)

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"
