"""Temporal filters with MediaPipe's semantics: low-pass, one-euro, and the pose filtering graph.

Ports of mediapipe/util/filtering/{low_pass_filter,one_euro_filter}.cc, vectorized over all
landmarks and axes of one track (they share timestamps, so one frequency serves them all), and of
pose_landmark_filtering.pbtxt as MediaPipe 0.10.21 ships it:

| stream | visibility | coordinates (one-euro min_cutoff, beta, derivate_cutoff) | scaled by |
|---|---|---|---|
| 33 landmarks | low-pass 0.1 | 0.05, 80, 1 | 1 / object scale |
| world landmarks | low-pass 0.1 | 0.1, 40, 1 | none |
| 2 aux landmarks | low-pass 0.1 | 0.01, 10, 1 (always on) | 1 / object scale |

The object scale is 2 * |aux34 - aux33| in pixels (the unscaled alignment ROI of the raw aux points).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from blazestream.pose.xp import Array, array_namespace

DEFAULT_FREQUENCY = 30.0
MIN_OBJECT_SCALE = 1e-6


class LowPassFilter:
    """Exponential smoothing whose first sample passes through; remembers the last raw value."""

    def __init__(self) -> None:
        self.raw: Array | None = None
        self.stored: Array | None = None

    def apply(self, value: Array, alpha: Array | float) -> Array:
        result = value if self.stored is None else alpha * value + (1.0 - alpha) * self.stored
        self.raw = value
        self.stored = result
        return result


@dataclass(frozen=True)
class OneEuroParams:
    min_cutoff: float
    beta: float
    derivate_cutoff: float = 1.0
    frequency: float = DEFAULT_FREQUENCY


class OneEuroFilter:
    """MediaPipe's one-euro filter over an array of values that share one timestamp per call.

    As in MediaPipe, the derivative is taken against the last *raw* value, a timestamp that does not
    increase returns the value unfiltered, and the frequency comes from timestamps once two exist.
    """

    def __init__(self, params: OneEuroParams) -> None:
        self.params = params
        self.reset()

    def reset(self) -> None:
        self.frequency = self.params.frequency
        self.last_time_ns = 0
        self._x = LowPassFilter()
        self._dx = LowPassFilter()

    def _alpha(self, cutoff: Array | float) -> Array | float:
        te = 1.0 / self.frequency
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / te)

    def apply(self, value: Array, timestamp_ns: int, value_scale: float = 1.0) -> Array:
        xp = array_namespace(value)
        if self.last_time_ns >= timestamp_ns:
            return value
        if self.last_time_ns != 0 and timestamp_ns != 0:
            self.frequency = 1.0 / ((timestamp_ns - self.last_time_ns) * 1e-9)
        self.last_time_ns = timestamp_ns
        raw = self._x.raw
        dvalue = xp.zeros_like(value) if raw is None else (value - raw) * value_scale * self.frequency
        edvalue = self._dx.apply(dvalue, self._alpha(self.params.derivate_cutoff))
        cutoff = self.params.min_cutoff + self.params.beta * xp.abs(edvalue)
        return self._x.apply(value, self._alpha(cutoff))


LANDMARK_FILTER = OneEuroParams(min_cutoff=0.05, beta=80.0)
WORLD_FILTER = OneEuroParams(min_cutoff=0.1, beta=40.0)
AUX_FILTER = OneEuroParams(min_cutoff=0.01, beta=10.0)
VISIBILITY_ALPHA = 0.1


def object_scale(aux: Array, image_size: tuple[int, int]) -> float:
    """2 * |aux34 - aux33| in pixels: the scale MediaPipe divides landmark velocities by."""
    width, height = image_size
    dx = (float(aux[1, 0]) - float(aux[0, 0])) * width
    dy = (float(aux[1, 1]) - float(aux[0, 1])) * height
    return 2.0 * math.sqrt(dx * dx + dy * dy)


class PoseSmoother:
    """The PoseLandmarkFiltering graph for one tracked person.

    `smooth=False` (static mode, or smoothing switched off) passes the 33 and world landmarks through
    but still filters the auxiliary landmarks, which MediaPipe always does because the next ROI uses them.
    """

    def __init__(self, *, smooth: bool = True) -> None:
        self.smooth = smooth
        self._landmarks = OneEuroFilter(LANDMARK_FILTER)
        self._world = OneEuroFilter(WORLD_FILTER)
        self._aux = OneEuroFilter(AUX_FILTER)
        self._landmark_vis = LowPassFilter()
        self._aux_vis = LowPassFilter()

    def reset_on_loss(self) -> None:
        """What MediaPipe resets when a frame has no pose: the landmark and aux coordinate filters only."""
        self._landmarks.reset()
        self._aux.reset()

    def __call__(
        self,
        landmarks: Array,
        aux: Array,
        world: Array,
        *,
        image_size: tuple[int, int],
        timestamp_ns: int,
    ) -> tuple[Array, Array, Array]:
        """Filter (33, 5) normalized landmarks, (2, 5) aux landmarks and (33, 3) world landmarks."""
        xp = array_namespace(landmarks, aux, world)
        scale = object_scale(aux, image_size)
        aux = self._filter_coordinates(
            xp, self._aux, self._smooth_visibility(xp, self._aux_vis, aux), scale, image_size, timestamp_ns
        )
        if not self.smooth:
            return landmarks, aux, world
        landmarks = self._smooth_visibility(xp, self._landmark_vis, landmarks)
        landmarks = self._filter_coordinates(xp, self._landmarks, landmarks, scale, image_size, timestamp_ns)
        world = self._world.apply(world, timestamp_ns, 1.0)
        return landmarks, aux, world

    @staticmethod
    def _smooth_visibility(xp: Any, lpf: LowPassFilter, landmarks: Array) -> Array:
        vis = lpf.apply(landmarks[:, 3], VISIBILITY_ALPHA)
        return xp.concat([landmarks[:, 0:3], vis[:, None], landmarks[:, 4:]], axis=-1)

    @staticmethod
    def _filter_coordinates(
        xp: Any,
        flt: OneEuroFilter,
        landmarks: Array,
        scale: float,
        image_size: tuple[int, int],
        timestamp_ns: int,
    ) -> Array:
        """Filter in pixels (x*W, y*H, z*W) as LandmarksSmoothingCalculator does, then back."""
        if scale < MIN_OBJECT_SCALE:
            return landmarks
        width, height = float(image_size[0]), float(image_size[1])
        pixels = xp.stack([landmarks[:, 0] * width, landmarks[:, 1] * height, landmarks[:, 2] * width], axis=-1)
        filtered = flt.apply(pixels, timestamp_ns, 1.0 / scale)
        normalized = xp.stack([filtered[:, 0] / width, filtered[:, 1] / height, filtered[:, 2] / width], axis=-1)
        return xp.concat([normalized, landmarks[:, 3:]], axis=-1)
