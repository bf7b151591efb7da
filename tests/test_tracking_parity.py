"""Video-mode tracking against MediaPipe 0.10.21's own, stage by stage, on the first frames of a clip.

Each frame's filtered auxiliary landmarks become the next frame's ROI, and the crop (8-bit warp), the
heatmap window (int(x * 64)) and its 0.5 threshold are discontinuous, so the loop amplifies any
difference, however small: MediaPipe against itself moves by 0.2% of the pose diagonal over 250
frames when a 16x16 patch of one frame is one grey level brighter (docs/performance.md). An end-to-end
figure over a long clip measures that sensitivity more than exactness. So every stage is checked on
MediaPipe's own inputs, where it is deterministic, and the closed loop only over the first frames:

- the landmark model and its decoding on MediaPipe's ROI give its unfiltered landmarks (ONNX Runtime
  vs XNNPACK float noise, ~1e-4 px);
- PoseLandmarkFiltering on its unfiltered landmarks gives its filtered landmarks, auxiliary and world
  landmarks bit for bit, with smoothing on and off;
- the next ROI from its filtered auxiliary landmarks is its ROI bit for bit;
- the whole loop (PoseStage, 33.333 ms per frame) stays within 0.1% of the diagonal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from blazestream.estimator import EstimatorSettings, PoseEstimator
from blazestream.factory import create_cpu_estimator
from blazestream.pipeline.frames import Frame
from blazestream.pipeline.stage import FIRST_TIMESTAMP_NS, PoseStage
from blazestream.pose.roi import alignment_roi
from blazestream.pose.smoothing import PoseSmoother
from blazestream.reference import run_worker
from conftest import DATA_DIR

pytestmark = pytest.mark.slow

FRAMES = 12
"""messi_moves.mp4 frames 0-11: one detection, then tracking; the foot jump of frames 3-5 included."""


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """The clip's first frames as a MediaPipe user feeds them: cv2.VideoCapture, BGR to RGB."""
    import cv2

    capture = cv2.VideoCapture(str(DATA_DIR / "messi_moves.mp4"))
    rgb = []
    try:
        while len(rgb) < FRAMES:
            ok, bgr = capture.read()
            assert ok, "the clip has fewer frames than the test reads"
            rgb.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    path = tmp_path_factory.mktemp("tracking") / "frames.npy"
    stack = np.stack(rgb)
    np.save(path, stack)
    return path, stack


@pytest.fixture(scope="module", params=[True, False], ids=["smooth", "no-smooth"])
def trace(request: pytest.FixtureRequest, frames: tuple[Path, np.ndarray]) -> tuple[bool, list[dict[str, Any]]]:
    """MediaPipe's intermediate streams per frame, with smooth_landmarks on or off."""
    smooth = bool(request.param)
    path = frames[0].with_name(f"trace_{smooth}.json")
    run_worker(
        ["trace", "--frames", str(frames[0]), "--max-frames", str(FRAMES), "--out", str(path)]
        + ([] if smooth else ["--no-smooth"])
    )
    record = json.loads(path.read_text())["frames"]
    assert len(record) == FRAMES
    assert all(entry["pose_landmarks"] is not None for entry in record), "MediaPipe tracks every frame"
    return smooth, record


@pytest.fixture(scope="module")
def estimator(models_dir: Path) -> PoseEstimator:
    return create_cpu_estimator(models_dir, EstimatorSettings())


def _rows(entry: dict[str, Any], name: str, columns: int = 5) -> np.ndarray:
    return np.asarray(entry[name], dtype=np.float32)[:, :columns]


