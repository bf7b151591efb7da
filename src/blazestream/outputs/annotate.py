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


def draw_poses(frame: Frame, poses: Sequence[Pose], *, draw_roi: bool = True) -> Frame:
    """Draw skeletons (and ROIs) in place on an RGB frame and return it.

    Landmarks with visibility below 0.5 are left out, as MediaPipe's drawing_utils does.
    """
    height, width = frame.shape[:2]
    thickness = max(1, round(min(width, height) / 240))
    for pose in poses:
        colour = track_colour(pose.track_id)
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
            if pose.track_id is not None:
                cv2.putText(
                    frame,
                    f"#{pose.track_id}",
                    (int(box[1][0]), int(box[1][1]) - 4),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    0.5,
                    colour,
                    1,
                    cv2.LINE_AA,
                )
    return frame
