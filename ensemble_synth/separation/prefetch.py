"""Training batches drawn ahead by a background thread, so that a GPU does not wait for reading.

The trainer used to draw each batch when it needed it: soundfile reads of every stem segment
and resampling to the model's rate, in the main thread, while the GPU waited (an H200 trained
the ``small`` model at ~10 steps a second). :class:`BatchPrefetcher` draws the same batches
from the same generator in the same order, a few ahead, and reads the stems of an example
concurrently; the trainer checkpoints the generator's state after the last batch it *took*
(``state``), so a resumed run continues the same stream. On the CPU it draws each batch when
needed, as before (:func:`training_plan`).
"""

from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

PREFETCH_BATCHES = 3  # batches drawn ahead; 0 draws each batch when it is taken, in the caller's thread


def training_plan(on_cpu: bool) -> tuple[int, int]:
    """(batches drawn ahead, threads reading an example's stems) of the trainer. On the CPU each
    batch is drawn when needed: torch's threads use the cores, and a drawing thread beside them
    made steps slower. On a GPU, ``PREFETCH_BATCHES`` ahead and one reader a core, up to 8
    (libsndfile and resampling release the GIL)."""
    return (0, 0) if on_cpu else (PREFETCH_BATCHES, min(8, os.cpu_count() or 1))


class BatchPrefetcher:
    """``data.batch(rng, size)`` one after another, drawn up to ``depth`` batches ahead by a
    background thread (none with ``depth`` 0: each batch is drawn by ``next()``).

    ``next()`` gives the next batch, or raises the exception its drawing raised; ``state`` is
    ``rng.bit_generator.state`` right after the last batch ``next()`` gave. ``readers`` > 1:
    threads that read each example's stems. ``close()`` (or leaving the ``with`` block) stops
    the thread after the batch it is drawing and joins it and the readers.
    """

    def __init__(self, data, rng: np.random.Generator, size: int, depth: int = PREFETCH_BATCHES, readers: int = 0):
        self._data, self._rng, self._size = data, rng, size
        self.state = rng.bit_generator.state
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="stem-reader") if readers > 1 else None
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="batch-prefetcher", daemon=True) if depth else None
        if self._thread is not None:
            self._thread.start()

    def _draw(self) -> tuple[np.ndarray, dict]:
        return self._data.batch(self._rng, self._size, self._readers), self._rng.bit_generator.state

    def _produce(self) -> None:
        try:
            while not self._stop.is_set():
                self._put(self._draw())
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)

    def _put(self, item) -> None:
        while not self._stop.is_set():
            try:
                return self._queue.put(item, timeout=0.1)
            except queue.Full:
                pass

    def next(self) -> np.ndarray:
        item = self._queue.get() if self._thread is not None else self._draw()
        if isinstance(item, BaseException):
            raise item
        batch, self.state = item
        return batch

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._readers is not None:
            self._readers.shutdown()

    def __enter__(self) -> BatchPrefetcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
