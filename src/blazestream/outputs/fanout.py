"""Writing to several outputs at once: a failing output is switched off, the others go on."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from blazestream.outputs.base import FrameResult, ResultSink

log = logging.getLogger(__name__)


class SinkFanout:
    """A ResultSink over many; problems are appended to `errors` (the run's summary) and logged."""

    def __init__(self, sinks: Sequence[ResultSink], errors: list[str]) -> None:
        self.sinks = list(sinks)
        self.errors = errors
        self._failed: set[int] = set()

    def write(self, results: list[FrameResult]) -> None:
        for index, sink in enumerate(self.sinks):
            if index in self._failed:
                continue
            try:
                sink.write(results)
            except Exception as exc:
                self._failed.add(index)
                message = f"{type(sink).__name__}: {exc}"
                self.errors.append(message)
                log.error("output %s failed and is switched off; the others go on", message)

    def camera_added(self, camera_id: str) -> None:
        """Tell the outputs that keep per-camera state (`add_camera`, optional) about a new camera."""
        self._each("add_camera", camera_id)

    def camera_removed(self, camera_id: str) -> None:
        """Tell the outputs that keep per-camera state (`remove_camera`, optional) that a camera left."""
        self._each("remove_camera", camera_id)

    def _each(self, method: str, camera_id: str) -> None:
        for index, sink in enumerate(self.sinks):
            call = getattr(sink, method, None)
            if index in self._failed or call is None:
                continue
            try:
                call(camera_id)
            except Exception as exc:
                self._failed.add(index)
                message = f"{type(sink).__name__}.{method}({camera_id}): {exc}"
                self.errors.append(message)
                log.error("output %s failed and is switched off; the others go on", message)

    def close(self) -> None:
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:
                self.errors.append(f"closing {type(sink).__name__}: {exc}")
                log.error("closing %s failed: %s", type(sink).__name__, exc)
