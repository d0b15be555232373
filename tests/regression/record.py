"""Record (or compute) the sha256 of every file of small corpora generated from the bundled presets.

``python tests/regression/record.py`` rewrites ``corpus_sha256.json``; the test
``tests/test_regression.py`` regenerates the same corpora and compares. Run it only when a
change of the corpus bytes is intended, and say so in the commit, or when the numeric stack
recorded under ``_stack`` (numpy, scipy, pyroomacoustics, FluidSynth ...) has moved on: another
release may round differently, so the audio bytes are compared only under the recorded stack,
and the track specs (each metadata.json without its measured ``rendered`` table) always.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "corpus_sha256.json"
PRESETS = ("string_quartet", "bach10_like", "woodwind_quintet")
TRACKS = {"train": 2, "valid": 1, "test": 0}
SEED = 7


def file_digest(path: Path) -> str:
    if path.name == "corpus.toml":  # package and library versions are recorded there; leave them out
        record = tomllib.loads(path.read_text())
        record.pop("versions", None)
        return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


# The corpus card (card.md, card.png) is a summary of the files pinned here, written at the end
# of a run; its figure's bytes depend on the matplotlib version and fonts, so it is left out of
# the fixture (tests/test_card.py checks the card itself, and that it is deterministic).
NOT_PINNED = {"card.md", "card.png"}


SPEC = "#spec"  # suffix of a metadata.json's second digest: the track spec without what was measured


def spec_digest(path: Path) -> str:
    record = json.loads(path.read_text())
    record.pop("rendered", None)  # loudness, gains and lengths measured on the audio
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def stack() -> dict[str, str | None]:
    """The libraries whose arithmetic makes the audio bytes (not the ensemble_synth version)."""
    from ensemble_synth.versions import versions

    return {k: v for k, v in versions().items() if k != "ensemble_synth"}


def corpus_digests(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        name = str(p.relative_to(root))
        if p.is_file() and name not in NOT_PINNED:
            out[name] = file_digest(p)
            if p.name == "metadata.json":
                out[name + SPEC] = spec_digest(p)
    return out


def generate_all(work: Path) -> dict[str, dict[str, str]]:
    from ensemble_synth import generate

    out = {}
    for name in PRESETS:
        generate(name, work / name, seed=SEED, tracks=TRACKS, jobs=1, write_dry=True, write_midi=True,
                 rir_cache=work / "rirs", progress=False)
        out[name] = corpus_digests(work / name)
    return out


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        digests = {"_stack": stack(), **generate_all(Path(tmp))}
    FIXTURE.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")
    print(f"{FIXTURE}: {sum(len(v) for k, v in digests.items() if k != '_stack')} digests", file=sys.stderr)
