"""The pose stage of the graph: detector and estimator over a cross-camera batch, tracking per camera.

Backend-neutral: the CPU graph and the TensorRT graph both hand it batches of frames. Per batch it
runs the detector once on every frame whose camera needs one, the estimator once on every ROI of
every camera, then each camera's tracker turns results into poses with track ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from blazestream.estimator import FrameDetections, PoseEstimator
from blazestream.pipeline.frames import Frame
from blazestream.pose.tracking import PoseTracker, RoiRequest
from blazestream.pose.types import Pose
from blazestream.results import FrameResult

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
        redetect_frames: int | None = 5,
        redetect_s: float | None = None,
        timestamps: str = "frames",
    ) -> None:
        self.estimator = estimator
        self.max_poses = max_poses or {}
        self.smooth = smooth
        self.timestamps = timestamps
        """frames: 33.333 ms per frame (MediaPipe's Python solution, whatever the fps); pts: media time."""
        self.keep_images = keep_images
        self.redetect_frames = redetect_frames
        self.redetect_s = redetect_s
        self._streams: dict[str, _Stream] = {}

    def add_camera(self, camera_id: str, max_poses: int | None = None) -> None:
        """A camera added at run time; its tracker is made on its first frame."""
        self._streams.pop(camera_id, None)
        if max_poses:
            self.max_poses[camera_id] = max_poses
        else:
            self.max_poses.pop(camera_id, None)

    def remove_camera(self, camera_id: str) -> None:
        """Drop a removed camera's tracker (and its filters); call between batches."""
        self._streams.pop(camera_id, None)
        self.max_poses.pop(camera_id, None)

    def _stream(self, frame: Frame) -> _Stream:
        """The camera's tracker; a new one after a reconnect, since that breaks the timeline."""
        stream = self._streams.get(frame.camera_id)
        if stream is None or stream.generation != frame.generation:
            tracker = PoseTracker(
                max_poses=self.max_poses.get(frame.camera_id, self.estimator.settings.max_poses),
                smooth=self.smooth,
                min_presence=self.estimator.settings.min_presence,
                redetect_frames=self.redetect_frames,
                redetect_s=self.redetect_s,
            )
            stream = _Stream(tracker, frame.generation, frame.pts, frame.index)
            self._streams[frame.camera_id] = stream
        return stream

    def process(
        self, frames: Sequence[Frame], detections: Sequence[FrameDetections] | None = None
    ) -> list[FrameResult]:
        """Poses for a batch of frames. `detections` (one per frame), when given, replaces the detector
        (DeepStream runs it in nvinfer); otherwise the estimator detects, windowed if configured."""
        if detections is not None and len(detections) != len(frames):
            raise ValueError(f"{len(detections)} detections for {len(frames)} frames")
        streams = [self._stream(f) for f in frames]
        for stream, frame in zip(streams, frames, strict=True):
            stream.tracker.begin_frame(self._timestamp_ns(stream, frame))
        images = [f.pixels for f in frames]
        requests: list[tuple[int, RoiRequest]] = [
            (i, req) for i, s in enumerate(streams) for req in s.tracker.tracked()
        ]
        to_detect = [i for i, s in enumerate(streams) if s.tracker.needs_detection]
        if to_detect:
            if detections is not None:
                found = [detections[i] for i in to_detect]
            else:
                found = self.estimator.detect_people([images[i] for i in to_detect])
            for i, det in zip(to_detect, found, strict=True):
                requests += [(i, req) for req in streams[i].tracker.seed(det.rois, [float(s) for s in det.scores])]
        rois = np.stack([req.roi for _, req in requests]) if requests else np.zeros((0, 5), np.float32)
        results = self.estimator.estimate(images, [i for i, _ in requests], rois)
        poses: list[list[Pose]] = [[] for _ in frames]
        row_of: dict[tuple[int, int | None], int] = {}
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
                row_of[i, pose.track_id] = m
        for i, frame in enumerate(frames):
            kept = streams[i].tracker.resolve(poses[i], frame.size)
            poses[i] = sorted(kept, key=lambda pose: pose.track_id or 0)
        masks: list[npt.NDArray[np.uint8] | None] = [None] * len(frames)
        if self.keep_images and results.segmentation is not None:
            masks = [
                self.estimator.instance_mask(
                    results, rows := [row_of[i, p.track_id] for p in poses[i]], rois[rows], frames[i].pixels
                )
                for i in range(len(frames))
            ]
        return [
            FrameResult(
                stream=f.camera_id,
                frame=f.index,
                pts=f.pts,
                width=f.size[0],
                height=f.size[1],
                poses=tuple(p),
                image=f.image if self.keep_images else None,
                arrived=f.arrived,
                mask=mask,
            )
            for f, p, mask in zip(frames, poses, masks, strict=True)
        ]

    def _timestamp_ns(self, stream: _Stream, frame: Frame) -> int:
        if self.timestamps == "frames":
            return FIRST_TIMESTAMP_NS * (frame.index - stream.first_index + 1)
        return FIRST_TIMESTAMP_NS + round((frame.pts - stream.first_pts) * 1e9)
