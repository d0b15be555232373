"""Score-informed adaptation: renditions of one score, fine-tuning from a general model, errors."""

from __future__ import annotations

import json

import pytest
from helpers import BACH10_01_MIDI

from ensemble_synth.adaptation import adapt, rendition_preset
from ensemble_synth.cli import main
from ensemble_synth.corpus.sampling import sample_track
from ensemble_synth.separation import load_separator, read_checkpoint, train

needs_real = pytest.mark.skipif(not BACH10_01_MIDI.is_file(), reason="Bach10 scores not present")
BACH10 = ["violin", "clarinet", "tenor_saxophone", "bassoon"]
FAST = {"room": {"enabled": False, "room": "dry_studio", "mics": "mono"}}


@pytest.fixture(scope="module")
def general_model(tmp_path_factory):
    """A tiny 'general' model trained for a few steps on renditions of the same line-up."""
    root = tmp_path_factory.mktemp("general")
    from ensemble_synth.corpus.generation import generate

    preset = {"name": "g", "sample_rate": 16000, "tracks": {"train": 4, "valid": 2, "test": 0, "per_room": 2},
              "repertoire": {"source": "music21:bach", "part_policy": "skip", "excerpt_seconds": 3,
                             "exclude": ["bwv255"]},
              "ensemble": {"layout": "bach10"}, **FAST}
    generate(preset, root / "corpus", seed=1, rir_cache=False, progress=False)
    return train(root / "corpus", root / "run", model="tiny", max_steps=2, progress=False)


@needs_real
def test_renditions_follow_the_score_and_vary_its_performance():
    preset = rendition_preset(BACH10_01_MIDI, BACH10, 16000, 8, base={"name": "b", **FAST}, excerpt_seconds=4)
    specs = [sample_track(preset, "train", i, seed=3) for i in range(4)]
    assert {s["source"]["id"] for s in specs} == {str(BACH10_01_MIDI)}
    assert len({round(s["performance"]["tempo_bpm"], 3) for s in specs}) == 4  # the MIDI tempo times a drawn factor
    assert [p["instrument"] for p in specs[0]["parts"]] == BACH10


@needs_real
def test_adapt_fine_tunes_from_the_general_model_and_keeps_the_best(tmp_path, general_model):
    out = tmp_path / "adapted"
    best = adapt(BACH10_01_MIDI, out, model=general_model, ensemble=BACH10, renditions=8, minutes=5, max_steps=2,
                 base_preset={"name": "b", **FAST}, jobs=1, progress=False, log=lambda *a: None)
    record = json.loads((out / "adapt.json").read_text())
    assert record["valid_sdr_start"] is not None  # the general model was scored on the renditions first
    assert record["valid_sdr_best"] >= record["valid_sdr_start"]
    assert read_checkpoint(best)["layout"]["instruments"] == BACH10
    separator = load_separator(best)
    assert separator.instruments == BACH10


@needs_real
def test_a_score_that_does_not_match_the_model_is_one_line_and_leaves_nothing(tmp_path, capsys, general_model):
    out = tmp_path / "adapted"
    rc = main(["adapt", str(BACH10_01_MIDI), "-o", str(out), "--model", str(general_model),
               "--ensemble", "violin,viola,cello,double_bass", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "but" in err and "separates" in err
    assert not out.exists()


def test_not_a_midi_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "score.mid"
    bad.write_bytes(b"not midi")
    assert main(["adapt", str(bad), "-o", str(tmp_path / "out"), "--quiet"]) == 2
    assert "not a readable MIDI file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@needs_real
def test_adapt_score_conditioned_from_the_command_line(tmp_path, capsys, general_model):
    preset = tmp_path / "fast.toml"
    preset.write_text('name = "b"\n[room]\nenabled = false\nroom = "dry_studio"\nmics = "mono"\n')
    out = tmp_path / "adapted"
    assert main(["adapt", str(BACH10_01_MIDI), "-o", str(out), "--model", str(general_model), "--preset", str(preset),
                 "--renditions", "8", "--minutes", "0.01", "--score-conditioned", "--ensemble", ",".join(BACH10),
                 "--quiet"]) == 0
    assert json.loads((out / "adapt.json").read_text())["score_conditioned"] is True
    assert sorted(p.name for p in next((out / "renditions" / "train").iterdir()).glob("midi/*.mid")) == [
        "1_violin.mid", "2_clarinet.mid", "3_tenor_saxophone.mid", "4_bassoon.mid"]
    separator = load_separator(out / "model.pt")
    assert separator.conditioned and not load_separator(general_model).conditioned
    # separate: the notes of each part, in output order, from MIDI files aligned to the mixture
    track = next((out / "renditions" / "valid").iterdir())
    notes = [arg for part in separator.output_names for arg in ("--notes", str(track / "midi" / f"{part}.mid"))]
    capsys.readouterr()
    assert main(["separate", str(track / "mix.wav"), "--model", str(out / "model.pt"), "-o", str(tmp_path / "s"),
                 *notes]) == 0
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [f"{n}.wav" for n in separator.output_names]
    assert main(["separate", str(track / "mix.wav"), "--model", str(out / "model.pt"), "-o", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is score-conditioned" in err and not (tmp_path / "t").exists()
    assert main(["separate", str(track / "mix.wav"), "--model", str(general_model), "-o", str(tmp_path / "t"),
                 *notes]) == 2
    assert "is not score-conditioned" in capsys.readouterr().err and not (tmp_path / "t").exists()
