"""Decoded 4:2:0 frames kept as planes, converted to RGB exactly as a MediaPipe user's frames are.

A MediaPipe user reads video with `cv2.VideoCapture`, i.e. FFmpeg's swscale converting yuv420p to BGR.
For same-size 4:2:0 to packed RGB, swscale takes its unscaled yuv2rgb path: BT.601 whatever the
stream says, limited range unless the decoder reports a full-range (yuvj) format, each chroma sample
shared by a 2x2 block (no interpolation), and, on x86, fixed point with truncating multiplies:

    c = v * 8 - 1024                    (per chroma plane)
    y = ((Y * 8 - y_offset) * y_coeff) >> 16
    R = sat(y + (cv * vr) >> 16)   G = sat(y + (cu * ug) >> 16 + (cv * vg) >> 16)   B = sat(y + (cu * ub) >> 16)

with the coefficients swscale derives (`ff_yuv2rgb_c_init_tables`, 16.16 rounded to 13 fractional
bits). Every term depends on one plane only, so each is a 256-entry table and the conversion is a few
table look-ups and additions; tests check it pixel for pixel against cv2-decoded frames. GStreamer's
`videoconvert` rounds differently (1.25 grey levels off on average), which moves a tracker by ~1% of
the pose diagonal, hence this module.

The conversion itself is libswscale's own (blazestream.swscale) when it can be loaded: the same
library cv2 calls, ~0.25 ms per 640x480 frame. Frames stay as planes until something needs RGB, and
are converted once; without libswscale, crops convert only the rectangle their ROI reads (`region`).
"""

from __future__ import annotations

import threading
from functools import cache

import cv2
import numpy as np
import numpy.typing as npt

from blazestream import swscale

U8 = npt.NDArray[np.uint8]

# FFmpeg's ff_yuv2rgb_coeffs for ITU-R BT.601 (16.16): crv, cbu, cgu, cgv.
_BT601 = (104597, 132201, 25675, 53279)


def _round_to_int16(value: int) -> int:
    """swscale's roundToInt16 on a 16.16 value already shifted by 13 bits."""
    return (value + (1 << 15)) >> 16


