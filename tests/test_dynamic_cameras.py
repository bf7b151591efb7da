"""Cameras joining and leaving a run: batcher slots, video cells, metrics series, the state file, redaction."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import generate_latest

from blazestream.api.security import check_bind
from blazestream.api.state import read_state, write_state
from blazestream.config import CameraConfig
from blazestream.errors import ConfigError
from blazestream.outputs.metrics import Metrics
from blazestream.outputs.video import Tiler
from blazestream.pipeline.frames import Batcher, Frame, FrameSlot
from blazestream.results import FrameResult
from blazestream.uris import redact_uri
from test_outputs import make_result


def _picture(camera: str, value: int) -> FrameResult:
    image = np.full((50, 100, 3), value, np.uint8)
    return FrameResult(camera, 0, 0.0, 100, 50, (), image, 0.0)


def _frame(camera: str, index: int = 0) -> Frame:
    return Frame(camera, index, index / 10, np.zeros((4, 4, 3), np.uint8), 0.0, 1)


def test_batcher_takes_a_new_camera_from_the_next_batch_and_forgets_a_removed_one() -> None:
    cond = threading.Condition()
    stop = threading.Event()
    a = FrameSlot("a", live=True, capacity=1, cond=cond)
    batcher = Batcher([a], cond, max_size=1, timeout=0.01, persistent=True)
    a.put(_frame("a"), stop)
    assert [f.camera_id for f in batcher.next_batch() or []] == ["a"]

    b = FrameSlot("b", live=True, capacity=1, cond=cond)
    batcher.add_slot(b, max_size=2)
    a.put(_frame("a", 1), stop)
    b.put(_frame("b"), stop)
    assert sorted(f.camera_id for f in batcher.next_batch() or []) == ["a", "b"]

    a.put(_frame("a", 2), stop)
    b.put(_frame("b", 1), stop)
    batcher.remove_slot(a, max_size=1)
    assert [f.camera_id for f in batcher.next_batch() or []] == ["b"], "a's waiting frame is gone with it"

    b.finish()
    done: list[object] = []
    waiter = threading.Thread(target=lambda: done.append(batcher.next_batch()))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive(), "a persistent batcher waits for cameras to come even when all have finished"
    batcher.stop()
    waiter.join(5)
    assert done == [None]


def test_tiler_blanks_a_removed_cell_and_reuses_it() -> None:
    tiler = Tiler(["a", "b", "c", "d"], 200, 100)
    for cam in "abcd":
        tiler.update(_picture(cam, 200))
    tiler.remove_camera("b")
    canvas = tiler.compose().copy()
    assert (canvas[:50, 100:] == 24).all(), "b's cell is blank background"
    assert (canvas[20:30, 40:60] == 200).all(), "a keeps its place"
    tiler.add_camera("e")
    assert tiler.camera_ids == ["a", "e", "c", "d"], "the new camera takes the blank cell"
    tiler.add_camera("f")
    assert (tiler.cols, tiler.rows) == (3, 2), "then the grid grows"
    tiler.update(_picture("f", 90))
    assert tiler.compose().shape == (100, 200, 3)


def test_metrics_series_come_and_go_with_the_camera() -> None:
    metrics = Metrics(["a"])
    metrics.add_camera("b")
    assert 'blazestream_frames_in_total{camera="b"} 0.0' in generate_latest(metrics.registry).decode()
    metrics.frame_in("b")
    metrics.write([make_result("b")])
    metrics.remove_camera("b")
    text = generate_latest(metrics.registry).decode()
    assert 'camera="b"' not in text
    assert 'camera="a"' in text
    metrics.add_camera("b")
    assert 'blazestream_frames_in_total{camera="b"} 0.0' in generate_latest(metrics.registry).decode()


def test_state_file_round_trip_is_atomic_and_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "cameras.json"
    assert read_state(path) is None
    cameras = [CameraConfig(id="a", uri="rtsp://u:p@192.0.2.1/x", max_poses=2), CameraConfig(id="b", uri="test:")]
    write_state(path, cameras)
    assert read_state(path) == cameras
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["cameras.json"], "no temporary file left"
    path.write_text(json.dumps({"version": 99, "cameras": []}))
    with pytest.raises(ConfigError, match="version 99"):
        read_state(path)
    path.write_text("{")
    with pytest.raises(ConfigError, match="fix or delete it"):
        read_state(path)


def test_redaction_and_bind_rule() -> None:
    assert redact_uri("rtsp://admin:s3cr3t@192.0.2.1:554/s") == "rtsp://admin:***@192.0.2.1:554/s"
    assert redact_uri("could not open rtsp://a:b@h/x (timeout)") == "could not open rtsp://a:***@h/x (timeout)"
    assert redact_uri("rtsp://192.0.2.1/s") == "rtsp://192.0.2.1/s"
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("0.0.0.0", "a-long-token")
    with pytest.raises(ConfigError, match="not a loopback address"):
        check_bind("0.0.0.0", None)
