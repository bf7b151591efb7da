"""The one module that imports pyds: DeepStream metadata in and out, and frame surfaces as GPU arrays.

Wraps the pyds calls blazestream uses (pyds 1.2.0 / DeepStream 7.1) behind small typed functions, so the
rest of the DeepStream graph reads like the CPU graph: iterate frames, get the detector's output tensors
as device pointers (zero copy), get the frame pixels on the GPU, add person objects and skeleton
drawings. Guarded module: import it lazily.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from blazestream.errors import MissingDependencyError

try:
    import pyds
except ImportError as exc:  # pragma: no cover - depends on the machine
    raise MissingDependencyError(
        f"pyds (DeepStream's Python bindings) is not installed ({exc}); use the DeepStream image "
        "(NVIDIA's wheel from deepstream_python_apps; PyPI's `pyds` is an unrelated package)"
    ) from exc

MAX_DISPLAY_ELEMENTS = 16
"""MAX_ELEMENTS_IN_DISPLAY_META: lines (and circles) one NvDsDisplayMeta holds."""
UNTRACKED_OBJECT_ID = 0xFFFFFFFFFFFFFFFF
NVDS_INFER_FLOAT = 0
"""NvDsInferDataType FLOAT."""
LABEL_FONT = "Serif"
LABEL_FONT_SIZE = 12

Rgba = tuple[float, float, float, float]


@dataclass(frozen=True)
class DeviceLayer:
    """One output layer of one frame, on the GPU: `pointer` to `count` float32 values."""

    name: str
    pointer: int
    count: int
    dims: tuple[int, ...]


@dataclass(frozen=True)
class DeviceSurface:
    """A frame surface on the GPU (RGBA, rows `strides[0]` bytes apart), valid while its buffer is."""

    pointer: int
    size: int
    shape: tuple[int, int, int]
    strides: tuple[int, int, int]


def batch_meta(buffer_hash: int) -> pyds.NvDsBatchMeta:
    """The batch meta of a GstBuffer, given `hash(buffer)` (the address pyds expects)."""
    return pyds.gst_buffer_get_nvds_batch_meta(buffer_hash)


def frames(batch: pyds.NvDsBatchMeta) -> Iterator[pyds.NvDsFrameMeta]:
    """The frame metas of a batch, in list order."""
    item = batch.frame_meta_list
    while item is not None:
        yield pyds.NvDsFrameMeta.cast(item.data)
        item = item.next


def output_layers(frame: pyds.NvDsFrameMeta, unique_id: int) -> dict[str, DeviceLayer]:
    """The device tensors nvinfer `unique_id` attached to a frame (output-tensor-meta=1), by layer name.

    Indexes the device pointer array by layer i (not by a cursor over the layers kept), so a layer that is
    skipped cannot shift the others.
    """
    item = frame.frame_user_meta_list
    while item is not None:
        user = pyds.NvDsUserMeta.cast(item.data)
        if user.base_meta.meta_type == pyds.NvDsMetaType.NVDSINFER_TENSOR_OUTPUT_META:
            tensor = pyds.NvDsInferTensorMeta.cast(user.user_meta_data)
            if tensor.unique_id == unique_id:
                pointers = ctypes.cast(pyds.get_ptr(tensor.out_buf_ptrs_dev), ctypes.POINTER(ctypes.c_void_p))
                layers = {}
                for i in range(tensor.num_output_layers):
                    info = pyds.get_nvds_LayerInfo(tensor, i)
                    if int(info.dataType) != NVDS_INFER_FLOAT:
                        raise ValueError(f"layer {info.layerName!r} is not float32")
                    dims = info.inferDims
                    shape = tuple(int(d) for d in np.asarray(dims.d)[: dims.numDims])
                    address = pointers[i]
                    if not address:
                        raise ValueError(f"layer {info.layerName!r} has no device buffer")
                    layers[info.layerName] = DeviceLayer(info.layerName, int(address), int(dims.numElements), shape)
                return layers
        item = item.next
    return {}


def surface_gpu(buffer_hash: int, batch_id: int) -> DeviceSurface:
    """The RGBA surface of one frame on the GPU (x86/SBSA only: pyds raises on Jetson)."""
    _dtype, shape, strides, capsule, size = pyds.get_nvds_buf_surface_gpu(buffer_hash, batch_id)
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype = ctypes.c_void_p
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    pointer = get_pointer(capsule, None)
    return DeviceSurface(
        pointer=int(pointer),
        size=int(size),
        shape=(int(shape[0]), int(shape[1]), int(shape[2])),
        strides=(int(strides[0]), int(strides[1]), int(strides[2])),
    )


def surface_host_copy(buffer_hash: int, batch_id: int) -> npt.NDArray[np.uint8]:
    """A host copy of one frame's RGBA surface, then unmapped (Jetson leaks mapped surfaces otherwise)."""
    try:
        mapped = pyds.get_nvds_buf_surface(buffer_hash, batch_id)
        return np.array(mapped, dtype=np.uint8, copy=True, order="C")
    finally:
        pyds.unmap_nvds_buf_surface(buffer_hash, batch_id)


