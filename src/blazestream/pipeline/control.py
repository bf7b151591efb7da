"""How a run is controlled, for every backend: signals, --duration, a watchdog tick, one clean stop.

`RunControl` owns the GLib main loop of a run (the CPU runner and the DeepStream runner both use it), so
SIGINT/SIGTERM, the duration timer and the stall watchdog behave the same whatever the graph. `StreamWatch`
is the per-camera bookkeeping of a graph whose sources are GStreamer elements rather than `Camera` objects
(DeepStream): frames seen, silence of live cameras, failures and ends, keyed by camera id; and
`source_index` maps a bus message's element to the camera whose `source-<index>` bin holds it, so one
camera's error is that camera's failure, not the whole run's.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from blazestream.errors import log_error
from blazestream.gst import glib

log = logging.getLogger(__name__)

WATCHDOG_PERIOD_MS = 250
SOURCE_BIN = re.compile(r"^source-(\d+)$")
"""The name of the bin (or element) holding camera <index>'s source in a single-pipeline graph."""


class RunControl:
    """Signals, duration and watchdog on one GLib main loop; `stop(reason)` once, from any thread.

    `on_stop(reason)` is called once, by the first `stop`: the graph begins its clean stop there (drain,
    EOS) and calls `quit()` when it is done. `tick(now)` runs every WATCHDOG_PERIOD_MS on the loop.
    """

    def __init__(
        self,
        duration_s: float | None,
        *,
        on_stop: Callable[[str], None],
        tick: Callable[[float], object] | None = None,
        tick_ms: int = WATCHDOG_PERIOD_MS,
    ) -> None:
        self.duration_s = duration_s
        self.on_stop = on_stop
        self.tick = tick
        self.tick_ms = tick_ms
        self.stopped_by = "end of input"
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._loop: Any = None
        self._quit_requested = False

    def stop(self, reason: str) -> None:
        """Begin the clean stop (idempotent; safe from any thread)."""
        with self._lock:
            if self.stopping.is_set():
                return
            self.stopping.set()
            self.stopped_by = reason
        log.info("stopping: %s", reason)
        self.on_stop(reason)

    def quit(self) -> None:
        """Leave the main loop (safe from any thread, also before `run`)."""
        with self._lock:
            self._quit_requested = True
            loop = self._loop
        if loop is not None:
            glib().idle_add(lambda: loop.quit() or False)

    def run(self, start: Callable[[], None]) -> float:
        """Install the handlers, call `start()`, run the loop until `quit()`; returns the wall time in seconds."""
        GLib = glib()
        loop = GLib.MainLoop()
        sources = [
            GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, self._on_signal, "SIGINT"),
            GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, self._on_signal, "SIGTERM"),
        ]
        if self.tick is not None:
            sources.append(GLib.timeout_add(self.tick_ms, self._on_tick))
        duration: list[int] = []
        if self.duration_s:
            duration.append(GLib.timeout_add(max(1, int(self.duration_s * 1000)), self._on_duration, duration))
        started = time.monotonic()
        with self._lock:
            self._loop = loop
            quit_now = self._quit_requested
        try:
            start()
            if not quit_now:
                loop.run()
        finally:
            with self._lock:
                self._loop = None
            for source_id in sources + duration:
                GLib.source_remove(source_id)
        return time.monotonic() - started

    def _on_signal(self, name: str) -> bool:
        self.stop(f"{name} received")
        return True

    def _on_duration(self, handle: list[int]) -> bool:
        handle.clear()  # returning False removes the source
        self.stop(f"--duration {self.duration_s:g} s reached")
        return False

    def _on_tick(self) -> bool:
        if self.tick is not None:
            try:
                self.tick(time.monotonic())
            except Exception as exc:  # the watchdog must keep running
                log_error(log, "watchdog tick failed", exc)
        return True


def source_index(element: Any) -> int | None:
    """The camera index of `element` when it is (inside) a `source-<index>` bin, else None."""
    while element is not None:
        name = element.get_name() if hasattr(element, "get_name") else None
        match = SOURCE_BIN.match(name or "")
        if match:
            return int(match.group(1))
        element = element.get_parent() if hasattr(element, "get_parent") else None
    return None


