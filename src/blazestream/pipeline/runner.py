"""The runner: owns the GLib main loop, every bus, the signals and the processing thread.

Threads: the main thread runs the GLib main loop (bus messages of every camera, the watchdog, the
duration timer, SIGINT/SIGTERM, the RTSP output server); one thread per camera pulls its frames; one
processing thread takes batches, runs the pose stage and writes the outputs. Stopping (signal,
--duration, or every file ended) drains what is queued, then closes the outputs (EOS to encoders)
before the loop quits, so a clean stop never loses a result.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from blazestream.config import AppConfig
from blazestream.errors import BlazestreamError, log_error
from blazestream.outputs.base import FrameResult, ResultSink
from blazestream.outputs.fanout import SinkFanout
from blazestream.outputs.metrics import Metrics
from blazestream.pipeline.camera import Camera, CameraState
from blazestream.pipeline.control import RunControl
from blazestream.pipeline.frames import Batcher, FrameSlot
from blazestream.pipeline.gst import gst
from blazestream.pipeline.spec import SourceSpec
from blazestream.pipeline.stage import PoseStage

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a run did, per camera, and whether it ended cleanly."""

    frames: dict[str, int] = field(default_factory=dict)
    poses: dict[str, int] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    output_errors: list[str] = field(default_factory=list)
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
    ) -> None:
        if not sources:
            raise BlazestreamError("no cameras: give --source URI (or cameras: in the config)")
        self.cfg = cfg
        self.stage = stage
        self.metrics = metrics
        self.stop_event = threading.Event()
        self._cond = threading.Condition()
        self.slots = [
            FrameSlot(s.camera_id, live=s.live, capacity=cfg.sources.file_queue, cond=self._cond) for s in sources
        ]
        batch_size = cfg.batch.max_size or len(sources)
        self.batcher = Batcher(self.slots, self._cond, max_size=batch_size, timeout=cfg.batch.timeout_ms / 1000.0)
        self.cameras = [
            Camera(spec, cfg.sources, slot, metrics, self.watch_bus, self.stop_event)
            for spec, slot in zip(sources, self.slots, strict=True)
        ]
        self.summary = RunSummary(frames={s.camera_id: 0 for s in sources}, poses={s.camera_id: 0 for s in sources})
        self.control = RunControl(cfg.duration_s, on_stop=self._on_stop, tick=self._watchdog)
        self._worker = threading.Thread(target=self._process, name="processing", daemon=True)
        self.outputs = SinkFanout(sinks, self.summary.output_errors, on_failure=metrics.output_failed)

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
        self.batcher.stop()

    def run(self) -> RunSummary:
        gst()

        def start() -> None:
            for camera in self.cameras:
                camera.start()
            self._worker.start()

        try:
            self.summary.wall_s = self.control.run(start)
        finally:
            self.stop_event.set()
            for camera in self.cameras:
                camera.join(timeout=10)
            self._worker.join(timeout=30)
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

    def _process(self) -> None:
        try:
            while (batch := self.batcher.next_batch()) is not None:
                results = self.stage.process(batch)
                self.summary.count(results)
                self.outputs.write(results)
        except Exception as exc:  # the loop must still quit and the outputs close
            log_error(log, "processing failed", exc)
            self.summary.output_errors.append(f"processing: {exc}")
        finally:
            self.stop("all sources ended")
            self.outputs.close()
            self.control.quit()
