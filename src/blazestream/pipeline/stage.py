"""The pose stage of the graph: detector and estimator over a cross-camera batch, tracking per camera.

Backend-neutral: the CPU graph and the TensorRT graph both hand it batches of frames. Per batch it
runs the detector once on every frame whose camera needs one, the estimator once on every ROI of
every camera, then each camera's tracker turns results into poses with track ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from blazestream.estimator import PoseEstimator
from blazestream.outputs.base import FrameResult
from blazestream.pipeline.frames import Frame
from blazestream.pose.tracking import PoseTracker, RoiRequest
from blazestream.pose.types import Pose

FIRST_TIMESTAMP_NS = 33_333_000
"""Filters see the first frame at 33.333 ms, as MediaPipe's Python solution stamps its first packet,
and (timestamps="frames") each next frame 33.333 ms later, as it does whatever the video's frame rate."""


@dataclass
class _Stream:
    tracker: PoseTracker
    generation: int
    first_pts: float
    first_index: int = 0


class PoseStage:
    """Runs the estimator on batches and keeps one tracker per camera."""

    def __init__(
        self,
        estimator: PoseEstimator,
        *,
        max_poses: dict[str, int] | None = None,
        smooth: bool = True,
        keep_images: bool = False,
        timestamps: str = "frames",
    ) -> None:
        self.estimator = estimator
        self.max_poses = max_poses or {}
        self.smooth = smooth
        self.timestamps = timestamps
        """frames: 33.333 ms per frame (MediaPipe's Python solution, whatever the fps); pts: media time."""
        self.keep_images = keep_images
        self._streams: dict[str, _Stream] = {}

    def _stream(self, frame: Frame) -> _Stream:
        """The camera's tracker; a new one after a reconnect, since that breaks the timeline."""
        stream = self._streams.get(frame.camera_id)
        if stream is None or stream.generation != frame.generation:
            tracker = PoseTracker(
                max_poses=self.max_poses.get(frame.camera_id, self.estimator.settings.max_poses),
                smooth=self.smooth,
                min_presence=self.estimator.settings.min_presence,
            )
            stream = _Stream(tracker, frame.generation, frame.pts, frame.index)
            self._streams[frame.camera_id] = stream
        return stream

    def process(self, frames: Sequence[Frame]) -> list[FrameResult]:
        streams = [self._stream(f) for f in frames]
        images = [f.pixels for f in frames]
        requests: list[tuple[int, RoiRequest]] = [
            (i, req) for i, s in enumerate(streams) for req in s.tracker.tracked()
        ]
        to_detect = [i for i, s in enumerate(streams) if s.tracker.needs_detection]
        if to_detect:
            detections = self.estimator.detect([images[i] for i in to_detect])
            for i, det in zip(to_detect, detections, strict=True):
                requests += [(i, req) for req in streams[i].tracker.seed(det.rois, [float(s) for s in det.scores])]
        rois = np.stack([req.roi for _, req in requests]) if requests else np.zeros((0, 5), np.float32)
        results = self.estimator.estimate(images, [i for i, _ in requests], rois)
        poses: list[list[Pose]] = [[] for _ in frames]
        for m, (i, req) in enumerate(requests):
            frame = frames[i]
            width, height = frame.size
            pose = streams[i].tracker.update(
                req.track_id,
                req.roi,
                results.landmarks[m],
                results.world[m],
                float(results.presence[m]),
                image_size=(width, height),
                timestamp_ns=self._timestamp_ns(streams[i], frame),
            )
            if pose is not None:
                poses[i].append(pose)
        return [
            FrameResult(
                stream=f.camera_id,
                frame=f.index,
                pts=f.pts,
                width=f.size[0],
                height=f.size[1],
                poses=tuple(sorted(p, key=lambda pose: pose.track_id or 0)),
                image=f.image if self.keep_images else None,
                arrived=f.arrived,
            )
            for f, p in zip(frames, poses, strict=True)
        ]

    def _timestamp_ns(self, stream: _Stream, frame: Frame) -> int:
        if self.timestamps == "frames":
            return FIRST_TIMESTAMP_NS * (frame.index - stream.first_index + 1)
        return FIRST_TIMESTAMP_NS + round((frame.pts - stream.first_pts) * 1e9)