@cache
def _tables(full_range: bool) -> tuple[npt.NDArray[np.int16], ...]:
    """(y, vr, ug, vg, ub) term tables, int16, as the x86 yuv2rgb kernels compute them."""
    crv, cbu, cgu, cgv = _BT601
    cgu, cgv = -cgu, -cgv
    cy, oy = 1 << 16, 0
    if full_range:
        crv, cbu, cgu, cgv = ((c * 224) // 255 for c in (crv, cbu, cgu, cgv))
    else:
        cy = (cy * 255) // 219
        oy = 16 << 16
    y_coeff, vr, ub, ug, vg = (_round_to_int16(c * (1 << 13)) for c in (cy, crv, cbu, cgu, cgv))
    y_offset = _round_to_int16(oy * (1 << 3))
    v = np.arange(256, dtype=np.int32)
    chroma = v * 8 - 1024
    tables = [((v * 8 - y_offset) * y_coeff) >> 16, (chroma * vr) >> 16, (chroma * ug) >> 16]
    tables += [(chroma * vg) >> 16, (chroma * ub) >> 16]
    return tuple(t.astype(np.int16) for t in tables)


def _saturate(values: npt.NDArray[np.int16]) -> U8:
    np.clip(values, 0, 255, out=values)
    return values.astype(np.uint8)


def yuv420_to_rgb(y: U8, u: U8, v: U8, *, full_range: bool = False) -> U8:
    """(H, W) luma and (ceil(H/2), ceil(W/2)) chroma planes to (H, W, 3) RGB, as cv2.VideoCapture gets it.

    libswscale itself where it can be loaded (blazestream.swscale), else the same formula in tables.
    """
    height, width = y.shape
    if swscale.available() and swscale.supports(width, height):
        return swscale.yuv420_to_rgb(y, np.ascontiguousarray(u), np.ascontiguousarray(v), full_range=full_range)
    return tables_yuv420_to_rgb(y, u, v, full_range=full_range)


def tables_yuv420_to_rgb(y: U8, u: U8, v: U8, *, full_range: bool = False) -> U8:
    """swscale's x86 yuv2rgb arithmetic in table look-ups: the portable path, same pixels (even sizes)."""
    height, width = y.shape
    y_tab, vr_tab, ug_tab, vg_tab, ub_tab = _tables(full_range)
    luma = cv2.LUT(y, y_tab)
    red = cv2.LUT(v, vr_tab)
    green = cv2.add(cv2.LUT(u, ug_tab), cv2.LUT(v, vg_tab))
    blue = cv2.LUT(u, ub_tab)
    out = np.empty((height, width, 3), dtype=np.uint8)
    odd = height % 2 or width % 2
    for channel, term in enumerate((red, green, blue)):
        if odd:
            up = np.ascontiguousarray(term.repeat(2, axis=0).repeat(2, axis=1)[:height, :width])
        else:
            up = cv2.resize(term, (width, height), interpolation=cv2.INTER_NEAREST)
        out[..., channel] = _saturate(np.asarray(cv2.add(luma, up), dtype=np.int16))
    return out


class Yuv420:
    """One decoded 4:2:0 frame (I420 or NV12 planes) that converts to RGB on demand.

    `shape` is the RGB image's (H, W, 3), so code that only asks a frame its size needs no conversion.
    Conversions are cached; `region` fills a frame-sized buffer rectangle by rectangle for crops.
    """

    def __init__(self, y: U8, u: U8, v: U8, *, full_range: bool = False) -> None:
        self.y, self.u, self.v = y, np.ascontiguousarray(u), np.ascontiguousarray(v)
        self.full_range = full_range
        height, width = y.shape
        self.shape = (height, width, 3)
        self._rgb: U8 | None = None
        self._partial: U8 | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_nv12(cls, y: U8, uv: U8, *, full_range: bool = False) -> Yuv420:
        """NV12: one interleaved UV plane (H/2, W) after the luma."""
        return cls(y, uv[:, 0::2], uv[:, 1::2], full_range=full_range)

    @property
    def converts_whole(self) -> bool:
        """libswscale converts this frame whole faster than tables convert a crop's rectangle: crops then
        read `rgb()` (and skip working out their rectangle), else `region`."""
        height, width = self.shape[:2]
        return swscale.available() and swscale.supports(width, height)

    def rgb(self) -> U8:
        """The whole frame in RGB (converted once)."""
        with self._lock:
            if self._rgb is None:
                self._rgb = yuv420_to_rgb(self.y, self.u, self.v, full_range=self.full_range)
                self._partial = None
            return self._rgb

    def region(self, x0: int, y0: int, x1: int, y1: int) -> U8:
        """A frame-sized RGB image whose pixels are exact inside [x0, x1) x [y0, y1) (clipped to the frame),
        converted in tables rectangle by rectangle (see `converts_whole` for when `rgb()` is the better call).

        Pixels outside the rectangle are undefined: only for readers that stay inside it (a warp).
        """
        height, width = self.shape[:2]
        x0, y0 = max(0, x0) & ~1, max(0, y0) & ~1
        x1, y1 = min(width, x1 + (x1 & 1)), min(height, y1 + (y1 & 1))
        with self._lock:
            if self._rgb is not None:
                return self._rgb
            if x0 == 0 and y0 == 0 and x1 >= width and y1 >= height:
                self._rgb = yuv420_to_rgb(self.y, self.u, self.v, full_range=self.full_range)
                self._partial = None
                return self._rgb
            if self._partial is None:
                self._partial = np.empty(self.shape, dtype=np.uint8)
            if x1 > x0 and y1 > y0:
                self._partial[y0:y1, x0:x1] = tables_yuv420_to_rgb(
                    self.y[y0:y1, x0:x1],
                    self.u[y0 // 2 : (y1 + 1) // 2, x0 // 2 : (x1 + 1) // 2],
                    self.v[y0 // 2 : (y1 + 1) // 2, x0 // 2 : (x1 + 1) // 2],
                    full_range=self.full_range,
                )
            return self._partial


def as_rgb(pixels: U8 | Yuv420) -> U8:
    """An RGB image from either an RGB array or a Yuv420 frame."""
    return pixels.rgb() if isinstance(pixels, Yuv420) else pixels
