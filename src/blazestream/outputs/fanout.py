"""Writing to several outputs at once: a failing output is switched off, the others go on.

How an output reports a failure: it raises from `write` or `close` (an output that fails in a thread of
its own, such as an encoder's bus, raises on its next `write` or at `close`). The fan-out then switches
it off, logs it once, appends "<output>: <message>" to `errors` (the run summary's `output_errors`, which
makes the exit code 1) and calls `on_failure(output, message)` (the metrics' `output_failed`, which
counts `blazestream_output_errors{output=...}`). An output's name is its `name` attribute, or its class name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from blazestream.errors import log_error
from blazestream.outputs.base import ResultSink
from blazestream.results import FrameResult
from blazestream.uris import redact_text

log = logging.getLogger(__name__)


def output_name(sink: object) -> str:
    """How summaries, logs and metrics name an output."""
    name = getattr(sink, "name", None)
    return name if isinstance(name, str) and name else type(sink).__name__


class SinkFanout:
    """A ResultSink over many; problems go to `errors` (the run's summary), `on_failure` and the log."""

    def __init__(
        self,
        sinks: Sequence[ResultSink],
        errors: list[str],
        on_failure: Callable[[str, str], None] | None = None,
    ) -> None:
        self.sinks = list(sinks)
        self.errors = errors
        self.on_failure = on_failure
        self._failed: set[int] = set()
        self.written = 0
        """Batches handed to the outputs."""

    @property
    def failed(self) -> list[str]:
        """Names of the outputs switched off so far."""
        return [output_name(self.sinks[i]) for i in sorted(self._failed)]

    def _record(self, index: int, exc: BaseException, when: str) -> None:
        name = output_name(self.sinks[index])
        message = redact_text(f"{exc}" or type(exc).__name__)
        self._failed.add(index)
        self.errors.append(f"{name}: {message}" if when == "write" else f"{name} ({when}): {message}")
        log.error("output %s failed (%s) and is switched off; the others go on", name, message)
        if self.on_failure is not None:
            try:
                self.on_failure(name, message)
            except Exception as exc:  # a failing metric must not take the outputs down
                log_error(log, f"recording the failure of output {name} failed", exc)

    def write(self, results: list[FrameResult]) -> None:
        self.written += 1
        for index, sink in enumerate(self.sinks):
            if index in self._failed:
                continue
            try:
                sink.write(results)
            except Exception as exc:
                self._record(index, exc, "write")

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
                self._record(index, exc, f"{method} {camera_id}")

    def close(self) -> None:
        """Close every output, the failed ones too (they release what they hold); a close error counts once."""
        for index, sink in enumerate(self.sinks):
            try:
                sink.close()
            except Exception as exc:
                if index not in self._failed:
                    self._record(index, exc, "close")
                else:
                    log.debug("closing the failed output %s: %s", output_name(sink), exc)
