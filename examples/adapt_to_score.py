"""Adapt a separator to one piece from its score, in Python.

``ensemble_synth.adapt`` renders renditions of the score (tempo, rubato, fermatas, timing,
dynamics and timbre drawn per rendition) and fine-tunes a general model on them; without a
general model it trains one from scratch. The result is a model.pt that separates that
piece: here the mixture of one held-out rendition.

    python examples/adapt_to_score.py score.mid --ensemble violin,clarinet,tenor_saxophone,bassoon -o /tmp/adapted
    python examples/adapt_to_score.py score.mid --model runs/general/model.pt -o /tmp/adapted --minutes 5
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import ensemble_synth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("score", type=Path)
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=None, help="a general model.pt to start from")
    parser.add_argument("--ensemble", default=None, help="comma list of the parts' instruments, in order")
    parser.add_argument("--renditions", type=int, default=16)
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=None, help="stop after this many training steps")
    args = parser.parse_args()

    ensemble = args.ensemble.split(",") if args.ensemble else None
    # A quick look: no room (dry stems), the tiny model when training from scratch.
    base = {"name": "example", "room": {"enabled": False, "room": "dry_studio", "mics": "mono"},
            "timbre": {"soundfont": ["timgm6mb", "fluidr3_gm"]}}
    model_path = ensemble_synth.adapt(args.score, args.out, model=args.model, ensemble=ensemble,
                                      renditions=args.renditions, minutes=args.minutes, max_steps=args.steps,
                                      base_preset=base, model_preset="tiny" if args.model is None else "small",
                                      progress=False, log=print)
    record = json.loads((args.out / "adapt.json").read_text())
    print(f"{model_path}: best validation SDR {record['valid_sdr_best']:.2f} dB at epoch {record['best_epoch']}")

    separator = ensemble_synth.load_separator(model_path)
    held_out = sorted((args.out / "renditions" / "valid").glob("*/mix.wav"))[0]
    mix, rate = ensemble_synth.read_wav(held_out)
    estimates = separator.separate(mix, rate)
    shapes = ", ".join(f"{name} {audio.shape}" for name, audio in estimates.items())
    print(f"separated {held_out.parent.name}: {shapes}")


if __name__ == "__main__":
    main()
