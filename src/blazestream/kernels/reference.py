"""NumPy twin of crop.cu: the same float bilinear sampling, so the kernel's math can be tested on any machine.

Tests hold this reference to MediaPipe's OpenCV crop (pose.crop.warp_rois, fixed point) and the GPU tests
hold the CUDA kernel to this reference. Frames are host arrays here: (H, W, 3|4) uint8 interleaved, or
an `Nv12` pair of planes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from blazestream.kernels import (
    BORDER_CONSTANT,
    BORDER_REPLICATE,
    FORMAT_NV12_BT601,
    FORMAT_NV12_BT709,
    OPENCV_SUBPIXEL_STEPS,
)

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Nv12:
    """An NV12 frame on the host: y (H, W) and uv (ceil(H/2), ceil(W/2), 2) uint8."""

    y: U8
    uv: U8
    bt709: bool = False

    @property
    def shape(self) -> tuple[int, int, int]:
        return (int(self.y.shape[0]), int(self.y.shape[1]), 3)

    @property
    def format(self) -> int:
        return FORMAT_NV12_BT709 if self.bt709 else FORMAT_NV12_BT601


def _taps(
    x: F32, y: F32, width: int, height: int, replicate: bool
) -> tuple[list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], F32, npt.NDArray[np.bool_]]], F32]:
    """The four bilinear neighbours of each position: (x, y, weight, inside), and the outside weight."""
    fx0 = np.floor(x)
    fy0 = np.floor(y)
    ax = (x - fx0).astype(np.float32)
    ay = (y - fy0).astype(np.float32)
    x0 = fx0.astype(np.intp)
    y0 = fy0.astype(np.intp)
    one = np.float32(1.0)
    taps = []
    outside = np.zeros(x.shape, dtype=np.float32)
    for dy, wy in ((0, one - ay), (1, ay)):
        for dx, wx in ((0, one - ax), (1, ax)):
            xx = x0 + dx
            yy = y0 + dy
            weight = (wy * wx).astype(np.float32)
            if replicate:
                inside = np.ones(x.shape, dtype=bool)
            else:
                inside = (xx >= 0) & (xx < width) & (yy >= 0) & (yy < height)
                outside += np.where(inside, np.float32(0.0), weight)
            taps.append((np.clip(xx, 0, width - 1), np.clip(yy, 0, height - 1), weight, inside))
    return taps, outside


def _sample_interleaved(frame: U8, x: F32, y: F32, replicate: bool, border_value: float) -> F32:
    height, width = frame.shape[:2]
    taps, outside = _taps(x, y, width, height, replicate)
    rgb = np.zeros((*x.shape, 3), dtype=np.float32)
    for xx, yy, weight, inside in taps:
        pixels = frame[yy, xx, :3].astype(np.float32)
        rgb += np.where(inside, weight, np.float32(0.0))[..., None] * pixels
    result: F32 = rgb + outside[..., None] * np.float32(border_value)
    return result


def _sample_nv12(frame: Nv12, x: F32, y: F32, replicate: bool, border_value: float) -> F32:
    height, width = frame.y.shape
    taps, _ = _taps(x, y, width, height, replicate)
    luma: F32 = np.zeros(x.shape, dtype=np.float32)
    inside_w = np.zeros(x.shape, dtype=np.float32)
    for xx, yy, weight, inside in taps:
        w = np.where(inside, weight, np.float32(0.0))
        luma += w * frame.y[yy, xx].astype(np.float32)
        inside_w += w
    luma = (luma / np.where(inside_w > 0, inside_w, np.float32(1.0))).astype(np.float32)
    cw, ch = (width + 1) // 2, (height + 1) // 2
    half = np.float32(0.5)
    # H.264's default chroma siting: co-sited with even luma columns, between the two luma rows.
    ctaps, _ = _taps(x * half, (y + half) * half - half, cw, ch, True)
    cb = np.zeros(x.shape, dtype=np.float32)
    cr = np.zeros(x.shape, dtype=np.float32)
    for xx, yy, weight, _inside in ctaps:
        cb += weight * frame.uv[yy, xx, 0].astype(np.float32)
        cr += weight * frame.uv[yy, xx, 1].astype(np.float32)
    yy_ = np.float32(1.164383) * (luma - np.float32(16.0))
    u = cb - np.float32(128.0)
    v = cr - np.float32(128.0)
    if frame.bt709:
        r = yy_ + np.float32(1.792741) * v
        g = yy_ - np.float32(0.213249) * u - np.float32(0.532909) * v
        b = yy_ + np.float32(2.112402) * u
    else:
        r = yy_ + np.float32(1.596027) * v
        g = yy_ - np.float32(0.391762) * u - np.float32(0.812968) * v
        b = yy_ + np.float32(2.017232) * u
    rgb = np.clip(np.stack([r, g, b], axis=-1), 0.0, 255.0).astype(np.float32)
    outside = (np.float32(1.0) - inside_w)[..., None]
    mixed = rgb * inside_w[..., None] + outside * np.float32(border_value)
    return np.where((inside_w > 0)[..., None], mixed, np.float32(border_value)).astype(np.float32)


def source_positions(affine: F32, out_w: int, out_h: int) -> tuple[F32, F32]:
    """(x, y) of every output pixel of one ROI, (out_h, out_w) each, on OpenCV's 1/32-pixel grid."""
    a = np.asarray(affine, dtype=np.float32).reshape(6)
    v, u = np.meshgrid(np.arange(out_h, dtype=np.float32), np.arange(out_w, dtype=np.float32), indexing="ij")
    steps = np.float32(OPENCV_SUBPIXEL_STEPS)
    x = (a[0] * u + a[1] * v + a[2]).astype(np.float32)
    y = (a[3] * u + a[4] * v + a[5]).astype(np.float32)
    # np.rint rounds half to even, as rintf and OpenCV's cvRound.
    return (np.rint(x * steps) / steps).astype(np.float32), (np.rint(y * steps) / steps).astype(np.float32)


def crop_rois(
    frames: Sequence[U8 | Nv12],
    frame_of_roi: Sequence[int],
    affine: F32,
    *,
    out_w: int,
    out_h: int,
    border: int,
    border_value: float = 0.0,
    scale: float = 1.0,
    offset: float = 0.0,
) -> F32:
    """(M, 3, out_h, out_w) float32, exactly the computation of crop.cu's `crop_rois` (in float32)."""
    if border not in (BORDER_REPLICATE, BORDER_CONSTANT):
        raise ValueError(f"border must be {BORDER_REPLICATE} (replicate) or {BORDER_CONSTANT} (constant)")
    matrices = np.asarray(affine, dtype=np.float32).reshape(-1, 6)
    out = np.empty((len(frame_of_roi), 3, out_h, out_w), dtype=np.float32)
    replicate = border == BORDER_REPLICATE
    for m, index in enumerate(frame_of_roi):
        frame = frames[index]
        x, y = source_positions(matrices[m], out_w, out_h)
        if isinstance(frame, Nv12):
            rgb = _sample_nv12(frame, x, y, replicate, border_value)
        else:
            rgb = _sample_interleaved(frame, x, y, replicate, border_value)
        out[m] = (rgb * np.float32(scale) + np.float32(offset)).transpose(2, 0, 1)
    return out
