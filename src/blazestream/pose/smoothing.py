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
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from blazestream.pose.skeleton import NUM_LANDMARKS
from blazestream.pose.xp import Array, array_namespace

DEFAULT_FREQUENCY = 30.0
MIN_OBJECT_SCALE = 1e-6


_FLOAT = struct.Struct("f")


def f32(value: float) -> float:
    """A Python float rounded to the nearest float32, as C++ stores a double into a float."""
    return float(_FLOAT.unpack(_FLOAT.pack(value))[0])


class LowPassFilter:
    """MediaPipe's LowPassFilter: float32 state and alpha, first sample passes through, remembers the raw value.

    The C++ computes `alpha_ * value` in float and `(1.0 - alpha_) * stored_value_` in double, adds in
    double and stores a float; this does the same, so its results are MediaPipe's to the bit.
    """

    def __init__(self) -> None:
        self.raw: Array | None = None
        self.stored: Array | None = None

    def apply(self, value: Array, alpha: Array | float) -> Array:
        xp = array_namespace(value)
        value = xp.astype(value, xp.float32)
        if self.stored is None:
            result = value
        else:
            if isinstance(alpha, float):
                alpha32: Array | float = f32(alpha)  # exactly a float32, so `alpha32 * value` stays float32
                alpha64: Array | float = alpha32
            else:
                alpha32 = xp.astype(alpha, xp.float32)
                alpha64 = xp.astype(alpha32, xp.float64)
            product = xp.astype(alpha32 * value, xp.float64)
            result = xp.astype(product + (1.0 - alpha64) * xp.astype(self.stored, xp.float64), xp.float32)
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
    Arithmetic follows one_euro_filter.cc: float32 parameters (proto floats) and state, double in between.
    """

    def __init__(self, params: OneEuroParams, rows: Sequence[tuple[OneEuroParams, int]] = ()) -> None:
        """`rows`: filter stacked (rows, ...) values, `count` rows per params, in one call (they must share
        derivate_cutoff and frequency); else every value uses `params`."""
        self.params = params
        self._min_cutoff: Array | float = f32(params.min_cutoff)
        self._beta: Array | float = f32(params.beta)
        self._derivate_cutoff = f32(params.derivate_cutoff)
        self._rows = [(f32(p.min_cutoff), f32(p.beta)) for p, count in rows for _ in range(count)]
        self._rows_xp: Any = None
        if any((p.derivate_cutoff, p.frequency) != (params.derivate_cutoff, params.frequency) for p, _ in rows):
            raise ValueError("stacked one-euro filters must share derivate_cutoff and frequency")
        self.reset()

    def reset(self) -> None:
        self.frequency = f32(self.params.frequency)
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
        value = xp.astype(value, xp.float32)
        raw = self._x.raw
        if raw is None:
            dvalue = xp.zeros_like(value)
        else:
            delta = xp.astype(value, xp.float64) - xp.astype(raw, xp.float64)
            dvalue = delta * value_scale * self.frequency
        edvalue = self._dx.apply(dvalue, self._alpha(self._derivate_cutoff))
        if self._rows and self._rows_xp is not xp:
            # (rows, 1) float64 columns of the float32-rounded parameters: per row, a scalar filter's arithmetic.
            params = xp.asarray(self._rows, dtype=xp.float64)
            self._min_cutoff, self._beta, self._rows_xp = params[:, 0:1], params[:, 1:2], xp
        cutoff = self._min_cutoff + self._beta * xp.abs(xp.astype(edvalue, xp.float64))
        return self._x.apply(value, self._alpha(cutoff))


LANDMARK_FILTER = OneEuroParams(min_cutoff=0.05, beta=80.0)
WORLD_FILTER = OneEuroParams(min_cutoff=0.1, beta=40.0)
AUX_FILTER = OneEuroParams(min_cutoff=0.01, beta=10.0)
VISIBILITY_ALPHA = 0.1


def object_scale(aux: Array, image_size: tuple[int, int]) -> float:
    """2 * |aux34 - aux33| in pixels: the scale MediaPipe divides landmark velocities by.

    In float32 and MediaPipe's order: AlignmentPointsRectsCalculator's box (without the 1.25), then
    LandmarksSmoothingCalculator's GetObjectScale, the mean of its width and height in pixels.
    """
    width, height = image_size
    x0, y0 = f32(float(aux[0, 0]) * width), f32(float(aux[0, 1]) * height)
    x1, y1 = f32(float(aux[1, 0]) * width), f32(float(aux[1, 1]) * height)
    dx, dy = f32(x1 - x0), f32(y1 - y0)
    box = f32(math.sqrt(f32(f32(dx * dx) + f32(dy * dy))) * 2.0)
    box_w, box_h = f32(f32(box / width) * width), f32(f32(box / height) * height)
    return f32(f32(box_w + box_h) / 2.0)


class PoseSmoother:
    """The PoseLandmarkFiltering graph for one tracked person.

    `smooth=False` (static mode, or smoothing switched off) passes the 33 and world landmarks through
    but still filters the auxiliary landmarks, which MediaPipe always does because the next ROI uses them.
    With smoothing, the 33 and the 2 auxiliary landmarks run as one stacked (35-row) filter with per-row
    parameters: their filters see the same timestamps, object scale and resets, so they advance in
    lockstep and every row gets its own filter's arithmetic (half the NumPy calls of two filters).
    """

    def __init__(self, *, smooth: bool = True) -> None:
        self.smooth = smooth
        rows = [(LANDMARK_FILTER, NUM_LANDMARKS), (AUX_FILTER, 2)] if smooth else [(AUX_FILTER, 2)]
        self._coordinates = OneEuroFilter(AUX_FILTER, rows)
        """The auxiliary landmarks' coordinates, after the 33's when smoothing."""
        self._visibility = LowPassFilter()
        """The same rows' visibility."""
        self._world = OneEuroFilter(WORLD_FILTER)

    def reset_on_loss(self) -> None:
        """What MediaPipe resets when a frame has no pose: the landmark and aux coordinate filters only."""
        self._coordinates.reset()

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
        rows = xp.concat([landmarks, aux], axis=0) if self.smooth else aux
        rows = self._smooth_visibility(xp, self._visibility, rows)
        rows = self._filter_coordinates(xp, self._coordinates, rows, scale, image_size, timestamp_ns)
        if not self.smooth:
            # MediaPipe's `no_filter` still converts to pixels and back (a float round trip: last bits).
            return self._filter_coordinates(xp, None, landmarks, scale, image_size, timestamp_ns), rows, world
        world = self._world.apply(world, timestamp_ns, 1.0)
        return rows[:NUM_LANDMARKS], rows[NUM_LANDMARKS:], world

    @staticmethod
    def _smooth_visibility(xp: Any, lpf: LowPassFilter, landmarks: Array) -> Array:
        vis = lpf.apply(landmarks[:, 3], VISIBILITY_ALPHA)
        return xp.concat([landmarks[:, 0:3], vis[:, None], landmarks[:, 4:]], axis=-1)

    @staticmethod
    def _filter_coordinates(
        xp: Any,
        flt: OneEuroFilter | None,
        landmarks: Array,
        scale: float,
        image_size: tuple[int, int],
        timestamp_ns: int,
    ) -> Array:
        """Filter in float32 pixels (x*W, y*H, z*W) as LandmarksSmoothingCalculator does, then back.

        Without a filter (`no_filter`), or below the minimum object scale, only the round trip remains.
        The (W, H, W) row is float32: sizes are exact there, so products and quotients are those of the
        float32 arithmetic with Python-float sizes.
        """
        size = xp.asarray([image_size[0], image_size[1], image_size[0]], dtype=xp.float32)
        pixels = xp.astype(landmarks[:, 0:3], xp.float32) * size
        if flt is None or scale < MIN_OBJECT_SCALE:
            filtered = pixels
        else:
            filtered = flt.apply(pixels, timestamp_ns, f32(1.0 / scale))
        return xp.concat([xp.astype(filtered / size, landmarks.dtype), landmarks[:, 3:]], axis=-1)
