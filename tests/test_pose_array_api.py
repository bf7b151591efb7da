"""The pose core on array-api-strict: proves no NumPy-only call slipped into decoding and geometry.

CuPy implements the same standard, so what passes here runs on the GPU unchanged.
"""

from __future__ import annotations

import array_api_strict as xps
import numpy as np
import pytest

from blazestream.pose.anchors import generate_anchors
from blazestream.pose.detection import decode_detections, remove_letterbox, weighted_nms
from blazestream.pose.landmarks import (
    decode_landmarks,
    project_landmarks,
    project_world,
    refine_from_heatmap,
)
from blazestream.pose.landmarks import remove_letterbox as remove_lm_letterbox
from blazestream.pose.roi import (
    alignment_roi,
    box_points,
    crop_affine,
    full_image_roi,
    pad_roi,
    roi_to_pixels,
)
from blazestream.pose.smoothing import OneEuroFilter, OneEuroParams


def _np(x: object) -> np.ndarray:
    return np.asarray(xps.asarray(x, copy=True)._array)  # type: ignore[attr-defined]


def test_detection_and_roi_pipeline_runs_on_array_api_strict() -> None:
    rng = np.random.default_rng(3)
    boxes = rng.normal(0, 20, (2, 2254, 12)).astype(np.float32)
    boxes[..., 2:4] = rng.uniform(5, 60, (2, 2254, 2))
    scores = rng.normal(-2, 3, (2, 2254, 1)).astype(np.float32)
    sizes = np.array([[640, 480], [300, 500]], np.float32)

    def run(xp, cast):  # type: ignore[no-untyped-def]
        anchors = cast(generate_anchors())
        dets = decode_detections(cast(boxes), cast(scores), anchors, min_score=0.5)
        dets = weighted_nms(dets, max_detections=3)
        size = cast(sizes)
        _, padding = pad_roi(roi_to_pixels(full_image_roi(size), size), tensor_width=224, tensor_height=224)
        dets = remove_letterbox(dets, padding)
        rois = alignment_roi(dets.keypoints[..., 0, :], dets.keypoints[..., 1, :], size[:, None, :])
        rois_px = roi_to_pixels(rois, size[:, None, :])
        return rois, box_points(rois_px), crop_affine(rois_px, out_width=256, out_height=256), dets.valid

    strict = run(xps, xps.asarray)
    ref = run(np, np.asarray)
    for s, r in zip(strict, ref, strict=True):
        np.testing.assert_allclose(_np(s), r, rtol=1e-5, atol=1e-5)
    assert _np(strict[3]).any()


def test_landmark_decoding_runs_on_array_api_strict() -> None:
    rng = np.random.default_rng(4)
    raw = rng.normal(128, 60, (3, 195)).astype(np.float32)
    heatmap = rng.normal(0, 2, (3, 39, 64, 64)).astype(np.float32)
    world = rng.normal(0, 0.3, (3, 117)).astype(np.float32)
    rois = np.array([[0.5, 0.5, 0.3, 0.4, 0.2], [0.2, 0.6, 0.1, 0.2, -3.0], [0.7, 0.3, 0.5, 0.5, 1.5]], np.float32)
    padding = np.zeros((3, 4), np.float32)

    def run(cast):  # type: ignore[no-untyped-def]
        lms = decode_landmarks(cast(raw))
        lms = refine_from_heatmap(lms, cast(heatmap), kernel_size=7)
        lms = remove_lm_letterbox(lms, cast(padding))
        return project_landmarks(lms, cast(rois)), project_world(cast(world), cast(rois))

    for s, r in zip(run(xps.asarray), run(np.asarray), strict=True):
        np.testing.assert_allclose(_np(s), r, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("scale", [1.0, 0.01])
def test_one_euro_runs_on_array_api_strict(scale: float) -> None:
    values = np.linspace(0, 5, 12, dtype=np.float32).reshape(4, 3)
    a, b = OneEuroFilter(OneEuroParams(0.05, 80.0)), OneEuroFilter(OneEuroParams(0.05, 80.0))
    for i, row in enumerate(values):
        got = a.apply(xps.asarray(row), (i + 1) * 33_333_000, scale)
        want = b.apply(row, (i + 1) * 33_333_000, scale)
        np.testing.assert_allclose(_np(got), want, rtol=1e-6)


def test_windowed_detection_runs_on_array_api_strict() -> None:
    """Windows mapped to frame coordinates and grouped per frame, strict and NumPy alike."""
    from blazestream.pose.windows import WindowSpec, frame_windows, group_by_frame, windows_to_frame

    rng = np.random.default_rng(5)
    windows = frame_windows(640, 360, WindowSpec(scales=(1.0,), overlap=0.5))
    count = len(windows)
    boxes = rng.normal(0, 20, (count, 2254, 12)).astype(np.float32)
    boxes[..., 2:4] = rng.uniform(5, 60, (count, 2254, 2))
    scores = rng.normal(-2, 3, (count, 2254, 1)).astype(np.float32)
    sizes = np.tile(np.array([[640, 360]], np.float32), (count, 1))
    anchors = generate_anchors()
    out = []
    for xp in (xps, np):
        dets = decode_detections(xp.asarray(boxes), xp.asarray(scores), xp.asarray(anchors))
        dets = windows_to_frame(dets, xp.asarray(windows), xp.asarray(sizes), edge_tolerance=0.25)
        grouped = weighted_nms(group_by_frame(dets, [0] * count, 1), max_detections=3)
        out.append(grouped)
    np.testing.assert_allclose(_np(out[0].keypoints), np.asarray(out[1].keypoints), rtol=1e-5, atol=1e-6)
    assert _np(out[0].valid).tolist() == np.asarray(out[1].valid).tolist()
    assert np.asarray(out[1].valid).any()


def test_numpy_arrays_take_numpy_itself_and_others_array_api_compat() -> None:
    from blazestream.pose.xp import array_namespace

    assert array_namespace(np.zeros(2), np.ones(3)) is np
    assert array_namespace(xps.asarray([1.0])) is xps  # array-api-compat answers for the others


def test_the_streaming_graph_loads_without_array_api_compats_numpy_wrapper() -> None:
    """Its import touches every NumPy submodule (f2py, testing, ma): ~0.2 s of every start-up."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "import blazestream.pipeline.graph\n"
        "from blazestream.pose.tracking import PoseTracker\n"
        "from blazestream.pose.xp import array_namespace, sigmoid\n"
        "sigmoid(array_namespace(np.zeros(3)), np.zeros(3))\n"
        "print(sorted(m for m in ('array_api_compat.numpy', 'numpy.f2py') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
