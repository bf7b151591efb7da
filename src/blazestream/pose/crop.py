"""CPU crops: MediaPipe's ImageToTensor warp, bit for bit, with OpenCV.

MediaPipe maps the ROI's box points to the tensor corners with getPerspectiveTransform and samples
the uint8 image with warpPerspective(INTER_LINEAR); doing the same calls here is what makes our crops
equal to MediaPipe's, 8-bit rounding included. The GPU path samples the same mapping (roi.crop_affine)
in a CUDA kernel instead.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from blazestream.pose.model_io import Border

_BORDERS = {"replicate": cv2.BORDER_REPLICATE, "zero": cv2.BORDER_CONSTANT}


def warp_rois(
    image: npt.NDArray[np.uint8],
    rois_px: npt.NDArray[np.floating],
    *,
    size: int,
    border: Border,
    out: npt.NDArray[np.uint8] | None = None,
) -> npt.NDArray[np.uint8]:
    """Warp padded pixel ROIs (M, 5) of an RGB uint8 image into (M, size, size, 3) uint8 crops."""
    rois32 = np.asarray(rois_px, dtype=np.float32)
    # MediaPipe: RotatedRect(..., roi.rotation * 180.f / M_PI): float product, double division, float angle.
    angle = ((rois32[:, 4] * np.float32(180.0)).astype(np.float64) / np.pi).astype(np.float32)
    points = _opencv_box_points(rois32, angle)
    dst = np.array([[0.0, size], [0.0, 0.0], [size, 0.0], [size, size]], dtype=np.float32)
    crops = out if out is not None else np.empty((len(rois32), size, size, 3), dtype=np.uint8)
    for i in range(len(rois32)):
        matrix = cv2.getPerspectiveTransform(points[i], dst)
        cv2.warpPerspective(
            image,
            matrix,
            (size, size),
            dst=crops[i],
            flags=cv2.INTER_LINEAR,
            borderMode=_BORDERS[border],
            borderValue=(0, 0, 0, 0),
        )
    return crops


def source_box(rois_px: npt.NDArray[np.floating], margin: int = 2) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): integer pixels that cover every source pixel the warps of these ROIs read.

    A bilinear sample at x reads floor(x) and floor(x) + 1; the margin also covers OpenCV's 1/32-pixel
    fixed-point coordinates.
    """
    rois32 = np.asarray(rois_px, dtype=np.float32)
    angle = ((rois32[:, 4] * np.float32(180.0)).astype(np.float64) / np.pi).astype(np.float32)
    points = _opencv_box_points(rois32, angle).reshape(-1, 2)
    low = np.floor(points.min(axis=0)).astype(np.int64) - margin
    high = np.ceil(points.max(axis=0)).astype(np.int64) + margin + 1
    return int(low[0]), int(low[1]), int(high[0]), int(high[1])


def _opencv_box_points(rois32: npt.NDArray[np.float32], angle_deg: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """cv::RotatedRect::points in its own precision: float ROI, double trig, float results."""
    radians = angle_deg.astype(np.float64) * np.pi / 180.0
    b = (np.cos(radians).astype(np.float32) * np.float32(0.5)).astype(np.float32)
    a = (np.sin(radians).astype(np.float32) * np.float32(0.5)).astype(np.float32)
    cx, cy, w, h = rois32[:, 0], rois32[:, 1], rois32[:, 2], rois32[:, 3]
    p0 = np.stack([cx - a * h - b * w, cy + b * h - a * w], axis=-1)
    p1 = np.stack([cx + a * h - b * w, cy - b * h - a * w], axis=-1)
    p2 = np.stack([2 * cx - p0[:, 0], 2 * cy - p0[:, 1]], axis=-1)
    p3 = np.stack([2 * cx - p1[:, 0], 2 * cy - p1[:, 1]], axis=-1)
    return np.ascontiguousarray(np.stack([p0, p1, p2, p3], axis=1), dtype=np.float32)


def to_tensor(
    crops: npt.NDArray[np.uint8], *, scale: float, offset: float, out: npt.NDArray[np.float32] | None = None
) -> npt.NDArray[np.float32]:
    """uint8 NHWC crops to the models' float NCHW input: v = p * scale + offset.

    Each crop is split into contiguous planes first (cv2.split): converting those is ~2x faster than
    reading the interleaved pixels with a stride of 3, for the same float32 arithmetic.
    """
    count, height, width, channels = crops.shape
    result = out if out is not None else np.empty((count, channels, height, width), dtype=np.float32)
    for crop, tensor in zip(crops, result, strict=True):
        for plane, target in zip(cv2.split(crop), tensor, strict=True):
            np.multiply(plane, np.float32(scale), out=target, casting="unsafe")
    if offset:  # the landmark model's offset is 0: a pass over the tensor saved per crop
        result += np.float32(offset)
    return result


__all__ = ["Border", "source_box", "to_tensor", "warp_rois"]
