"""ROI geometry, crops and landmark decoding against MediaPipe's formulas and OpenCV."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from blazestream.pose.crop import warp_rois
from blazestream.pose.landmarks import (
    decode_landmarks,
    project_landmarks,
    project_world,
    refine_from_heatmap,
    remove_letterbox,
)
from blazestream.pose.roi import (
    alignment_roi,
    box_points,
    crop_affine,
    full_image_roi,
    pad_roi,
    roi_to_pixels,
)

SIZE = np.array([640.0, 480.0], np.float32)


def _pt(x_px: float, y_px: float) -> np.ndarray:
    return np.array([x_px / SIZE[0], y_px / SIZE[1]], np.float32)


def test_upright_person_gives_rotation_zero_and_square_pixels() -> None:
    roi = alignment_roi(_pt(320, 300), _pt(320, 200), SIZE)
    xc, yc, w, h, rot = roi
    assert (xc * 640, yc * 480) == pytest.approx((320, 300))
    assert rot == pytest.approx(0.0, abs=1e-6)
    # side = 2 * 1.25 * |p1 - p0| pixels, square in pixels (not in normalized units)
    assert w * 640 == pytest.approx(250.0, rel=1e-6)
    assert h * 480 == pytest.approx(250.0, rel=1e-6)


@pytest.mark.parametrize(
    ("dx", "dy", "expected"),
    [(100, 0, math.pi / 2), (-100, 0, -math.pi / 2), (0, 100, -math.pi), (70, -70, math.pi / 4)],
)
def test_rotation_follows_keypoint_direction(dx: float, dy: float, expected: float) -> None:
    """Rotation = norm(pi/2 - atan2(-(y1 - y0), x1 - x0)) in pixel coordinates, y down."""
    roi = alignment_roi(_pt(300, 240), _pt(300 + dx, 240 + dy), SIZE)
    assert roi[4] == pytest.approx(expected, abs=1e-6)
    assert -math.pi <= roi[4] < math.pi


def test_box_points_match_opencv() -> None:
    rois = np.array([[100.0, 80.0, 60.0, 60.0, 0.3], [320.0, 240.0, 200.0, 120.0, -2.0]], np.float32)
    ours = box_points(rois)
    for roi, pts in zip(rois, ours, strict=True):
        cv_pts = cv2.boxPoints(((roi[0], roi[1]), (roi[2], roi[3]), math.degrees(roi[4])))
        np.testing.assert_allclose(pts, cv_pts, atol=1e-3)


def test_crop_affine_is_the_inverse_of_mediapipes_perspective_transform() -> None:
    rois = np.array([[310.0, 250.0, 180.0, 180.0, 0.7]], np.float32)
    affine = crop_affine(rois, out_width=256, out_height=256)[0]
    src = box_points(rois)[0].astype(np.float32)
    dst = np.array([[0, 256], [0, 0], [256, 0], [256, 256]], np.float32)
    forward = cv2.getPerspectiveTransform(src, dst)
    for u, v in [(0, 0), (255, 0), (128, 200), (17, 255)]:
        x, y = affine @ np.array([u, v, 1.0])
        p = forward @ np.array([x, y, 1.0])
        assert p[:2] / p[2] == pytest.approx((u, v), abs=1e-3)


def test_detector_letterbox_padding() -> None:
    sizes = np.array([[640.0, 480.0], [480.0, 640.0]], np.float32)
    padded, padding = pad_roi(roi_to_pixels(full_image_roi(sizes), sizes), tensor_width=224, tensor_height=224)
    np.testing.assert_allclose(padded[0, :4], [320, 240, 640, 640])
    np.testing.assert_allclose(padding[0], [0, 0.125, 0, 0.125])
    np.testing.assert_allclose(padded[1, :4], [240, 320, 640, 640])
    np.testing.assert_allclose(padding[1], [0.125, 0, 0.125, 0])


def test_crop_uses_replicate_or_zero_border() -> None:
    image = np.full((50, 60, 3), 200, np.uint8)
    roi = np.array([[30.0, 25.0, 120.0, 120.0, 0.0]], np.float32)  # twice the image: borders inside
    replicate = warp_rois(image, roi, size=64, border="replicate")
    zero = warp_rois(image, roi, size=64, border="zero")
    assert replicate.min() == 200
    assert zero[0, 0, 0, 0] == 0
    assert zero[0, 32, 32, 0] == 200


def test_crop_puts_the_roi_upright() -> None:
    """A bright bar along +x in the image, seen through a ROI rotated by +90 degrees, is vertical."""
    image = np.zeros((200, 200, 3), np.uint8)
    image[98:102, 100:190] = 255
    roi = np.array([[100.0, 100.0, 160.0, 160.0, math.pi / 2]], np.float32)
    crop = warp_rois(image, roi, size=64, border="zero")[0, :, :, 0]
    rows, cols = np.nonzero(crop > 128)
    assert np.ptp(rows) > 5 * max(1, np.ptp(cols)), "the bar should be vertical in the crop"


def _refine_port(lms, heatmap_hwc, kernel):  # type: ignore[no-untyped-def]
    """Line-by-line port of RefineLandmarksFromHeatMap (C++), including its row-check quirk."""
    out = lms.copy()
    hm_h, hm_w, _ = heatmap_hwc.shape
    for j in range(lms.shape[0]):
        col = int(np.float32(lms[j, 0]) * np.float32(hm_w))
        row = int(np.float32(lms[j, 1]) * np.float32(hm_h))
        if col < 0 or col >= hm_w or row < 0 or col >= hm_h:
            continue
        off = (kernel - 1) // 2
        total = wc = wr = peak = 0.0
        for r in range(max(0, row - off), min(hm_h, row + off + 1)):
            for c in range(max(0, col - off), min(hm_w, col + off + 1)):
                conf = 1.0 / (1.0 + math.exp(-float(heatmap_hwc[r, c, j])))
                total += conf
                peak = max(peak, conf)
                wc += c * conf
                wr += r * conf
        if peak >= 0.5 and total > 0:
            out[j, 0] = wc / hm_w / total
            out[j, 1] = wr / hm_h / total
    return out


@pytest.mark.parametrize("kernel", [7, 9])
def test_heatmap_refinement_equals_the_cpp_loop(kernel: int) -> None:
    rng = np.random.default_rng(kernel)
    lms = np.concatenate([rng.uniform(-0.1, 1.1, (39, 3)), rng.uniform(0, 1, (39, 2))], axis=1).astype(np.float32)
    lms[0, :2] = [0.5, 1.02]  # row 65: outside, yet refined from the last rows (the C++ checks col twice)
    lms[1, :2] = [1.01, 0.5]  # col 64: kept
    lms[2, :2] = [-0.001, 0.5]  # int() truncates toward zero: col 0, refined
    heatmap = rng.normal(0.5, 2.0, (64, 64, 39)).astype(np.float32)
    want = _refine_port(lms, heatmap, kernel)
    got = refine_from_heatmap(lms[None], np.ascontiguousarray(heatmap.transpose(2, 0, 1))[None], kernel_size=kernel)[0]
    np.testing.assert_allclose(got, want, atol=2e-6)
    assert not np.allclose(got[0, :2], lms[0, :2]), "the row-quirk landmark should be refined"
    np.testing.assert_array_equal(got[1], lms[1])
    assert not np.allclose(got[2, :2], lms[2, :2])


def test_landmark_decoding_and_projection() -> None:
    raw = np.zeros((1, 195), np.float32)
    values = raw.reshape(1, 39, 5)
    values[0, 0] = [128.0, 64.0, 25.6, 0.0, 2.0]  # centre column, a quarter down
    lms = decode_landmarks(raw)
    np.testing.assert_allclose(lms[0, 0], [0.5, 0.25, 0.1, 0.5, 1 / (1 + math.exp(-2))], rtol=1e-6)
    roi = np.array([[0.5, 0.5, 0.5, 0.5, math.pi / 2]], np.float32)
    img = project_landmarks(lms, roi)
    # (0, -0.25) rotated by +90 degrees is (+0.25, 0), scaled by 0.5
    np.testing.assert_allclose(img[0, 0, :3], [0.625, 0.5, 0.05], atol=1e-6)
    assert img[0, 0, 3] == pytest.approx(0.5)


def test_letterbox_removal_scales_z_like_x() -> None:
    lms = np.array([[[0.5, 0.5, 0.2, 1.0, 1.0]]], np.float32)
    out = remove_letterbox(lms, np.array([[0.1, 0.0, 0.1, 0.0]], np.float32))
    np.testing.assert_allclose(out[0, 0, :3], [0.5, 0.5, 0.25], rtol=1e-6)


def test_world_landmarks_rotate_about_camera_axis() -> None:
    raw = np.zeros((1, 117), np.float32)
    raw.reshape(1, 39, 3)[0, 5] = [0.1, 0.2, 0.3]
    world = project_world(raw, np.array([[0.5, 0.5, 0.5, 0.5, math.pi]], np.float32))
    assert world.shape == (1, 33, 3)
    np.testing.assert_allclose(world[0, 5], [-0.1, -0.2, 0.3], atol=1e-6)
