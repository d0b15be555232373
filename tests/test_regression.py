"""Corpora from the bundled presets keep their bytes: the redesign guard.

The fixture was recorded before the package was reorganised (tests/regression/record.py);
any change to a sampled value, a random stream or the rendering shows up here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "regression"))
from record import FIXTURE, PRESETS, generate_all  # noqa: E402


@pytest.fixture(scope="module")
def digests(tmp_path_factory):
    return generate_all(tmp_path_factory.mktemp("regression"))


@pytest.mark.parametrize("preset", PRESETS)
def test_corpus_bytes_unchanged(digests, preset):
    expected = json.loads(FIXTURE.read_text())[preset]
    got = digests[preset]
    assert sorted(got) == sorted(expected)
    changed = [name for name in expected if got[name] != expected[name]]
    assert not changed, f"{preset}: files changed: {changed}"
