"""The performance math of ensemble_synth/music/performance.py, on hand-built pieces.

Tempo integration, rubato, fermatas, windows, articulation, velocity, onset jitter,
transposition and MIDI controllers. Pieces are built directly (no music21, no MIDI).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ensemble_synth.music import performance as P
from ensemble_synth.music.repertoire import Piece
from ensemble_synth.music.score import END, PITCH, START, VELOCITY


def voice(*notes) -> np.ndarray:
    """(beat, length, pitch[, fermata]) tuples -> an (n, 4) voice array."""
    return np.array([tuple(n) + (0,) * (4 - len(n)) for n in notes], dtype=float)


def scale(n=8, length=1.0, pitch=60) -> np.ndarray:
    return voice(*[(i * length, length, pitch + i) for i in range(n)])


def piece(*voices) -> Piece:
    return Piece(id="test", title="Test", voices=list(voices))


def perf(**kw) -> dict:
    base = {"tempo_bpm": 60.0, "window": [0.0, 8.0], "seed": 0, "lead_in": 0.0}
    base.update(kw)
    return base


def perform_one(pc: Piece, part: dict | None = None, **kw) -> np.ndarray:
    return P.perform(pc, [{"voice": 0, **(part or {})}], perf(**kw))[0]


# --- smooth_curve ------------------------------------------------------------------------


def test_smooth_curve_passes_through_the_knots():
    knots = [0.0, 2.0, -1.0, 3.0]
    at = np.arange(4) * 4.0
    np.testing.assert_allclose(P.smooth_curve(knots, 4.0, at), knots)


def test_smooth_curve_is_linear_between_knots_and_flat_beyond():
    knots = [0.0, 2.0, -1.0]
    np.testing.assert_allclose(P.smooth_curve(knots, 4.0, np.array([2.0, 6.0, 1.0])), [1.0, 0.5, 0.5])
    np.testing.assert_allclose(P.smooth_curve(knots, 4.0, np.array([8.0, 20.0, 100.0])), [-1.0, -1.0, -1.0])


def test_smooth_curve_without_knots_is_zero_of_the_same_shape():
    beats = np.linspace(0, 10, 7)
    out = P.smooth_curve([], 4.0, beats)
    assert out.shape == beats.shape
    assert not out.any()


# --- tempo -------------------------------------------------------------------------------


def test_constant_tempo_60_bpm_is_one_second_a_beat():
    convert = P.beat_to_seconds(perf(), piece(scale()), (0.0, 8.0))
    beats = np.array([0.0, 0.5, 1.0, 2.0, 3.25, 7.0])
    np.testing.assert_allclose(convert(beats), beats, atol=1e-9)


def test_120_bpm_halves_every_beat():
    b = np.array([0.0, 1.0, 2.5, 6.0])
    at60 = P.beat_to_seconds(perf(tempo_bpm=60.0), piece(scale()), (0.0, 8.0))(b)
    at120 = P.beat_to_seconds(perf(tempo_bpm=120.0), piece(scale()), (0.0, 8.0))(b)
    np.testing.assert_allclose(at120, at60 / 2, atol=1e-9)
    np.testing.assert_allclose(at120, b * 0.5, atol=1e-9)


def test_beats_are_counted_from_the_window_start():
    """The tempo map maps beats from the window start: same answer for any window offset."""
    a = P.beat_to_seconds(perf(), piece(scale(16)), (0.0, 8.0))(np.array([0.0, 3.0]))
    b = P.beat_to_seconds(perf(), piece(scale(16)), (8.0, 16.0))(np.array([0.0, 3.0]))
    np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(a, [0.0, 3.0], atol=1e-9)


def test_rubato_mapping_is_strictly_monotonic():
    rng = np.random.default_rng(3)
    knots = list(rng.normal(0, 0.3, 6))
    convert = P.beat_to_seconds(perf(rubato_knots=knots), piece(scale()), (0.0, 8.0))
    seconds = convert(np.linspace(0.0, 8.0, 801))
    assert seconds[0] == 0.0
    assert np.all(np.diff(seconds) > 0)


def test_rubato_local_slope_is_exp_of_minus_log_deviation():
    """Between two grid points the mapping advances 60 / (bpm * exp(log_dev)) seconds a beat."""
    knots = [0.0, math.log(2.0), -0.4, 0.25]
    tempo = 90.0
    convert = P.beat_to_seconds(perf(tempo_bpm=tempo, rubato_knots=knots), piece(scale()), (0.0, 8.0))
    beats = np.array([0.0, 1.0, 2.0, 4.0, 5.5, 8.0, 11.0, 14.0])  # multiples of the grid
    slope = (convert(beats + P.GRID) - convert(beats)) / P.GRID
    log_dev = P.smooth_curve(knots, P.RUBATO_KNOT_BEATS, beats)
    np.testing.assert_allclose(slope, 60.0 / tempo * np.exp(-log_dev), rtol=1e-9)
    # A knot of log 2 doubles the tempo there: half a second a beat at 60 bpm * (90/60).
    assert slope[3] == pytest.approx(60.0 / tempo / 2.0)


def test_rubato_total_time_matches_the_integral():
    """A ramp of log tempo from 0 to log 2 over 4 beats: seconds = (1 - exp(-k b)) / k."""
    k = math.log(2.0) / P.RUBATO_KNOT_BEATS
    convert = P.beat_to_seconds(perf(rubato_knots=[0.0, math.log(2.0)]), piece(scale()), (0.0, 8.0))
    b = np.array([1.0, 2.0, 4.0])
    np.testing.assert_allclose(convert(b), (1 - np.exp(-k * b)) / k, atol=P.GRID)
    # Beyond the last knot the curve is flat: 0.5 s a beat.
    assert convert(np.array([6.0]))[0] - convert(np.array([4.0]))[0] == pytest.approx(1.0)


def test_negative_log_deviation_slows_down():
    fast = P.beat_to_seconds(perf(rubato_knots=[0.3] * 4), piece(scale()), (0.0, 8.0))(np.array([8.0]))
    slow = P.beat_to_seconds(perf(rubato_knots=[-0.3] * 4), piece(scale()), (0.0, 8.0))(np.array([8.0]))
    assert fast[0] == pytest.approx(8.0 * math.exp(-0.3))
    assert slow[0] == pytest.approx(8.0 * math.exp(0.3))


# --- fermatas ----------------------------------------------------------------------------


def fermata_piece() -> Piece:
    top = voice((0, 1, 72), (1, 1, 74, 1), (2, 1, 76), (3, 1, 77), (4, 2, 79, 1), (6, 1, 77), (7, 1, 76))
    bass = voice((0, 2, 48, 1), (2, 2, 50), (4, 2, 52), (6, 2, 53))  # fermatas below the top voice do not count
    return piece(top, bass)


def test_fermata_ends_of_the_top_voice():
    np.testing.assert_array_equal(P.fermata_ends(fermata_piece(), (0.0, 8.0)), [2.0, 6.0])


def test_fermata_ends_inside_the_window_only():
    pc = fermata_piece()
    # (start, end]: an end on the window start is outside, one on the window end inside.
    np.testing.assert_array_equal(P.fermata_ends(pc, (2.0, 6.0)), [6.0])
    np.testing.assert_array_equal(P.fermata_ends(pc, (0.0, 5.0)), [2.0])
    assert len(P.fermata_ends(pc, (6.5, 8.0))) == 0


def test_fermata_ends_are_unique():
    top = voice((0, 2, 72, 1), (0, 2, 67, 1), (2, 1, 72))  # a held chord in the top voice
    np.testing.assert_array_equal(P.fermata_ends(piece(top), (0.0, 4.0)), [2.0])


def test_no_fermata_beats_means_no_holds():
    plain = perform_one(fermata_piece())
    np.testing.assert_allclose(plain[:, START], [0, 1, 2, 3, 4, 6, 7], atol=1e-9)
    np.testing.assert_allclose(plain[:, END] - plain[:, START], [1, 1, 1, 1, 2, 1, 1], atol=1e-9)


@pytest.mark.parametrize("tempo, extra", [(60.0, 2.0), (120.0, 2.0), (60.0, 0.5), (90.0, 3.0)])
def test_fermata_holds_the_marked_note_by_exactly_fermata_beats(tempo, extra):
    plain = perform_one(fermata_piece(), tempo_bpm=tempo)
    held = perform_one(fermata_piece(), tempo_bpm=tempo, fermata_beats=extra)
    spb = 60.0 / tempo
    length = held[:, END] - held[:, START]
    plain_length = plain[:, END] - plain[:, START]
    # Note 1 (beat 1, fermata ending at beat 2) is the first fermata: nothing before it moves.
    np.testing.assert_allclose(held[:2, START], plain[:2, START], atol=1e-9)
    assert length[1] == pytest.approx(plain_length[1] + extra * spb)
    # Note 4 (beats 4-6, the second fermata) is held too, after the first hold.
    assert length[4] == pytest.approx(plain_length[4] + extra * spb)
    assert held[4, START] == pytest.approx(plain[4, START] + extra * spb)


def test_fermata_hold_is_at_the_local_tempo():
    """With a constant log deviation c the hold lasts extra * 60 / (bpm * e^c) seconds."""
    c = math.log(1.5)
    plain = perform_one(fermata_piece(), rubato_knots=[c] * 6)
    held = perform_one(fermata_piece(), rubato_knots=[c] * 6, fermata_beats=2.0)
    gain = (held[1, END] - held[1, START]) - (plain[1, END] - plain[1, START])
    assert gain == pytest.approx(2.0 / 1.5)


def test_fermata_shifts_strictly_later_onsets_by_the_hold():
    plain = perform_one(fermata_piece())
    held = perform_one(fermata_piece(), fermata_beats=2.0)
    # beat 3 and beat 4 come after one hold, beats 7 after two (beat 6 is the second hold's end).
    assert held[3, START] - plain[3, START] == pytest.approx(2.0)
    assert held[4, START] - plain[4, START] == pytest.approx(2.0)
    assert held[6, START] - plain[6, START] == pytest.approx(4.0)


def test_fermata_delays_the_onset_right_at_its_end():
    plain = perform_one(fermata_piece())
    held = perform_one(fermata_piece(), fermata_beats=2.0)
    # Note 2 starts on beat 2, where the first fermata ends: it must wait for the hold...
    assert held[2, START] == pytest.approx(held[1, END])
    assert held[2, START] - plain[2, START] == pytest.approx(2.0)
    # ...and keep its own length.
    assert held[2, END] - held[2, START] == pytest.approx(plain[2, END] - plain[2, START])
    # Every note of every voice starting on a fermata's end starts after the held notes end.
    both = P.perform(fermata_piece(), [{"voice": 0}, {"voice": 1}], perf(fermata_beats=2.0))
    bass = both[1]
    assert bass[1, START] == pytest.approx(held[1, END])  # the bass at beat 2


def test_fermata_in_a_lower_voice_holds_every_voice_that_ends_there():
    """The hold is shared: a bass note ending with the top voice's fermata is held too."""
    both = P.perform(fermata_piece(), [{"voice": 0}, {"voice": 1}], perf(fermata_beats=2.0))
    top, bass = both
    assert bass[0, END] == pytest.approx(top[1, END])  # bass beats 0-2 ends with the held top note


