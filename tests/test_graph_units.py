"""Unit tests of the graph's parts: frame slots, the batcher (timeout, fairness, stop), the camera watchdog
and backoff, the run summary and the pose stage. Orderings are checked with events and joins, never with
wall-clock thresholds."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from blazestream.config import SourceConfig
from blazestream.estimator import EstimatorSettings, PoseEstimator
from blazestream.factory import create_cpu_estimator
from blazestream.pipeline.camera import (
    BACKOFF_JITTER,
    FIRST_FRAME_TIMEOUT_S,
    Camera,
    CameraState,
    jittered,
    next_backoff,
)
from blazestream.pipeline.frames import Batcher, Frame, FrameSlot
from blazestream.pipeline.runner import RunSummary
from blazestream.pipeline.stage import PoseStage
from blazestream.results import FrameResult
from blazestream.source_spec import parse_source_uri

DATA = Path(__file__).resolve().parents[1] / "data"


def _frame(camera: str, index: int, image: np.ndarray | None = None) -> Frame:
    pixels = image if image is not None else np.zeros((4, 4, 3), np.uint8)
    return Frame(camera, index, index / 30.0, pixels, time.monotonic(), 1)


def _slots(*specs: tuple[str, bool], capacity: int = 2) -> tuple[threading.Condition, list[FrameSlot]]:
    cond = threading.Condition()
    return cond, [FrameSlot(name, live=live, capacity=capacity, cond=cond) for name, live in specs]


# -- frame slots ----------------------------------------------------------------------------------------------


def test_a_live_slot_keeps_only_the_newest_frame_and_counts_the_dropped() -> None:
    cond, (slot,) = _slots(("cam", True))
    stop = threading.Event()
    assert slot.put(_frame("cam", 0), stop) == 0
    assert slot.put(_frame("cam", 1), stop) == 1
    with cond:
        taken = slot.take()
    assert taken is not None
    assert taken.index == 1
    assert slot.pending() == 0


def test_a_file_slot_blocks_the_decoder_until_there_is_room() -> None:
    cond, (slot,) = _slots(("file", False), capacity=1)
    stop = threading.Event()
    slot.put(_frame("file", 0), stop)
    done = threading.Event()
    producer = threading.Thread(target=lambda: (slot.put(_frame("file", 1), stop), done.set()))
    producer.start()
    assert not done.wait(0.2), "the second frame waits: nothing is dropped"
    with cond:
        first = slot.take()
    producer.join(timeout=5)
    assert done.is_set()
    assert first is not None
    assert first.index == 0
    with cond:
        second = slot.take()
    assert second is not None
    assert second.index == 1


def test_a_blocked_file_slot_gives_up_on_stop() -> None:
    _, (slot,) = _slots(("file", False), capacity=1)
    stop = threading.Event()
    slot.put(_frame("file", 0), stop)
    result: list[int] = []
    producer = threading.Thread(target=lambda: result.append(slot.put(_frame("file", 1), stop)))
    producer.start()
    stop.set()
    producer.join(timeout=5)
    assert result == [0]
    assert slot.pending() == 1


# -- batcher --------------------------------------------------------------------------------------------------


def test_the_batcher_waits_for_every_streaming_camera() -> None:
    cond, slots = _slots(("a", True), ("b", True))
    batcher = Batcher(slots, cond, max_size=2, timeout=30.0)
    stop = threading.Event()
    slots[0].put(_frame("a", 0), stop)
    slots[1].put(_frame("b", 0), stop)
    batch = batcher.next_batch()
    assert batch is not None
    assert [f.camera_id for f in batch] == ["a", "b"]


def test_a_silent_camera_delays_a_batch_by_the_timeout_only() -> None:
    cond, slots = _slots(("a", True), ("silent", True))
    slots[1].set_streaming(True)  # streaming, but its next frame never comes
    batcher = Batcher(slots, cond, max_size=2, timeout=0.05)
    slots[0].put(_frame("a", 0), threading.Event())
    batch = batcher.next_batch()  # returns at all: the timeout pushed the partial batch
    assert batch is not None
    assert [f.camera_id for f in batch] == ["a"]


def test_batches_rotate_over_cameras_when_the_batch_is_smaller() -> None:
    cond, slots = _slots(("a", False), ("b", False), ("c", False), capacity=4)
    stop = threading.Event()
    for index in range(3):
        for slot in slots:
            slot.put(_frame(slot.camera_id, index), stop)
    batcher = Batcher(slots, cond, max_size=2, timeout=30.0)
    firsts = []
    for _ in range(4):
        batch = batcher.next_batch()
        assert batch is not None
        assert len(batch) == 2
        firsts.append(tuple(f.camera_id for f in batch))
    assert firsts[:3] == [("a", "b"), ("b", "c"), ("a", "c")], "the start rotates after each batch"
    served = [camera for batch in firsts[:3] for camera in batch]
    assert {camera: served.count(camera) for camera in "abc"} == {"a": 2, "b": 2, "c": 2}, "no camera starves"


def test_stop_delivers_what_waits_then_ends() -> None:
    cond, slots = _slots(("a", True), ("b", True))
    slots[1].set_streaming(True)
    slots[0].put(_frame("a", 0), threading.Event())
    batcher = Batcher(slots, cond, max_size=2, timeout=30.0)
    batcher.stop()
    batch = batcher.next_batch()
    assert batch is not None
    assert [f.camera_id for f in batch] == ["a"]
    assert batcher.next_batch() is None


def test_the_batcher_ends_when_every_camera_finished() -> None:
    cond, slots = _slots(("a", False), ("b", False))
    batcher = Batcher(slots, cond, max_size=2, timeout=30.0)
    ended = threading.Event()
    consumer = threading.Thread(target=lambda: (batcher.next_batch() is None) and ended.set())
    consumer.start()
    for slot in slots:
        slot.finish()
    consumer.join(timeout=5)
    assert ended.is_set()


# -- camera watchdog and backoff ------------------------------------------------------------------------------


class _Listener:
    def frame_in(self, camera_id: str) -> None: ...

    def frames_dropped(self, camera_id: str, count: int) -> None: ...

    def camera_up(self, camera_id: str, up: bool) -> None: ...

    def reconnect(self, camera_id: str) -> None: ...

    def camera_failed(self, camera_id: str, reason: str) -> None: ...


def _camera(uri: str, cfg: SourceConfig) -> Camera:
    spec = parse_source_uri(uri, "cam")
    cond = threading.Condition()
    slot = FrameSlot("cam", live=spec.live, capacity=2, cond=cond)
    return Camera(spec, cfg, slot, _Listener(), lambda bus, handler: lambda: None, threading.Event())


def test_the_watchdog_restarts_a_silent_live_camera_and_fails_a_file_without_video() -> None:
    cfg = SourceConfig(stall_timeout_s=3.0, rtsp_tcp_timeout_s=2.0)
    live = _camera("rtsp://192.0.2.1/stream", cfg)
    live.state, live.last_frame = CameraState.STREAMING, 100.0
    live.check_watchdog(102.9)
    assert live._request.restart is None
    live.check_watchdog(103.1)
    assert live._request.restart is not None
    assert "no frame for 3.1 s" in live._request.restart
    connecting = _camera("rtsp://192.0.2.1/stream", cfg)
    connecting.state, connecting.started_at = CameraState.CONNECTING, 100.0
    connecting.check_watchdog(104.9)
    assert connecting._request.restart is None, "stall + TCP timeout before giving up on a connection"
    connecting.check_watchdog(105.1)
    assert connecting._request.restart is not None
    video = _camera(str(DATA / "messi_moves.mp4"), cfg)
    video.state, video.started_at = CameraState.CONNECTING, 100.0
    video.check_watchdog(100.0 + FIRST_FRAME_TIMEOUT_S + 0.1)
    assert video._request.failure is not None, "a file is not retried: it fails"
    assert "no video frame decoded" in video._request.failure


def test_backoff_doubles_up_to_its_cap_with_jitter() -> None:
    delays = [0.5]
    for _ in range(5):
        delays.append(next_backoff(delays[-1], 4.0))
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    rng = random.Random(7)
    spread = [jittered(2.0, rng) for _ in range(200)]
    assert min(spread) >= 2.0 * (1 - BACKOFF_JITTER)
    assert max(spread) <= 2.0 * (1 + BACKOFF_JITTER)
    assert len({round(d, 3) for d in spread}) > 100, "cameras do not retry in lockstep"


# -- run summary ----------------------------------------------------------------------------------------------


def _result(stream: str) -> FrameResult:
    return FrameResult(stream, 0, 0.0, 4, 4, (), None, 0.0)


def test_the_run_summary_counts_per_camera_and_sets_the_exit_code() -> None:
    summary = RunSummary(frames={"a": 0, "b": 0}, poses={"a": 0, "b": 0})
    summary.count([_result("a"), _result("b"), _result("a")])
    assert summary.frames == {"a": 2, "b": 1}
    assert summary.exit_code == 0
    summary.output_errors.append("jsonl: disk full")
    assert summary.exit_code == 1
    clean = RunSummary(frames={"a": 1}, poses={"a": 0}, failures={"a": "no such file"})
    assert clean.exit_code == 1


# -- pose stage -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def estimator(models_dir: Path) -> PoseEstimator:
    return create_cpu_estimator(models_dir, EstimatorSettings())


def _video_frames(count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(DATA / "messi_moves.mp4"))
    frames = []
    for _ in range(count):
        ok, frame = capture.read()
        assert ok
        frames.append(np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
    capture.release()
    return frames


def test_the_pose_stage_tracks_per_camera_and_takes_detections_from_outside(estimator: PoseEstimator) -> None:
    images = _video_frames(3)
    own = PoseStage(estimator)
    given = PoseStage(PoseEstimator(None, estimator.landmarker, estimator.settings, estimator.cropper))
    for index, image in enumerate(images):
        frames = [_frame_at("a", index, image), _frame_at("b", index, image[:, ::-1].copy())]
        expected = own.process(frames)
        detections = estimator.detect([f.image for f in frames])
        got = given.process(frames, detections=detections)
        assert [r.stream for r in got] == ["a", "b"]
        for mine, theirs in zip(expected, got, strict=True):
            assert len(mine.poses) == len(theirs.poses) == 1
            np.testing.assert_allclose(
                [(lm.x, lm.y) for lm in mine.poses[0].landmarks],
                [(lm.x, lm.y) for lm in theirs.poses[0].landmarks],
                atol=1e-6,
            )
        assert expected[0].poses[0].track_id is not None
    with pytest.raises(RuntimeError, match="no detector"):
        PoseStage(given.estimator).process([_frame_at("c", 0, images[0])])
    with pytest.raises(ValueError, match="detections for"):
        given.process([_frame_at("a", 9, images[0])], detections=[])


def test_a_reconnect_starts_a_new_track(estimator: PoseEstimator) -> None:
    image = _video_frames(1)[0]
    stage = PoseStage(estimator)
    first = stage.process([_frame_at("a", 0, image)])[0].poses[0].track_id
    tracker = stage._streams["a"].tracker
    again = stage.process([_frame_at("a", 1, image)])[0].poses[0].track_id
    assert first == again, "the same person, tracked"
    assert stage._streams["a"].tracker is tracker
    stage.process([_frame_at("a", 0, image, generation=2)])
    assert stage._streams["a"].tracker is not tracker, "a rebuilt source is a new timeline: a new tracker"


def _frame_at(camera: str, index: int, image: np.ndarray, generation: int = 1) -> Frame:
    return Frame(camera, index, index / 25.0, image, time.monotonic(), generation)


def test_processing_lanes_follow_cores_cameras_and_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """One lane per core up to one per camera on the CPU; what the config says when it says; one on a GPU."""
    from blazestream.config import AppConfig
    from blazestream.pipeline import graph

    monkeypatch.setattr(graph, "available_cores", lambda: 4)
    cameras = [{"id": f"c{i}", "uri": "test:"} for i in range(3)]
    cfg = AppConfig.model_validate({"cameras": cameras})
    assert graph.processing_lanes(cfg, cpu=True) == 3
    assert graph.processing_lanes(cfg, cpu=True, dynamic=True) == 4
    assert graph.processing_lanes(cfg, cpu=False) == 1
    pinned = AppConfig.model_validate({"cameras": cameras, "batch": {"lanes": 2}})
    assert graph.processing_lanes(pinned, cpu=True) == 2
    assert graph.processing_lanes(pinned, cpu=False) == 1
    with pytest.raises(ValueError, match="lanes"):
        AppConfig.model_validate({"batch": {"lanes": 0}})


def test_lanes_make_model_runs_single_threaded_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several lanes: single-threaded runs (the lanes fill the cores), a batch still split into parallel
    runs; one lane: the automatic values (one per core); what the config sets is kept either way."""
    from blazestream.config import AppConfig
    from blazestream.pipeline import graph

    monkeypatch.setattr(graph, "available_cores", lambda: 4)
    many = AppConfig.model_validate({"cameras": [{"id": f"c{i}", "uri": "test:"} for i in range(3)]})
    settings = graph.ort_settings(many)
    assert (settings.intra_op_threads, settings.parallel_runs) == (1, 0)
    one = AppConfig.model_validate({"cameras": [{"id": "c0", "uri": "test:"}]})
    settings = graph.ort_settings(one)
    assert (settings.intra_op_threads, settings.parallel_runs) == (0, 0)
    assert graph.ort_settings(one, dynamic=True).intra_op_threads == 1, "a dynamic run has a lane per core"
    pinned = AppConfig.model_validate(
        {**many.model_dump(), "engine": {"onnxruntime": {"intra_op_threads": 2, "parallel_runs": 3}}}
    )
    settings = graph.ort_settings(pinned)
    assert (settings.intra_op_threads, settings.parallel_runs) == (2, 3)
