"""Sampler speed: the tonejs sampler and the STK models vs FluidSynth on the same notes, in the same run.

The notes are the performed parts of bach10_like tracks (violin, clarinet, tenor saxophone,
bassoon: Bach chorale excerpts with the preset's tempo, timing and dynamics). Each part is
rendered three ways, one process, one thread:

- ``fluidsynth``: the FluidSynth path with FluidR3_GM (the instrument's GM program), the
  baseline the corpus path uses today;
- ``fluidsynth-sf2``: FluidSynth playing an SF2 built here from the same tonejs recordings
  (zones split halfway between recorded notes, the sampler's loops, tuning and level
  corrections), the design the sampler was measured against;
- ``sampler``: :mod:`ensemble_synth.synthesis.sampler`;
- ``stk``: :mod:`ensemble_synth.synthesis.physical` (STK's model of the instrument, one drawn
  player; the renderer's CPU time, a child process, is counted).

Prints x real time per core (audio seconds per CPU second, best of ``--repeats``) and the
ratios against FluidSynth. The target is at least 500x per core.

Usage: python benchmarks/bench_sampler.py [--tracks 8] [--repeats 3] [--sample-rate 44100]
"""

from __future__ import annotations

import argparse
import os
import struct
import tempfile
import time
from pathlib import Path

import numpy as np

import ensemble_synth as es
from ensemble_synth.music import instruments
from ensemble_synth.music.arrangement import load_piece
from ensemble_synth.music.performance import perform
from ensemble_synth.synthesis import physical, sample_library, sampler
from ensemble_synth.synthesis.fluid_renderer import PartVoice, get_renderer
from ensemble_synth.synthesis.soundfonts import Soundfont, resolve

LINEUP = ["violin", "clarinet", "tenor_saxophone", "bassoon"]


def performed_parts(tracks: int) -> dict[str, list[np.ndarray]]:
    out: dict[str, list[np.ndarray]] = {name: [] for name in LINEUP}
    for index in range(tracks):
        spec = es.sample_track("bach10_like", split="train", index=index, seed=11)
        notes = perform(load_piece(spec["source"]), spec["parts"], spec["performance"])
        for part, n in zip(spec["parts"], notes):
            out[part["instrument"]].append(n)
    return out


# --- an SF2 of the sampler's recordings (what "turn them into an SF2" would be) ---------------


def _chunk(tag: bytes, data: bytes) -> bytes:
    pad = b"\0" if len(data) % 2 else b""
    return tag + struct.pack("<I", len(data)) + data + pad


def _list(kind: bytes, *chunks: bytes) -> bytes:
    return _chunk(b"LIST", kind + b"".join(chunks))


def _name(text: str) -> bytes:
    return text.encode()[:19].ljust(20, b"\0")