# --- windows -----------------------------------------------------------------------------


def test_in_window_keeps_notes_starting_inside_and_cuts_at_the_end():
    v = voice((0, 2, 60), (1.5, 1, 61), (2, 1, 62), (3, 3, 63), (5.5, 1, 64), (6, 1, 65))
    out = P.in_window(v, (2.0, 6.0))
    np.testing.assert_array_equal(out[:, 0], [2, 3, 5.5])  # notes before the start are left out
    np.testing.assert_array_equal(out[:, 1], [1, 3, 0.5])  # 3+3 and 5.5+1 cut at beat 6
    np.testing.assert_array_equal(out[:, 2], [62, 63, 64])


def test_in_window_does_not_change_its_input():
    v = voice((0, 4, 60))
    P.in_window(v, (0.0, 2.0))
    assert v[0, 1] == 4


def test_perform_plays_only_the_window():
    pc = piece(scale(16))
    notes = perform_one(pc, window=[4.0, 8.0])
    np.testing.assert_array_equal(notes[:, PITCH], [64, 65, 66, 67])
    np.testing.assert_allclose(notes[:, START], [0, 1, 2, 3], atol=1e-9)


def test_lead_in_delays_everything():
    notes = P.perform(piece(scale(4)), [{"voice": 0}], {"tempo_bpm": 60.0, "window": [0, 4], "seed": 0})[0]
    np.testing.assert_allclose(notes[:, START], [0.1, 1.1, 2.1, 3.1])  # default lead-in 0.1 s
    notes = perform_one(piece(scale(4)), lead_in=0.5, window=[0, 4])
    np.testing.assert_allclose(notes[:, START], [0.5, 1.5, 2.5, 3.5])


