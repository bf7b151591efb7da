"""Windowed detection: the detector on the whole frame plus overlapping square windows, merged in frame space.

The pose detector sees its input at 224x224, so in a wide or crowded frame people shrink below what it
finds (MediaPipe's own Pose misses them; users are told to crop by hand). Here every frame becomes the
whole letterboxed frame plus square windows of `scale x short side`, sliding along both axes with a
given overlap; all windows of all frames run as one detector batch. Each window's detections are mapped
back to frame coordinates and every frame's candidates (all windows together) go through MediaPipe's
weighted NMS, so a person seen by several windows becomes one score-weighted detection.

A window only keeps a detection whose body circle (hip centre, radius |keypoint 1 - keypoint 0|) lies
inside it, up to `edge_tolerance` of the radius, on the window sides that are inside the frame: a person
cut by a window edge is left to the window (or whole frame) that shows all of them, instead of pulling
the weighted mean towards a truncated guess. With enough overlap every person of at most the window's
size is whole in some window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from blazestream.pose.detection import Detections
from blazestream.pose.xp import Array, array_namespace

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class WindowSpec:
    """Which windows the detector sees besides the whole frame.

    scales: window side as a fraction of the frame's short side, one sliding grid per scale (empty: the
    whole frame only); overlap: fraction of a window shared with the next one along an axis;
    edge_tolerance: how far (fraction of the body radius) a body may stick out of an inner window edge.
    """

    scales: tuple[float, ...] = (1.0, 0.5)
    overlap: float = 0.5
    edge_tolerance: float = 0.25

    def __post_init__(self) -> None:
        for scale in self.scales:
            if not 0.0 < scale <= 1.0:
                raise ValueError(f"window scales must be in (0, 1], got {scale}")
        if not 0.0 <= self.overlap < 1.0:
            raise ValueError(f"window overlap must be in [0, 1), got {self.overlap}")
        if self.edge_tolerance < 0.0:
            raise ValueError(f"edge_tolerance must be >= 0, got {self.edge_tolerance}")


def _positions(length: float, side: float, overlap: float) -> list[float]:
    """Window starts along one axis: evenly spread from 0 to length - side, steps of at most side*(1-overlap)."""
    if side >= length - 1e-6:
        return [0.0]
    step = side * (1.0 - overlap)
    count = math.ceil((length - side) / step - 1e-9) + 1
    return [(length - side) * i / (count - 1) for i in range(count)]


def frame_windows(width: int, height: int, spec: WindowSpec) -> FloatArray:
    """(N, 4) windows of one frame as normalized (xmin, ymin, xmax, ymax); row 0 is the whole frame.

    Windows of a scale that would equal the whole frame (a square frame at scale 1) are left out.
    """
    boxes = [(0.0, 0.0, 1.0, 1.0)]
    short = float(min(width, height))
    for scale in spec.scales:
        side = short * scale
        if side >= width - 1e-6 and side >= height - 1e-6:
            continue
        for y0 in _positions(float(height), side, spec.overlap):
            for x0 in _positions(float(width), side, spec.overlap):
                boxes.append((x0 / width, y0 / height, (x0 + side) / width, (y0 + side) / height))
    return np.asarray(boxes, dtype=np.float32)


def window_rois(windows: FloatArray) -> FloatArray:
    """Normalized windows (N, 4) as upright ROIs (N, 5) (centre, size, rotation 0) for the cropper."""
    w = windows[:, 2] - windows[:, 0]
    h = windows[:, 3] - windows[:, 1]
    zeros = np.zeros_like(w)
    return np.stack(
        [(windows[:, 0] + windows[:, 2]) / 2, (windows[:, 1] + windows[:, 3]) / 2, w, h, zeros], axis=-1
    ).astype(np.float32)


def windows_to_frame(detections: Detections, windows: Array, image_size: Array, *, edge_tolerance: float) -> Detections:
    """Map per-window detections (N, A, ...) from window-normalized to frame-normalized coordinates.

    windows (N, 4) normalized (xmin, ymin, xmax, ymax) in the frame, image_size (N, 2) the frame's (width,
    height) in pixels. Detections whose body circle leaves the window through a side that is not the
    frame's border (beyond edge_tolerance x radius) are marked invalid.
    """
    xp = array_namespace(detections.boxes, windows)
    x0 = windows[:, 0][:, None]
    y0 = windows[:, 1][:, None]
    ww = (windows[:, 2] - windows[:, 0])[:, None]
    wh = (windows[:, 3] - windows[:, 1])[:, None]
    bx = detections.boxes
    boxes = xp.stack([bx[..., 0] * ww + x0, bx[..., 1] * wh + y0, bx[..., 2] * ww + x0, bx[..., 3] * wh + y0], axis=-1)
    kx = detections.keypoints[..., 0] * ww[..., None] + x0[..., None]
    ky = detections.keypoints[..., 1] * wh[..., None] + y0[..., None]
    keypoints = xp.stack([kx, ky], axis=-1)
    # Body circle in pixels, against the window's inner sides.
    width_px = image_size[:, 0][:, None]
    height_px = image_size[:, 1][:, None]
    cx, cy = kx[..., 0] * width_px, ky[..., 0] * height_px
    radius = xp.sqrt((kx[..., 1] * width_px - cx) ** 2 + (ky[..., 1] * height_px - cy) ** 2)
    slack = radius * edge_tolerance
    eps = 1e-4
    left_in = windows[:, 0][:, None] > eps
    top_in = windows[:, 1][:, None] > eps
    right_in = windows[:, 2][:, None] < 1.0 - eps
    bottom_in = windows[:, 3][:, None] < 1.0 - eps
    inside = (
        (~left_in | (cx - radius + slack >= windows[:, 0][:, None] * width_px))
        & (~top_in | (cy - radius + slack >= windows[:, 1][:, None] * height_px))
        & (~right_in | (cx + radius - slack <= windows[:, 2][:, None] * width_px))
        & (~bottom_in | (cy + radius - slack <= windows[:, 3][:, None] * height_px))
    )
    return Detections(scores=detections.scores, boxes=boxes, keypoints=keypoints, valid=detections.valid & inside)


def group_by_frame(detections: Detections, window_frame: Sequence[int], frames: int) -> Detections:
    """Concatenate the windows of each frame: (N, A, ...) per window to (B, Wmax * A, ...) per frame.

    Frames with fewer windows than the most are padded with invalid entries, so one weighted NMS call
    covers the batch.
    """
    xp = array_namespace(detections.scores)
    owner = np.asarray(window_frame, dtype=np.int64)
    counts = np.bincount(owner, minlength=frames)
    most = int(counts.max()) if len(owner) else 0
    slots = np.zeros((frames, most), dtype=np.int64)
    present = np.zeros((frames, most), dtype=bool)
    seen = np.zeros(frames, dtype=np.int64)
    for n, b in enumerate(owner):
        slots[b, seen[b]] = n
        present[b, seen[b]] = True
        seen[b] += 1
    index = xp.asarray(slots.reshape(-1))
    anchors = detections.scores.shape[1]

    def take(x: Array) -> Array:
        picked = xp.take(x, index, axis=0)
        return xp.reshape(picked, (frames, most * anchors, *x.shape[2:]))

    valid = xp.take(detections.valid, index, axis=0) & xp.asarray(present.reshape(-1))[:, None]
    return Detections(
        scores=take(detections.scores),
        boxes=take(detections.boxes),
        keypoints=take(detections.keypoints),
        valid=xp.reshape(valid, (frames, most * anchors)),
    )


__all__ = ["WindowSpec", "frame_windows", "group_by_frame", "window_rois", "windows_to_frame"]
