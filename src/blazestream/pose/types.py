"""Typed, frozen results: what the pose core hands to outputs, converted to JSON only at the edges.

Coordinates follow MediaPipe: x and y normalized by the image width and height, z in units of the
image width (origin at the hips, smaller is closer), world landmarks in metres.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from typing import Any

import numpy as np
import numpy.typing as npt

from blazestream.pose.skeleton import LANDMARK_NAMES, NUM_LANDMARKS

Rows = Sequence[Any] | npt.NDArray[Any]
"""Anything indexable by row: a NumPy array or nested sequences of floats."""


def _float_rows(rows: Rows, width: int) -> list[list[float]]:
    """The first 33 rows, first `width` columns, as Python floats (one conversion, not one per value)."""
    return np.asarray(rows, dtype=np.float64)[:NUM_LANDMARKS, :width].tolist()  # type: ignore[no-any-return]


_LANDMARK_FIELDS = attrgetter("x", "y", "z", "visibility", "presence")
_WORLD_FIELDS = attrgetter("x", "y", "z")
_JSON_DIGITS = (4, 4, 4, 6, 6, 6, 6, 6)
"""Decimals of a pose's JSON row: x, y, z (pixels), visibility, presence, world x, y, z (metres)."""


def round_rows(values: npt.NDArray[np.float64], digits: Sequence[int]) -> list[list[float]]:
    """Python's ``round(v, digits[column])`` of every value of a 2-D float64 array, bit for bit, as lists.

    round() rounds the exact binary value to n decimals (half to even) and reads that decimal back; it
    formats and parses a string, ~0.4 us a call. Here: rint(v * 10**n) / 10**n, where dividing an exact
    integer by an exact power of ten gives that same nearest double. The product v * 10**n is within half
    an ulp of the exact one, so rint picks round()'s integer unless the product lies within two ulps of
    a half-integer; those values (and NaN, inf, values too large for this) go through round() itself.
    """
    scale = np.asarray([10.0**n for n in digits], dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):  # inf and NaN are not sure: round() takes them
        scaled = values * scale
        out: list[list[float]] = (np.rint(scaled) / scale).tolist()
        sure = np.abs(scaled - np.floor(scaled) - 0.5) > 2.0 * np.abs(np.spacing(scaled))
    if not sure.all():
        for i, j in zip(*np.nonzero(~sure), strict=True):
            out[i][j] = round(float(values[i, j]), digits[j])
    return out


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


def _slot_setters(cls: type, *names: str) -> tuple[Any, ...]:
    return tuple(vars(cls)[name].__set__ for name in names)


_LANDMARK_SETTERS = _slot_setters(Landmark, "x", "y", "z", "visibility", "presence")
_WORLD_SETTERS = _slot_setters(WorldLandmark, "x", "y", "z")


def _landmarks(rows: list[list[float]]) -> tuple[Landmark, ...]:
    """``tuple(Landmark(*row) for row in rows)`` at half the cost: a frozen dataclass's __init__ goes
    through object.__setattr__ per field, and a pose has 66 landmarks. These classes have nothing but
    their fields (no __post_init__), so filling the slots directly makes the same objects."""
    new, (sx, sy, sz, sv, sp) = object.__new__, _LANDMARK_SETTERS
    out = []
    for x, y, z, visibility, presence in rows:
        lm = new(Landmark)
        sx(lm, x), sy(lm, y), sz(lm, z), sv(lm, visibility), sp(lm, presence)
        out.append(lm)
    return tuple(out)


def _world_landmarks(rows: list[list[float]]) -> tuple[WorldLandmark, ...]:
    """``tuple(WorldLandmark(*row) for row in rows)``, as `_landmarks` builds them."""
    new, (sx, sy, sz) = object.__new__, _WORLD_SETTERS
    out = []
    for x, y, z in rows:
        w = new(WorldLandmark)
        sx(w, x), sy(w, y), sz(w, z)
        out.append(w)
    return tuple(out)


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
            landmarks=_landmarks(lms),
            world_landmarks=_world_landmarks(world),
            track_id=track_id,
        )

    def to_json(self, image_width: int, image_height: int) -> dict[str, Any]:
        """The pose object of the JSON contract: pixels for x and y, z times the image width.

        Values are Python's round() of the float64 products (round_rows: the same floats, vectorized).
        """
        lms = np.fromiter(chain.from_iterable(map(_LANDMARK_FIELDS, self.landmarks)), np.float64, NUM_LANDMARKS * 5)
        world = np.fromiter(
            chain.from_iterable(map(_WORLD_FIELDS, self.world_landmarks)), np.float64, NUM_LANDMARKS * 3
        )
        # x * W, y * H, z * W as Python computes them: the sizes are exact doubles (* 1.0 changes nothing).
        size = np.array([image_width, image_height, image_width, 1, 1], dtype=np.float64)
        rows = np.concatenate([lms.reshape(NUM_LANDMARKS, 5) * size, world.reshape(NUM_LANDMARKS, 3)], axis=1)
        rounded = round_rows(rows, _JSON_DIGITS)
        out: dict[str, Any] = {
            "score": round(self.score, 6),
            "presence": round(self.presence, 6),
            "roi": {k: round(v, 4) for k, v in self.roi.to_json(image_width, image_height).items()},
            "landmarks": [
                {"name": name, "x": r[0], "y": r[1], "z": r[2], "visibility": r[3], "presence": r[4]}
                for name, r in zip(LANDMARK_NAMES, rounded, strict=True)
            ],
            "world_landmarks": [
                {"name": name, "x": r[5], "y": r[6], "z": r[7]} for name, r in zip(LANDMARK_NAMES, rounded, strict=True)
            ],
        }
        if self.track_id is not None:
            out["track_id"] = self.track_id
        return out
