"""FFmpeg's libswscale through ctypes: 4:2:0 planes to RGB with the very code cv2.VideoCapture runs.

OpenCV's FFmpeg backend converts every decoded frame with `sws_scale(..., SWS_BICUBIC)` to BGR24; for a
same-size yuv420p source swscale takes its unscaled SIMD yuv2rgb path, so calling the same library
gives the same pixels (the tests compare with cv2 frame by frame) at a fraction of GStreamer's
videoconvert cost. libswscale comes with gstreamer1.0-libav (through libavfilter). Where it cannot be
loaded, `blazestream.yuv` computes the same formula with table look-ups instead (slower, same result).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading
from typing import Any

import numpy as np
import numpy.typing as npt

AV_PIX_FMT_YUV420P = 0
AV_PIX_FMT_RGB24 = 2
AV_PIX_FMT_BGR24 = 3
AV_PIX_FMT_YUVJ420P = 12
SWS_BICUBIC = 4
"""OpenCV's flags (cap_ffmpeg_impl.hpp); they do not matter for the unscaled path, but match it anyway."""

_SONAMES = ("swscale", "libswscale.so.6", "libswscale.so.7", "libswscale.so.8", "libswscale.so.5")


@functools.cache
def _library() -> Any | None:
    for name in _SONAMES:
        path = ctypes.util.find_library(name) if "." not in name else name
        if not path:
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        lib.sws_getContext.restype = ctypes.c_void_p
        lib.sws_getContext.argtypes = [ctypes.c_int] * 6 + [
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.sws_scale.restype = ctypes.c_int
        lib.sws_scale.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_void_p),
            ctypes.POINTER(ctypes.c_int),
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_void_p),
            ctypes.POINTER(ctypes.c_int),
        ]
        lib.sws_freeContext.restype = None
        lib.sws_freeContext.argtypes = [ctypes.c_void_p]
        return lib
    return None


def available() -> bool:
    """True when libswscale could be loaded."""
    return _library() is not None


def supports(width: int, height: int) -> bool:
    """Sizes the unscaled SIMD path converts whole: even height, width a multiple of 16.

    Its kernels work in blocks of 8/16 pixels and read/write whole blocks; for other sizes swscale
    takes other paths (and OpenCV's own frames would too), so those go through blazestream.yuv's tables.
    """
    return width % 16 == 0 and height % 2 == 0 and width > 0 and height > 0


class _Contexts(threading.local):
    """One SwsContext per thread and (size, format): a context must not be used by two threads at once."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[int, int, int, int], int] = {}


_contexts = _Contexts()


def _context(width: int, height: int, source_format: int, target_format: int) -> int:
    key = (width, height, source_format, target_format)
    context = _contexts.by_key.get(key)
    if context is None:
        lib = _library()
        assert lib is not None
        context = lib.sws_getContext(
            width, height, source_format, width, height, target_format, SWS_BICUBIC, None, None, None
        )
        if not context:
            raise RuntimeError(f"libswscale cannot convert {width}x{height} 4:2:0 frames")
        _contexts.by_key[key] = context
    return context


def yuv420_to_rgb(
    y: npt.NDArray[np.uint8],
    u: npt.NDArray[np.uint8],
    v: npt.NDArray[np.uint8],
    *,
    full_range: bool = False,
    bgr: bool = False,
) -> npt.NDArray[np.uint8]:
    """Planes (any row stride, contiguous columns) to (H, W, 3) RGB; `bgr`: BGR as OpenCV asks for it.

    The SIMD kernels compute both orders with the same arithmetic; the tests check RGB against cv2's BGR.
    """
    lib = _library()
    if lib is None:
        raise RuntimeError("libswscale is not available")
    height, width = y.shape
    if not supports(width, height):
        raise ValueError(f"libswscale path: {width}x{height} is not a supported size (see supports)")
    planes = (y, u, v)
    for plane in planes:
        if plane.strides[1] != 1:
            raise ValueError("plane columns must be contiguous")
    # One spare row: SIMD kernels may touch whole blocks past the last pixel.
    out = np.empty((height + 1, width, 3), dtype=np.uint8)[:height]
    source = (ctypes.c_void_p * 4)(*(p.ctypes.data for p in planes), None)
    strides = (ctypes.c_int * 4)(*(p.strides[0] for p in planes), 0)
    target = (ctypes.c_void_p * 4)(out.ctypes.data, None, None, None)
    target_strides = (ctypes.c_int * 4)(out.strides[0], 0, 0, 0)
    fmt = AV_PIX_FMT_YUVJ420P if full_range else AV_PIX_FMT_YUV420P
    context = _context(width, height, fmt, AV_PIX_FMT_BGR24 if bgr else AV_PIX_FMT_RGB24)
    rows = lib.sws_scale(context, source, strides, 0, height, target, target_strides)
    if rows != height:
        raise RuntimeError(f"libswscale converted {rows} of {height} rows")
    return out
