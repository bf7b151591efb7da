"""One camera: its own GStreamer pipeline, a thread that pulls its frames, and its recovery.

Each camera has a pipeline of its own, so an error in one never stops the others. The runner's main
loop receives every bus message and the watchdog ticks; this class only acts on what it is told
(restart, fail, stop) from its own thread, never from a GStreamer streaming thread.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from blazestream.config import SourceConfig
from blazestream.errors import BlazestreamError
from blazestream.gst import buffer_to_pixels, gst, parse_launch
from blazestream.pipeline.frames import Frame, FrameSlot
from blazestream.pipeline.sources import SINK_NAME, source_description
from blazestream.source_spec import SourceSpec
from blazestream.uris import redact_text

log = logging.getLogger(__name__)

PULL_TIMEOUT_NS = 100_000_000
FIRST_FRAME_TIMEOUT_S = 20.0
"""A file that decodes no frame in this long has no usable video stream."""


BACKOFF_JITTER = 0.25
"""Reconnect delays vary by +-25 %, so cameras behind one recovering server do not all retry at once."""


def next_backoff(current: float, maximum: float) -> float:
    """The delay after `current`: doubled, capped at `maximum`."""
    return min(current * 2.0, maximum)


def jittered(delay: float, rng: random.Random) -> float:
    """`delay` with +-BACKOFF_JITTER of random spread."""
    return delay * (1.0 + rng.uniform(-BACKOFF_JITTER, BACKOFF_JITTER))


class CameraState(Enum):
    CONNECTING = "connecting"
    STREAMING = "streaming"
    RETRYING = "retrying"
    ENDED = "ended"
    FAILED = "failed"


class CameraListener(Protocol):
    """What a camera reports (metrics, logs); called from the camera's thread."""

    def frame_in(self, camera_id: str) -> None: ...

    def frames_dropped(self, camera_id: str, count: int) -> None: ...

    def camera_up(self, camera_id: str, up: bool) -> None: ...

    def reconnect(self, camera_id: str) -> None: ...

    def camera_failed(self, camera_id: str, reason: str) -> None:
        """The camera gave up for good; `reason` is redacted (shown in the annotated video's cell)."""
        ...


BusWatch = Callable[[Any, Callable[[Any], None]], Callable[[], None]]
"""runner.watch_bus(bus, handler) -> unwatch: the runner's main loop dispatches the bus messages."""


@dataclass
class _Request:
    restart: str | None = None
    failure: str | None = None


