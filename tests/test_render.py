"""MIDI -> dry stems with real FluidSynth and real soundfonts."""

import json

import numpy as np
import pytest
import soundfile as sf
from helpers import BACH10_01_MIDI, fundamental, write_midi

from ensemble_synth.cli import main
from ensemble_synth.errors import UserError
from ensemble_synth.music import instruments
from ensemble_synth.music.score import load_midi
from ensemble_synth.synthesis import soundfonts
from ensemble_synth.synthesis.fluid_renderer import PartVoice, get_renderer

BACH10_LINEUP = "violin,clarinet,tenor_saxophone,bassoon"


def test_bach10_score_renders_four_nonsilent_stems_of_equal_length(tmp_path):
    out = tmp_path / "stems"
    assert main(["render", str(BACH10_01_MIDI), "-o", str(out), "--ensemble", BACH10_LINEUP]) == 0
    meta = json.loads((out / "metadata.json").read_text())
    assert [p["instrument"] for p in meta["parts"]] == ["violin", "clarinet", "tenor_saxophone", "bassoon"]
    assert [p["program"] for p in meta["parts"]] == [40, 71, 66, 70]
    lengths = set()
    for part in meta["parts"]:
        audio, sr = sf.read(out / f"{part['name']}.wav", dtype="float32")
        assert sr == 44100 and audio.ndim == 1
        assert np.sqrt(np.mean(audio**2)) > 1e-3
        lengths.add(len(audio))
    assert len(lengths) == 1
    # release tails are included: the stems run past the last note-off
    assert meta["duration"] > meta["score_duration"]
    assert meta["soundfont"]["sha256"] == soundfonts.resolve("timgm6mb").sha256


def test_part_mapping_from_track_names_and_explicit_parts(tmp_path):
    midi = write_midi(
        tmp_path / "duo.mid",
        [("Violin I", 0, [(0, 1, 76)]), ("Violin II", 0, [(0, 1, 72)]), ("Basso", 0, [(0, 1, 48)])],
    )
    score = load_midi(midi, part_instruments={3: "vc"})
    assert [p.name for p in score.parts] == ["1_violin", "2_violin", "3_cello"]


@pytest.mark.parametrize("font", ["timgm6mb", "fluidr3_gm", "musescore_general"])
@pytest.mark.parametrize("instrument,pitch", [("clarinet", 62), ("cello", 48), ("flute", 79)])
def test_rendered_pitch_matches_midi_pitch(font, instrument, pitch):
    sr = 22050
    notes = np.array([[0.05, 1.05, pitch, 90]])
    voice = PartVoice(soundfonts.resolve(font), instruments.get(instrument).program)
    audio = get_renderer(sr).render(notes, voice)
    steady = audio[int(0.4 * sr) : int(0.9 * sr)]
    expected = 440.0 * 2 ** ((pitch - 69) / 12)
    assert abs(fundamental(steady, sr) / expected - 1) < 0.01


def test_detuning_shifts_pitch_by_the_asked_cents():
    sr = 22050
    notes = np.array([[0.05, 1.05, 62, 90]])
    font = soundfonts.resolve("fluidr3_gm")
    renderer = get_renderer(sr)
    plain = renderer.render(notes, PartVoice(font, 71))
    sharp = renderer.render(notes, PartVoice(font, 71, detune_cents=30.0))
    window = slice(int(0.4 * sr), int(0.9 * sr))
    ratio = fundamental(sharp[window], sr) / fundamental(plain[window], sr)
    assert abs(1200 * np.log2(ratio) - 30.0) < 3.0


def test_same_score_same_bytes_whatever_was_rendered_before(tmp_path):
    args = ["render", str(BACH10_01_MIDI), "--ensemble", BACH10_LINEUP, "--soundfont", "fluidr3_gm"]
    assert main([*args, "-o", str(tmp_path / "a")]) == 0
    other = write_midi(tmp_path / "other.mid", [("Flute", 73, [(0, 0.5, 80), (0.5, 1.5, 84)])])
    assert main(["render", str(other), "-o", str(tmp_path / "b"), "--soundfont", "fluidr3_gm"]) == 0
    assert main([*args, "-o", str(tmp_path / "c")]) == 0
    for name in ["1_violin", "2_clarinet", "3_tenor_saxophone", "4_bassoon"]:
        assert (tmp_path / "a" / f"{name}.wav").read_bytes() == (tmp_path / "c" / f"{name}.wav").read_bytes()


def run_error(args, capsys):
    status = main(args)
    err = capsys.readouterr().err.strip()
    return status, err