def add_person(
    batch: pyds.NvDsBatchMeta,
    frame: pyds.NvDsFrameMeta,
    box: tuple[float, float, float, float],
    confidence: float,
    track_id: int | None,
    *,
    component_id: int,
    label_at: tuple[int, int] = (0, 0),
    color: Rgba = (0.0, 1.0, 0.0, 1.0),
) -> None:
    """An NvDsObjectMeta for one pose: axis-aligned box (left, top, width, height) in muxer pixels, class 0.

    The label is drawn at `label_at` (unsigned offsets: ds_support.label_origin keeps them in the frame).
    """
    obj = pyds.nvds_acquire_obj_meta_from_pool(batch)
    obj.unique_component_id = component_id
    obj.class_id = 0
    obj.confidence = float(confidence)
    obj.object_id = UNTRACKED_OBJECT_ID if track_id is None else int(track_id)
    obj.obj_label = "person"
    rect = obj.rect_params
    rect.left, rect.top, rect.width, rect.height = (float(v) for v in box)
    rect.border_width = 2
    rect.border_color.set(*color)
    rect.has_bg_color = 0
    text = obj.text_params
    text.display_text = "person" if track_id is None else f"person {track_id}"
    text.x_offset, text.y_offset = max(0, int(label_at[0])), max(0, int(label_at[1]))
    text.font_params.font_name = LABEL_FONT
    text.font_params.font_size = LABEL_FONT_SIZE
    text.font_params.font_color.set(1.0, 1.0, 1.0, 1.0)
    text.set_bg_clr = 1
    text.text_bg_clr.set(0.0, 0.0, 0.0, 0.6)
    # No parent object: the C API takes NULL (NVIDIA's samples pass None); pyds-stubs 1.2.2 type it non-optional.
    pyds.nvds_add_obj_meta_to_frame(frame, obj, cast("pyds.NvDsObjectMeta", None))


def add_skeleton(
    batch: pyds.NvDsBatchMeta,
    frame: pyds.NvDsFrameMeta,
    lines: Sequence[tuple[int, int, int, int]],
    points: Sequence[tuple[int, int]],
    *,
    line_color: Rgba = (0.0, 1.0, 0.0, 1.0),
    point_color: Rgba = (1.0, 0.3, 0.0, 1.0),
    line_width: int = 2,
    radius: int = 3,
) -> int:
    """Lines and circles for nvdsosd, 16 of each per display meta; returns how many metas were added.

    Coordinates are unsigned in NvOSD_LineParams/CircleParams (pybind11 raises TypeError on a negative
    one): callers clamp them into the frame (ds_support.osd_skeleton).
    """
    metas = 0
    total = max(len(lines), len(points))
    for start in range(0, total, MAX_DISPLAY_ELEMENTS):
        display = pyds.nvds_acquire_display_meta_from_pool(batch)
        chunk_lines = lines[start : start + MAX_DISPLAY_ELEMENTS]
        chunk_points = points[start : start + MAX_DISPLAY_ELEMENTS]
        display.num_lines = len(chunk_lines)
        for i, (x1, y1, x2, y2) in enumerate(chunk_lines):
            line = display.line_params[i]
            line.x1, line.y1, line.x2, line.y2 = int(x1), int(y1), int(x2), int(y2)
            line.line_width = line_width
            line.line_color.set(*line_color)
        display.num_circles = len(chunk_points)
        for i, (x, y) in enumerate(chunk_points):
            circle = display.circle_params[i]
            circle.xc, circle.yc, circle.radius = int(x), int(y), radius
            circle.circle_color.set(*point_color)
            circle.has_bg_color = 1
            circle.bg_color.set(*point_color)
        pyds.nvds_add_display_meta_to_frame(frame, display)
        metas += 1
    return metas


def frame_info(frame: pyds.NvDsFrameMeta) -> dict[str, Any]:
    """The fields of a frame meta the pose stage needs."""
    return {
        "batch_id": int(frame.batch_id),
        "source_id": int(frame.source_id),
        "pad_index": int(frame.pad_index),
        "frame_num": int(frame.frame_num),
        "pts_ns": int(frame.buf_pts),
        "source_width": int(frame.source_frame_width),
        "source_height": int(frame.source_frame_height),
    }
