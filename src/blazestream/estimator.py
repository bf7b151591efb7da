"""The two-stage BlazePose estimator: detector and landmark engines around the pose core.

Backend-neutral: it takes any `Engine` and a `Cropper` that turns frames plus ROIs into model inputs
(OpenCV on the CPU, a CUDA kernel on the GPU). Decoding runs in the array library the engine returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from blazestream.cpu_split import measure
from blazestream.engines.base import Engine, infer_in_chunks
from blazestream.pose import crop as cpu_crop
from blazestream.pose.anchors import generate_anchors
from blazestream.pose.detection import decode_detections, remove_letterbox, weighted_nms
from blazestream.pose.landmarks import (
    HEATMAP_KERNEL_SIZE,
    decode_landmarks,
    project_landmarks,
    project_world,
    refine_from_heatmap,
)
from blazestream.pose.landmarks import remove_letterbox as remove_landmark_letterbox
from blazestream.pose.model_io import DETECTOR_INPUT, LANDMARK_INPUT, LANDMARK_SIZE, InputSpec
from blazestream.pose.roi import alignment_roi, full_image_roi, pad_roi, roi_to_pixels
from blazestream.pose.segmentation import crop_to_frame, instance_mask, mask_probabilities
from blazestream.pose.skeleton import NUM_LANDMARKS
from blazestream.pose.tracking import duplicate_poses, same_person_roi
from blazestream.pose.types import Pose
from blazestream.pose.windows import WindowSpec, frame_windows, group_by_frame, window_rois, windows_to_frame
from blazestream.pose.xp import array_namespace
from blazestream.yuv import Yuv420

Frame = npt.NDArray[np.uint8] | Yuv420
"""What the CPU cropper takes: an RGB image or decoded 4:2:0 planes."""
FloatArray = npt.NDArray[np.float32]

SEGMENTATION_OUTPUT = "segmentation"


@dataclass(frozen=True)
class EstimatorSettings:
    """MediaPipe's knobs; defaults are `mp.solutions.pose.Pose`'s."""

    min_detection_confidence: float = 0.5
    min_presence: float = 0.5
    """Pose-flag threshold, MediaPipe's min_tracking_confidence (strict >)."""
    max_poses: int = 1
    heatmap_kernel: int = HEATMAP_KERNEL_SIZE
    windows: WindowSpec | None = field(default_factory=WindowSpec)
    """Detector windows besides the whole frame, used only when max_poses > 1 (None: whole frame only)."""

    @property
    def windowed(self) -> bool:
        """Windowed detection is on: several people asked for and windows configured."""
        return self.max_poses > 1 and self.windows is not None


class Cropper(Protocol):
    """Builds the detector and landmark inputs from frames; owns where pixels live (CPU or GPU)."""

    def detector_input(self, frames: Sequence[Any]) -> tuple[Any, Any]:
        """(B, 3, 224, 224) letterboxed, in [-1, 1]; and the letterbox padding (B, 4)."""
        ...

    def landmark_input(self, frames: Sequence[Any], frame_index: Sequence[int], rois: Any) -> tuple[Any, Any]:
        """(M, 3, 256, 256) rotated crops in [0, 1] for normalized ROIs (M, 5); and the padding (M, 4)."""
        ...

    def detector_windows_input(self, frames: Sequence[Any], frame_index: Sequence[int], rois: Any) -> tuple[Any, Any]:
        """(M, 3, 224, 224) detector inputs of upright window ROIs (M, 5), letterboxed; and the padding (M, 4)."""
        ...


def frame_sizes(frames: Sequence[Any]) -> FloatArray:
    """(B, 2) float32 (width, height) of HWC frames."""
    return np.asarray([(f.shape[1], f.shape[0]) for f in frames], dtype=np.float32).reshape(-1, 2)


Tensor = TypeVar("Tensor")
"""Where a cropper's model inputs live: NumPy arrays (CPU) or CuPy arrays (GPU)."""