# --- articulation ------------------------------------------------------------------------


@pytest.mark.parametrize("articulation", [0.25, 0.5, 0.9, 1.0, 1.3])
def test_articulation_scales_note_length(articulation):
    notes = perform_one(piece(scale(4, length=2.0)), {"articulation": articulation}, tempo_bpm=120.0)
    np.testing.assert_allclose(notes[:, END] - notes[:, START], articulation * 1.0)
    np.testing.assert_allclose(notes[:, START], [0, 1, 2, 3], atol=1e-9)  # onsets untouched


def test_articulation_never_below_min_note_seconds():
    notes = perform_one(piece(scale(4)), {"articulation": 0.001})
    np.testing.assert_allclose(notes[:, END] - notes[:, START], P.MIN_NOTE_SECONDS)


def test_very_short_notes_get_min_note_seconds():
    v = voice((0, 0.001, 60), (1, 1, 62))  # a grace note: 1 ms at 60 bpm
    notes = perform_one(piece(v))
    assert notes[0, END] - notes[0, START] == pytest.approx(P.MIN_NOTE_SECONDS)
    assert notes[1, END] - notes[1, START] == pytest.approx(1.0)


# --- velocity ----------------------------------------------------------------------------


def test_level_zero_is_base_velocity():
    notes = perform_one(piece(scale(4)))
    np.testing.assert_array_equal(notes[:, VELOCITY], P.BASE_VELOCITY)


