"""The DeepStream pose probe: nvinfer's detector tensors -> pose core on the GPU -> TensorRT landmarks -> meta.

Runs on the detector nvinfer's src pad, once per batch, holding its state in the instance (no globals),
on the CUDA device of the graph (`gpu_id`):

1. wrap each frame's output tensors (`out_buf_ptrs_dev`) as CuPy arrays without copying; nvinfer's batch
   is one contiguous tensor, so the usual case is a single view over all frames;
2. decode them with the pose core (PoseEstimator.decode_detector, the CPU path's code) after removing
   nvinfer's letterbox, per frame (the new nvstreammux keeps each camera's resolution);
3. hand the frames (RGBA surfaces on the GPU) and those detections to the same PoseStage as the CPU
   graph (`stage.process(frames, detections=...)`), so tracking, smoothing and the estimator batch are
   shared code;
4. publish the FrameResults for the outputs, then attach an NvDsObjectMeta per pose and skeleton display
   meta for nvdsosd (a drawing problem never loses a batch's results).

The probe is synchronous: the buffer (and its surfaces and tensors) is only valid until it returns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import numpy as np

from blazestream.engines.cupy_api import CupyModule
from blazestream.errors import log_error
from blazestream.estimator import FrameDetections
from blazestream.gst import gst
from blazestream.pipeline import nvds
from blazestream.pipeline.ds_support import (
    detector_geometry,
    frame_sizes,
    label_origin,
    osd_box,
    osd_skeleton,
    use_egl_surfaces,
)
from blazestream.pipeline.frames import Frame
from blazestream.pipeline.jetson_surface import EglSurfaceMapper
from blazestream.pipeline.nvinfer_config import DETECTOR_GIE_ID
from blazestream.pipeline.stage import PoseStage
from blazestream.pose.anchors import NUM_ANCHORS
from blazestream.results import FrameResult

gst()  # gi.require_version and Gst.init before the typelib import
from gi.repository import Gst  # noqa: E402

log = logging.getLogger(__name__)


class PoseProbe:
    """The src-pad probe of the detector nvinfer (see the module docstring)."""

    def __init__(
        self,
        *,
        cp: CupyModule,
        stage: PoseStage,
        camera_ids: Sequence[str],
        mux_size: tuple[int, int],
        publish: Callable[[list[FrameResult]], None],
        draw: bool = True,
        gpu_id: int = 0,
        new_mux: bool = False,
    ) -> None:
        self._cp = cp
        self.stage = stage
        self.camera_ids = list(camera_ids)
        self.mux_size = mux_size
        self.publish = publish
        self.draw = draw
        self.gpu_id = gpu_id
        self.new_mux = new_mux
        self.integrated = use_egl_surfaces(cp.cuda.runtime.getDeviceProperties(gpu_id))
        self._egl = EglSurfaceMapper() if self.integrated else None
        if self._egl is not None and not self._egl.available:
            log.warning("%s: Jetson frames are copied through the host (slower)", self._egl.reason)
        self.batches = 0

    # -- GStreamer entry point -------------------------------------------------------------------

    def __call__(self, pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        buffer = info.get_buffer()
        if buffer is not None:
            try:
                with self._cp.cuda.Device(self.gpu_id):  # GStreamer's streaming thread: select the graph's GPU
                    self.process(hash(buffer))
            except Exception as exc:
                log_error(log, "pose probe failed on a batch; its frames go out without poses", exc)
        return Gst.PadProbeReturn.OK

    # -- one batch -------------------------------------------------------------------------------

    def process(self, buffer_address: int) -> list[FrameResult]:
        batch = nvds.batch_meta(buffer_address)
        metas = list(nvds.frames(batch))
        if not metas:
            return []
        infos = [nvds.frame_info(m) for m in metas]
        sizes = frame_sizes(infos, self.mux_size, new_mux=self.new_mux)
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
            found = self._detections(metas, sizes)
            results = self.stage.process(frames, detections=found)  # landmarks come back to the host
        results = [self._in_source_pixels(r, i) for r, i in zip(results, infos, strict=True)]
        self.batches += 1
        self.publish(results)  # before drawing: a drawing problem must not lose the results
        if self.draw:
            for meta, result, (width, height) in zip(metas, results, sizes, strict=True):
                try:
                    self._attach(batch, meta, result, width, height)
                except Exception as exc:
                    log_error(log, f"drawing the poses of {result.stream} frame {result.frame} failed", exc)
        return results

    def _camera(self, source_id: int) -> str:
        return self.camera_ids[source_id] if source_id < len(self.camera_ids) else f"source{source_id}"

    def _detections(self, metas: list[Any], sizes: list[tuple[int, int]]) -> list[FrameDetections]:
        """Decode the detector tensors of every frame at once, on the GPU, with each frame's letterbox."""
        layers = [nvds.output_layers(m, DETECTOR_GIE_ID) for m in metas]
        missing = [i for i, found in enumerate(layers) if "boxes" not in found or "scores" not in found]
        if missing:
            raise RuntimeError(f"no detector tensors on {len(missing)} frame(s): is output-tensor-meta=1 set?")
        boxes = self._batched([found["boxes"] for found in layers], (NUM_ANCHORS, 12))
        scores = self._batched([found["scores"] for found in layers], (NUM_ANCHORS, 1))
        padding, frame_size = detector_geometry(sizes)
        return self.stage.estimator.decode_detector(boxes, scores, padding, frame_size)

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
        memory = cp.cuda.UnownedMemory(pointer, size, self, self.gpu_id)
        return cp.ndarray(shape, dtype, cp.cuda.MemoryPointer(memory, 0), strides)

    @contextmanager
    def _surfaces(self, buffer_address: int, batch_ids: list[int]) -> Iterator[dict[int, Any]]:
        """The frames' RGBA pixels: GPU views (dGPU, Jetson with EGL) or host copies (Jetson fallback).

        The stream is synchronized on the way out, also when the batch failed: nothing may still read the
        surfaces once the probe returns the buffer.
        """
        try:
            if self._egl is None:
                views = {}
                for index in batch_ids:
                    surface = nvds.surface_gpu(buffer_address, index)
                    views[index] = self._view(surface.pointer, surface.shape, surface.size, np.uint8, surface.strides)
                yield views
            elif self._egl.available:
                with self._egl.mapped(buffer_address, batch_ids) as mapped:
                    yield {
                        index: self._view(
                            m.pointer, (m.height, m.width, 4), m.pitch * m.height, np.uint8, (m.pitch, 4, 1)
                        )
                        for index, m in mapped.items()
                    }
            else:
                yield {index: nvds.surface_host_copy(buffer_address, index) for index in batch_ids}
        finally:
            self._cp.cuda.get_current_stream().synchronize()

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

    def _attach(self, batch: Any, meta: Any, result: FrameResult, width: int, height: int) -> None:
        """Object meta and skeleton display meta in the frame's muxer pixels, clamped into the frame."""
        for pose in result.poses:
            box = osd_box(pose, width, height)
            nvds.add_person(
                batch,
                meta,
                box,
                pose.score,
                pose.track_id,
                component_id=DETECTOR_GIE_ID,
                label_at=label_origin(box[0], box[1]),
            )
            lines, points = osd_skeleton(pose, width, height)
            nvds.add_skeleton(batch, meta, lines, points)
