"""Renderer speed: our FluidSynth renderer vs the naive per-part PrettyMIDI.fluidsynth path.

Renders the four-part Bach10 chorale 01 with FluidR3_GM at 44.1 kHz, both ways, in the
same run, and prints real-time factors (score seconds per wall second, one core) and the
ratio.  Usage: python benchmarks/bench_render.py [--soundfont fluidr3_gm] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pretty_midi

from ensemble_synth.music import instruments
from ensemble_synth.synthesis import soundfonts
from ensemble_synth.music.score import load_midi
from ensemble_synth.synthesis.fluid_renderer import PartVoice, render_parts

SCORE = Path(__file__).resolve().parents[2] / "shared" / "real" / "bach10" / "01-AchGottundHerr" / "01-AchGottundHerr.mid"
LINEUP = ["violin", "clarinet", "tenor_saxophone", "bassoon"]


def ours(score, font, sr):
    voices = [PartVoice(font, instruments.get(p.instrument).program) for p in score.parts]
    return render_parts(score.parts, voices, sr)


def naive(score, font, sr):
    stems = []
    for part in score.parts:
        midi = pretty_midi.PrettyMIDI()
        inst = pretty_midi.Instrument(program=instruments.get(part.instrument).program)
        inst.notes = [pretty_midi.Note(int(v), int(p), s, e) for s, e, p, v in part.notes]
        midi.instruments.append(inst)
        stems.append(midi.fluidsynth(fs=sr, sf2_path=str(font.path)))
    return stems


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--soundfont", default="fluidr3_gm")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sample-rate", type=int, default=44100)
    args = ap.parse_args()
    font = soundfonts.resolve(args.soundfont)
    score = load_midi(SCORE, ensemble=LINEUP)
    sr = args.sample_rate
    ours(score, font, sr)  # first load of the font's samples into the process cache
    t_ours = best_of(lambda: ours(score, font, sr), args.repeats)
    t_naive = best_of(lambda: naive(score, font, sr), args.repeats)
    duration = score.duration
    print(f"score: {SCORE.name}, {len(score.parts)} parts, {duration:.1f} s; soundfont {font.name}; {sr} Hz")
    print(f"ours : {t_ours:.3f} s  -> {duration / t_ours:7.0f}x real time (score audio), {len(score.parts) * duration / t_ours:7.0f}x per stem")
    print(f"naive: {t_naive:.3f} s  -> {duration / t_naive:7.0f}x real time (score audio), {len(score.parts) * duration / t_naive:7.0f}x per stem")
    print(f"ratio ours/naive speed: {t_naive / t_ours:.1f}x")


if __name__ == "__main__":
    main()
