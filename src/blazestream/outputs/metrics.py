"""Prometheus metrics, per camera, on a private registry (several pipelines or tests can coexist in one process)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from blazestream.errors import RunError
from blazestream.results import FrameResult

FPS_WINDOW_S = 2.0
"""Processed-frame rate is measured over this sliding window: long enough to be steady, short enough to show a stall."""

LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.0, 5.0)


class Metrics:
    """Counters, gauges and the latency histogram; also a `ResultSink` (processed frames, latency, fps, poses).

    `frame_in`, `frames_dropped`, `reconnect` and `camera_up` are for the source side; all methods are thread-safe.
    """

    name = "metrics"

    def __init__(self, cameras: Iterable[str] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        label = ["camera"]
        reg = self.registry
        self._in = Counter("blazestream_frames_in", "Frames decoded from the camera.", label, registry=reg)
        self._processed = Counter(
            "blazestream_frames_processed", "Frames whose poses reached the outputs.", label, registry=reg
        )
        self._dropped = Counter(
            "blazestream_frames_dropped", "Frames skipped because processing fell behind.", label, registry=reg
        )
        self._reconnects = Counter(
            "blazestream_reconnects", "Times the camera's source was rebuilt.", label, registry=reg
        )
        self._fps = Gauge(
            "blazestream_fps", f"Processed frames per second over the last {FPS_WINDOW_S:g} s.", label, registry=reg
        )
        self._up = Gauge("blazestream_camera_up", "1 while the camera delivers frames.", label, registry=reg)
        self._poses = Gauge("blazestream_poses", "Poses found in the camera's last frame.", label, registry=reg)
        self._latency = Histogram(
            "blazestream_latency_seconds",
            "End to end: from the frame leaving its decoder to its results reaching the outputs.",
            label,
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self._output_errors = Counter(
            "blazestream_output_errors",
            "Outputs that failed and were switched off (disk full, broker refused...), by output.",
            ["output"],
            registry=reg,
        )
        self._lock = threading.Lock()
        self._times: dict[str, deque[float]] = {}
        self._failures: dict[str, str] = {}
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        for camera in cameras:
            self._ensure(camera)

    def _ensure(self, camera: str) -> deque[float]:
        """Create the camera's series at 0 so dashboards see it before its first frame."""
        with self._lock:
            times = self._times.get(camera)
            if times is not None:
                return times
            times = self._times[camera] = deque()
        for metric in (self._in, self._processed, self._dropped, self._reconnects, self._up, self._poses):
            metric.labels(camera)
        self._latency.labels(camera)
        self._fps.labels(camera).set_function(lambda: self.fps(camera))
        return times

    def add_camera(self, camera: str) -> None:
        """A camera added at run time: its series appear at 0."""
        self._ensure(camera)

    def remove_camera(self, camera: str) -> None:
        """A camera removed at run time: its series disappear from /metrics."""
        with self._lock:
            self._failures.pop(camera, None)
            if self._times.pop(camera, None) is None:
                return
        for metric in (self._in, self._processed, self._dropped, self._reconnects, self._up, self._poses):
            metric.remove(camera)
        self._latency.remove(camera)
        self._fps.remove(camera)

    def frame_in(self, camera: str) -> None:
        self._ensure(camera)
        self._in.labels(camera).inc()

    def frames_dropped(self, camera: str, n: int = 1) -> None:
        self._ensure(camera)
        self._dropped.labels(camera).inc(n)

    def reconnect(self, camera: str) -> None:
        self._ensure(camera)
        self._reconnects.labels(camera).inc()

    def camera_up(self, camera: str, up: bool) -> None:
        self._ensure(camera)
        self._up.labels(camera).set(1 if up else 0)

    def camera_failed(self, camera: str, reason: str) -> None:
        with self._lock:
            self._failures[camera] = reason

    def failure(self, camera: str) -> str | None:
        """Why the camera gave up (redacted), or None while it has not."""
        with self._lock:
            return self._failures.get(camera)

    def output_failed(self, output: str, message: str = "") -> None:
        """An output failed (SinkFanout's on_failure)."""
        self._output_errors.labels(output).inc()

    def write(self, results: list[FrameResult]) -> None:
        now = time.monotonic()
        for result in results:
            times = self._ensure(result.stream)
            self._processed.labels(result.stream).inc()
            self._latency.labels(result.stream).observe(max(0.0, now - result.arrived))
            self._poses.labels(result.stream).set(len(result.poses))
            with self._lock:
                times.append(now)
                self._prune(times, now)

    def fps(self, camera: str) -> float:
        """Processed frames per second over the sliding window; falls to 0 within the window when frames stop."""
        now = time.monotonic()
        with self._lock:
            times = self._times.get(camera)
            if not times:
                return 0.0
            self._prune(times, now)
            if len(times) < 2:
                return 0.0
            span = now - times[0]
            return (len(times) - 1) / span if span > 0 else 0.0

    @staticmethod
    def _prune(times: deque[float], now: float) -> None:
        while times and now - times[0] > FPS_WINDOW_S:
            times.popleft()

    def serve(self, port: int, address: str = "127.0.0.1") -> WSGIServer:
        """Serve /metrics over HTTP from a daemon thread; port 0 picks a free one (`server.server_port`)."""
        if self._server is not None:
            raise RuntimeError("Metrics.serve() was already called")
        try:
            self._server, self._thread = start_http_server(port, addr=address, registry=self.registry)
        except OSError as exc:
            raise RunError(
                f"cannot serve metrics on {address}:{port} ({exc.strerror or exc}); "
                "is another program using that port? choose another --metrics-port"
            ) from exc
        return self._server

    def close(self) -> None:
        """Stop the HTTP server (if any)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