@pytest.mark.parametrize("level_db", [-12.0, -6.0, -1.0, 3.0, 6.0])
def test_velocity_follows_the_40_db_law(level_db):
    notes = perform_one(piece(scale(4)), {"level_db": level_db})
    expected = round(P.BASE_VELOCITY * 10 ** (level_db / 40.0))
    np.testing.assert_array_equal(notes[:, VELOCITY], expected)


def test_six_db_louder():
    notes = perform_one(piece(scale(2)), {"level_db": 6.0})
    assert notes[0, VELOCITY] == round(80 * 10 ** (6 / 40)) == 113


@pytest.mark.parametrize("level_db, expected", [(40.0, 127), (12.0, 127), (-200.0, 1), (-80.0, 1)])
def test_velocity_is_clipped_to_midi_range(level_db, expected):
    notes = perform_one(piece(scale(2)), {"level_db": level_db})
    np.testing.assert_array_equal(notes[:, VELOCITY], expected)


def test_dynamics_curve_adds_to_the_level():
    knots = [0.0, 8.0, -8.0]  # dB, every DYNAMICS_KNOT_BEATS (8) beats
    pc = piece(scale(16))
    notes = perform_one(pc, {"level_db": -2.0}, window=[0, 16], dynamics_knots_db=knots)
    beats = np.arange(16.0)
    db = -2.0 + np.interp(beats, [0, 8, 16], knots)
    np.testing.assert_array_equal(notes[:, VELOCITY], np.clip(np.round(80 * 10 ** (db / 40)), 1, 127))
    assert notes[8, VELOCITY] == round(80 * 10 ** (6 / 40))  # +8 - 2 dB at beat 8


