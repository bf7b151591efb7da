"""Per-person segmentation: the full landmark model's mask head, warped back from each crop to the frame.

MediaPipe (pose_landmarks_and_segmentation_inverse_projection): sigmoid on the 256x256 logits of the
crop, then WarpAffine with the inverse of the crop's transform, zero border, to the image size. Here
every tracked crop is warped the same way and the per-person probabilities become one instance mask:
pixel = index of the pose + 1 where that pose's probability is the highest and above 0.5, 0 = nobody.
MediaPipe's temporal SegmentationSmoothing is not applied (the stock Python solution drops it too).
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from blazestream.pose.roi import crop_affine, pad_roi, roi_to_pixels
from blazestream.pose.xp import Array, array_namespace, sigmoid

MASK_THRESHOLD = 0.5
"""Where a person's probability is above this, the pixel is theirs (MediaPipe users threshold at 0.5)."""


def mask_probabilities(logits: Array) -> Array:
    """Segmentation logits (M, 256, 256) or (M, 256, 256, 1) or (M, 1, 256, 256) to probabilities (M, 256, 256)."""
    xp = array_namespace(logits)
    side = int(logits.shape[2])  # 256 in each of the three layouts
    return sigmoid(xp, xp.reshape(logits, (logits.shape[0], side, side)))


def crop_to_frame(
    rois: npt.NDArray[np.floating], image_size: tuple[int, int], crop_size: int
) -> npt.NDArray[np.float32]:
    """(M, 2, 3) affine maps from crop pixels to frame pixels for normalized ROIs (M, 5) of one frame."""
    sizes = np.broadcast_to(np.asarray(image_size, dtype=np.float32), (len(rois), 2))
    padded, _ = pad_roi(
        roi_to_pixels(np.asarray(rois, dtype=np.float32), sizes), tensor_width=crop_size, tensor_height=crop_size
    )
    return np.asarray(crop_affine(padded, out_width=crop_size, out_height=crop_size), dtype=np.float32)


def instance_mask(
    probabilities: npt.NDArray[np.float32], affines: npt.NDArray[np.float32], image_size: tuple[int, int]
) -> npt.NDArray[np.uint8]:
    """(H, W) uint8 instance mask from per-person crop probabilities (M, S, S) and their crop-to-frame maps."""
    width, height = image_size
    best = np.full((height, width), MASK_THRESHOLD, dtype=np.float32)
    out = np.zeros((height, width), dtype=np.uint8)
    for index, (prob, affine) in enumerate(zip(probabilities, affines, strict=True)):
        warped = cv2.warpAffine(
            np.ascontiguousarray(prob, dtype=np.float32),
            affine.astype(np.float64),
            (width, height),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0.0, 0.0, 0.0, 0.0),
        )
        mine = warped > best
        out[mine] = index + 1
        best = np.where(mine, warped, best)
    return out


__all__ = ["MASK_THRESHOLD", "crop_to_frame", "instance_mask", "mask_probabilities"]
