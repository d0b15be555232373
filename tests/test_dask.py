"""The Dask path: `generate --scheduler ADDRESS` on a real distributed.LocalCluster.

Two worker processes, one thread each (as `dask worker --nworkers 2 --nthreads 1` would run
them); the corpus must have the same bytes as a local `--jobs 2` run. A scheduler address
where nothing answers is one line and exit 2 within a few seconds.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import tomli_w

from ensemble_synth.cli import main

distributed = pytest.importorskip("distributed")

PRESET = {
    "name": "dasky",
    "description": "Dask test corpus",
    "sample_rate": 16000,
    "write": {"dry": True, "midi": True},
    "tracks": {"train": 3, "valid": 1, "test": 1, "per_room": 2},
    "repertoire": {"source": "music21:bach", "part_policy": "fit", "excerpt_seconds": 3},
    "ensemble": {"layout": ["bach10", "string_trio"]},
    "timbre": {"soundfont": ["timgm6mb", "fluidr3_gm"]},
    "room": {"room": ["small_rooms", "dry_studio"], "mics": ["ortf", "spots"]},
}
SEED = 3
FEW_SECONDS = 8.0  # the connection timeout is 5 s; a refused port is refused at once


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def preset_toml(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("preset") / "dasky.toml"
    path.write_text(tomli_w.dumps(PRESET))
    return path


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  host="127.0.0.1") as local:
        yield local


def generate_args(preset_toml: Path, out: Path, rir_cache: Path, *extra: str) -> list[str]:
    return ["generate", "--preset", str(preset_toml), "-o", str(out), "--seed", str(SEED),
            "--rir-cache", str(rir_cache), "--quiet", *extra]


def test_scheduler_gives_the_same_bytes_as_local_jobs(cluster, preset_toml, tmp_path, capsys):
    # Separate RIR caches: each run simulates its own rooms (on the workers for Dask).
    on_dask, local = tmp_path / "dask", tmp_path / "local"
    assert main(generate_args(preset_toml, on_dask, tmp_path / "rirs-dask", "--scheduler", cluster.scheduler_address)) == 0
    assert "5 tracks (5 rendered" in capsys.readouterr().out
    with distributed.Client(cluster.scheduler_address) as client:  # the work ran on the two workers
        assert len(client.scheduler_info()["workers"]) == 2
    assert main(generate_args(preset_toml, local, tmp_path / "rirs-local", "--jobs", "2")) == 0
    a, b = files(on_dask), files(local)
    assert sorted(a) == sorted(b) and "card.md" in a and "manifest.csv" in a
    assert [name for name in a if a[name] != b[name]] == []
    assert not [p for p in on_dask.rglob(".*")], "temporaries left behind"

    # A rerun on the cluster finds every track finished.
    assert main(generate_args(preset_toml, on_dask, tmp_path / "rirs-dask", "--scheduler", cluster.scheduler_address)) == 0
    assert "0 rendered, 5 already there" in capsys.readouterr().out
    assert files(on_dask) == b


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _refused(tmp_path, capsys, address: str) -> str:
    out = tmp_path / "corpus"
    t0 = time.monotonic()
    rc = main(["generate", "--preset", "demo", "-o", str(out), "--scheduler", address, "--quiet"])
    elapsed = time.monotonic() - t0
    err = capsys.readouterr().err
    assert rc == 2 and elapsed < FEW_SECONDS, (rc, elapsed)
    assert err.startswith(f"error: --scheduler {address}: ") and err.count("\n") == 1, err
    assert not out.exists()
    return err


def test_a_closed_port_is_one_line_exit_2_at_once(tmp_path, capsys):
    err = _refused(tmp_path, capsys, f"tcp://127.0.0.1:{_free_port()}")
    assert "cannot reach it (Connection refused)" in err


def test_a_port_that_never_answers_is_one_line_exit_2_within_the_timeout(tmp_path, capsys):
    with socket.socket() as listener:  # accepts the connection (the kernel does) but never speaks
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        err = _refused(tmp_path, capsys, f"tcp://127.0.0.1:{port}")
    assert "no Dask scheduler answered" in err


@pytest.mark.parametrize("address", ["nonsense", "tcp://127.0.0.1"])
def test_a_bad_address_is_one_line_exit_2(tmp_path, capsys, address):
    _refused(tmp_path, capsys, address)
