"""ROI geometry: detections or tracked landmarks to rotated square ROIs, and ROIs to crop transforms.

ROIs are arrays (..., 5) of (x_center, y_center, width, height, rotation), normalized by the image size
like MediaPipe's NormalizedRect; `image_size` arrays are (..., 2) of (width, height) in pixels.
"""

from __future__ import annotations

import math

from blazestream.pose.xp import Array, array_namespace, normalize_radians

ROI_SCALE = 1.25
"""RectTransformationCalculator scale_x/scale_y in pose_detection_to_roi.pbtxt and pose_landmarks_to_roi."""

TARGET_ANGLE = math.pi / 2.0
"""rotation_vector_target_angle_degrees: 90 (keypoint 1 straight above keypoint 0 means upright)."""


def alignment_roi(center: Array, scale_point: Array, image_size: Array, *, scale: float = ROI_SCALE) -> Array:
    """AlignmentPointsRectsCalculator + RectTransformationCalculator(square_long, scale).

    center and scale_point (..., 2) are normalized points (detector keypoints 0/1, or tracked auxiliary
    landmarks 33/34). The result is square in pixels: side = 2 * scale * |p1 - p0| px, centred on p0.
    With scale=1 it is the object-scale ROI the smoothing filters use.
    """
    xp = array_namespace(center, scale_point, image_size)
    width_px = image_size[..., 0]
    height_px = image_size[..., 1]
    x0 = center[..., 0] * width_px
    y0 = center[..., 1] * height_px
    x1 = scale_point[..., 0] * width_px
    y1 = scale_point[..., 1] * height_px
    box_size = xp.sqrt((x1 - x0) * (x1 - x0) + (y1 - y0) * (y1 - y0)) * 2.0
    rotation = normalize_radians(xp, TARGET_ANGLE - xp.atan2(-(y1 - y0), x1 - x0))
    # square_long on the normalized rect, in MediaPipe's order of operations.
    long_side = xp.maximum(box_size / width_px * width_px, box_size / height_px * height_px)
    return xp.stack(
        [
            x0 / width_px,
            y0 / height_px,
            long_side / width_px * scale,
            long_side / height_px * scale,
            rotation,
        ],
        axis=-1,
    )


def full_image_roi(image_size: Array) -> Array:
    """The detector's ROI: the whole image, no rotation (normalized (0.5, 0.5, 1, 1, 0))."""
    xp = array_namespace(image_size)
    ones = xp.ones_like(image_size[..., 0])
    return xp.stack([ones * 0.5, ones * 0.5, ones, ones, ones * 0.0], axis=-1)


def roi_to_pixels(rois: Array, image_size: Array) -> Array:
    """(..., 5) normalized ROI to pixels: centre x/y, width, height in pixels, rotation unchanged."""
    xp = array_namespace(rois, image_size)
    w = image_size[..., 0]
    h = image_size[..., 1]
    return xp.stack([rois[..., 0] * w, rois[..., 1] * h, rois[..., 2] * w, rois[..., 3] * h, rois[..., 4]], axis=-1)


def pad_roi(rois_px: Array, *, tensor_width: int, tensor_height: int) -> tuple[Array, Array]:
    """ImageToTensor's PadRoi (keep_aspect_ratio): grow the ROI to the tensor's aspect ratio.

    Returns the padded ROIs in pixels and the letterbox padding (..., 4) as (left, top, right, bottom)
    fractions of the tensor, which the decoders remove again.
    """
    xp = array_namespace(rois_px)
    tensor_aspect = tensor_height / tensor_width
    width = rois_px[..., 2]
    height = rois_px[..., 3]
    roi_aspect = height / width
    wide = tensor_aspect > roi_aspect
    new_width = xp.where(wide, width, height / tensor_aspect)
    new_height = xp.where(wide, width * tensor_aspect, height)
    vertical = xp.where(wide, (1.0 - roi_aspect / tensor_aspect) / 2.0, 0.0)
    horizontal = xp.where(wide, 0.0, (1.0 - tensor_aspect / roi_aspect) / 2.0)
    padded = xp.stack([rois_px[..., 0], rois_px[..., 1], new_width, new_height, rois_px[..., 4]], axis=-1)
    padding = xp.stack([horizontal, vertical, horizontal, vertical], axis=-1)
    return padded, padding


def box_points(rois_px: Array) -> Array:
    """Corners (..., 4, 2) of rotated ROIs in pixels, in cv::RotatedRect::points order.

    Order: bottom-left, top-left, top-right, bottom-right of the upright box. The crop maps them to
    the tensor corners (0, H), (0, 0), (W, 0), (W, H), as MediaPipe's OpenCV converter does.
    """
    xp = array_namespace(rois_px)
    cx, cy = rois_px[..., 0], rois_px[..., 1]
    w, h = rois_px[..., 2], rois_px[..., 3]
    angle = rois_px[..., 4]
    b = xp.cos(angle) * 0.5
    a = xp.sin(angle) * 0.5
    p0 = xp.stack([cx - a * h - b * w, cy + b * h - a * w], axis=-1)
    p1 = xp.stack([cx + a * h - b * w, cy - b * h - a * w], axis=-1)
    centre2 = xp.stack([cx * 2.0, cy * 2.0], axis=-1)
    return xp.stack([p0, p1, centre2 - p0, centre2 - p1], axis=-2)


def crop_affine(rois_px: Array, *, out_width: int, out_height: int) -> Array:
    """Affine maps (..., 2, 3) from output pixel (u, v) to source pixel (x, y) for padded ROIs.

    The same mapping MediaPipe's perspective warp applies (its four point pairs form a rotated
    rectangle, so the homography is affine). The CUDA crop kernel samples with it.
    """
    xp = array_namespace(rois_px)
    pts = box_points(rois_px)
    top_left = pts[..., 1, :]
    du = (pts[..., 2, :] - top_left) / float(out_width)
    dv = (pts[..., 0, :] - top_left) / float(out_height)
    row_x = xp.stack([du[..., 0], dv[..., 0], top_left[..., 0]], axis=-1)
    row_y = xp.stack([du[..., 1], dv[..., 1], top_left[..., 1]], axis=-1)
    return xp.stack([row_x, row_y], axis=-2)
