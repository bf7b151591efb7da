"""The DeepStream pose probe: nvinfer's detector tensors -> pose core on the GPU -> TensorRT landmarks -> meta.

Runs on the detector nvinfer's src pad, once per batch, holding its state in the instance (no globals):

1. wrap each frame's output tensors (`out_buf_ptrs_dev`) as CuPy arrays without copying; nvinfer's batch
   is one contiguous tensor, so the usual case is a single view over all frames;
2. decode them with the pose core (PoseEstimator.decode_detector, the CPU path's code) after removing
   nvinfer's letterbox (nvinfer_config.nvinfer_letterbox);
3. hand the frames (RGBA surfaces on the GPU) to the same PoseStage as the CPU graph, so tracking,
   smoothing and the estimator batch are shared code; its detector calls return step 2's results;
4. attach an NvDsObjectMeta per pose and skeleton display meta for nvdsosd, keep the landmarks in a
   side table keyed by (source_id, frame_num), and queue FrameResults for the outputs.

The probe is synchronous: the buffer (and its surfaces and tensors) is only valid until it returns.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import numpy as np

from blazestream.engines.cupy_api import CupyModule
from blazestream.estimator import FrameDetections, PoseEstimator
from blazestream.outputs.base import FrameResult
from blazestream.pipeline import nvds
from blazestream.pipeline.frames import Frame
from blazestream.pipeline.gst import gst
from blazestream.pipeline.jetson_surface import EglSurfaceMapper
from blazestream.pipeline.nvinfer_config import DETECTOR_GIE_ID, nvinfer_letterbox
from blazestream.pipeline.stage import PoseStage
from blazestream.pose.anchors import NUM_ANCHORS
from blazestream.pose.roi import box_points, roi_to_pixels
from blazestream.pose.skeleton import POSE_CONNECTIONS
from blazestream.pose.types import Pose

gst()  # gi.require_version and Gst.init before the typelib import
from gi.repository import Gst  # noqa: E402

log = logging.getLogger(__name__)

SIDE_TABLE_SIZE = 512
MIN_VISIBILITY_TO_DRAW = 0.5
DETECTOR_INPUT = 224


class NvinferDetector:
    """The detector `Engine` slot of the DeepStream estimator: nvinfer runs the detector, not Python."""

    name = "nvinfer"
    input_shape = (3, DETECTOR_INPUT, DETECTOR_INPUT)
    output_names = ("boxes", "scores")
    max_batch = None

    def infer(self, batch: Any) -> Any:
        raise RuntimeError("the DeepStream graph runs the detector in nvinfer; detections come from its tensors")

    def close(self) -> None:
        return None


class NvinferEstimator(PoseEstimator):
    """PoseEstimator whose `detect` returns what the probe decoded from nvinfer's tensors for these frames."""

    def __init__(self, estimator: PoseEstimator) -> None:
        super().__init__(NvinferDetector(), estimator.landmarker, estimator.settings, estimator.cropper)
        self._pending: dict[int, FrameDetections] = {}

    @contextmanager
    def detections(self, frames: Sequence[Frame], found: Sequence[FrameDetections]) -> Iterator[None]:
        """Make `found` the detector's answer for `frames` while the stage processes them."""
        self._pending = {id(f.pixels): d for f, d in zip(frames, found, strict=True)}
        try:
            yield
        finally:
            self._pending = {}

    def detect(self, frames: Sequence[Any]) -> list[FrameDetections]:
        return [self._pending[id(image)] for image in frames]