def test_dynamics_curve_follows_beats_from_the_window_start():
    pc = piece(scale(16))
    a = perform_one(pc, window=[0, 8], dynamics_knots_db=[0.0, 8.0])
    b = perform_one(pc, window=[8, 16], dynamics_knots_db=[0.0, 8.0])
    np.testing.assert_array_equal(a[:, VELOCITY], b[:, VELOCITY])


# --- onset jitter ------------------------------------------------------------------------


def test_zero_jitter_gives_exact_onsets():
    notes = perform_one(piece(scale(8)), {"onset_jitter_ms": 0.0}, seed=123)
    np.testing.assert_array_equal(notes[:, START], np.arange(8.0))


def test_jitter_is_deterministic_for_a_seed():
    pc = piece(scale(8), scale(8, pitch=48))
    parts = [{"voice": 0, "onset_jitter_ms": 20.0}, {"voice": 1, "onset_jitter_ms": 20.0}]
    a = P.perform(pc, parts, perf(seed=7, lead_in=0.1))
    b = P.perform(pc, parts, perf(seed=7, lead_in=0.1))
    c = P.perform(pc, parts, perf(seed=8, lead_in=0.1))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[0][:, START], a[1][:, START])  # each part draws its own jitter


def test_jitter_moves_onsets_with_its_std_and_keeps_lengths():
    n = 400
    pc = piece(scale(n, pitch=0))
    notes = perform_one(pc, {"onset_jitter_ms": 10.0, "articulation": 0.5}, window=[0, n], seed=1, lead_in=1.0)
    offsets = notes[:, START] - (np.arange(n) + 1.0)
    assert abs(offsets.mean()) < 0.002
    assert offsets.std() == pytest.approx(0.010, rel=0.15)
    np.testing.assert_allclose(notes[:, END] - notes[:, START], 0.5)


def test_jittered_onsets_never_before_zero():
    notes = perform_one(piece(scale(20)), {"onset_jitter_ms": 500.0}, window=[0, 20], seed=2)
    assert notes[:, START].min() >= 0.0


# --- pitch -------------------------------------------------------------------------------


@pytest.mark.parametrize("octave, transpose", [(0, 0), (1, 0), (-1, 0), (0, 5), (0, -3), (-2, 7)])
def test_transposition_and_octave_shift(octave, transpose):
    pc = piece(scale(4))
    notes = perform_one(pc, {"octave": octave}, transpose=transpose)
    np.testing.assert_array_equal(notes[:, PITCH], np.arange(60, 64) + 12 * octave + transpose)


def test_transpose_is_shared_and_octave_is_per_part():
    pc = piece(scale(4), scale(4, pitch=48))
    up, down = P.perform(pc, [{"voice": 0, "octave": 1}, {"voice": 1, "octave": -1}], perf(transpose=2))
    np.testing.assert_array_equal(up[:, PITCH], np.arange(60, 64) + 14)
    np.testing.assert_array_equal(down[:, PITCH], np.arange(48, 52) - 10)


