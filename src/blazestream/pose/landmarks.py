"""Landmark model decoding: raw tensors of the 256x256 estimator to landmarks in the image.

Stages, as in MediaPipe's pose_landmark_by_roi graph: TensorsToLandmarks (x, y, z / 256, sigmoid on
visibility and presence), RefineLandmarksFromHeatmap, LandmarkLetterboxRemoval, LandmarkProjection,
and WorldLandmarkProjection for the metric landmarks. Arrays are (M, ...) over M ROIs.
"""

from __future__ import annotations

from blazestream.pose.model_io import LANDMARK_SIZE
from blazestream.pose.skeleton import NUM_LANDMARKS, NUM_MODEL_LANDMARKS
from blazestream.pose.xp import Array, array_namespace, sigmoid

HEATMAP_KERNEL_SIZE = 7
"""The C++ graph's kernel_size. The stock Python `Pose` silently runs 9 (proto default), see the spec §8.3."""

MIN_CONFIDENCE_TO_REFINE = 0.5


def decode_landmarks(raw: Array, *, input_size: int = LANDMARK_SIZE) -> Array:
    """(M, 195) raw tensor to (M, 39, 5) landmarks normalized to the crop: x, y, z, visibility, presence."""
    xp = array_namespace(raw)
    values = xp.reshape(raw, (raw.shape[0], NUM_MODEL_LANDMARKS, 5))
    xyz = values[..., 0:3] / float(input_size)
    vis = sigmoid(xp, values[..., 3:4])
    pres = sigmoid(xp, values[..., 4:5])
    return xp.concat([xyz, vis, pres], axis=-1)


def refine_from_heatmap(
    landmarks: Array,
    heatmap: Array,
    *,
    kernel_size: int = HEATMAP_KERNEL_SIZE,
    min_confidence: float = MIN_CONFIDENCE_TO_REFINE,
) -> Array:
    """RefineLandmarksFromHeatmapCalculator on (M, L, 5) landmarks and an NCHW (M, L, 64, 64) heatmap.

    Each landmark's x, y become the sigmoid-weighted mean cell (no +0.5 offset) of a kernel-size window
    around int(x * 64), int(y * 64), when the window's max confidence reaches min_confidence. The window
    is clipped at the edges. Faithful to a quirk of the C++: its range check tests the column twice
    and never the row's upper bound, so a row of 64..66 still refines from the last rows.
    """
    xp = array_namespace(landmarks, heatmap)
    count, num, hm_h, hm_w = heatmap.shape
    offset = (kernel_size - 1) // 2
    col = xp.astype(xp.trunc(landmarks[..., 0] * float(hm_w)), xp.int64)
    row = xp.astype(xp.trunc(landmarks[..., 1] * float(hm_h)), xp.int64)
    inside = (col >= 0) & (col < hm_w) & (row >= 0)
    steps = xp.arange(-offset, offset + 1, dtype=xp.int64)
    cols = col[..., None] + steps  # (M, L, k)
    rows = row[..., None] + steps
    col_ok = (cols >= 0) & (cols < hm_w)
    row_ok = (rows >= 0) & (rows < hm_h)
    cols_c = xp.minimum(xp.maximum(cols, 0), hm_w - 1)
    rows_c = xp.minimum(xp.maximum(rows, 0), hm_h - 1)
    plane = xp.reshape(xp.arange(count * num, dtype=xp.int64), (count, num, 1, 1)) * (hm_h * hm_w)
    flat_index = plane + rows_c[..., :, None] * hm_w + cols_c[..., None, :]  # (M, L, k, k)
    values = xp.take(xp.reshape(heatmap, (-1,)), xp.reshape(flat_index, (-1,)))
    window = xp.reshape(values, flat_index.shape)
    mask = row_ok[..., :, None] & col_ok[..., None, :]
    confidence = xp.where(mask, sigmoid(xp, window), 0.0)
    total = xp.sum(confidence, axis=(-2, -1))
    peak = xp.max(confidence, axis=(-2, -1))
    dtype = landmarks.dtype
    weighted_col = xp.sum(confidence * xp.astype(cols_c, dtype)[..., None, :], axis=(-2, -1))
    weighted_row = xp.sum(confidence * xp.astype(rows_c, dtype)[..., :, None], axis=(-2, -1))
    refine = inside & (peak >= min_confidence) & (total > 0.0)
    safe_total = xp.where(total > 0.0, total, 1.0)
    x = xp.where(refine, weighted_col / float(hm_w) / safe_total, landmarks[..., 0])
    y = xp.where(refine, weighted_row / float(hm_h) / safe_total, landmarks[..., 1])
    return xp.concat([x[..., None], y[..., None], landmarks[..., 2:]], axis=-1)


def remove_letterbox(landmarks: Array, padding: Array) -> Array:
    """LandmarkLetterboxRemoval: padding (M, 4) as (left, top, right, bottom); z scales like x."""
    xp = array_namespace(landmarks, padding)
    left, top = padding[:, 0:1], padding[:, 1:2]
    sx = 1.0 - padding[:, 0:1] - padding[:, 2:3]
    sy = 1.0 - padding[:, 1:2] - padding[:, 3:4]
    x = (landmarks[..., 0] - left) / sx
    y = (landmarks[..., 1] - top) / sy
    z = landmarks[..., 2] / sx
    return xp.concat([x[..., None], y[..., None], z[..., None], landmarks[..., 3:]], axis=-1)


def project_landmarks(landmarks: Array, rois: Array) -> Array:
    """LandmarkProjection: crop-normalized landmarks (M, L, 5) into the image through ROIs (M, 5).

    Rotate (x - 0.5, y - 0.5) by the ROI rotation, scale by the ROI size, add the centre; z * width.
    """
    xp = array_namespace(landmarks, rois)
    u = landmarks[..., 0] - 0.5
    v = landmarks[..., 1] - 0.5
    angle = rois[:, 4:5]
    cos, sin = xp.cos(angle), xp.sin(angle)
    x = (cos * u - sin * v) * rois[:, 2:3] + rois[:, 0:1]
    y = (sin * u + cos * v) * rois[:, 3:4] + rois[:, 1:2]
    z = landmarks[..., 2] * rois[:, 2:3]
    return xp.concat([x[..., None], y[..., None], z[..., None], landmarks[..., 3:]], axis=-1)


def project_world(raw_world: Array, rois: Array) -> Array:
    """(M, 117) world tensor to (M, 33, 3) metres, rotated by the ROI rotation about the camera axis."""
    xp = array_namespace(raw_world, rois)
    world = xp.reshape(raw_world, (raw_world.shape[0], NUM_MODEL_LANDMARKS, 3))[:, :NUM_LANDMARKS, :]
    angle = rois[:, 4:5]
    cos, sin = xp.cos(angle), xp.sin(angle)
    x = cos * world[..., 0] - sin * world[..., 1]
    y = sin * world[..., 0] + cos * world[..., 1]
    return xp.stack([x, y, world[..., 2]], axis=-1)