@dataclass
class _Stream:
    camera_id: str
    live: bool
    frames: int = 0
    last_frame: float = 0.0
    stalled: bool = False
    failure: str | None = None
    ended: bool = False


class StreamWatch:
    """Per-camera liveness of a single-pipeline graph: frames (any thread), stalls, failures and ends.

    `on_change(camera_id, up)` is called when a camera starts or stops delivering frames (metrics, logs).
    """

    def __init__(
        self,
        camera_ids: Sequence[str],
        live: Sequence[bool],
        *,
        stall_timeout_s: float,
        on_change: Callable[[str, bool], None] | None = None,
    ) -> None:
        self._streams = [_Stream(c, flag) for c, flag in zip(camera_ids, live, strict=True)]
        self._by_id = {s.camera_id: s for s in self._streams}
        self.stall_timeout_s = stall_timeout_s
        self.on_change = on_change
        self._lock = threading.Lock()
        self.started = time.monotonic()

    @property
    def camera_ids(self) -> list[str]:
        return [s.camera_id for s in self._streams]

    def camera_id(self, index: int) -> str | None:
        return self._streams[index].camera_id if 0 <= index < len(self._streams) else None

    def frame(self, camera_id: str, now: float | None = None) -> None:
        """A frame of this camera was processed (thread-safe)."""
        stream = self._by_id.get(camera_id)
        if stream is None:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            first_or_back = stream.frames == 0 or stream.stalled
            stream.frames += 1
            stream.last_frame = now
            stream.stalled = False
        if first_or_back:
            if stream.frames > 1:
                log.info("%s: frames again", camera_id)
            if self.on_change is not None:
                self.on_change(camera_id, True)

    def check(self, now: float) -> list[str]:
        """Mark live cameras silent for longer than the stall timeout; returns the ones that just stalled."""
        stalled = []
        with self._lock:
            for stream in self._streams:
                if not stream.live or stream.failure or stream.ended or stream.stalled:
                    continue
                since = stream.last_frame if stream.frames else self.started
                if now - since > self.stall_timeout_s:
                    stream.stalled = True
                    stalled.append(stream.camera_id)
        for camera_id in stalled:
            log.warning("%s: no frame for more than %.1f s", camera_id, self.stall_timeout_s)
            if self.on_change is not None:
                self.on_change(camera_id, False)
        return stalled

    def fail(self, camera_id: str, reason: str) -> bool:
        """Record the camera's (first) failure; False if it had already failed or ended."""
        stream = self._by_id.get(camera_id)
        if stream is None:
            return False
        with self._lock:
            if stream.failure or stream.ended:
                return False
            stream.failure = reason
        if self.on_change is not None:
            self.on_change(camera_id, False)
        return True

    def error(self, element: Any, reason: str) -> tuple[int, bool] | None:
        """A bus error from `element`: (index of the camera it fails, whether this is that camera's first
        failure), or None when the element belongs to no camera (the caller stops the run)."""
        index = source_index(element)
        camera_id = self.camera_id(index) if index is not None else None
        if camera_id is None or index is None:
            return None
        return index, self.fail(camera_id, reason)

    def end(self, camera_id: str) -> None:
        stream = self._by_id.get(camera_id)
        if stream is not None:
            with self._lock:
                stream.ended = True

    @property
    def all_done(self) -> bool:
        """Every camera has failed or ended: nothing more will come."""
        with self._lock:
            return all(s.failure or s.ended for s in self._streams)

    def failures(self) -> dict[str, str]:
        """Failed cameras and why; cameras that never delivered a frame count as failed (as on the CPU graph)."""
        with self._lock:
            out = {s.camera_id: s.failure for s in self._streams if s.failure}
            for s in self._streams:
                if not s.failure and s.frames == 0:
                    out[s.camera_id] = "never delivered a frame"
        return out

    def frames(self, camera_id: str) -> int:
        stream = self._by_id.get(camera_id)
        return 0 if stream is None else stream.frames
