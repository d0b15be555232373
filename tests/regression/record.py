"""Record (or compute) the sha256 of every file of small corpora generated from the bundled presets.

``python tests/regression/record.py`` rewrites ``corpus_sha256.json``; the test
``tests/test_regression.py`` regenerates the same corpora and compares. Run it only when a
change of the corpus bytes is intended, and say so in the commit, or when the numeric stack
recorded under ``_stack`` (numpy, scipy, pyroomacoustics, FluidSynth ...) has moved on: another
release may round differently, so the audio bytes are compared only under the recorded stack,
and the track specs (each metadata.json without its measured ``rendered`` table) always.
The corpora are generated in a process whose numpy and OpenBLAS use no AVX-512 kernels
(:func:`without_avx512`): those round differently in the last bit, so a CPU with AVX-512
would otherwise draw other values than the fixture's.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
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


def without_avx512() -> dict[str, str]:
    """The environment in which numpy dispatches no kernel above AVX2 (x86-64-v3), with the default BLAS threads.

    numpy's AVX-512 exp, log and sin round differently in the last bit, which moves values
    drawn from distributions, and so the track specs, on CPUs that have it; the fixture is
    recorded, and compared, with the AVX2 kernels. Other CPUs are left as they are."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:
        __cpu_dispatch__, __cpu_features__ = [], {}
    higher = [f for f in __cpu_dispatch__ if f.startswith(("X86_V4", "AVX512")) and __cpu_features__.get(f)]
    # BLAS threads as when the fixture was recorded: the default, whatever the caller's
    # environment sets (the thread count changes OpenBLAS's rounding).
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    if higher:
        env["NPY_DISABLE_CPU_FEATURES"] = " ".join(higher)
        env["OPENBLAS_CORETYPE"] = "Haswell"  # numpy's and scipy's OpenBLAS: AVX2 kernels too
    return env


def _generate_here(work: Path) -> dict[str, dict[str, str]]:
    from ensemble_synth import generate

    out = {}
    for name in PRESETS:
        generate(name, work / name, seed=SEED, tracks=TRACKS, jobs=1, write_dry=True, write_midi=True,
                 rir_cache=work / "rirs", progress=False)
        out[name] = corpus_digests(work / name)
    return out


def generate_all(work: Path) -> dict[str, dict[str, str]]:
    """The digests of every preset's corpus, generated in a process without numpy's AVX-512 kernels."""
    subprocess.run([sys.executable, __file__, "--generate", str(work)], env=without_avx512(), check=True)
    return json.loads((work / "digests.json").read_text())


if __name__ == "__main__" and sys.argv[1:2] == ["--generate"]:
    work = Path(sys.argv[2])
    (work / "digests.json").write_text(json.dumps(_generate_here(work)))
elif __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        digests = {"_stack": stack(), **generate_all(Path(tmp))}
    FIXTURE.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")
    print(f"{FIXTURE}: {sum(len(v) for k, v in digests.items() if k != '_stack')} digests", file=sys.stderr)