class RoiCropper(Generic[Tensor]):
    """The `Cropper` inputs, all as crops of normalized ROIs: the detector's is the whole-image ROI's.

    Subclasses own the pixels (`_crop`); the geometry (pixels, MediaPipe's PadRoi letterbox) is here,
    on the host, once for the CPU and the GPU.
    """

    def detector_input(self, frames: Sequence[Any]) -> tuple[Tensor, FloatArray]:
        return self.detector_windows_input(frames, range(len(frames)), full_image_roi(frame_sizes(frames)))

    def landmark_input(self, frames: Sequence[Any], frame_index: Sequence[int], rois: Any) -> tuple[Tensor, FloatArray]:
        return self._roi_input(frames, frame_index, rois, LANDMARK_INPUT)

    def detector_windows_input(
        self, frames: Sequence[Any], frame_index: Sequence[int], rois: Any
    ) -> tuple[Tensor, FloatArray]:
        """Detector inputs (M, 3, 224, 224) for upright window ROIs (M, 5), letterboxed like detector_input."""
        return self._roi_input(frames, frame_index, rois, DETECTOR_INPUT)

    def _roi_input(
        self, frames: Sequence[Any], frame_index: Sequence[int], rois: Any, spec: InputSpec
    ) -> tuple[Tensor, FloatArray]:
        """Crops of normalized ROIs (M, 5) (host or device) of any of the frames, letterboxed; and the padding."""
        sizes = frame_sizes(frames)[np.asarray(frame_index, dtype=np.int64)]
        rois_px = roi_to_pixels(np.asarray(_host(rois), dtype=np.float32), sizes)
        padded, padding = pad_roi(rois_px, tensor_width=spec.size, tensor_height=spec.size)
        return self._crop(frames, frame_index, padded, spec), padding.astype(np.float32)

    def _crop(self, frames: Sequence[Any], frame_index: Sequence[int], padded: FloatArray, spec: InputSpec) -> Tensor:
        """(M, 3, size, size) model input from padded pixel ROIs (M, 5), ROI m read from frames[frame_index[m]]."""
        raise NotImplementedError


class CpuCropper(RoiCropper[FloatArray]):
    """MediaPipe's OpenCV crops: zero border for the detector, replicate border for the estimator.

    Crops of one batch are made on `workers` threads at once (OpenCV and NumPy release the GIL), each
    writing its slice of the model input, so a batch's preprocessing uses every core. Frames may be
    `Yuv420` planes: converted once, whole, by libswscale, or without it only the rectangle each ROI reads
    (blazestream.yuv).
    """

    def __init__(self, workers: int = 1) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="crop") if workers > 1 else None

    def _crop(
        self, frames: Sequence[Frame], frame_index: Sequence[int], padded: FloatArray, spec: InputSpec
    ) -> FloatArray:
        tensor = np.empty((len(frame_index), 3, spec.size, spec.size), dtype=np.float32)

        def one(i: int) -> None:
            with measure("crop"):
                frame = frames[frame_index[i]]
                roi = padded[i : i + 1]
                if not isinstance(frame, Yuv420):
                    image = frame
                elif frame.converts_whole:
                    image = frame.rgb()
                else:
                    image = frame.region(*cpu_crop.source_box(roi))
                crop = cpu_crop.warp_rois(image, roi, size=spec.size, border=spec.border)
                cpu_crop.to_tensor(crop, scale=spec.scale, offset=spec.offset, out=tensor[i : i + 1])

        if self._pool is None or len(frame_index) < 2:
            for i in range(len(frame_index)):
                one(i)
        else:
            list(self._pool.map(one, range(len(frame_index))))
        return tensor


@dataclass(frozen=True)
class FrameDetections:
    """Detector output for one frame, best first: ROIs (K, 5) normalized and scores (K,)."""

    rois: FloatArray
    scores: FloatArray


@dataclass(frozen=True)
class LandmarkResults:
    """Estimator output for M ROIs, on the host: landmarks (M, 39, 5), world (M, 33, 3), pose flag (M,)."""

    landmarks: FloatArray
    world: FloatArray
    presence: FloatArray
    segmentation: FloatArray | None = None
    """(M, 256, 256) mask probabilities in crop pixels, when the engine has the segmentation head."""


def _host(x: Any) -> Any:
    """Host NumPy copy of a NumPy or CuPy array."""
    get = getattr(x, "get", None)
    return np.asarray(get() if callable(get) else x)


