"""The GPU cropper: MediaPipe's letterbox and rotated crops as one CUDA launch per batch (kernels/crop.cu).

Implements the estimator's `Cropper` for frames that are CuPy arrays (DeepStream surfaces, RGBA with a
row pitch), `DeviceNv12` planes, or host NumPy arrays (the plain-GStreamer TensorRT backend), which are
copied to the GPU once per batch. The geometry (padding, ROI to affine) is the pose core's, computed on
the host for a few dozen ROIs; only pixels touch the GPU. Guarded module: it imports CuPy.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from blazestream.engines.cupy_api import device_pointer, is_cupy_array, load_cupy, strides
from blazestream.estimator import RoiCropper
from blazestream.kernels import (
    BORDER_CONSTANT,
    BORDER_REPLICATE,
    FORMAT_INTERLEAVED,
    FORMAT_NV12_BT601,
    FORMAT_NV12_BT709,
    FRAME_DESC_DTYPE,
    kernel_source,
)
from blazestream.kernels.reference import Nv12
from blazestream.pose.model_io import InputSpec
from blazestream.pose.roi import crop_affine

if TYPE_CHECKING:
    from cupy import ndarray

BLOCK = (16, 16, 1)
_BORDERS = {"replicate": BORDER_REPLICATE, "zero": BORDER_CONSTANT}
UPLOAD_CACHE_SIZE = 64
"""Host frames kept on the GPU between the detector and the estimator calls of one batch."""


@dataclass(frozen=True)
class DeviceNv12:
    """An NV12 frame on the GPU: y (H, W) and uv (ceil(H/2), ceil(W/2), 2) uint8, rows may be pitched."""

    y: ndarray
    uv: ndarray
    bt709: bool = False

    @property
    def shape(self) -> tuple[int, int, int]:
        return (int(self.y.shape[0]), int(self.y.shape[1]), 3)


class CudaCropper(RoiCropper["ndarray"]):
    """`Cropper` on the GPU: tensors come back as CuPy arrays, padding as NumPy (the decoders take either)."""

    def __init__(self) -> None:
        self._cp = load_cupy()
        module = self._cp.RawModule(code=kernel_source("crop.cu"), options=("--std=c++17",))
        self._kernel = module.get_function("crop_rois")
        self._uploads: OrderedDict[int, tuple[weakref.ref[Any], Any]] = OrderedDict()

    def _crop(self, frames: Sequence[Any], frame_index: Sequence[int], padded: Any, spec: InputSpec) -> ndarray:
        """One launch for every ROI of the batch, the affine maps computed on the host."""
        return self.crop(
            frames,
            frame_index,
            crop_affine(padded, out_width=spec.size, out_height=spec.size),
            size=spec.size,
            border=_BORDERS[spec.border],
            scale=spec.scale,
            offset=spec.offset,
        )

    def crop(
        self,
        frames: Sequence[Any],
        frame_of_roi: npt.ArrayLike,
        affine: npt.ArrayLike,
        *,
        size: int,
        border: int,
        scale: float,
        offset: float,
        border_value: float = 0.0,
    ) -> ndarray:
        """(M, 3, size, size) float32 on the GPU: one launch for every ROI of every frame."""
        cp = self._cp
        index = np.ascontiguousarray(frame_of_roi, dtype=np.int32)
        matrices = np.ascontiguousarray(np.asarray(affine, dtype=np.float32).reshape(-1, 6))
        count = len(index)
        out = cp.empty((count, 3, size, size), dtype=np.float32)
        if count == 0:
            return out
        table = np.zeros(len(frames), dtype=FRAME_DESC_DTYPE)
        keep_alive = [self._describe(frame, table[i]) for i, frame in enumerate(frames)]
        grid = ((size + BLOCK[0] - 1) // BLOCK[0], (size + BLOCK[1] - 1) // BLOCK[1], count)
        self._kernel(
            grid,
            BLOCK,
            (
                cp.asarray(table.view(np.uint8)),
                cp.asarray(index),
                cp.asarray(matrices),
                out,
                np.int32(count),
                np.int32(size),
                np.int32(size),
                np.int32(border),
                np.float32(border_value),
                np.float32(scale),
                np.float32(offset),
            ),
        )
        del keep_alive  # the launch is stream-ordered: the pool reuses this memory only after it
        return out

    def _describe(self, frame: Any, desc: Any) -> list[Any]:
        """Fill one FrameDesc; returns the device arrays that must outlive the launch."""
        if isinstance(frame, Nv12):
            frame = DeviceNv12(self._upload(frame.y), self._upload(frame.uv), frame.bt709)
        if isinstance(frame, DeviceNv12):
            height, width = int(frame.y.shape[0]), int(frame.y.shape[1])
            y_strides, uv_strides = strides(frame.y), strides(frame.uv)
            if y_strides[1] != 1 or uv_strides[1:] != (2, 1):
                raise ValueError("NV12 planes must have unit pixel strides (rows may be pitched)")
            desc["data"], desc["uv"] = device_pointer(frame.y), device_pointer(frame.uv)
            desc["pitch"], desc["uv_pitch"] = y_strides[0], uv_strides[0]
            desc["width"], desc["height"], desc["channels"] = width, height, 1
            desc["format"] = FORMAT_NV12_BT709 if frame.bt709 else FORMAT_NV12_BT601
            return [frame.y, frame.uv]
        array = frame if is_cupy_array(frame) else self._upload(frame)
        shape = tuple(int(s) for s in array.shape)
        if len(shape) != 3 or shape[2] not in (3, 4) or array.dtype != np.uint8:
            raise ValueError(f"frames must be (H, W, 3|4) uint8 RGB/RGBA, got {shape} {array.dtype}")
        row, pixel, channel = strides(array)
        if channel != 1 or pixel != shape[2]:
            raise ValueError(f"frame pixels must be packed (strides (pitch, {shape[2]}, 1)), got {strides(array)}")
        desc["data"], desc["uv"] = device_pointer(array), 0
        desc["pitch"], desc["uv_pitch"] = row, 0
        desc["width"], desc["height"], desc["channels"] = shape[1], shape[0], shape[2]
        desc["format"] = FORMAT_INTERLEAVED
        return [array]

    def _upload(self, host: npt.NDArray[np.uint8]) -> ndarray:
        """Copy a host frame to the GPU once: the detector and estimator calls of a batch share the upload."""
        for stale in [k for k, (ref, _) in self._uploads.items() if ref() is None]:
            del self._uploads[stale]  # the frame is gone: free its GPU copy now
        key = id(host)
        cached = self._uploads.get(key)
        if cached is not None and cached[0]() is host:
            self._uploads.move_to_end(key)
            uploaded: ndarray = cached[1]
            return uploaded
        device = self._cp.asarray(np.ascontiguousarray(host))
        self._uploads[key] = (weakref.ref(host), device)
        while len(self._uploads) > UPLOAD_CACHE_SIZE:
            self._uploads.popitem(last=False)
        return device
