"""Drawing skeletons on frames (OpenCV, CPU). The GPU path draws with nvdsosd display meta instead."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from blazestream.pose.skeleton import POSE_CONNECTIONS
from blazestream.pose.types import Pose

Frame = npt.NDArray[np.uint8]

MIN_VISIBILITY = 0.5
_PALETTE = [(0, 220, 255), (255, 120, 0), (80, 255, 80), (255, 60, 200), (255, 255, 0), (150, 100, 255)]


def track_colour(track_id: int | None) -> tuple[int, int, int]:
    """A stable RGB colour per track."""
    return _PALETTE[(track_id or 0) % len(_PALETTE)]


MASK_ALPHA = 0.45


def person_label(pose: Pose, index: int) -> int:
    """The number a person is drawn with: the track id, or the pose's index in a still image."""
    return pose.track_id if pose.track_id is not None else index


def draw_mask(frame: Frame, mask: npt.NDArray[np.uint8], poses: Sequence[Pose]) -> Frame:
    """Tint each person's pixels (instance mask value = pose index + 1) with that person's colour, in place."""
    if mask.shape[:2] != frame.shape[:2]:
        mask = np.asarray(cv2.resize(mask, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_NEAREST), np.uint8)
    for index, pose in enumerate(poses):
        region = mask == index + 1
        if region.any():
            colour = np.asarray(track_colour(person_label(pose, index)), dtype=np.float32)
            tinted = frame[region].astype(np.float32) * (1.0 - MASK_ALPHA) + colour * MASK_ALPHA
            frame[region] = tinted.astype(np.uint8)
    return frame


def draw_poses(
    frame: Frame, poses: Sequence[Pose], *, draw_roi: bool = True, mask: npt.NDArray[np.uint8] | None = None
) -> Frame:
    """Draw skeletons (and ROIs, ids, masks) in place on an RGB frame and return it.

    Each person has their own colour and number (track id, or index in a still image). Landmarks with
    visibility below 0.5 are left out, as MediaPipe's drawing_utils does.
    """
    height, width = frame.shape[:2]
    thickness = max(1, round(min(width, height) / 240))
    if mask is not None:
        draw_mask(frame, mask, poses)
    for index, pose in enumerate(poses):
        label = person_label(pose, index)
        colour = track_colour(label)
        pts = [(round(lm.x * width), round(lm.y * height)) for lm in pose.landmarks]
        shown = [lm.visibility >= MIN_VISIBILITY for lm in pose.landmarks]
        for a, b in POSE_CONNECTIONS:
            if shown[a] and shown[b]:
                cv2.line(frame, pts[a], pts[b], colour, thickness, cv2.LINE_AA)
        for point, ok in zip(pts, shown, strict=True):
            if ok:
                cv2.circle(frame, point, thickness + 1, (255, 255, 255), -1, cv2.LINE_AA)
        if draw_roi:
            roi = pose.roi
            rect = (
                (roi.x_center * width, roi.y_center * height),
                (roi.width * width, roi.height * height),
                float(np.degrees(roi.rotation)),
            )
            box = cv2.boxPoints(rect).round().astype(np.int32)
            cv2.polylines(frame, [box], True, colour, 1, cv2.LINE_AA)
        shown_pts = [p for p, ok in zip(pts, shown, strict=True) if ok] or pts
        top = min(shown_pts, key=lambda p: p[1])
        cv2.putText(
            frame,
            f"#{label}",
            (top[0] - 8, max(12, top[1] - 8)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            colour,
            1 + thickness // 2,
            cv2.LINE_AA,
        )
    return frame
