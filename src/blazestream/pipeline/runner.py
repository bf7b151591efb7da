"""The runner: owns the GLib main loop, every bus, the signals and the processing thread.

Threads: the main thread runs the GLib main loop (bus messages of every camera, the watchdog, the
duration timer, SIGINT/SIGTERM, the RTSP output server); one thread per camera pulls its frames; one
processing thread per lane takes its lane's batches, runs the pose stage and writes the outputs.

Lanes: the cameras are dealt into groups, each with its own batcher and processing thread. Tracking
makes a camera's next crop wait for its last frame's landmarks, so with one lane the cores idle while
the tracking and outputs of a batch run; with two, one lane's models run meanwhile. Outputs take one
lane's results at a time. Stopping (signal, --duration, or every file ended) drains what is queued,
then the last lane to end closes the outputs (EOS to encoders) before the loop quits, so a clean stop
never loses a result.

Cameras can be added and removed while the run goes on (`add_camera`, `remove_camera`, from any thread):
the batcher takes a new camera's frames from the next batch; a removed camera's frames never reach an
output again once `remove_camera` has returned (it waits for the batch in flight).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from blazestream.config import AppConfig
from blazestream.errors import BlazestreamError, log_error
from blazestream.gst import gst
from blazestream.outputs.base import ResultSink
from blazestream.outputs.fanout import SinkFanout
from blazestream.outputs.metrics import Metrics
from blazestream.pipeline.camera import Camera, CameraState
from blazestream.pipeline.control import RunControl
from blazestream.pipeline.frames import Batcher, FrameSlot
from blazestream.pipeline.stage import PoseStage
from blazestream.results import FrameResult
from blazestream.source_spec import SourceSpec

log = logging.getLogger(__name__)


class UnknownCameraError(BlazestreamError):
    """No camera with that id in the run."""


class DuplicateCameraError(BlazestreamError):
    """A camera with that id is already in the run."""


class RunStoppingError(BlazestreamError):
    """The run is stopping: cameras can no longer be added."""


@dataclass(frozen=True)
class CameraStatus:
    """A snapshot of one camera, for status pages and the HTTP API."""

    id: str
    uri: str
    """As the source was given (with credentials: redact before showing it)."""
    status: str
    """starting, up, reconnecting, ended or failed."""
    fps: float
    """Processed frames per second (sliding window)."""
    frames: int
    """Frames processed."""
    poses: int
    """People in its newest processed frame."""
    poses_total: int
    last_error: str | None


_STATUS = {
    CameraState.STREAMING: "up",
    CameraState.RETRYING: "reconnecting",
    CameraState.ENDED: "ended",
    CameraState.FAILED: "failed",
}


class _Gate:
    """A camera's listener that goes silent once the camera is removed (its thread may still be ending)."""

    def __init__(self, listener: Metrics) -> None:
        self.listener = listener
        self.open = True

    def frame_in(self, camera_id: str) -> None:
        if self.open:
            self.listener.frame_in(camera_id)

    def frames_dropped(self, camera_id: str, count: int) -> None:
        if self.open:
            self.listener.frames_dropped(camera_id, count)

    def camera_up(self, camera_id: str, up: bool) -> None:
        if self.open:
            self.listener.camera_up(camera_id, up)

    def reconnect(self, camera_id: str) -> None:
        if self.open:
            self.listener.reconnect(camera_id)

    def camera_failed(self, camera_id: str, reason: str) -> None:
        if self.open:
            self.listener.camera_failed(camera_id, reason)


@dataclass
class _Lane:
    """A group of cameras with its own batcher and processing thread."""

    batcher: Batcher
    lock: threading.Lock = field(default_factory=threading.Lock)
    """Held by the lane's thread for each batch: removing one of its cameras waits for the batch in flight."""

    @property
    def cameras(self) -> int:
        return len(self.batcher.slots)


@dataclass
class _Member:
    camera: Camera
    gate: _Gate
    stop: threading.Event
    lane: _Lane


@dataclass
class RunSummary:
    """What a run did, per camera, and whether it ended cleanly."""

    frames: dict[str, int] = field(default_factory=dict)
    poses: dict[str, int] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    output_errors: list[str] = field(default_factory=list)
    removed: set[str] = field(default_factory=set)
    """Cameras removed at run time (the HTTP API): their counts stay, up to the removal."""
    wall_s: float = 0.0
    stopped_by: str = "end of input"

    def count(self, results: Sequence[FrameResult]) -> None:
        """Add a batch's frames and poses to the per-camera totals."""
        for result in results:
            self.frames[result.stream] = self.frames.get(result.stream, 0) + 1
            self.poses[result.stream] = self.poses.get(result.stream, 0) + len(result.poses)

    @property
    def exit_code(self) -> int:
        return 1 if self.failures or self.output_errors else 0


