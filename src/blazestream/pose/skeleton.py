"""The 33 BlazePose keypoints and the skeleton edges: the one vocabulary every output uses.

Names and order follow MediaPipe's `PoseLandmark` (mediapipe/python/solutions/pose.py); the edges are
MediaPipe's 0-based `POSE_CONNECTIONS` (pose_connections.py).
"""

from __future__ import annotations

from enum import IntEnum


class PoseLandmark(IntEnum):
    """Index of each of the 33 pose landmarks in model output order."""

    NOSE = 0
    LEFT_EYE_INNER = 1
    LEFT_EYE = 2
    LEFT_EYE_OUTER = 3
    RIGHT_EYE_INNER = 4
    RIGHT_EYE = 5
    RIGHT_EYE_OUTER = 6
    LEFT_EAR = 7
    RIGHT_EAR = 8
    MOUTH_LEFT = 9
    MOUTH_RIGHT = 10
    LEFT_SHOULDER = 11
    RIGHT_SHOULDER = 12
    LEFT_ELBOW = 13
    RIGHT_ELBOW = 14
    LEFT_WRIST = 15
    RIGHT_WRIST = 16
    LEFT_PINKY = 17
    RIGHT_PINKY = 18
    LEFT_INDEX = 19
    RIGHT_INDEX = 20
    LEFT_THUMB = 21
    RIGHT_THUMB = 22
    LEFT_HIP = 23
    RIGHT_HIP = 24
    LEFT_KNEE = 25
    RIGHT_KNEE = 26
    LEFT_ANKLE = 27
    RIGHT_ANKLE = 28
    LEFT_HEEL = 29
    RIGHT_HEEL = 30
    LEFT_FOOT_INDEX = 31
    RIGHT_FOOT_INDEX = 32

    @property
    def label(self) -> str:
        """The lower-case name used in JSON outputs, e.g. ``left_eye_inner``."""
        return self.name.lower()


NUM_LANDMARKS = 33
"""Pose landmarks reported to users."""

NUM_MODEL_LANDMARKS = 39
"""Landmarks the model emits: 33 pose, 2 auxiliary (33 hip centre, 34 size/rotation point), 4 unused."""

AUX_HIP_CENTER = 33
AUX_SCALE_POINT = 34

POSE_CONNECTIONS: tuple[tuple[PoseLandmark, PoseLandmark], ...] = tuple(
    (PoseLandmark(a), PoseLandmark(b))
    for a, b in (
        (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10),
        (11, 12), (11, 13), (13, 15), (15, 17), (15, 19), (15, 21), (17, 19),
        (12, 14), (14, 16), (16, 18), (16, 20), (16, 22), (18, 20),
        (11, 23), (12, 24), (23, 24),
        (23, 25), (24, 26), (25, 27), (26, 28), (27, 29), (28, 30), (29, 31), (30, 32),
        (27, 31), (28, 32),
    )
)  # fmt: skip
"""The 35 skeleton edges, 0-based, as MediaPipe draws them."""

LANDMARK_NAMES: tuple[str, ...] = tuple(lm.label for lm in PoseLandmark)
