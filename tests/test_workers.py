"""Pool workers end with their parent: a SIGKILLed `generate` leaves no workers behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import tomli_w
from test_corpus import CLI, TINY

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc to find child processes")


def children(pid: int) -> set[int]:
    """Live (not zombie) children of ``pid``, from /proc/<pid>/task/*/children."""
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.update(int(c) for c in (task / "children").read_text().split())
        except OSError:
            pass
    return {c for c in found if alive(c)}


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for a reaper (a container's init may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(condition, seconds: float, step: float = 0.02):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    return condition()


def kill_all(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def slow_preset(tmp_path) -> Path:
    """TINY with one track a room: eight room groups, so the workers are busy when the parent dies."""
    preset = {**TINY, "write": {"dry": False, "midi": False}, "tracks": {"train": 8, "valid": 0, "test": 0, "per_room": 1}}
    path = tmp_path / "slow.toml"
    path.write_text(tomli_w.dumps(preset))
    return path


def test_workers_exit_when_generate_is_killed(slow_preset, tmp_path):
    command = [*CLI, "generate", "--preset", str(slow_preset), "-o", str(tmp_path / "corpus"), "--jobs", "2",
               "--rir-cache", str(tmp_path / "rirs"), "--quiet"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    workers: set[int] = set()
    try:
        workers = wait_for(lambda: len(children(proc.pid)) >= 2 and children(proc.pid), 60)
        assert proc.poll() is None, proc.stderr.read().decode()
        assert len(workers) >= 2, "the pool's workers never started"
        time.sleep(0.5)  # into their first task
        os.kill(proc.pid, signal.SIGKILL)  # the parent only, not its process group
        proc.wait()
        left = wait_for(lambda: not any(alive(w) for w in workers), 5) or {w for w in workers if alive(w)}
        assert left is True, f"workers {sorted(left)} outlived their parent"
    finally:
        kill_all([proc.pid, *workers])
        proc.wait()
        proc.stderr.close()


# --- the initializer on its own -----------------------------------------------------------

# A middle process forks a child that calls the initializer, prints the child's pid and waits
# to be killed; the child then sleeps "forever".
FAMILY = textwrap.dedent("""
    import os, sys, time
    from ensemble_synth import workers
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        {init}
        time.sleep(120)
        os._exit(0)
    print(pid, flush=True)
    time.sleep(120)
""")


@pytest.mark.parametrize("init", [
    "workers.die_with_parent(parent)",
    "workers.watch_parent(parent, interval=0.05)",  # the portable fallback, used where prctl is missing
])
def test_a_worker_dies_with_its_parent(init):
    script = FAMILY.format(init=init)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True)
    child = None
    try:
        child = int(proc.stdout.readline())
        time.sleep(0.3)  # the child has run its initializer
        assert alive(child)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert wait_for(lambda: not alive(child), 5), "the child outlived its parent"
    finally:
        kill_all([proc.pid] + ([child] if child else []))
        proc.wait()
        proc.stdout.close()


def test_a_parent_already_gone_is_noticed():
    # The pool owner's pid is passed in: a worker whose owner died before the initializer ran exits at once.
    script = "from ensemble_synth import workers; workers.die_with_parent(1); import time; time.sleep(60)"
    proc = subprocess.run([sys.executable, "-c", script], timeout=30, check=False)
    assert proc.returncode == 1
