"""The DeepStream graph's decisions that need no DeepStream: geometry, drawing, hardware choices, pad caps.

Pure functions (NumPy, ctypes, plain GStreamer), so the CPU test suite checks them; pipeline/deepstream.py
and pipeline/ds_pose.py (which need pyds) call them.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from blazestream.outputs.annotate import MIN_VISIBILITY
from blazestream.pipeline.nvinfer_config import nvinfer_letterbox
from blazestream.pose.model_io import DETECTOR_SIZE
from blazestream.pose.roi import box_points, roi_to_pixels
from blazestream.pose.skeleton import POSE_CONNECTIONS
from blazestream.pose.types import Pose
from blazestream.source_spec import SourceSpec

log = logging.getLogger(__name__)

NVML_ENCODER_QUERY_H264 = 0
LABEL_FONT_SIZE = 12
LABEL_MARGIN = 4

Point = tuple[int, int]
Line = tuple[int, int, int, int]


def uses_new_nvstreammux(environ: Mapping[str, str] | None = None) -> bool:
    """USE_NEW_NVSTREAMMUX=yes: the muxer keeps each frame's resolution and has no width/height/timeout."""
    return (environ if environ is not None else os.environ).get("USE_NEW_NVSTREAMMUX", "").lower() == "yes"


def frame_sizes(
    infos: Sequence[Mapping[str, int]], mux_size: tuple[int, int], *, new_mux: bool
) -> list[tuple[int, int]]:
    """(width, height) of each batched frame as nvinfer saw it: the legacy muxer scales every frame to the
    configured size; the new one keeps each camera's own (so letterbox and drawing are per frame)."""
    if not new_mux:
        return [mux_size] * len(infos)
    return [
        (int(i["source_width"]) or mux_size[0], int(i["source_height"]) or mux_size[1]) for i in infos
    ]  # fmt: skip


def detector_geometry(sizes: Sequence[tuple[int, int]]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """nvinfer's letterbox (B, 4) and the frame sizes (B, 2) of a batch, per frame."""
    padding = np.asarray([nvinfer_letterbox(w, h, DETECTOR_SIZE, DETECTOR_SIZE) for w, h in sizes], np.float32).reshape(
        -1, 4
    )
    return padding, np.asarray(sizes, np.float32).reshape(-1, 2)


def _clamp(value: float, high: int) -> int:
    """nvdsosd's coordinates are unsigned ints: a landmark left of or above the frame must not go negative."""
    if not np.isfinite(value):
        return 0
    return int(min(max(round(value), 0), max(high, 0)))


def osd_skeleton(pose: Pose, width: int, height: int) -> tuple[list[Line], list[Point]]:
    """Skeleton lines and landmark points in frame pixels, clamped into the frame, visible landmarks only."""
    raw = [(lm.x * width, lm.y * height) for lm in pose.landmarks]
    visible = [lm.visibility >= MIN_VISIBILITY for lm in pose.landmarks]  # as the CPU drawing
    points = [(_clamp(x, width - 1), _clamp(y, height - 1)) for x, y in raw]
    lines = [(*points[a], *points[b]) for a, b in POSE_CONNECTIONS if visible[a] and visible[b]]
    return lines, [p for p, v in zip(points, visible, strict=True) if v]


def osd_box(pose: Pose, width: int, height: int) -> tuple[float, float, float, float]:
    """The pose ROI's axis-aligned box (left, top, width, height) clipped to the frame."""
    roi = pose.roi
    corners = box_points(
        roi_to_pixels(
            np.asarray([[roi.x_center, roi.y_center, roi.width, roi.height, roi.rotation]], np.float32),
            np.asarray([[width, height]], np.float32),
        )
    )[0]
    left, top = np.clip(corners.min(axis=0), 0, [width - 1, height - 1])
    right, bottom = np.clip(corners.max(axis=0), 0, [width - 1, height - 1])
    return float(left), float(top), float(right - left), float(bottom - top)


def label_origin(left: float, top: float, font_size: int = LABEL_FONT_SIZE) -> Point:
    """Where nvdsosd puts an object's label: just above its box, or inside it at the top edge of the frame."""
    above = round(top) - 2 * font_size - LABEL_MARGIN
    return max(0, round(left)), max(0, above)


def use_egl_surfaces(device_properties: Mapping[str, Any]) -> bool:
    """Map frames through EGL on integrated GPUs (Jetson), as NVIDIA's samples decide; never on dGPUs,
    ARM servers (GH200, SBSA) included, where get_nvds_buf_surface_gpu works."""
    return bool(device_properties.get("integrated", 0))


def has_nvenc(gpu_id: int) -> bool:
    """True when the GPU has an H.264 encoder (NVML's encoder capacity), not merely the element installed:
    A100/H100 have nvv4l2h264enc but no NVENC. False when NVML cannot tell (x264 is always safe)."""
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    try:
        if nvml.nvmlInit_v2() != 0:
            return False
        try:
            device = ctypes.c_void_p()
            if nvml.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(gpu_id), ctypes.byref(device)) != 0:
                return False
            capacity = ctypes.c_uint()
            query = ctypes.c_int(NVML_ENCODER_QUERY_H264)
            if nvml.nvmlDeviceGetEncoderCapacity(device, query, ctypes.byref(capacity)) != 0:
                return False
            return capacity.value > 0
        finally:
            nvml.nvmlShutdown()
    except AttributeError:
        return False