class PoseProbe:
    """The src-pad probe of the detector nvinfer (see the module docstring)."""

    def __init__(
        self,
        *,
        cp: CupyModule,
        estimator: NvinferEstimator,
        stage: PoseStage,
        camera_ids: Sequence[str],
        mux_size: tuple[int, int],
        publish: Callable[[list[FrameResult]], None],
        draw: bool = True,
    ) -> None:
        self._cp = cp
        self.estimator = estimator
        self.stage = stage
        self.camera_ids = list(camera_ids)
        self.mux_size = mux_size
        self.publish = publish
        self.draw = draw
        width, height = mux_size
        self._padding = np.asarray(nvinfer_letterbox(width, height, DETECTOR_INPUT, DETECTOR_INPUT), np.float32)
        self._egl = None if nvds.IS_X86 else EglSurfaceMapper()
        if self._egl is not None and not self._egl.available:
            log.warning("%s: Jetson frames are copied through the host (slower)", self._egl.reason)
        self.side_table: OrderedDict[tuple[int, int], FrameResult] = OrderedDict()
        self.batches = 0

    # -- GStreamer entry point -------------------------------------------------------------------

    def __call__(self, pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        buffer = info.get_buffer()
        if buffer is not None:
            try:
                self.process(hash(buffer))
            except Exception:
                log.exception("pose probe failed on a batch; its frames go out without poses")
        return Gst.PadProbeReturn.OK

    # -- one batch -------------------------------------------------------------------------------

    def process(self, buffer_address: int) -> list[FrameResult]:
        batch = nvds.batch_meta(buffer_address)
        metas = list(nvds.frames(batch))
        if not metas:
            return []
        infos = [nvds.frame_info(m) for m in metas]
        arrived = time.monotonic()
        with self._surfaces(buffer_address, [i["batch_id"] for i in infos]) as images:
            frames = [
                Frame(
                    camera_id=self._camera(info["source_id"]),
                    index=info["frame_num"],
                    pts=info["pts_ns"] / 1e9,
                    pixels=cast(Any, images[info["batch_id"]]),
                    arrived=arrived,
                    generation=0,
                )
                for info in infos
            ]
            found = self._detections(metas)
            with self.estimator.detections(frames, found):
                results = self.stage.process(frames)  # synchronizes: landmarks come back to the host
        results = [self._in_source_pixels(r, i) for r, i in zip(results, infos, strict=True)]
        for meta, info, result in zip(metas, infos, results, strict=True):
            self._remember(info, result)
            if self.draw:
                self._attach(batch, meta, result)
        self.batches += 1
        self.publish(results)
        return results

    def _camera(self, source_id: int) -> str:
        return self.camera_ids[source_id] if source_id < len(self.camera_ids) else f"source{source_id}"

    def _detections(self, metas: list[Any]) -> list[FrameDetections]:
        """Decode the detector tensors of every frame at once, on the GPU."""
        layers = [nvds.output_layers(m, DETECTOR_GIE_ID) for m in metas]
        missing = [i for i, found in enumerate(layers) if "boxes" not in found or "scores" not in found]
        if missing:
            raise RuntimeError(f"no detector tensors on {len(missing)} frame(s): is output-tensor-meta=1 set?")
        boxes = self._batched([found["boxes"] for found in layers], (NUM_ANCHORS, 12))
        scores = self._batched([found["scores"] for found in layers], (NUM_ANCHORS, 1))
        width, height = self.mux_size
        count = len(metas)
        padding = np.broadcast_to(self._padding, (count, 4))
        sizes = np.broadcast_to(np.asarray([width, height], np.float32), (count, 2))
        return self.estimator.decode_detector(boxes, scores, padding, sizes)

    def _batched(self, layers: list[nvds.DeviceLayer], shape: tuple[int, int]) -> Any:
        """(B, *shape) float32 CuPy view of per-frame device tensors: one view when they are contiguous."""
        cp = self._cp
        count = shape[0] * shape[1]
        wrong = [layer.name for layer in layers if layer.count != count]
        if wrong:
            raise RuntimeError(f"detector layer {wrong[0]!r} has {layers[0].count} values per frame, expected {count}")
        step = count * 4
        first = layers[0].pointer
        if all(layer.pointer == first + i * step for i, layer in enumerate(layers)):
            return self._view(first, (len(layers), *shape), step * len(layers))
        return cp.stack([self._view(layer.pointer, shape, step) for layer in layers])

    def _view(
        self, pointer: int, shape: tuple[int, ...], size: int, dtype: Any = np.float32, strides: Any = None
    ) -> Any:
        cp = self._cp
        memory = cp.cuda.UnownedMemory(pointer, size, self)
        return cp.ndarray(shape, dtype, cp.cuda.MemoryPointer(memory, 0), strides)

    @contextmanager
    def _surfaces(self, buffer_address: int, batch_ids: list[int]) -> Iterator[dict[int, Any]]:
        """The frames' RGBA pixels: GPU views (x86, Jetson with EGL) or host copies (Jetson fallback)."""
        if self._egl is None:
            views = {}
            for index in batch_ids:
                surface = nvds.surface_gpu(buffer_address, index)
                views[index] = self._view(surface.pointer, surface.shape, surface.size, np.uint8, surface.strides)
            yield views
        elif self._egl.available:
            with self._egl.mapped(buffer_address, batch_ids) as mapped:
                yield {
                    index: self._view(m.pointer, (m.height, m.width, 4), m.pitch * m.height, np.uint8, (m.pitch, 4, 1))
                    for index, m in mapped.items()
                }
        else:
            yield {index: nvds.surface_host_copy(buffer_address, index) for index in batch_ids}
        self._cp.cuda.get_current_stream().synchronize()  # nothing may touch the surfaces after the probe

    def _in_source_pixels(self, result: FrameResult, info: dict[str, Any]) -> FrameResult:
        """JSON coordinates in the camera's own resolution (landmarks are normalized, so only the size changes)."""
        return FrameResult(
            stream=result.stream,
            frame=result.frame,
            pts=result.pts,
            width=info["source_width"] or result.width,
            height=info["source_height"] or result.height,
            poses=result.poses,
            image=None,
            arrived=result.arrived,
        )

    def _remember(self, info: dict[str, Any], result: FrameResult) -> None:
        self.side_table[(info["source_id"], info["frame_num"])] = result
        while len(self.side_table) > SIDE_TABLE_SIZE:
            self.side_table.popitem(last=False)

    def landmarks(self, source_id: int, frame_num: int) -> tuple[Pose, ...] | None:
        """The poses of a frame that went through the probe recently (None when unknown or evicted)."""
        result = self.side_table.get((source_id, frame_num))
        return None if result is None else result.poses

    def _attach(self, batch: Any, meta: Any, result: FrameResult) -> None:
        width, height = self.mux_size
        for pose in result.poses:
            roi = pose.roi
            corners = box_points(
                roi_to_pixels(
                    np.asarray([[roi.x_center, roi.y_center, roi.width, roi.height, roi.rotation]], np.float32),
                    np.asarray([[width, height]], np.float32),
                )
            )[0]
            left, top = np.clip(corners.min(axis=0), 0, [width - 1, height - 1])
            right, bottom = np.clip(corners.max(axis=0), 0, [width - 1, height - 1])
            nvds.add_person(
                batch,
                meta,
                (float(left), float(top), float(right - left), float(bottom - top)),
                pose.score,
                pose.track_id,
                component_id=DETECTOR_GIE_ID,
            )
            points = [(lm.x * width, lm.y * height) for lm in pose.landmarks]
            visible = [lm.visibility > MIN_VISIBILITY_TO_DRAW for lm in pose.landmarks]
            lines = [(*points[a], *points[b]) for a, b in POSE_CONNECTIONS if visible[a] and visible[b]]
            nvds.add_skeleton(batch, meta, lines, [p for p, v in zip(points, visible, strict=True) if v])
