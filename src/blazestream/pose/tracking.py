"""Per-stream tracking: MediaPipe's detect-then-track loop, generalized to `max_poses` people.

MediaPipe runs the detector on the first frame and on the frame after a pose was lost; otherwise the
ROI comes from the previous frame's smoothed auxiliary landmarks (PoseLandmarksToRoi). With several
people, each track carries its own ROI and filters and gets an id; new detections that overlap a live
track are dropped, so a person is never tracked twice. With max_poses=1 the filters live as long as
the stream, as in MediaPipe, where the visibility and world filters survive a lost pose.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from blazestream.pose.detection import box_iou
from blazestream.pose.roi import alignment_roi
from blazestream.pose.skeleton import AUX_HIP_CENTER, AUX_SCALE_POINT, NUM_LANDMARKS
from blazestream.pose.smoothing import PoseSmoother
from blazestream.pose.types import Pose

FloatArray = npt.NDArray[np.float32]

DUPLICATE_IOU = 0.5
"""A detection whose box overlaps a live track's box by more than this is that track's person."""


@dataclass
class Track:
    track_id: int
    roi: FloatArray
    """The ROI (5,) to crop on the next frame."""
    score: float
    smoother: PoseSmoother


@dataclass(frozen=True)
class RoiRequest:
    """One ROI the estimator must run on this frame, and the track it belongs to."""

    track_id: int
    roi: FloatArray
    score: float


@dataclass
class PoseTracker:
    """Tracking state of one stream."""

    max_poses: int = 1
    static: bool = False
    smooth: bool = True
    min_presence: float = 0.5
    _tracks: dict[int, Track] = field(default_factory=dict)
    _lost: bool = True
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _stream_smoother: PoseSmoother | None = None

    @property
    def needs_detection(self) -> bool:
        """Static mode, no live track, or a track was lost on the previous frame."""
        return self.static or self._lost or not self._tracks

    def tracked(self) -> list[RoiRequest]:
        """ROIs carried over from the previous frame."""
        return [RoiRequest(t.track_id, t.roi, t.score) for t in self._tracks.values()]

    def seed(self, rois: FloatArray, scores: Sequence[float]) -> list[RoiRequest]:
        """Start tracks from detector ROIs (best first), skipping duplicates and beyond max_poses."""
        if self.static:
            self._tracks.clear()
        new: list[RoiRequest] = []
        boxes = [_bounding_box(t.roi) for t in self._tracks.values()]
        for roi, score in zip(rois, scores, strict=True):
            if len(self._tracks) >= self.max_poses:
                break
            box = _bounding_box(roi)
            if boxes and float(np.max(box_iou(box[None, None], np.stack(boxes)[None]))) > DUPLICATE_IOU:
                continue
            track = Track(next(self._ids), np.asarray(roi, dtype=np.float32), float(score), self._new_smoother())
            self._tracks[track.track_id] = track
            boxes.append(box)
            new.append(RoiRequest(track.track_id, track.roi, track.score))
        self._lost = False
        return new

    def update(
        self,
        track_id: int,
        roi: FloatArray,
        landmarks: FloatArray,
        world: FloatArray,
        presence: float,
        *,
        image_size: tuple[int, int],
        timestamp_ns: int,
    ) -> Pose | None:
        """Take the estimator's result for one track: (39, 5) image landmarks, (33, 3) world, pose flag.

        Returns the (smoothed) pose, or None when the pose flag rejects it; then the track ends and the
        detector runs on the next frame.
        """
        track = self._tracks.get(track_id)
        if track is None:
            raise KeyError(f"no track {track_id} on this stream")
        if not presence > self.min_presence:
            self._drop(track)
            return None
        pose_lms = landmarks[:NUM_LANDMARKS]
        aux = landmarks[AUX_HIP_CENTER : AUX_SCALE_POINT + 1]
        pose_lms, aux, world = track.smoother(pose_lms, aux, world, image_size=image_size, timestamp_ns=timestamp_ns)
        size = np.asarray(image_size, dtype=np.float32)
        track.roi = alignment_roi(aux[0, 0:2], aux[1, 0:2], size).astype(np.float32)
        if self.static:
            del self._tracks[track_id]
        return Pose.from_rows(
            score=track.score,
            presence=presence,
            roi=roi,
            landmarks=pose_lms,
            world_landmarks=world,
            track_id=None if self.static else track_id,
        )

    def _drop(self, track: Track) -> None:
        track.smoother.reset_on_loss()
        del self._tracks[track.track_id]
        self._lost = True

    def _new_smoother(self) -> PoseSmoother:
        if self.max_poses == 1 and not self.static:
            if self._stream_smoother is None:
                self._stream_smoother = PoseSmoother(smooth=self.smooth)
            return self._stream_smoother
        return PoseSmoother(smooth=self.smooth and not self.static)


def _bounding_box(roi: FloatArray) -> FloatArray:
    """Axis-aligned normalized box (xmin, ymin, xmax, ymax) of a rotated ROI."""
    xc, yc, w, h, rot = (float(v) for v in roi[:5])
    c, s = abs(np.cos(rot)), abs(np.sin(rot))
    half_w = (w * c + h * s) / 2.0
    half_h = (w * s + h * c) / 2.0
    return np.array([xc - half_w, yc - half_h, xc + half_w, yc + half_h], dtype=np.float32)