def is_video_pad(pad: Any) -> bool:
    """Whether a decodebin pad carries video: its current caps, or what it can carry when it has none yet
    (deepstream-test3 queries the caps the same way), so no camera is left unlinked."""
    caps = pad.get_current_caps()
    if caps is None or caps.get_size() == 0:
        caps = pad.query_caps(None)
    if caps is None or caps.get_size() == 0:
        return False
    return any(caps.get_structure(i).get_name().startswith("video/") for i in range(caps.get_size()))


def videotestsrc_description(spec: SourceSpec, gpu_id: int) -> str:
    """A `test:` camera for the DeepStream graph: videotestsrc uploaded to NVMM NV12 on `gpu_id`."""
    options = dict(spec.options)
    return (
        f"videotestsrc is-live=true pattern={options.get('pattern', 'ball')} ! "
        f"video/x-raw,width={options.get('width', 1280)},height={options.get('height', 720)},"
        f"framerate={options.get('fps', 30)}/1 ! nvvideoconvert gpu-id={gpu_id} ! "
        "video/x-raw(memory:NVMM),format=NV12"
    )


def choose_nvenc(gpu_id: int, *, integrated: bool, element_present: bool, jetson_model: str = "") -> bool:
    """Encode with NVENC when the hardware has it: on a dGPU NVML says; on Jetson every module but the Orin
    Nano has one (its nvv4l2h264enc is installed all the same)."""
    if not element_present:
        return False
    if integrated:
        return "orin nano" not in jetson_model.lower()
    return has_nvenc(gpu_id)


def jetson_model() -> str:
    """/proc/device-tree/model on a Jetson ("NVIDIA Jetson Orin Nano ..."), else ""."""
    try:
        with open("/proc/device-tree/model", "rb") as model:
            return model.read().decode(errors="replace").strip("\0 \n")
    except OSError:
        return ""


def encoder_description(name: str, bitrate_kbps: int, *, gpu_id: int, nvenc: bool, integrated: bool = False) -> str:
    """H.264 from RGBA NVMM: NVENC where the GPU has one, else x264 (Orin Nano, A100, H100)."""
    if nvenc:
        device = "" if integrated else f" gpu-id={gpu_id}"  # Jetson's encoder has no gpu-id
        return (
            f"nvvideoconvert gpu-id={gpu_id} ! nvv4l2h264enc name={name}{device} "
            f"bitrate={bitrate_kbps * 1000} insert-sps-pps=true ! h264parse"
        )
    return (
        f"nvvideoconvert gpu-id={gpu_id} ! video/x-raw,format=I420 ! "
        f"x264enc name={name} tune=zerolatency speed-preset=ultrafast bitrate={bitrate_kbps} ! h264parse"
    )
