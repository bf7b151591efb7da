"""TensorRT engines against ONNX Runtime on the same inputs (made by the pose core from the bundled clip).

Tolerances: fp32 is the same math in another order (raw outputs within 1e-3 relative to their range);
fp16 and int8 are compared after decoding, on what users see: landmarks within 1 px (fp16) and 4 px
(int8) of the 256 px crop, pose flag within 0.02 / 0.10, detector keypoints within 1 / 4 px of 224.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from blazestream.engines.onnxruntime import OnnxRuntimeEngine
from blazestream.models import calibration
from blazestream.pose.anchors import generate_anchors
from blazestream.pose.detection import decode_detections
from blazestream.pose.landmarks import decode_landmarks

pytestmark = [pytest.mark.gpu, pytest.mark.needs_tensorrt]
DATA = Path(__file__).resolve().parents[2] / "data"
TOLERANCE_PX = {"fp16": 1.0, "int8": 4.0}
TOLERANCE_FLAG = {"fp16": 0.02, "int8": 0.10}


@pytest.fixture(scope="module")
def inputs(models_dir: Path) -> dict[str, np.ndarray]:
    frames = calibration.sample_frames(DATA / "messi_moves.mp4", 16)
    return {
        "detector": calibration.detector_tensors(frames),
        "landmark": calibration.landmark_tensors(frames, models_dir)[:16],
    }


def _pair(models_dir: Path, engines: Path, role: str, precision: str) -> tuple[dict, dict]:
    from blazestream.engines.tensorrt import TensorRTEngine
    from blazestream.models.cache import load_model_paths
    from blazestream.trt_build.engine_cache import engine_path

    paths = load_model_paths(models_dir)
    onnx = paths.detector_onnx if role == "detector" else paths.landmark_noseg_onnx
    return OnnxRuntimeEngine(onnx), TensorRTEngine(engine_path(engines, onnx, precision))  # type: ignore[return-value]


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_detector(models_dir: Path, build: Callable[[str], Path], inputs: dict, precision: str) -> None:
    ort, trt = _pair(models_dir, build(precision), "detector", precision)
    x = inputs["detector"]
    want = ort.infer(x)
    got = {k: v.get() for k, v in trt.infer(x).items()}
    assert set(got) == {"boxes", "scores"}
    if precision == "fp32":
        for name in got:
            span = float(np.abs(want[name]).max())
            np.testing.assert_allclose(got[name], want[name], atol=1e-3 * span, rtol=0)
        return
    anchors = generate_anchors()
    a = decode_detections(want["boxes"], want["scores"], anchors)
    b = decode_detections(got["boxes"], got["scores"], anchors)
    both = a.valid & b.valid
    assert both.sum() >= 0.9 * a.valid.sum()
    assert np.abs(a.keypoints[both] - b.keypoints[both]).max() * 224 <= TOLERANCE_PX[precision]


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_landmark(models_dir: Path, build: Callable[[str], Path], inputs: dict, precision: str) -> None:
    ort, trt = _pair(models_dir, build(precision), "landmark", precision)
    x = inputs["landmark"]
    want = ort.infer(x)
    got = {k: v.get() for k, v in trt.infer(x).items()}
    assert set(got) == {"landmarks", "pose_flag", "heatmap", "world_landmarks"}
    if precision == "fp32":
        for name in got:
            span = float(np.abs(want[name]).max())
            np.testing.assert_allclose(got[name], want[name], atol=1e-3 * span, rtol=0)
        return
    a, b = decode_landmarks(want["landmarks"]), decode_landmarks(got["landmarks"])
    assert np.abs(a[..., :2] - b[..., :2]).max() * 256 <= TOLERANCE_PX[precision]
    assert np.abs(want["pose_flag"] - got["pose_flag"]).max() <= TOLERANCE_FLAG[precision]


def test_engine_reports_its_profile_and_splits_nothing(models_dir: Path, build: Callable[[str], Path]) -> None:
    _, trt = _pair(models_dir, build("fp16"), "detector", "fp16")
    assert trt.max_batch == 16
    assert trt.input_shape == (3, 224, 224)
    with pytest.raises(Exception, match=r"profile takes 1\.\.16"):
        trt.infer(np.zeros((17, 3, 224, 224), np.float32))