def test_notes_come_sorted_by_onset_then_pitch():
    chord_voice = voice((1, 1, 67), (0, 1, 64), (0, 1, 60), (1, 1, 62))
    notes = perform_one(piece(chord_voice))
    np.testing.assert_array_equal(notes[:, PITCH], [60, 64, 62, 67])
    assert notes.shape == (4, 4)


def test_one_voice_can_serve_several_parts():
    pc = piece(scale(4))
    a, b = P.perform(pc, [{"voice": 0}, {"voice": 0, "octave": -1}], perf())
    np.testing.assert_array_equal(a[:, START], b[:, START])
    np.testing.assert_array_equal(a[:, PITCH] - 12, b[:, PITCH])


# --- controllers -------------------------------------------------------------------------


def test_no_vibrato_no_expression_no_events():
    assert P.controls({}, 10.0) is None
    assert P.controls({"vibrato": 0, "expression_knots_db": []}, 10.0) is None
    assert P.controls({"vibrato": 0.4}, 10.0) is None  # rounds to 0


@pytest.mark.parametrize("vibrato, value", [(1, 1), (40, 40), (63.6, 64), (127, 127), (200, 127), (1000, 127)])
def test_vibrato_is_one_cc1_event_clipped_to_127(vibrato, value):
    events = P.controls({"vibrato": vibrato}, 10.0)
    assert events.shape == (1, 3)
    np.testing.assert_array_equal(events[0], [0.0, P.CC_MODULATION, value])


def test_flat_expression_is_a_single_cc11_event():
    events = P.controls({"expression_knots_db": [0.0, 0.0, 0.0]}, 5.0)
    assert events.shape == (1, 3)
    value = round(127 * 10 ** (-P.EXPRESSION_HEADROOM_DB / 40.0))
    np.testing.assert_array_equal(events[0], [0.0, P.CC_EXPRESSION, value])


def test_expression_curve_every_40_ms_with_repeats_dropped():
    knots = [-20.0, 4.0, -6.0, 0.0]
    duration = 3.5
    events = P.controls({"expression_knots_db": knots}, duration)
    assert set(events[:, 1]) == {P.CC_EXPRESSION}
    times, values = events[:, 0], events[:, 2]
    # Times on the 40 ms grid, starting at 0, increasing; values change at every event.
    steps = times / P.EXPRESSION_STEP_SECONDS
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-9)
    assert times[0] == 0.0 and np.all(np.diff(times) > 0)
    assert np.all(np.diff(values) != 0)
    assert values.min() >= 1 and values.max() <= 127
    # Holding each event's value until the next reproduces the curve sampled every 40 ms.
    grid = np.arange(0.0, duration + P.EXPRESSION_STEP_SECONDS, P.EXPRESSION_STEP_SECONDS)
    curve = np.interp(grid, np.arange(len(knots)) * P.EXPRESSION_KNOT_SECONDS, knots) - P.EXPRESSION_HEADROOM_DB
    expected = np.clip(np.round(127 * 10 ** (curve / 40.0)), 1, 127)
    held = values[np.searchsorted(times, grid + 1e-9, side="right") - 1]
    np.testing.assert_array_equal(held, expected)
    assert len(events) < len(grid)  # the flat tail after the last knot is dropped


def test_expression_clipped_to_127_and_1():
    loud = P.controls({"expression_knots_db": [30.0, 30.0]}, 1.0)
    quiet = P.controls({"expression_knots_db": [-300.0, -300.0]}, 1.0)
    np.testing.assert_array_equal(loud[:, 2], [127])
    np.testing.assert_array_equal(quiet[:, 2], [1])


def test_vibrato_comes_before_expression():
    events = P.controls({"vibrato": 30, "expression_knots_db": [0.0, -10.0]}, 2.0)
    np.testing.assert_array_equal(events[0], [0.0, P.CC_MODULATION, 30])
    assert events[1, 0] == 0.0 and events[1, 1] == P.CC_EXPRESSION
    assert events.dtype == np.float64
