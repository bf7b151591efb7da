"""Per-stream tracking: MediaPipe's detect-then-track loop, generalized to `max_poses` people.

MediaPipe runs the detector on the first frame and on the frame after a pose was lost; otherwise the
ROI comes from the previous frame's smoothed auxiliary landmarks (PoseLandmarksToRoi). With several
people, each track carries its own ROI and filters and gets an id; new detections that overlap a live
track are dropped, so a person is never tracked twice. With max_poses=1 the filters live as long as
the stream, as in MediaPipe, where the visibility and world filters survive a lost pose.

With max_poses > 1 the detector also runs on a schedule (every `redetect_frames` frames or
`redetect_s` seconds) while fewer than max_poses people are tracked, so newcomers are picked up. A
detection centred on a tracked person's ROI is that person and is dropped; two tracks whose landmarks
converge onto one person (a crop holding two people lets the estimator jump) are merged into the older.
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
"""max_poses=1 only: a detection whose box overlaps a live track's box by more than this is that person."""

SAME_CENTRE = 0.1
"""A detection whose ROI centre (the hip centre) lies within this fraction of a tracked ROI's side of
that ROI's centre, at a similar size, is the tracked person. People standing side by side, overlapping
by a third of their width, are ~0.15 ROI sides apart; one person's detection and track ~0.03."""

SAME_SIZE = 1.5
"""...and 'similar size' means side lengths within this ratio."""

MERGE_DISTANCE = 0.08
"""Two poses are one person when the median distance of their 33 landmarks is below this fraction of
the larger pose's landmark box diagonal (two people overlapping by a third of their width: ~0.2)."""


HEAD_MERGE_DISTANCE = 0.05
"""...or when their face and shoulders (landmarks 0-12) coincide this closely: a crop holding two people
can give a pose with one person's head and the other's legs, whose head is then the other pose's head.
Two people's faces are at least a head's width apart (~0.1 of the diagonal)."""

_HEAD = slice(0, 13)


def duplicate_poses(a: FloatArray, b: FloatArray) -> npt.NDArray[np.bool_]:
    """(N, M) whether pose a[n] and b[m] are the same person: landmark pixels a (N, 33, 2), b (M, 33, 2)."""
    dist = np.linalg.norm(a[:, None] - b[None, :], axis=-1)  # (N, M, 33)
    diag_a = np.linalg.norm(a.max(axis=1) - a.min(axis=1), axis=-1)
    diag_b = np.linalg.norm(b.max(axis=1) - b.min(axis=1), axis=-1)
    scale = np.maximum(diag_a[:, None], diag_b[None, :])
    whole = np.median(dist, axis=-1) < MERGE_DISTANCE * scale
    head = np.median(dist[..., _HEAD], axis=-1) < HEAD_MERGE_DISTANCE * scale
    return np.asarray(whole | head)


def same_person_roi(roi: FloatArray, tracked: FloatArray) -> bool:
    """Whether a detector ROI (5,) is a tracked ROI's (5,) person: close centres, similar sizes.

    ROIs are square in pixels, so normalized offsets divided by normalized sides compare in pixels.
    """
    dx = (float(roi[0]) - float(tracked[0])) / float(tracked[2])
    dy = (float(roi[1]) - float(tracked[1])) / float(tracked[3])
    ratio = float(roi[2]) / float(tracked[2])
    return dx * dx + dy * dy < SAME_CENTRE * SAME_CENTRE and 1.0 / SAME_SIZE < ratio < SAME_SIZE


