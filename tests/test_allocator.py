"""jemalloc for the benchmark's training processes, and how many train side by side."""

import os
import subprocess
import sys

import pytest

from ensemble_synth.separation.allocator import (
    find_jemalloc,
    jemalloc_preloaded,
    training_allocator_env,
)
from ensemble_synth.synth_vs_real import training_workers


def _child_env(key):
    return subprocess.run([sys.executable, "-c", f"import os; print(os.environ.get({key!r}, ''))"],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.skipif(find_jemalloc() is None, reason="libjemalloc2 not installed")
def test_processes_started_inside_preload_jemalloc_and_the_environment_is_restored(monkeypatch):
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    monkeypatch.setenv("MALLOC_CONF", "narenas:1")
    with training_allocator_env() as preloaded:
        assert preloaded
        assert "jemalloc" in _child_env("LD_PRELOAD")
        assert _child_env("MALLOC_CONF") == "dirty_decay_ms:-1,muzzy_decay_ms:-1"
    assert "LD_PRELOAD" not in os.environ and os.environ["MALLOC_CONF"] == "narenas:1"
    assert not jemalloc_preloaded()


def test_an_existing_preload_is_left_as_it_is(monkeypatch):
    monkeypatch.setenv("LD_PRELOAD", "/somewhere/libjemalloc.so.2")
    monkeypatch.setenv("MALLOC_CONF", "narenas:1")
    with training_allocator_env() as preloaded:
        assert preloaded and os.environ["MALLOC_CONF"] == "narenas:1"
    assert os.environ["LD_PRELOAD"] == "/somewhere/libjemalloc.so.2"


def test_side_by_side_models_never_exceed_jobs_variants_or_cores():
    cores = os.cpu_count()
    assert training_workers(1, 5) == (1, cores)
    assert training_workers(8, 1) == (1, cores)
    workers, threads = training_workers(64, 64)
    assert workers == cores and threads == 1
