"""Pose detector decoding: raw SSD tensors to person detections (TensorsToDetections + weighted NMS).

Batch-first and shape-static, so one call decodes all 2254 anchors of every camera in a batch, on
NumPy or CuPy. Weighted NMS runs as `max_detections` vectorized rounds instead of MediaPipe's loop over
a sorted list: round k produces exactly MediaPipe's k-th output cluster, because each cluster depends
only on the clusters before it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from blazestream.pose.model_io import DETECTOR_SIZE
from blazestream.pose.xp import Array, array_namespace, gather_rows, sigmoid

NUM_KEYPOINTS = 4
"""Detector keypoints: 0 mid-hip, 1 full-body size/rotation point, 2 mid-shoulder, 3 upper-body point."""

SCORE_CLIP = 100.0
NMS_IOU_THRESHOLD = 0.3


@dataclass(frozen=True)
class Detections:
    """Up to K detections per image, as arrays (normalized coordinates).

    scores (B, K); boxes (B, K, 4) as xmin, ymin, xmax, ymax of the *face* box; keypoints (B, K, 4, 2);
    valid (B, K) marks the entries that hold a detection.
    """

    scores: Array
    boxes: Array
    keypoints: Array
    valid: Array


def decode_detections(
    raw_boxes: Array,
    raw_scores: Array,
    anchors: Array,
    *,
    min_score: float = 0.5,
    input_size: float = DETECTOR_SIZE,
) -> Detections:
    """Decode every anchor: raw_boxes (B, A, 12), raw_scores (B, A, 1), anchors (A, 2) -> A detections.

    MediaPipe: x = r/224 + anchor (all anchors are 1x1), score = sigmoid(clip(logit, +-100)), keep
    score >= min_score, drop boxes with negative or NaN size.
    """
    xp = array_namespace(raw_boxes, raw_scores, anchors)
    scaled = raw_boxes / input_size
    ax = anchors[:, 0]
    ay = anchors[:, 1]
    xc = scaled[..., 0] + ax
    yc = scaled[..., 1] + ay
    w = scaled[..., 2]
    h = scaled[..., 3]
    boxes = xp.stack([xc - w / 2.0, yc - h / 2.0, xc + w / 2.0, yc + h / 2.0], axis=-1)
    kx = scaled[..., 4::2] + ax[:, None]
    ky = scaled[..., 5::2] + ay[:, None]
    keypoints = xp.stack([kx, ky], axis=-1)
    logits = xp.reshape(raw_scores, raw_scores.shape[:2])
    scores = sigmoid(xp, xp.minimum(xp.maximum(logits, -SCORE_CLIP), SCORE_CLIP))
    box_w = boxes[..., 2] - boxes[..., 0]
    box_h = boxes[..., 3] - boxes[..., 1]
    valid = (scores >= min_score) & (box_w >= 0.0) & (box_h >= 0.0) & ~xp.isnan(box_w) & ~xp.isnan(box_h)
    return Detections(scores=scores, boxes=boxes, keypoints=keypoints, valid=valid)


def box_iou(box: Array, boxes: Array) -> Array:
    """IoU of box (B, 1, 4) against boxes (B, A, 4); touching boxes intersect with area 0 (MediaPipe)."""
    ns = array_namespace(box, boxes)
    iw = ns.clip(ns.minimum(box[..., 2], boxes[..., 2]) - ns.maximum(box[..., 0], boxes[..., 0]), 0.0, None)
    ih = ns.clip(ns.minimum(box[..., 3], boxes[..., 3]) - ns.maximum(box[..., 1], boxes[..., 1]), 0.0, None)
    inter = iw * ih
    area_a = (box[..., 2] - box[..., 0]) * (box[..., 3] - box[..., 1])
    area_b = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    union = area_a + area_b - inter
    return ns.where(union > 0.0, inter / ns.where(union > 0.0, union, 1.0), 0.0)


def weighted_nms(
    detections: Detections,
    *,
    max_detections: int = 1,
    iou_threshold: float = NMS_IOU_THRESHOLD,
) -> Detections:
    """MediaPipe's WEIGHTED non-max suppression, first `max_detections` clusters per image.

    Each round takes the best remaining detection, gathers every remaining one with IoU > threshold
    against it (itself included), and outputs the score-weighted mean box and keypoints with the top
    score. Deviation: a zero-area top box (IoU with itself 0) still forms its own cluster here, where
    MediaPipe would emit it unweighted and stop; with float regressors this does not happen in practice.
    """
    xp = array_namespace(detections.scores)
    scores = detections.scores
    count = scores.shape[1]
    remaining = detections.valid
    index_dtype = xp.int64
    out_scores, out_boxes, out_kps, out_valid = [], [], [], []
    positions = xp.reshape(xp.arange(count, dtype=index_dtype), (1, count))
    for _ in range(max_detections):
        masked = xp.where(remaining, scores, -math.inf)
        top = xp.astype(xp.argmax(masked, axis=1), index_dtype)
        has = xp.any(remaining, axis=1)
        top_box = gather_rows(xp, detections.boxes, top)[:, None, :]
        iou = box_iou(top_box, detections.boxes)
        members = remaining & ((iou > iou_threshold) | (positions == top[:, None]))
        weights = xp.where(members, scores, 0.0)
        total = xp.sum(weights, axis=1)
        safe_total = xp.where(total > 0.0, total, 1.0)
        box = xp.sum(weights[..., None] * detections.boxes, axis=1) / safe_total[:, None]
        kps = xp.sum(weights[..., None, None] * detections.keypoints, axis=1) / safe_total[:, None, None]
        out_scores.append(xp.where(has, gather_rows(xp, scores, top), 0.0))
        out_boxes.append(box)
        out_kps.append(kps)
        out_valid.append(has)
        remaining = remaining & ~members
    return Detections(
        scores=xp.stack(out_scores, axis=1),
        boxes=xp.stack(out_boxes, axis=1),
        keypoints=xp.stack(out_kps, axis=1),
        valid=xp.stack(out_valid, axis=1),
    )


def remove_letterbox(detections: Detections, padding: Array) -> Detections:
    """Map detections from the letterboxed detector input back to the image (DetectionLetterboxRemoval).

    padding (B, 4) is (left, top, right, bottom) as fractions of the detector input.
    """
    xp = array_namespace(detections.boxes, padding)
    left, top = padding[:, 0], padding[:, 1]
    sx = 1.0 - padding[:, 0] - padding[:, 2]
    sy = 1.0 - padding[:, 1] - padding[:, 3]
    offset = xp.stack([left, top], axis=-1)[:, None, :]
    scale = xp.stack([sx, sy], axis=-1)[:, None, :]
    boxes = xp.concat(
        [(detections.boxes[..., 0:2] - offset) / scale, (detections.boxes[..., 2:4] - offset) / scale],
        axis=-1,
    )
    keypoints = (detections.keypoints - offset[:, :, None, :]) / scale[:, :, None, :]
    return Detections(scores=detections.scores, boxes=boxes, keypoints=keypoints, valid=detections.valid)