class PoseEstimator:
    """Detector + landmark engines and the pose core, batched over frames and ROIs.

    `detector` is None where something else runs the detector (DeepStream's nvinfer): `decode_detector`
    and `estimate` still work, `detect` does not.
    """

    def __init__(
        self,
        detector: Engine | None,
        landmarker: Engine,
        settings: EstimatorSettings | None = None,
        cropper: Cropper | None = None,
    ) -> None:
        self.detector = detector
        self.landmarker = landmarker
        self.settings = settings or EstimatorSettings()
        self.cropper: Cropper = cropper or CpuCropper()
        self._anchors = generate_anchors()
        self._closed = False

    def detect(self, frames: Sequence[Any]) -> list[FrameDetections]:
        """Run the detector on every frame in one batch; up to max_poses ROIs per frame."""
        if not frames:
            return []
        tensor, padding = self.cropper.detector_input(frames)
        out = infer_in_chunks(self._detector(), tensor, array_namespace(tensor).concat)
        return self.decode_detector(out["boxes"], out["scores"], padding, frame_sizes(frames))

    def _detector(self) -> Engine:
        if self.detector is None:
            raise RuntimeError("this estimator has no detector: its caller passes the detections (DeepStream)")
        return self.detector

    def decode_detector(self, boxes: Any, scores: Any, padding: Any, sizes: FloatArray) -> list[FrameDetections]:
        """Detector tensors (B, 2254, 12) and (B, 2254, 1), wherever they live, to ROIs per frame.

        `padding` (B, 4) is the letterbox of the detector input; `sizes` (B, 2) the frames' (width, height).
        The DeepStream graph calls this directly on nvinfer's output tensors.
        """
        xp = array_namespace(boxes)
        anchors = xp.asarray(self._anchors)
        dets = decode_detections(boxes, scores, anchors, min_score=self.settings.min_detection_confidence)
        dets = weighted_nms(dets, max_detections=self.settings.max_poses)
        dets = remove_letterbox(dets, xp.asarray(padding))
        return _frame_detections(dets, xp.asarray(sizes))

    @property
    def candidates(self) -> int:
        """Detector clusters kept per frame when windowed: twice max_poses, since some are people already
        tracked or a second view of one person, which tracking and the duplicate check drop."""
        return 2 * self.settings.max_poses

    def detect_windows(self, frames: Sequence[Any]) -> list[FrameDetections]:
        """The detector on each whole frame plus its windows (settings.windows), all in one batch.

        Every window's detections are mapped to frame coordinates and each frame's are merged by one
        weighted NMS; up to `candidates` ROIs per frame, best first.
        """
        spec = self.settings.windows
        if not frames:
            return []
        if spec is None:
            return self.detect(frames)
        sizes = frame_sizes(frames)
        per_frame = [frame_windows(int(w), int(h), spec) for w, h in sizes]
        owner = [b for b, wins in enumerate(per_frame) for _ in range(len(wins))]
        windows = np.concatenate(per_frame)
        tensor, padding = self.cropper.detector_windows_input(frames, owner, window_rois(windows))
        out = infer_in_chunks(self._detector(), tensor, array_namespace(tensor).concat)
        xp = array_namespace(out["boxes"])
        dets = decode_detections(
            out["boxes"], out["scores"], xp.asarray(self._anchors), min_score=self.settings.min_detection_confidence
        )
        dets = remove_letterbox(dets, xp.asarray(padding))
        dets = windows_to_frame(dets, xp.asarray(windows), xp.asarray(sizes[owner]), edge_tolerance=spec.edge_tolerance)
        dets = weighted_nms(group_by_frame(dets, owner, len(frames)), max_detections=self.candidates)
        return [_distinct_rois(found) for found in _frame_detections(dets, xp.asarray(sizes))]

    def detect_people(self, frames: Sequence[Any]) -> list[FrameDetections]:
        """Windowed detection when settings.windowed, else MediaPipe's whole-frame detector."""
        return self.detect_windows(frames) if self.settings.windowed else self.detect(frames)

    def estimate(self, frames: Sequence[Any], frame_index: Sequence[int], rois: FloatArray) -> LandmarkResults:
        """Run the landmark model on M ROIs of any of the frames, in one batch."""
        if len(frame_index) == 0:
            empty = np.zeros((0,), dtype=np.float32)
            return LandmarkResults(empty.reshape(0, 39, 5), empty.reshape(0, 33, 3), empty)
        tensor, padding = self.cropper.landmark_input(frames, frame_index, rois)
        out = infer_in_chunks(self.landmarker, tensor, array_namespace(tensor).concat)
        xp = array_namespace(out["landmarks"])
        rois_x = xp.asarray(rois)
        lms = decode_landmarks(out["landmarks"])
        lms = refine_from_heatmap(lms, out["heatmap"], kernel_size=self.settings.heatmap_kernel)
        lms = remove_landmark_letterbox(lms, xp.asarray(padding))
        lms = project_landmarks(lms, rois_x)
        world = project_world(out["world_landmarks"], rois_x)
        presence = xp.reshape(out["pose_flag"], (-1,))
        segmentation = out.get(SEGMENTATION_OUTPUT)
        masks = None if segmentation is None else _host(mask_probabilities(segmentation))
        return LandmarkResults(_host(lms), _host(world), _host(presence), masks)

    def process_static(self, frames: Sequence[Any]) -> list[list[Pose]]:
        """Static-image mode: detect on every frame, then estimate every detection, no tracking."""
        return self.process_static_segmented(frames)[0]

    def process_static_segmented(
        self, frames: Sequence[Any]
    ) -> tuple[list[list[Pose]], list[npt.NDArray[np.uint8] | None]]:
        """process_static, plus each frame's instance mask (pixel = pose index + 1) when the landmark
        engine has the segmentation head (else None per frame)."""
        detections = self.detect_people(frames)
        index = [b for b, d in enumerate(detections) for _ in range(len(d.rois))]
        rois = np.concatenate([d.rois for d in detections]) if index else np.zeros((0, 5), np.float32)
        scores = np.concatenate([d.scores for d in detections]) if index else np.zeros((0,), np.float32)
        results = self.estimate(frames, index, rois)
        rows: list[list[int]] = [[] for _ in frames]
        for m, b in enumerate(index):
            if results.presence[m] > self.settings.min_presence:
                rows[b].append(m)
        if self.settings.windowed:
            limit = self.settings.max_poses
            rows = [
                sorted(
                    r[k] for k in _distinct(results.landmarks[r], results.presence[r], f.shape[1], f.shape[0], limit)
                )
                for r, f in zip(rows, frames, strict=True)
            ]
        poses = [
            [
                Pose.from_rows(
                    score=float(scores[m]),
                    presence=float(results.presence[m]),
                    roi=rois[m],
                    landmarks=results.landmarks[m],
                    world_landmarks=results.world[m],
                )
                for m in r
            ]
            for r in rows
        ]
        masks = [self.instance_mask(results, r, rois[r], f) for r, f in zip(rows, frames, strict=True)]
        return poses, masks

    @staticmethod
    def instance_mask(
        results: LandmarkResults, rows: Sequence[int], rois: FloatArray, frame: Any
    ) -> npt.NDArray[np.uint8] | None:
        """One frame's instance mask from the segmentation of result rows `rows` (pose k = value k + 1)."""
        if results.segmentation is None:
            return None
        size = (int(frame.shape[1]), int(frame.shape[0]))
        probabilities = results.segmentation[np.asarray(rows, dtype=np.int64)]
        return instance_mask(probabilities, crop_to_frame(rois, size, LANDMARK_SIZE), size)

    def close(self) -> None:
        """Release the engines (thread pools, GPU contexts); once, by whoever made the estimator."""
        if self._closed:
            return
        self._closed = True
        for engine in (self.detector, self.landmarker):
            if engine is not None:
                engine.close()


