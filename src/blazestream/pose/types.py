"""Typed, frozen results: what the pose core hands to outputs, converted to JSON only at the edges.

Coordinates follow MediaPipe: x and y normalized by the image width and height, z in units of the
image width (origin at the hips, smaller is closer), world landmarks in metres.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from blazestream.pose.skeleton import LANDMARK_NAMES, NUM_LANDMARKS

Rows = Sequence[Any] | npt.NDArray[Any]
"""Anything indexable by row: a NumPy array or nested sequences of floats."""


def _float_rows(rows: Rows, width: int) -> list[list[float]]:
    """The first 33 rows, first `width` columns, as Python floats (one conversion, not one per value)."""
    return np.asarray(rows, dtype=np.float64)[:NUM_LANDMARKS, :width].tolist()  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Roi:
    """A rotated rectangle in normalized image coordinates (MediaPipe's NormalizedRect).

    BlazePose ROIs are square in pixels, so ``width * W == height * H``.
    """

    x_center: float
    y_center: float
    width: float
    height: float
    rotation: float

    def to_json(self, image_width: int, image_height: int) -> dict[str, float]:
        """The `roi` object of the JSON contract, in pixels of the input image."""
        return {
            "x_center": self.x_center * image_width,
            "y_center": self.y_center * image_height,
            "size": self.width * image_width,
            "rotation": self.rotation,
        }


@dataclass(frozen=True, slots=True)
class Landmark:
    """One image landmark: normalized x, y; z scaled like x; visibility and presence in [0, 1]."""

    x: float
    y: float
    z: float
    visibility: float
    presence: float


@dataclass(frozen=True, slots=True)
class WorldLandmark:
    """One 3-D landmark in metres, origin between the hips, axes aligned with the image (y down)."""

    x: float
    y: float
    z: float


@dataclass(frozen=True, slots=True)
class Pose:
    """One person's pose in one frame."""

    score: float
    """Detector score of the detection this pose came from (in tracking, the one that started the track)."""
    presence: float
    """The landmark model's pose flag: probability that the ROI holds a pose."""
    roi: Roi
    landmarks: tuple[Landmark, ...]
    world_landmarks: tuple[WorldLandmark, ...]
    track_id: int | None = None

    def __post_init__(self) -> None:
        if len(self.landmarks) != NUM_LANDMARKS or len(self.world_landmarks) != NUM_LANDMARKS:
            raise ValueError(
                f"a Pose needs {NUM_LANDMARKS} landmarks and world landmarks, "
                f"got {len(self.landmarks)} and {len(self.world_landmarks)}"
            )

    @classmethod
    def from_rows(
        cls,
        *,
        score: float,
        presence: float,
        roi: Rows,
        landmarks: Rows,
        world_landmarks: Rows,
        track_id: int | None = None,
    ) -> Pose:
        """Build from array rows: roi (xc, yc, w, h, rotation), landmarks (33, 5), world (33, 3)."""
        lms = _float_rows(landmarks, 5)
        world = _float_rows(world_landmarks, 3)
        return cls(
            score=float(score),
            presence=float(presence),
            roi=Roi(*_float_rows([roi], 5)[0]),
            landmarks=tuple(Landmark(*row) for row in lms),
            world_landmarks=tuple(WorldLandmark(*row) for row in world),
            track_id=track_id,
        )

    def to_json(self, image_width: int, image_height: int) -> dict[str, Any]:
        """The pose object of the JSON contract: pixels for x and y, z times the image width."""
        out: dict[str, Any] = {
            "score": round(self.score, 6),
            "presence": round(self.presence, 6),
            "roi": {k: round(v, 4) for k, v in self.roi.to_json(image_width, image_height).items()},
            "landmarks": [
                {
                    "name": name,
                    "x": round(lm.x * image_width, 4),
                    "y": round(lm.y * image_height, 4),
                    "z": round(lm.z * image_width, 4),
                    "visibility": round(lm.visibility, 6),
                    "presence": round(lm.presence, 6),
                }
                for name, lm in zip(LANDMARK_NAMES, self.landmarks, strict=True)
            ],
            "world_landmarks": [
                {"name": name, "x": round(w.x, 6), "y": round(w.y, 6), "z": round(w.z, 6)}
                for name, w in zip(LANDMARK_NAMES, self.world_landmarks, strict=True)
            ],
        }
        if self.track_id is not None:
            out["track_id"] = self.track_id
        return out