class Camera:
    """A source pipeline with its puller thread, retried with capped backoff when it is live."""

    def __init__(
        self,
        spec: SourceSpec,
        cfg: SourceConfig,
        slot: FrameSlot,
        listener: CameraListener,
        watch_bus: BusWatch,
        stop: threading.Event,
    ) -> None:
        self.spec = spec
        self.cfg = cfg
        self.slot = slot
        self.listener = listener
        self._watch_bus = watch_bus
        self._stop = stop
        self._lock = threading.Lock()
        self._request = _Request()
        self._wake = threading.Event()
        self._random = random.Random()
        self.state = CameraState.CONNECTING
        self.failure: str | None = None
        self.last_problem: str | None = None
        """Why the last attempt ended (for a live camera that never delivered a frame)."""
        self.generation = 0
        self.frames = 0
        self.last_frame = 0.0
        self.started_at = 0.0
        self._thread = threading.Thread(target=self._run, name=f"camera-{spec.camera_id}", daemon=True)

    @property
    def name(self) -> str:
        """`cam0 (rtsp://...)`: how logs name a camera."""
        return f"{self.spec.camera_id} ({self.spec.display})"

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def request_restart(self, reason: str) -> None:
        """Reconnect (live) or give up (file); safe from any thread."""
        with self._lock:
            if self.spec.live:
                self._request.restart = self._request.restart or reason
            else:
                self._request.failure = self._request.failure or reason
        self._wake.set()

    def check_watchdog(self, now: float) -> None:
        """Called periodically by the runner: a live source that went quiet is reconnected.

        rtspsrc posts nothing when a server hangs with its socket open, so silence is the only signal.
        """
        if self.state == CameraState.STREAMING and self.spec.live and now - self.last_frame > self.cfg.stall_timeout_s:
            self.request_restart(f"no frame for {now - self.last_frame:.1f} s")
        elif self.state == CameraState.CONNECTING and self.started_at:
            limit = self.cfg.stall_timeout_s + self.cfg.rtsp_tcp_timeout_s if self.spec.live else FIRST_FRAME_TIMEOUT_S
            if now - self.started_at > limit:
                what = "no frame" if self.spec.live else "no video frame decoded (is there a video stream?)"
                self.request_restart(f"{what} {now - self.started_at:.1f} s after start")

    def on_bus_message(self, generation: int, message: Any) -> None:
        """The runner forwards this camera's bus messages here (main loop thread)."""
        Gst = gst()
        if generation != self.generation:
            return
        if message.type == Gst.MessageType.ERROR:
            error, debug = message.parse_error()
            source = message.src.get_name() if message.src else "?"
            log.debug("%s: %s debug: %s", self.name, source, debug)
            self.request_restart(f"{error.message} (element {source})")
        elif message.type == Gst.MessageType.EOS and self.spec.live:
            self.request_restart("the stream ended (EOS)")
        elif message.type == Gst.MessageType.WARNING:
            warning, _ = message.parse_warning()
            log.warning("%s: %s", self.name, warning.message)

    # -- the camera's own thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._retry_loop()
        except Exception as exc:  # a bug must fail this camera, named, not kill its thread with a traceback
            log.debug("%s: camera thread failed", self.name, exc_info=exc)
            self._fail(f"internal error ({type(exc).__name__}: {exc})")
            self.slot.finish()
            self.listener.camera_up(self.spec.camera_id, False)

    def _retry_loop(self) -> None:
        backoff = self.cfg.backoff_initial_s
        attempt = 0
        while not self._stop.is_set():
            attempt += 1
            got_frames = self._session(attempt)
            if self.state in (CameraState.ENDED, CameraState.FAILED) or self._stop.is_set():
                break
            if got_frames:
                backoff = self.cfg.backoff_initial_s
            self.state = CameraState.RETRYING
            self.listener.reconnect(self.spec.camera_id)
            delay = jittered(backoff, self._random)
            log.warning("%s: reconnecting in %.1f s", self.name, delay)
            self._stop.wait(delay)
            backoff = next_backoff(backoff, self.cfg.backoff_max_s)
        if self.state in (CameraState.ENDED, CameraState.FAILED):
            self.slot.finish()
        else:
            self.slot.set_streaming(False)
        self.listener.camera_up(self.spec.camera_id, False)

    def _session(self, attempt: int) -> bool:
        """Build, play and pull one pipeline until it ends, fails or must restart; True if frames came."""
        if self.spec.kind == "file" and not Path(self.spec.location).is_file():
            self._fail(f"no such file: {self.spec.location}")
            return False
        with self._lock:
            self._request = _Request()
        self._wake.clear()
        self.generation += 1
        generation = self.generation
        try:
            pipeline = parse_launch(source_description(self.spec, self.cfg), f"source-{self.spec.camera_id}")
        except BlazestreamError as exc:
            self._fail(str(exc))
            return False
        sink = pipeline.get_by_name(SINK_NAME)
        unwatch = self._watch_bus(pipeline.get_bus(), lambda msg: self.on_bus_message(generation, msg))
        self.state = CameraState.CONNECTING
        self.started_at = time.monotonic()
        if attempt == 1 or self.spec.live:
            log.info("%s: starting", self.name)
        got = False
        try:
            if pipeline.set_state(gst().State.PLAYING) == gst().StateChangeReturn.FAILURE:
                self._stop.wait(0.2)  # the bus carries the reason; let the runner forward it
                self.request_restart("the pipeline could not start")
            got = self._pull(sink)
        finally:
            unwatch()
            pipeline.set_state(gst().State.NULL)
        return got

    def _pull(self, sink: Any) -> bool:
        got = False
        Gst = gst()
        while not self._stop.is_set():
            with self._lock:
                request = self._request
            if request.failure:
                self._fail(request.failure)
                return got
            if request.restart:
                self.last_problem = redact_text(request.restart)
                log.warning("%s: %s", self.name, request.restart)
                self.listener.camera_up(self.spec.camera_id, False)
                self.slot.set_streaming(False)
                return got
            sample = sink.try_pull_sample(PULL_TIMEOUT_NS)
            if sample is None:
                if sink.is_eos():
                    if self.spec.live:
                        self.request_restart("the stream ended (EOS)")
                        continue
                    log.info("%s: ended after %d frames", self.name, self.frames)
                    self.state = CameraState.ENDED
                    self.slot.finish()  # now, not after the pipeline's teardown (~0.2 s): the run can end
                    return got
                continue
            buffer = sample.get_buffer()
            image = buffer_to_pixels(buffer, sample.get_caps())
            now = time.monotonic()
            pts = buffer.pts / 1e9 if buffer.pts != Gst.CLOCK_TIME_NONE else now - self.started_at
            frame = Frame(self.spec.camera_id, self.frames, pts, image, now, self.generation)
            self.frames += 1
            self.last_frame = now
            if not got:
                got = True
                self.state = CameraState.STREAMING
                self.listener.camera_up(self.spec.camera_id, True)
                log.info("%s: streaming %dx%d", self.name, image.shape[1], image.shape[0])
            self.listener.frame_in(self.spec.camera_id)
            dropped = self.slot.put(frame, self._stop)
            if dropped:
                self.listener.frames_dropped(self.spec.camera_id, dropped)
        return got

    def _fail(self, reason: str) -> None:
        self.failure = redact_text(reason)
        self.state = CameraState.FAILED
        log.error("%s: %s; the other cameras go on", self.name, reason)
        self.listener.camera_failed(self.spec.camera_id, self.failure)