def test_landmarks_on_mediapipes_roi_are_mediapipes(
    trace: tuple[bool, list[dict[str, Any]]], frames: tuple[Path, np.ndarray], estimator: PoseEstimator
) -> None:
    """Crop, model, decoding and heatmap refinement: open loop, every frame on MediaPipe's ROI."""
    _, record = trace
    height, width = frames[1].shape[1:3]
    for index, entry in enumerate(record):
        roi = np.asarray(entry["pose_rect"], dtype=np.float32)[None]
        result = estimator.estimate([frames[1][index]], [0], roi)
        ours = result.landmarks[0]
        theirs = np.concatenate(
            [_rows(entry, "unfiltered_pose_landmarks"), _rows(entry, "unfiltered_auxiliary_landmarks")]
        )
        px = np.hypot((ours[:35, 0] - theirs[:, 0]) * width, (ours[:35, 1] - theirs[:, 1]) * height)
        assert px.max() < 0.01, f"frame {index}: landmark {px.argmax()} {px.max():.4f} px from MediaPipe's"
        assert np.abs(ours[:35, 3] - theirs[:, 3]).max() < 1e-4, f"frame {index}: visibility"
        world = _rows(entry, "unfiltered_world_landmarks", 3)
        assert np.abs(result.world[0] - world).max() < 1e-4, f"frame {index}: world landmarks (m)"


def test_filters_and_next_roi_are_mediapipes_bit_for_bit(
    trace: tuple[bool, list[dict[str, Any]]], frames: tuple[Path, np.ndarray]
) -> None:
    """PoseLandmarkFiltering and PoseLandmarksToRoi on MediaPipe's unfiltered landmarks, its timestamps."""
    smooth, record = trace
    height, width = frames[1].shape[1:3]
    smoother = PoseSmoother(smooth=smooth)
    size = np.asarray([width, height], dtype=np.float32)
    for index, entry in enumerate(record):
        landmarks, aux, world = smoother(
            _rows(entry, "unfiltered_pose_landmarks"),
            _rows(entry, "unfiltered_auxiliary_landmarks"),
            _rows(entry, "unfiltered_world_landmarks", 3),
            image_size=(width, height),
            timestamp_ns=FIRST_TIMESTAMP_NS * (index + 1),
        )
        where = f"frame {index}"
        np.testing.assert_array_equal(landmarks[:, :4], _rows(entry, "pose_landmarks", 4), err_msg=where)
        np.testing.assert_array_equal(aux[:, :4], _rows(entry, "auxiliary_landmarks", 4), err_msg=where)
        np.testing.assert_array_equal(world, _rows(entry, "pose_world_landmarks", 3), err_msg=where)
        theirs = _rows(entry, "auxiliary_landmarks")
        roi = alignment_roi(theirs[0, 0:2], theirs[1, 0:2], size).astype(np.float32)
        np.testing.assert_array_equal(roi, np.float32(entry["pose_rect_from_landmarks"]), err_msg=where)


def test_closed_loop_tracking_agrees(
    trace: tuple[bool, list[dict[str, Any]]], frames: tuple[Path, np.ndarray], estimator: PoseEstimator
) -> None:
    """The whole loop, as the pipeline runs it: PoseStage over RGB frames, 33.333 ms apart."""
    smooth, record = trace
    height, width = frames[1].shape[1:3]
    stage = PoseStage(estimator, smooth=smooth)
    errors = []
    for index, entry in enumerate(record):
        frame = Frame("cam", index, index / 25.0, frames[1][index], 0.0, 0)
        (result,) = stage.process([frame])
        assert len(result.poses) == 1, f"frame {index}: no pose"
        ours = np.asarray([[lm.x * width, lm.y * height] for lm in result.poses[0].landmarks])
        theirs = _rows(entry, "pose_landmarks", 2) * [width, height]
        diagonal = float(np.linalg.norm(theirs.max(0) - theirs.min(0)))
        errors.append(float(np.linalg.norm(ours - theirs, axis=1).mean()) / diagonal)
    assert errors[0] < 1e-5, "frame 0 (detection) is static-mode parity"
    assert float(np.median(errors)) <= 0.001, f"median {np.median(errors):.4%} of the pose diagonal"