class Runner:
    """Runs one graph: cameras -> batcher -> pose stage -> outputs."""

    def __init__(
        self,
        cfg: AppConfig,
        sources: Sequence[SourceSpec],
        stage: PoseStage,
        sinks: Sequence[ResultSink],
        metrics: Metrics,
        *,
        dynamic: bool = False,
        lanes: int = 1,
    ) -> None:
        """`dynamic`: cameras come and go at run time (the HTTP API): the run may start with none and
        goes on when they all end, until a signal or the duration stops it. `lanes`: processing lanes
        (at most one per camera unless dynamic, since a fixed set of cameras never fills more)."""
        if not sources and not dynamic:
            raise BlazestreamError("no cameras: give --source URI (or cameras: in the config)")
        self.cfg = cfg
        self.stage = stage
        self.metrics = metrics
        self.dynamic = dynamic
        self.stop_event = threading.Event()
        self._cond = threading.Condition()
        self._lock = threading.Lock()
        """Guards the camera set (`_members`) and `_running`."""
        self._output_lock = threading.Lock()
        """Outputs, summary counts and latest poses take one lane's batch at a time."""
        self._members: dict[str, _Member] = {}
        self._running = False
        count = max(1, lanes if dynamic else min(lanes, len(sources)))
        self._lanes = [
            _Lane(Batcher([], self._cond, max_size=1, timeout=cfg.batch.timeout_ms / 1000.0, persistent=dynamic))
            for _ in range(count)
        ]
        self.summary = RunSummary()
        self._latest_poses: dict[str, int] = {}
        self.control = RunControl(cfg.duration_s, on_stop=self._on_stop, tick=self._watchdog)
        self._workers = [
            threading.Thread(target=self._process, args=(lane,), name=f"processing-{i}", daemon=True)
            for i, lane in enumerate(self._lanes)
        ]
        self._working = len(self._workers)
        self.outputs = SinkFanout(sinks, self.summary.output_errors, on_failure=metrics.output_failed)
        for spec in sources:
            self._admit(spec)

    @property
    def cameras(self) -> list[Camera]:
        """The cameras in the run now (a copy)."""
        with self._lock:
            return [m.camera for m in self._members.values()]

    @property
    def lanes(self) -> int:
        return len(self._lanes)

    def _batch_size(self, cameras: int) -> int:
        return self.cfg.batch.max_size or max(1, cameras)

    def _admit(self, spec: SourceSpec) -> Camera:
        """Create the camera's slot and pipeline owner in the emptiest lane; caller starts it (or run() does)."""
        slot = FrameSlot(spec.camera_id, live=spec.live, capacity=self.cfg.sources.file_queue, cond=self._cond)
        gate = _Gate(self.metrics)
        stop = threading.Event()
        camera = Camera(spec, self.cfg.sources, slot, gate, self.watch_bus, stop)
        lane = min(self._lanes, key=lambda lane: lane.cameras)
        self._members[spec.camera_id] = _Member(camera, gate, stop, lane)
        self.summary.frames.setdefault(spec.camera_id, 0)
        self.summary.poses.setdefault(spec.camera_id, 0)
        lane.batcher.add_slot(slot, self._batch_size(lane.cameras + 1))
        return camera

    def _all_lanes(self) -> ExitStack:
        """Every lane's lock, in lane order (the lock order): no batch is in flight while it is held."""
        stack = ExitStack()
        for lane in self._lanes:
            stack.enter_context(lane.lock)
        return stack

    # -- cameras at run time (any thread) ------------------------------------------------------

    def add_camera(self, spec: SourceSpec, max_poses: int | None = None) -> CameraStatus:
        """Start a camera now; its tracker, metrics series and video cell appear with it."""
        # Lock order, here as in the processing threads: lane locks, then _lock, then _output_lock.
        with self._all_lanes(), self._lock:
            if self.stop_event.is_set():
                raise RunStoppingError("the run is stopping; no camera can be added")
            if spec.camera_id in self._members:
                raise DuplicateCameraError(f"camera {spec.camera_id!r} is already in the run")
            self.stage.add_camera(spec.camera_id, max_poses)
            self.summary.removed.discard(spec.camera_id)
            self.metrics.add_camera(spec.camera_id)
            self.outputs.camera_added(spec.camera_id)
            camera = self._admit(spec)
            if self._running:
                camera.start()
        log.info("%s: added", camera.name)
        return self.camera_status(spec.camera_id)

    def remove_camera(self, camera_id: str, timeout: float = 10.0) -> None:
        """Stop a camera: no output gets a row of it after this returns; its series and cell go."""
        with self._all_lanes():
            with self._lock:
                member = self._members.pop(camera_id, None)
                if member is None:
                    raise UnknownCameraError(f"no camera {camera_id!r} in the run")
                member.gate.open = False
                member.stop.set()
                lane = member.lane
                lane.batcher.remove_slot(member.camera.slot, self._batch_size(lane.cameras - 1))
            self.stage.remove_camera(camera_id)
            with self._output_lock:
                self.summary.removed.add(camera_id)
                self.outputs.camera_removed(camera_id)
                self._latest_poses.pop(camera_id, None)
        if self._running:
            member.camera.join(timeout)
        log.info("%s: removed", member.camera.name)

    def camera_status(self, camera_id: str) -> CameraStatus:
        with self._lock:
            member = self._members.get(camera_id)
        if member is None:
            raise UnknownCameraError(f"no camera {camera_id!r} in the run")
        return self._status(member.camera)

    def camera_statuses(self) -> list[CameraStatus]:
        """Every camera's status, in the order they joined."""
        return [self._status(camera) for camera in self.cameras]

    def _status(self, camera: Camera) -> CameraStatus:
        camera_id = camera.spec.camera_id
        state = camera.state
        if state == CameraState.CONNECTING:
            status = "reconnecting" if camera.generation > 1 else "starting"
        elif state == CameraState.ENDED and camera.slot.pending():
            status = "up"  # the file is read to its end, its last frames still wait for a batch
        else:
            status = _STATUS[state]
        return CameraStatus(
            id=camera_id,
            uri=camera.spec.uri,
            status=status,
            fps=round(self.metrics.fps(camera_id), 2),
            frames=self.summary.frames.get(camera_id, 0),
            poses=self._latest_poses.get(camera_id, 0),
            poses_total=self.summary.poses.get(camera_id, 0),
            last_error=camera.failure or camera.last_problem,
        )

    @property
    def running(self) -> bool:
        """True between the start of `run()` and the stop."""
        return self._running and not self.stop_event.is_set()

    # -- main loop side ------------------------------------------------------------------------

    def watch_bus(self, bus: Any, handler: Callable[[Any], None]) -> Callable[[], None]:
        """Dispatch a pipeline's bus messages on the runner's main loop; returns the unwatch call."""
        bus.add_signal_watch()
        handler_id = bus.connect("message", lambda _bus, message: handler(message))

        def unwatch() -> None:
            bus.disconnect(handler_id)
            bus.remove_signal_watch()

        return unwatch

    def stop(self, reason: str) -> None:
        """Begin a clean stop (idempotent; safe from any thread)."""
        self.control.stop(reason)

    def _on_stop(self, reason: str) -> None:
        self.summary.stopped_by = reason
        self.stop_event.set()
        self._stop_cameras()
        for lane in self._lanes:
            lane.batcher.stop()

    def _stop_cameras(self) -> None:
        with self._lock:
            for member in self._members.values():
                member.stop.set()

    def run(self) -> RunSummary:
        gst()

        def start() -> None:
            # Workers first: they only wait for batches, and a thread started while the cameras build
            # their pipelines waits for the GIL (~0.1 s each).
            for worker in self._workers:
                worker.start()
            with self._lock:
                self._running = True
                for member in self._members.values():
                    member.camera.start()

        try:
            self.summary.wall_s = self.control.run(start)
        finally:
            self.stop_event.set()
            self._stop_cameras()
            for camera in self.cameras:
                camera.join(timeout=10)
            for worker in self._workers:
                worker.join(timeout=30)
        self.summary.stopped_by = self.control.stopped_by
        for camera in self.cameras:
            if camera.state == CameraState.FAILED and camera.failure:
                self.summary.failures[camera.spec.camera_id] = camera.failure
            elif camera.frames == 0:
                why = f": {camera.last_problem}" if camera.last_problem else ""
                self.summary.failures[camera.spec.camera_id] = f"never delivered a frame{why}"
        return self.summary

    def _watchdog(self, now: float) -> None:
        for camera in self.cameras:
            camera.check_watchdog(now)

    # -- processing thread ---------------------------------------------------------------------

    def _process(self, lane: _Lane) -> None:
        try:
            while (batch := lane.batcher.next_batch()) is not None:
                with lane.lock:
                    with self._lock:
                        batch = [f for f in batch if f.camera_id in self._members]
                    if not batch:
                        continue
                    results = self.stage.process(batch)
                    with self._output_lock:
                        self.summary.count(results)
                        for result in results:
                            self._latest_poses[result.stream] = len(result.poses)
                        self.outputs.write(results)
        except Exception as exc:  # the loop must still quit and the outputs close
            log_error(log, "processing failed", exc)
            with self._output_lock:
                self.summary.output_errors.append(f"processing: {exc}")
            self.stop("processing failed")
        finally:
            with self._lock:
                self._working -= 1
                last = self._working == 0
            if last:  # the other lanes may still be draining: the last one closes the outputs
                self.stop("all sources ended")
                self.outputs.close()
                self.control.quit()
