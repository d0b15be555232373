"""Corpora from the bundled presets keep their bytes: the redesign guard.

The fixture was recorded before the package was reorganised (tests/regression/record.py);
any change to a sampled value or a random stream shows up here, and any change to the
rendering too where the numeric stack is the one the fixture was recorded under.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "regression"))
from record import FIXTURE, PRESETS, SPEC, generate_all, stack  # noqa: E402


@pytest.fixture(scope="module")
def digests(tmp_path_factory):
    return generate_all(tmp_path_factory.mktemp("regression"))


@pytest.mark.parametrize("preset", PRESETS)
def test_track_specs_unchanged(digests, preset):
    """Every random choice of every track, whatever libraries render it."""
    expected = json.loads(FIXTURE.read_text())[preset]
    got = digests[preset]
    assert sorted(got) == sorted(expected)
    changed = [name for name in expected if name.endswith(SPEC) and got[name] != expected[name]]
    assert not changed, f"{preset}: track specs changed: {changed}"


@pytest.mark.parametrize("preset", PRESETS)
def test_corpus_bytes_unchanged(digests, preset):
    fixture = json.loads(FIXTURE.read_text())
    moved = {k: (v, stack().get(k)) for k, v in fixture["_stack"].items() if stack().get(k) != v}
    if moved:
        pytest.skip("audio bytes are pinned under the fixture's libraries; here "
                    + ", ".join(f"{k} {old} -> {new}" for k, (old, new) in moved.items())
                    + " (re-record with tests/regression/record.py)")
    expected, got = fixture[preset], digests[preset]
    changed = [name for name in expected if got[name] != expected[name]]
    assert not changed, f"{preset}: files changed: {changed}"
