"""Anchors, detector decoding and weighted NMS against direct ports of MediaPipe's C++ loops."""

from __future__ import annotations

import math

import numpy as np
import pytest

from blazestream.pose.anchors import NUM_ANCHORS, generate_anchors
from blazestream.pose.detection import decode_detections, remove_letterbox, weighted_nms


def test_anchor_layout_matches_ssd_anchors_calculator() -> None:
    anchors = generate_anchors()
    assert anchors.shape == (NUM_ANCHORS, 2)
    # stride 8: 28x28 cells, 2 anchors each, row-major from the top-left cell centre
    np.testing.assert_allclose(anchors[0], [0.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(anchors[1], anchors[0])
    np.testing.assert_allclose(anchors[2], [1.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(anchors[1567], [27.5 / 28, 27.5 / 28])
    # stride 16 starts at 1568; the three stride-32 layers merge into 6 anchors per 7x7 cell
    np.testing.assert_allclose(anchors[1568], [0.5 / 14, 0.5 / 14])
    np.testing.assert_allclose(anchors[1960], [0.5 / 7, 0.5 / 7])
    assert np.all(anchors[1960:1966] == anchors[1960])
    np.testing.assert_allclose(anchors[-1], [6.5 / 7, 6.5 / 7])


def _raw(rng: np.random.Generator, batch: int = 1) -> tuple[np.ndarray, np.ndarray]:
    boxes = rng.normal(0, 20, (batch, NUM_ANCHORS, 12)).astype(np.float32)
    boxes[..., 2:4] = rng.uniform(5, 60, (batch, NUM_ANCHORS, 2))
    scores = rng.normal(-3, 3, (batch, NUM_ANCHORS, 1)).astype(np.float32)
    return boxes, scores


def test_decode_follows_tensors_to_detections() -> None:
    anchors = generate_anchors()
    boxes = np.zeros((1, NUM_ANCHORS, 12), np.float32)
    scores = np.full((1, NUM_ANCHORS, 1), -1000.0, np.float32)
    i = 100
    boxes[0, i] = [22.4, -11.2, 44.8, 67.2, 2.24, 4.48, 0, 0, -22.4, 0, 0, 11.2]
    scores[0, i, 0] = 0.0  # sigmoid(0) = 0.5: kept, since the threshold test is >=
    dets = decode_detections(boxes, scores, anchors, min_score=0.5)
    ax, ay = anchors[i]
    xc, yc, w, h = 0.1 + ax, -0.05 + ay, 0.2, 0.3
    np.testing.assert_allclose(dets.boxes[0, i], [xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], atol=1e-6)
    np.testing.assert_allclose(dets.keypoints[0, i, 0], [0.01 + ax, 0.02 + ay], atol=1e-6)
    np.testing.assert_allclose(dets.keypoints[0, i, 2], [-0.1 + ax, ay], atol=1e-6)
    np.testing.assert_allclose(dets.keypoints[0, i, 3], [ax, 0.05 + ay], atol=1e-6)
    assert dets.valid[0].sum() == 1
    assert dets.valid[0, i]
    assert dets.scores[0, i] == pytest.approx(0.5)
    # clipping at +-100: a huge logit gives exactly sigmoid(100), not an overflow
    scores[0, i, 0] = 1e30
    assert decode_detections(boxes, scores, anchors).scores[0, i] == pytest.approx(1.0 / (1.0 + math.exp(-100)))


def test_decode_drops_negative_and_nan_boxes() -> None:
    anchors = generate_anchors()
    boxes = np.zeros((1, NUM_ANCHORS, 12), np.float32)
    boxes[0, :, 2:4] = 10.0
    scores = np.full((1, NUM_ANCHORS, 1), 5.0, np.float32)
    boxes[0, 3, 2] = -1.0
    boxes[0, 4, 3] = np.nan
    dets = decode_detections(boxes, scores, anchors)
    assert not dets.valid[0, 3]
    assert not dets.valid[0, 4]
    assert dets.valid[0].sum() == NUM_ANCHORS - 2


def _mediapipe_weighted_nms(scores, boxes, keypoints, valid, threshold=0.3):  # type: ignore[no-untyped-def]
    """Straight port of NonMaxSuppressionCalculator::WeightedNonMaxSuppression (C++ loop)."""

    def iou(a, b):  # type: ignore[no-untyped-def]
        iw = min(a[2], b[2]) - max(a[0], b[0])
        ih = min(a[3], b[3]) - max(a[1], b[1])
        if iw < 0 or ih < 0:
            return 0.0
        inter = iw * ih
        norm = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / norm if norm > 0 else 0.0

    remained = sorted((i for i in range(len(scores)) if valid[i]), key=lambda i: -scores[i])
    out = []
    while remained:
        top = remained[0]
        candidates = [i for i in remained if iou(boxes[i], boxes[top]) > threshold]
        rest = [i for i in remained if iou(boxes[i], boxes[top]) <= threshold]
        w = np.array([scores[i] for i in candidates], np.float64)
        box = (w[:, None] * boxes[candidates]).sum(0) / w.sum()
        kps = (w[:, None, None] * keypoints[candidates]).sum(0) / w.sum()
        out.append((scores[top], box, kps))
        if len(rest) == len(remained):
            break
        remained = rest
    return out


@pytest.mark.parametrize("seed", range(6))
def test_weighted_nms_equals_mediapipe_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    raw_boxes, raw_scores = _raw(rng, batch=2)
    dets = decode_detections(raw_boxes, raw_scores, generate_anchors(), min_score=0.5)
    got = weighted_nms(dets, max_detections=5)
    for b in range(2):
        want = _mediapipe_weighted_nms(dets.scores[b], dets.boxes[b], dets.keypoints[b], dets.valid[b])
        assert len(want) >= 2, "the random case should produce several clusters"
        n = min(5, len(want))
        assert got.valid[b, :n].all()
        assert not got.valid[b, n:].any()
        for k in range(n):
            assert got.scores[b, k] == pytest.approx(want[k][0])
            np.testing.assert_allclose(got.boxes[b, k], want[k][1], atol=2e-6)
            np.testing.assert_allclose(got.keypoints[b, k], want[k][2], atol=2e-6)


def test_weighted_nms_with_nothing_above_threshold() -> None:
    rng = np.random.default_rng(1)
    raw_boxes, raw_scores = _raw(rng)
    dets = decode_detections(raw_boxes, raw_scores - 100.0, generate_anchors(), min_score=0.5)
    out = weighted_nms(dets, max_detections=2)
    assert not out.valid.any()


def test_remove_letterbox_inverts_padding() -> None:
    rng = np.random.default_rng(2)
    raw_boxes, raw_scores = _raw(rng)
    dets = weighted_nms(decode_detections(raw_boxes, raw_scores, generate_anchors()), max_detections=1)
    # a 640x480 frame letterboxed into a square: 1/8 of the square above and below
    padding = np.array([[0.0, 0.125, 0.0, 0.125]], np.float32)
    out = remove_letterbox(dets, padding)
    np.testing.assert_allclose(out.keypoints[..., 1], (dets.keypoints[..., 1] - 0.125) / 0.75, rtol=1e-6)
    np.testing.assert_allclose(out.keypoints[..., 0], dets.keypoints[..., 0], rtol=1e-6)
    np.testing.assert_allclose(out.boxes[..., 3], (dets.boxes[..., 3] - 0.125) / 0.75, rtol=1e-6)