def test_missing_midi_is_one_line_exit_2_and_no_output(tmp_path, capsys):
    out = tmp_path / "out"
    status, err = run_error(["render", str(tmp_path / "nope.mid"), "-o", str(out)], capsys)
    assert status == 2 and "nope.mid: file not found" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_corrupt_midi(tmp_path, capsys):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd\x00\x00\x00\x06garbage")
    status, err = run_error(["render", str(bad), "-o", str(tmp_path / "out")], capsys)
    assert status == 2 and "bad.mid: not a readable MIDI file" in err
    assert not (tmp_path / "out").exists()


def test_midi_without_notes(tmp_path, capsys):
    empty = write_midi(tmp_path / "empty.mid", [("Violin", 40, [])])
    status, err = run_error(["render", str(empty), "-o", str(tmp_path / "out")], capsys)
    assert status == 2 and "empty.mid: the score has no notes" in err


def test_drum_only_is_an_error_and_drums_beside_parts_are_skipped(tmp_path, capsys):
    drums = write_midi(tmp_path / "drums.mid", [("Kit", 0, [(0, 1, 36)])], drum=True)
    status, err = run_error(["render", str(drums), "-o", str(tmp_path / "out")], capsys)
    assert status == 2 and "only drum parts" in err

    import pretty_midi

    midi = pretty_midi.PrettyMIDI(str(drums))
    violin = pretty_midi.Instrument(program=40, name="Violin")
    violin.notes.append(pretty_midi.Note(velocity=90, pitch=76, start=0, end=1))
    midi.instruments.append(violin)
    midi.write(str(tmp_path / "mixed.mid"))
    assert main(["render", str(tmp_path / "mixed.mid"), "-o", str(tmp_path / "ok")]) == 0
    assert "skipped drum track" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "ok").iterdir()) == ["1_violin.wav", "metadata.json"]


def test_unknown_instrument_lists_known_ones(tmp_path, capsys):
    status, err = run_error(["render", str(BACH10_01_MIDI), "-o", str(tmp_path / "o"), "--part", "1=kazoo"], capsys)
    assert status == 2 and "unknown instrument 'kazoo'" in err and "double_bass" in err


def test_soundfont_not_found_says_where_it_looked(tmp_path, capsys):
    status, err = run_error(
        ["render", str(BACH10_01_MIDI), "-o", str(tmp_path / "o"), "--ensemble", BACH10_LINEUP, "--soundfont", "fluidr3_gs"],
        capsys,
    )
    if soundfonts.find_file("FluidR3_GS.sf2") is not None:
        pytest.skip("FluidR3_GS is installed here")
    assert status == 2 and "looked in" in err and "apt-get install fluid-soundfont-gs" in err
    status, err = run_error(["render", str(BACH10_01_MIDI), "-o", str(tmp_path / "o"), "--soundfont", "/x/y.sf2"], capsys)
    assert status == 2 and "/x/y.sf2: soundfont file not found" in err
    assert not (tmp_path / "o").exists()


def test_soundfont_search_path_override(tmp_path, monkeypatch):
    font = soundfonts.resolve("timgm6mb")
    (tmp_path / "FluidR3_GS.sf2").symlink_to(font.path)
    monkeypatch.setenv("ENSEMBLE_SYNTH_SOUNDFONT_PATH", str(tmp_path))
    assert soundfonts.resolve("fluidr3_gs").path == tmp_path / "FluidR3_GS.sf2"


def test_missing_preset_is_an_error():
    voice = PartVoice(soundfonts.resolve("timgm6mb"), program=40, bank=77)
    with pytest.raises(UserError, match="no preset for bank 77 program 40"):
        get_renderer(22050).render(np.array([[0.0, 0.5, 70, 90]]), voice)


def test_notes_outside_range_warn_with_count(tmp_path, capsys):
    midi = write_midi(tmp_path / "low.mid", [("Violin", 40, [(0, 0.5, 40), (0.5, 1, 41), (1, 1.5, 70)])])
    assert main(["render", str(midi), "-o", str(tmp_path / "out")]) == 0
    assert "2 notes outside the violin's range" in capsys.readouterr().err


def test_existing_output_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    midi = write_midi(tmp_path / "v.mid", [("Violin", 40, [(0, 0.5, 70)])])
    status, err = run_error(["render", str(midi), "-o", str(out)], capsys)
    assert status == 2 and "exists" in err and (out / "keep.txt").read_text() == "mine"


def test_soundfonts_check(capsys):
    assert main(["soundfonts", "--check", "fluidr3_gm", "--instruments", "violin,vc,tba"]) == 0
    out = capsys.readouterr().out
    assert "violin" in out and "cello" in out and "tuba" in out and "MISSING" not in out
    assert main(["soundfonts"]) == 0
    assert "debian:fluid-soundfont-gm" in capsys.readouterr().out
