"""A bounded pool for detector work (decode, inference, drawing).

Detection is the expensive, memory-hungry step (decoded pixels, network tensors), so it runs on
a fixed number of worker threads (onnxruntime and OpenCV release the GIL), with at most
`queue` more jobs waiting. A job that finds the pool and its queue full is refused at once
(`Overloaded`, answered 503 with Retry-After) rather than piling up: memory stays bounded
however many clients arrive.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class Overloaded(RuntimeError):
    """Every worker is busy and the queue is full."""


class DetectorPool:
    def __init__(self, workers: int, queue: int) -> None:
        self.workers, self.queue = workers, queue
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="envwatch-detect")
        self._slots = threading.BoundedSemaphore(workers + queue)
        self._lock = threading.Lock()
        self._admitted = 0
        self._running = 0

    @property
    def queued(self) -> int:
        """Jobs admitted but not yet running (the queue depth exported to /metrics)."""
        with self._lock:
            return self._admitted - self._running

    @property
    def running(self) -> int:
        with self._lock:
            return self._running

    def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run `fn(*args)` on a worker and wait for it; `Overloaded` if there is no room."""
        if not self._slots.acquire(blocking=False):
            raise Overloaded(f"{self.workers} detections running and {self.queue} waiting")
        return self._submit(fn, *args).result()

    def run_waiting(self, fn: Callable[..., T], *args: object) -> T:
        """Like `run`, but wait for room instead of refusing: for background work (batch jobs),
        which must share the detector's bounded capacity with uploads without being turned away."""
        return self.submit_waiting(fn, *args).result()

    def submit_waiting(self, fn: Callable[..., T], *args: object) -> Future[T]:
        """`run_waiting` without waiting for the result: a batch job records one batch while the next runs."""
        self._slots.acquire()
        return self._submit(fn, *args)

    def _submit(self, fn: Callable[..., T], *args: object) -> Future[T]:
        """`fn(*args)` on a worker, holding the slot its caller acquired until it has finished."""
        with self._lock:
            self._admitted += 1
        try:
            future = self._executor.submit(self._tracked, fn, *args)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(lambda _: self._release())
        return future

    def _release(self) -> None:
        with self._lock:
            self._admitted -= 1
        self._slots.release()

    def _tracked(self, fn: Callable[..., T], *args: object) -> T:
        with self._lock:
            self._running += 1
        try:
            return fn(*args)
        finally:
            with self._lock:
                self._running -= 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