def write_sf2(inst: sampler.SampledInstrument, path: Path) -> None:
    """One preset (bank 0, program 0): one zone per recorded pitch, key ranges split halfway,
    the sampler's loop (crossfade baked in), tuning and level corrections, its release."""
    zones, seen = [], set()
    for zone in inst.zones:
        if zone.pitch not in seen:
            seen.add(zone.pitch)
            zones.append(zone)
    pitches = [z.pitch for z in zones]
    bounds = [0] + [(a + b) // 2 + 1 for a, b in zip(pitches, pitches[1:])] + [128]
    top = max(z.gain for z in zones)
    pcm, headers, gens, bags = bytearray(), [], [], []
    for i, zone in enumerate(zones):
        data = zone.buf[1: 1 + zone.loop_end]
        tail = zone.buf[1 + zone.loop_start: 1 + zone.loop_start + 8]
        body = np.concatenate([data, tail])
        start = len(pcm) // 2
        pcm += (np.clip(body, -1, 1) * 32767).astype("<i2").tobytes() + bytes(2 * 46)
        headers.append(struct.pack("<20sIIIIIBbHH", _name(f"{zone.file}"), start, start + len(body),
                                   start + zone.loop_start, start + zone.loop_end, inst.sample_rate,
                                   zone.pitch, 0, 0, 1))
        bags.append(len(gens))
        attenuation = int(round(-200 * np.log10(zone.gain / top)))  # centibels
        release = int(round(1200 * np.log2(inst.release_s / 5)))  # timecents (to -100 dB; ours decays to -43)
        gens += [struct.pack("<HBB", 43, bounds[i], bounds[i + 1] - 1),
                 struct.pack("<Hh", 48, attenuation), struct.pack("<Hh", 38, release),
                 struct.pack("<Hh", 52, int(round(-zone.cents))), struct.pack("<Hh", 54, 1),
                 struct.pack("<Hh", 58, zone.pitch), struct.pack("<Hh", 53, i)]
    info = _list(b"INFO", _chunk(b"ifil", struct.pack("<HH", 2, 1)), _chunk(b"isng", b"EMU8000\0"),
                 _chunk(b"INAM", b"tonejs\0\0"))
    sdta = _list(b"sdta", _chunk(b"smpl", bytes(pcm)))
    terminal_mod = bytes(10)
    pdta = _list(
        b"pdta",
        _chunk(b"phdr", struct.pack("<20sHHHIII", _name("tonejs"), 0, 0, 0, 0, 0, 0)
               + struct.pack("<20sHHHIII", _name("EOP"), 0, 0, 1, 0, 0, 0)),
        _chunk(b"pbag", struct.pack("<HH", 0, 0) + struct.pack("<HH", 1, 0)),
        _chunk(b"pmod", terminal_mod),
        _chunk(b"pgen", struct.pack("<HH", 41, 0) + struct.pack("<HH", 0, 0)),
        _chunk(b"inst", struct.pack("<20sH", _name("tonejs"), 0) + struct.pack("<20sH", _name("EOI"), len(zones))),
        _chunk(b"ibag", b"".join(struct.pack("<HH", g, 0) for g in bags) + struct.pack("<HH", len(gens), 0)),
        _chunk(b"imod", terminal_mod),
        _chunk(b"igen", b"".join(gens) + struct.pack("<HH", 0, 0)),
        _chunk(b"shdr", b"".join(headers) + struct.pack("<20sIIIIIBbHH", _name("EOS"), 0, 0, 0, 0, 0, 0, 0, 0, 0)),
    )
    path.write_bytes(_chunk(b"RIFF", b"sfbk" + info + sdta + pdta))


def cpu_seconds() -> float:
    """This process's CPU time and its finished children's (the STK renderer)."""
    times = os.times()
    return time.process_time() + times.children_user + times.children_system


def cpu_best(fn, repeats: int) -> tuple[float, np.ndarray]:
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = cpu_seconds()
        out = fn()
        best = min(best, cpu_seconds() - t0)
    return best, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sample-rate", type=int, default=44100)
    args = ap.parse_args()
    sr = args.sample_rate
    parts = performed_parts(args.tracks)
    fluid = get_renderer(sr)
    gm = resolve("fluidr3_gm")
    totals = {"fluidsynth": [0.0, 0.0], "fluidsynth-sf2": [0.0, 0.0], "sampler": [0.0, 0.0], "stk": [0.0, 0.0]}
    print(f"{'instrument':16s} {'notes':>6s} {'audio s':>8s} {'fluidsynth':>11s} {'fluid-sf2':>10s} {'sampler':>9s} "
          f"{'stk':>7s}  (x real time per core)")
    with tempfile.TemporaryDirectory() as tmp:
        for name, note_sets in parts.items():
            package = sample_library.package_for("tonejs", name)
            t0 = time.perf_counter()
            inst = sampler.load_instrument(package, sr)
            load_s = time.perf_counter() - t0
            sf2 = Path(tmp) / f"{name}.sf2"
            write_sf2(inst, sf2)
            sf2_voice = PartVoice(Soundfont(f"tonejs_{name}", sf2), 0)
            gm_voice = PartVoice(gm, instruments.get(name).program)
            voice = sampler.SampledVoice(package, 0.0, 1)
            model = physical.PhysicalVoice.from_record(physical.draw_voice(name, np.random.default_rng(1)), 0.0)
            row = {}
            for key, render in (("fluidsynth", lambda n: fluid.render(n, gm_voice)),
                                ("fluidsynth-sf2", lambda n: fluid.render(n, sf2_voice)),
                                ("sampler", lambda n: sampler.render(n, voice, sr)),
                                ("stk", lambda n: physical.render(n, model, sr))):
                cpu = audio = 0.0
                for notes in note_sets:
                    render(notes)  # warm: the font or the recordings loaded once per process
                    seconds, stem = cpu_best(lambda: render(notes), args.repeats)
                    cpu += seconds
                    audio += len(stem) / sr
                row[key] = audio / cpu
                totals[key][0] += audio
                totals[key][1] += cpu
            count = sum(len(n) for n in note_sets)
            print(f"{name:16s} {count:6d} {audio:8.1f} {row['fluidsynth']:10.0f}x {row['fluidsynth-sf2']:9.0f}x "
                  f"{row['sampler']:8.0f}x {row['stk']:6.0f}x  (recordings loaded in {load_s:.2f} s)")
    rate = {k: a / c for k, (a, c) in totals.items()}
    print(f"{'all':16s} {'':6s} {totals['sampler'][0]:8.1f} {rate['fluidsynth']:10.0f}x {rate['fluidsynth-sf2']:9.0f}x "
          f"{rate['sampler']:8.0f}x {rate['stk']:6.0f}x")
    print(f"sampler / fluidsynth (FluidR3_GM): {rate['sampler'] / rate['fluidsynth']:.2f}; "
          f"sampler / fluidsynth (SF2 of the same recordings): {rate['sampler'] / rate['fluidsynth-sf2']:.2f}; "
          f"target >= 500x per core: {'met' if rate['sampler'] >= 500 else 'MISSED'} ({rate['sampler']:.0f}x)")
    print(f"stk / fluidsynth (FluidR3_GM): {rate['stk'] / rate['fluidsynth']:.2f}; "
          f"target >= 500x per core: {'met' if rate['stk'] >= 500 else 'MISSED'} ({rate['stk']:.0f}x)")


if __name__ == "__main__":
    main()
