"""The pose core on CuPy arrays decodes exactly like on NumPy (same tensors, same functions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from blazestream.engines.onnxruntime import OnnxRuntimeEngine
from blazestream.models import calibration
from blazestream.pose.anchors import generate_anchors
from blazestream.pose.detection import decode_detections, remove_letterbox, weighted_nms
from blazestream.pose.landmarks import decode_landmarks, project_landmarks, project_world, refine_from_heatmap
from blazestream.pose.roi import alignment_roi

pytestmark = pytest.mark.gpu
DATA = Path(__file__).resolve().parents[2] / "data"


def test_detection_decoding_on_cupy_equals_numpy(models_dir: Path) -> None:
    import cupy as cp

    frames = calibration.sample_frames(DATA / "messi_moves.mp4", 8)
    out = OnnxRuntimeEngine(models_dir / "pose_detection.onnx").infer(calibration.detector_tensors(frames))
    padding = np.tile(np.asarray([[0.0, 0.125, 0.0, 0.125]], np.float32), (8, 1))
    sizes = np.tile(np.asarray([[640.0, 480.0]], np.float32), (8, 1))[:, None, :]

    def run(xp: object, to: object) -> list[np.ndarray]:
        dets = decode_detections(to(out["boxes"]), to(out["scores"]), to(generate_anchors()))
        dets = remove_letterbox(weighted_nms(dets, max_detections=2), to(padding))
        rois = alignment_roi(dets.keypoints[..., 0, :], dets.keypoints[..., 1, :], to(sizes))
        return [dets.scores, dets.keypoints, dets.valid, rois]

    on_cpu = run(np, np.asarray)
    on_gpu = [cp.asnumpy(a) for a in run(cp, cp.asarray)]
    assert type(run(cp, cp.asarray)[0]).__module__.startswith("cupy")
    for a, b in zip(on_cpu, on_gpu, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_landmark_decoding_on_cupy_equals_numpy(models_dir: Path) -> None:
    import cupy as cp

    frames = calibration.sample_frames(DATA / "messi_moves.mp4", 4)
    out = OnnxRuntimeEngine(models_dir / "pose_landmark_full_noseg.onnx").infer(
        calibration.landmark_tensors(frames, models_dir)
    )
    rois = np.tile(np.asarray([[0.5, 0.5, 0.6, 0.8, 0.3]], np.float32), (len(out["landmarks"]), 1))

    def run(to: object) -> list[np.ndarray]:
        lms = refine_from_heatmap(decode_landmarks(to(out["landmarks"])), to(out["heatmap"]))
        return [project_landmarks(lms, to(rois)), project_world(to(out["world_landmarks"]), to(rois))]

    for a, b in zip(run(np.asarray), [cp.asnumpy(x) for x in run(cp.asarray)], strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