@dataclass
class Track:
    track_id: int
    roi: FloatArray
    """The ROI (5,) to crop on the next frame."""
    score: float
    smoother: PoseSmoother
    frames: int = 0
    """Frames this track has produced a pose on."""


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
    redetect_frames: int | None = 5
    """max_poses > 1: run the detector at least every this many frames while people are missing."""
    redetect_s: float | None = None
    """max_poses > 1: ... or when this many seconds have passed since the last detection."""
    _tracks: dict[int, Track] = field(default_factory=dict)
    _lost: bool = True
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _stream_smoother: PoseSmoother | None = None
    _frames_since_detection: int = 0
    _now_ns: int = 0
    _detected_ns: int = 0

    @property
    def needs_detection(self) -> bool:
        """Static mode, no live track, or a track was lost on the previous frame; with several people
        also while fewer than max_poses are tracked and the re-detection schedule is due."""
        if self.static or self._lost or not self._tracks:
            return True
        if len(self._tracks) >= self.max_poses:
            return False
        frames_due = self.redetect_frames is not None and self._frames_since_detection >= self.redetect_frames
        time_due = self.redetect_s is not None and self._now_ns - self._detected_ns >= self.redetect_s * 1e9
        return frames_due or time_due

    def begin_frame(self, timestamp_ns: int) -> None:
        """Advance the re-detection schedule to a new frame (call before needs_detection)."""
        self._frames_since_detection += 1
        self._now_ns = timestamp_ns

    def tracked(self) -> list[RoiRequest]:
        """ROIs carried over from the previous frame."""
        return [RoiRequest(t.track_id, t.roi, t.score) for t in self._tracks.values()]

    def seed(self, rois: FloatArray, scores: Sequence[float]) -> list[RoiRequest]:
        """Start tracks from detector ROIs (best first), skipping duplicates and beyond max_poses."""
        if self.static:
            self._tracks.clear()
        new: list[RoiRequest] = []
        boxes = [_bounding_box(t.roi) for t in self._tracks.values()]
        taken = [t.roi for t in self._tracks.values()]
        for roi, score in zip(rois, scores, strict=True):
            if len(self._tracks) >= self.max_poses:
                break
            box = _bounding_box(roi)
            if self.max_poses == 1:
                if boxes and float(np.max(box_iou(box[None, None], np.stack(boxes)[None]))) > DUPLICATE_IOU:
                    continue
            elif any(same_person_roi(roi, other) for other in taken):
                continue
            track = Track(next(self._ids), np.asarray(roi, dtype=np.float32), float(score), self._new_smoother())
            self._tracks[track.track_id] = track
            boxes.append(box)
            taken.append(track.roi)
            new.append(RoiRequest(track.track_id, track.roi, track.score))
        self._lost = False
        self._frames_since_detection = 0
        self._detected_ns = self._now_ns
        return new

    def resolve(self, poses: list[Pose], image_size: tuple[int, int]) -> list[Pose]:
        """Merge tracks that converged onto one person this frame: the older id (smaller) stays.

        Returns the poses of the surviving tracks; the dropped track ends.
        """
        tracked = [p for p in poses if p.track_id is not None]
        if len(tracked) < 2:
            return poses
        width, height = image_size
        ordered = sorted(tracked, key=lambda p: p.track_id or 0)
        points = np.asarray([[(lm.x * width, lm.y * height) for lm in p.landmarks] for p in ordered], np.float32)
        same = duplicate_poses(points, points)
        dropped: set[int] = set()
        for i, pose in enumerate(ordered):
            if pose.track_id in dropped:
                continue
            for j in range(i + 1, len(ordered)):
                other = ordered[j].track_id
                if other is not None and other not in dropped and bool(same[i, j]):
                    dropped.add(other)
                    track = self._tracks.get(other)
                    if track is not None:
                        del self._tracks[other]
        # No extra detector run for the freed slot: the schedule looks again soon enough, and a forced run
        # would repeat every frame where a detection keeps re-seeding a person who is already tracked.
        return [p for p in poses if p.track_id not in dropped]

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
        track.frames += 1
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
        # A lost person is looked for on the next frame (MediaPipe). With several people, a detection the
        # estimator rejects on its first frame is not a lost person: re-detecting at once would repeat
        # every frame while that detection stays; the schedule looks again.
        if self.max_poses == 1 or track.frames > 0:
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