def _frame_detections(dets: Any, sizes: Any) -> list[FrameDetections]:
    """NMS output (B, K, ...) in frame coordinates to detector ROIs per frame, on the host."""
    rois = alignment_roi(dets.keypoints[..., 0, :], dets.keypoints[..., 1, :], sizes[:, None, :])
    rois_h, scores_h, valid_h = _host(rois), _host(dets.scores), _host(dets.valid)
    return [
        FrameDetections(rois=rois_h[b][valid_h[b]].astype(np.float32), scores=scores_h[b][valid_h[b]])
        for b in range(rois_h.shape[0])
    ]


def _distinct(landmarks: FloatArray, presence: FloatArray, width: int, height: int, limit: int) -> list[int]:
    """Rows of (N, 39, 5) image landmarks that are not another view of a pose with a higher pose flag.

    Of two views of one person the surer one stays (a crop holding two people gives a mixed-up pose
    with a lower flag); at most `limit`, taken by detector order (best first).
    """
    points = landmarks[:, :NUM_LANDMARKS, :2] * np.asarray([width, height], dtype=np.float32)
    kept: list[int] = []
    for i in sorted(range(len(points)), key=lambda k: (-float(presence[k]), k)):
        if not kept or not bool(np.any(duplicate_poses(points[i][None], points[kept]))):
            kept.append(i)
    return sorted(kept)[:limit]


def _distinct_rois(found: FrameDetections) -> FrameDetections:
    """Drop detector ROIs centred on a better one's person (a second NMS cluster of one person)."""
    kept: list[int] = []
    for i, roi in enumerate(found.rois):
        if not any(same_person_roi(roi, found.rois[j]) for j in kept):
            kept.append(i)
    return FrameDetections(rois=found.rois[kept], scores=found.scores[kept])
