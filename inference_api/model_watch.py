"""Serve the registry's promoted model, and swap to a newly promoted one without downtime.

The detector lives in `AppState.detector`; a request takes its reference once (the
`get_detector` dependency), so swapping the attribute is atomic for requests: those in flight
finish on the old detector, later ones get the new one, and nobody waits. The new model is
loaded completely before the swap; if it fails to load, the old one keeps serving and the error
is kept for `GET /v1/models` and the reload endpoint to report.

A thread polls the registry file's mtime every `model_poll_s` (cheap: one stat), so a promotion
made with `envwatch models promote` on the server reaches every worker process on its own;
`POST /v1/models/reload` does the same check at once. With `ENVWATCH_MODEL_PATH` set the model is
pinned and nothing is watched.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from inference_api.deps import AppState
from model.registry import Registry

log = logging.getLogger("envwatch.model")


class ModelWatcher:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.error: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._seen: int | None = None
        self._thread: threading.Thread | None = None

    @property
    def pinned(self) -> bool:
        return self.state.settings.model_path is not None

    def source(self) -> Path:
        """The ONNX file to serve: the pinned one, else the registry's promoted version."""
        settings = self.state.settings
        if settings.model_path is not None:
            return settings.model_path
        return Registry(settings.model_registry).promoted_path()

    def _stamp(self) -> int | None:
        try:
            return (Path(self.state.settings.model_registry) / "registry.json").stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def check(self, force: bool = False) -> bool:
        """Load the model to serve if the registry changed (always with `force`); True when it was swapped."""
        with self._lock:
            stamp = self._stamp()
            if not force and self.state.detector is not None and stamp == self._seen:
                return False
            self._seen = stamp
            return self._load()

    def _load(self) -> bool:
        from model.runtime import Detector

        current = self.state.detector
        try:
            path = self.source()
            if current is not None and Path(current.path).resolve() == path.resolve() and not self.pinned:
                return False
            detector = Detector.load(path)
        except Exception as exc:  # kept and reported; the old detector, if any, keeps serving
            self.error = f"{type(exc).__name__}: {exc}"
            if current is None:
                self.state.detector_error = self.error
            log.error("model failed to load", extra={"error": self.error})
            return False
        self.state.detector, self.state.detector_error, self.error = detector, None, None
        log.info("model loaded", extra={"model_path": str(path), "model_version": detector.version})
        return True

    def start(self) -> None:
        if self.pinned:
            return
        self._thread = threading.Thread(target=self._run, name="envwatch-model-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.state.settings.model_poll_s):
            self.check()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
