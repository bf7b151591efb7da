"""One-euro and low-pass filters against a scalar port of MediaPipe's C++, and the tracker's resets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from blazestream.pose.smoothing import LowPassFilter, OneEuroFilter, OneEuroParams, PoseSmoother
from blazestream.pose.tracking import PoseTracker

FRAME_NS = 33_333_000


def _f(x: float) -> float:
    """Store into a C++ float."""
    return float(np.float32(x))


class _ScalarLowPass:
    """Scalar port of mediapipe/util/filtering/low_pass_filter.cc: float alpha and state."""

    def __init__(self) -> None:
        self.raw: float | None = None
        self.stored: float | None = None

    def apply(self, value: float, alpha: float) -> float:
        value, alpha = _f(value), _f(alpha)  # ApplyWithAlpha(float value, float alpha)
        # `alpha_ * value` is a float product; `(1.0 - alpha_) * stored_value_` and the sum are doubles.
        out = value if self.stored is None else _f(_f(alpha * value) + (1.0 - alpha) * self.stored)
        self.raw, self.stored = value, out
        return out


class _ScalarOneEuro:
    """Scalar port of mediapipe/util/filtering/one_euro_filter.cc: double arithmetic, float parameters
    (proto options) and float low-pass state."""

    def __init__(self, min_cutoff: float, beta: float, dcut: float = 1.0) -> None:
        self.freq, self.min_cutoff, self.beta, self.dcut = 30.0, _f(min_cutoff), _f(beta), _f(dcut)
        self.last = 0
        self.x, self.dx = _ScalarLowPass(), _ScalarLowPass()

    def alpha(self, cutoff: float) -> float:
        return 1.0 / (1.0 + (1.0 / (2 * math.pi * cutoff)) / (1.0 / self.freq))

    def apply(self, t: int, scale: float, value: float) -> float:
        if self.last >= t:
            return value
        if self.last != 0 and t != 0:
            self.freq = 1.0 / ((t - self.last) * 1e-9)
        self.last = t
        dv = 0.0 if self.x.raw is None else (value - self.x.raw) * scale * self.freq
        edv = self.dx.apply(dv, self.alpha(self.dcut))
        return self.x.apply(value, self.alpha(self.min_cutoff + self.beta * abs(edv)))


def test_one_euro_matches_scalar_port_with_irregular_timestamps() -> None:
    """Bit for bit: the tracking loop amplifies even one-ulp differences (docs/performance.md)."""
    rng = np.random.default_rng(0)
    values = np.cumsum(rng.normal(0, 3, (40, 4)), axis=0).astype(np.float32)
    times = np.cumsum(rng.integers(20_000_000, 50_000_000, 40))
    times[10] = times[9]  # a repeated timestamp is passed through unfiltered
    vec = OneEuroFilter(OneEuroParams(min_cutoff=0.05, beta=80.0))
    scalars = [_ScalarOneEuro(0.05, 80.0) for _ in range(4)]
    scale = _f(1.0 / 123.4)
    for t, row in zip(times, values, strict=True):
        got = vec.apply(row, int(t), scale)
        want = [f.apply(int(t), scale, float(v)) for f, v in zip(scalars, row, strict=True)]
        np.testing.assert_array_equal(got, np.asarray(want, np.float32))


def test_low_pass_passes_first_sample() -> None:
    lpf = LowPassFilter()
    assert lpf.apply(np.array([4.0]), 0.1)[0] == 4.0
    assert lpf.apply(np.array([14.0]), 0.1)[0] == pytest.approx(5.0)


def _pose(offset: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lms = np.zeros((33, 5), np.float32)
    lms[:, 0] = np.linspace(0.4, 0.6, 33) + offset
    lms[:, 1] = np.linspace(0.2, 0.8, 33)
    lms[:, 3] = 0.9
    aux = np.array([[0.5 + offset, 0.6, 0, 1, 1], [0.5 + offset, 0.3, 0, 1, 1]], np.float32)
    world = np.zeros((33, 3), np.float32) + offset
    return lms, aux, world


def test_static_smoother_filters_only_the_aux_landmarks() -> None:
    smoother = PoseSmoother(smooth=False)
    first = smoother(*_pose(0.0), image_size=(640, 480), timestamp_ns=FRAME_NS)
    second = smoother(*_pose(0.05), image_size=(640, 480), timestamp_ns=2 * FRAME_NS)
    np.testing.assert_array_equal(second[0], _pose(0.05)[0])
    assert second[1][0, 0] < 0.55 - 1e-4, "aux landmarks are always smoothed"
    assert first[1][0, 0] == pytest.approx(0.5)


def test_tracker_resets_only_coordinate_filters_on_loss() -> None:
    tracker = PoseTracker(max_poses=1)
    assert tracker.needs_detection
    (req,) = tracker.seed(np.array([[0.5, 0.5, 0.4, 0.3, 0.0]], np.float32), [0.9])
    lms39 = np.zeros((39, 5), np.float32)
    lms, aux, world = _pose(0.0)
    lms39[:33], lms39[33:35] = lms, aux
    pose = tracker.update(req.track_id, req.roi, lms39, world, 0.9, image_size=(640, 480), timestamp_ns=FRAME_NS)
    assert pose is not None
    assert pose.track_id == req.track_id
    assert not tracker.needs_detection
    (tracked,) = tracker.tracked()
    # next ROI from the aux points: centre on aux 33, side 2.5 * |aux34 - aux33| px
    assert tracked.roi[0] == pytest.approx(0.5)
    assert tracked.roi[2] * 640 == pytest.approx(2.5 * 0.3 * 480, rel=1e-4)
    smoother = tracker._stream_smoother
    assert smoother is not None
    # pose flag at the threshold: rejected (strict >), track gone, detector next frame
    lost = tracker.update(req.track_id, req.roi, lms39, world, 0.5, image_size=(640, 480), timestamp_ns=2 * FRAME_NS)
    assert lost is None
    assert tracker.needs_detection
    assert not tracker.tracked()
    assert smoother._coordinates._x.stored is None, "coordinate filters reset"
    assert smoother._visibility.stored is not None, "visibility filter survives, as in MediaPipe"
    assert smoother._world._x.stored is not None, "world filter survives, as in MediaPipe"


def test_tracker_skips_duplicate_detections_and_caps_max_poses() -> None:
    tracker = PoseTracker(max_poses=2)
    rois = np.array(
        [
            [0.3, 0.5, 0.2, 0.3, 0.0],
            [0.31, 0.5, 0.2, 0.3, 0.0],
            [0.7, 0.5, 0.2, 0.3, 0.0],
            [0.9, 0.5, 0.1, 0.1, 0],
        ],
        np.float32,
    )
    started = tracker.seed(rois, [0.9, 0.8, 0.7, 0.6])
    assert [r.score for r in started] == pytest.approx([0.9, 0.7])
    assert len({r.track_id for r in started}) == 2
