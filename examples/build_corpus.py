"""Build a corpus from Python instead of the command line.

A corpus preset is a plain dict (the same tables as a TOML file in presets/corpora/);
``ensemble_synth.generate`` writes the whole corpus, and ``sample_track`` /
``render_track`` give one track in memory, without writing anything.

    python examples/build_corpus.py -o /tmp/duos --jobs 2
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

import ensemble_synth

PRESET = {
    "name": "duos",
    "description": "Violin-cello and violin-viola duos on the outer voices of Bach chorales.",
    "sample_rate": 22050,
    "tracks": {"train": 3, "valid": 1, "test": 0, "per_room": 2},
    "repertoire": {"source": "music21:bach", "part_policy": "fit", "excerpt_seconds": 4, "exclude": ["bwv255", "bwv48.3"]},
    "ensemble": {"layout": ["violin_cello", "violin_viola"]},
    "performance": {"tempo_bpm": [60, 80], "rubato": 0.05, "onset_jitter_ms": [5, 20], "level_db": [-3, 3]},
    "timbre": {"soundfont": ["timgm6mb", "fluidr3_gm"], "detune_cents": {"normal": [0, 4]}},
    "room": {"room": ["small_rooms", "dry_studio"], "mics": ["ab", "xy"]},
    "mix": {"gain_db": [-2, 2], "loudness_lufs": [-26, -22]},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", type=Path, required=True, help="corpus directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()

    # One track in memory: every random choice is in the spec, rendering is a pure function of it.
    spec = ensemble_synth.sample_track(PRESET, "train", 0, seed=args.seed)
    parts = ", ".join(f"{p['name']} ({p['soundfont']})" for p in spec["parts"])
    print(f"{spec['track_id']}: {spec['source']['id']} at {spec['performance']['tempo_bpm']:.0f} bpm, {parts}, "
          f"{spec['room']['room']} / {spec['room']['mics']}")
    track = ensemble_synth.render_track(spec)
    print(f"{spec['track_id']}: mixture {track.mix.shape[0]} channels x {track.mix.shape[1]} samples, "
          f"{track.report['loudness_lufs']} LUFS")

    # The whole corpus, on a process pool; rerunning completes it and skips what is there.
    summary = ensemble_synth.generate(PRESET, args.out, seed=args.seed, jobs=args.jobs, progress=False)
    print(summary.line())
    with open(args.out / "manifest.csv", newline="") as f:
        for row in csv.DictReader(f):
            print(f"  {row['path']}: {row['duration']} s, {row['instruments']}, {row['room']} (RT60 {row['rt60']} s)")

    # The corpus copy of train 0 is the track rendered above, sample for sample.
    written = json.loads((args.out / "train" / spec["track_id"] / "metadata.json").read_text())
    assert written["rendered"] == track.report
    from ensemble_synth.fileio import read_wav

    mix, _ = read_wav(args.out / "train" / spec["track_id"] / "mix.wav")
    assert np.array_equal(mix, track.mix)


if __name__ == "__main__":
    main()
