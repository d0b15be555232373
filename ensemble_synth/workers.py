"""Worker processes that do not outlive their parent.

A pool worker blocked on its task queue keeps running (and holding its memory) when the
process that owns the pool is killed with SIGKILL: nothing closes the queue for it.
:func:`die_with_parent` is a pool initializer that ties the worker's life to its parent's:
on Linux the kernel sends the worker SIGKILL when the parent dies (``PR_SET_PDEATHSIG``);
elsewhere a daemon thread polls ``os.getppid()`` and exits when the worker is reparented.

Linux ties the death signal to the *thread* that forked the worker, not to the process.
A ``ProcessPoolExecutor`` with ``fork`` forks its workers in the thread that first calls
``submit``; keep that thread alive for the pool's life (the corpus generator creates, uses
and shuts down its pool in one call, so it does).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
POLL_SECONDS = 0.5


def _linux_death_signal(sig: int) -> bool:
    """Ask the kernel for ``sig`` when the parent dies; False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def watch_parent(parent: int, interval: float = POLL_SECONDS) -> threading.Thread:
    """The portable fallback: a daemon thread that ends the process once its parent is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    thread = threading.Thread(target=watch, name="watch-parent", daemon=True)
    thread.start()
    return thread


def die_with_parent(parent: int | None = None, sig: int = signal.SIGKILL) -> None:
    """Pool initializer: end this process when ``parent`` (by default the current parent) dies.

    Pass the pool owner's pid (``initargs=(os.getpid(),)``): a parent that died before this
    ran is then noticed too, instead of the worker adopting its new parent (init) as its own.
    """
    if parent is None:
        parent = os.getppid()
    if not _linux_death_signal(sig):
        watch_parent(parent)
    if os.getppid() != parent:  # died before the death signal was armed
        os._exit(1)
