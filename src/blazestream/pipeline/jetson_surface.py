"""Jetson: frame surfaces on the GPU through EGL, since pyds's get_nvds_buf_surface_gpu is x86-only.

NVIDIA's documented path (deepstream-notes §1.4, as Savant's nvsurfaceptr.cpp does it in C++):
NvBufSurfaceMapEglImage -> cuGraphicsEGLRegisterImage -> cuGraphicsResourceGetMappedEglFrame, which gives
a pitched device pointer to the RGBA surface; after the crops, cuGraphicsUnregisterResource and
NvBufSurfaceUnMapEglImage. Done with ctypes against libnvbufsurface, libgstreamer and libcuda (no pyds
needed). The structures follow nvbufsurface.h (DeepStream 6.2 and later keep this layout) and CUDA's
cudaEGL.h; tests pin their sizes to the values the headers give. When a library or call is missing,
`EglSurfaceMapper.available` is False and the graph falls back to pyds's host copy (slower: a
device-to-host and a host-to-device copy per frame).
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger(__name__)

NVBUF_MAX_PLANES = 4
STRUCTURE_PADDING = 4
CU_EGL_MAX_PLANES = 3
CU_EGL_FRAME_TYPE_PITCH = 1
GST_MAP_READ = 1


class NvBufSurfacePlaneParams(ctypes.Structure):
    _fields_ = (
        ("num_planes", ctypes.c_uint32),
        ("width", ctypes.c_uint32 * NVBUF_MAX_PLANES),
        ("height", ctypes.c_uint32 * NVBUF_MAX_PLANES),
        ("pitch", ctypes.c_uint32 * NVBUF_MAX_PLANES),
        ("offset", ctypes.c_uint32 * NVBUF_MAX_PLANES),
        ("psize", ctypes.c_uint32 * NVBUF_MAX_PLANES),
        ("bytesPerPix", ctypes.c_uint32 * NVBUF_MAX_PLANES),
        ("_reserved", ctypes.c_void_p * (STRUCTURE_PADDING * NVBUF_MAX_PLANES)),
    )


class NvBufSurfaceMappedAddr(ctypes.Structure):
    _fields_ = (
        ("addr", ctypes.c_void_p * NVBUF_MAX_PLANES),
        ("eglImage", ctypes.c_void_p),
        ("_reserved", ctypes.c_void_p * STRUCTURE_PADDING),
    )


class NvBufSurfaceParams(ctypes.Structure):
    _fields_ = (
        ("width", ctypes.c_uint32),
        ("height", ctypes.c_uint32),
        ("pitch", ctypes.c_uint32),
        ("colorFormat", ctypes.c_int),
        ("layout", ctypes.c_int),
        ("bufferDesc", ctypes.c_uint64),
        ("dataSize", ctypes.c_uint32),
        ("dataPtr", ctypes.c_void_p),
        ("planeParams", NvBufSurfacePlaneParams),
        ("mappedAddr", NvBufSurfaceMappedAddr),
        ("paramex", ctypes.c_void_p),
        ("_reserved", ctypes.c_void_p * (STRUCTURE_PADDING - 1)),
    )


class NvBufSurface(ctypes.Structure):
    _fields_ = (
        ("gpuId", ctypes.c_uint32),
        ("batchSize", ctypes.c_uint32),
        ("numFilled", ctypes.c_uint32),
        ("isContiguous", ctypes.c_bool),
        ("memType", ctypes.c_int),
        ("surfaceList", ctypes.POINTER(NvBufSurfaceParams)),
        ("_reserved", ctypes.c_void_p * STRUCTURE_PADDING),
    )


class CUeglFrame(ctypes.Structure):
    """cudaEGL.h CUeglFrame_v1: the union of CUarray/void* planes is laid out as three pointers."""

    _fields_ = (
        ("pPitch", ctypes.c_void_p * CU_EGL_MAX_PLANES),
        ("width", ctypes.c_uint),
        ("height", ctypes.c_uint),
        ("depth", ctypes.c_uint),
        ("pitch", ctypes.c_uint),
        ("planeCount", ctypes.c_uint),
        ("numChannels", ctypes.c_uint),
        ("frameType", ctypes.c_int),
        ("eglColorFormat", ctypes.c_int),
        ("cuFormat", ctypes.c_int),
    )


class GstMapInfo(ctypes.Structure):
    _fields_ = (
        ("memory", ctypes.c_void_p),
        ("flags", ctypes.c_int),
        ("data", ctypes.c_void_p),
        ("size", ctypes.c_size_t),
        ("maxsize", ctypes.c_size_t),
        ("user_data", ctypes.c_void_p * 4),
        ("_gst_reserved", ctypes.c_void_p * 4),
    )


@dataclass(frozen=True)
class MappedFrame:
    """A pitched RGBA frame in device memory, valid inside `EglSurfaceMapper.mapped`."""

    pointer: int
    pitch: int
    width: int
    height: int


class EglSurfaceMapper:
    """Maps the surfaces of a batched GstBuffer into CUDA through EGL (Jetson)."""

    def __init__(self) -> None:
        self.available = False
        self.reason = ""
        try:
            self._nvbuf = ctypes.CDLL("libnvbufsurface.so.1")
            self._gst = ctypes.CDLL("libgstreamer-1.0.so.0")
            self._cuda = ctypes.CDLL("libcuda.so.1")
            for name in ("NvBufSurfaceMapEglImage", "NvBufSurfaceUnMapEglImage"):
                getattr(self._nvbuf, name).argtypes = [ctypes.POINTER(NvBufSurface), ctypes.c_int]
                getattr(self._nvbuf, name).restype = ctypes.c_int
            self._gst.gst_buffer_map.argtypes = [ctypes.c_void_p, ctypes.POINTER(GstMapInfo), ctypes.c_int]
            self._gst.gst_buffer_map.restype = ctypes.c_int
            self._gst.gst_buffer_unmap.argtypes = [ctypes.c_void_p, ctypes.POINTER(GstMapInfo)]
            self._cuda.cuGraphicsEGLRegisterImage.argtypes = [
                ctypes.POINTER(ctypes.c_void_p),
                ctypes.c_void_p,
                ctypes.c_uint,
            ]
            self._cuda.cuGraphicsResourceGetMappedEglFrame.argtypes = [
                ctypes.POINTER(CUeglFrame),
                ctypes.c_void_p,
                ctypes.c_uint,
                ctypes.c_uint,
            ]
            self._cuda.cuGraphicsUnregisterResource.argtypes = [ctypes.c_void_p]
            self.available = True
        except (OSError, AttributeError) as exc:
            self.reason = f"EGL/CUDA interop unavailable ({exc})"

    def _surface(self, buffer_address: int) -> ctypes._Pointer[NvBufSurface]:
        info = GstMapInfo()
        if not self._gst.gst_buffer_map(buffer_address, ctypes.byref(info), GST_MAP_READ):
            raise RuntimeError("gst_buffer_map failed on a DeepStream buffer")
        try:
            return ctypes.cast(info.data, ctypes.POINTER(NvBufSurface))
        finally:
            self._gst.gst_buffer_unmap(buffer_address, ctypes.byref(info))  # the surface outlives the map

    @contextmanager
    def mapped(self, buffer_address: int, batch_ids: list[int]) -> Iterator[dict[int, MappedFrame]]:
        """Device views of the given frames of a buffer (`hash(buffer)`), unmapped on exit."""
        surface = self._surface(buffer_address)
        resources: list[ctypes.c_void_p] = []
        egl_mapped: list[int] = []
        frames: dict[int, MappedFrame] = {}
        try:
            for index in batch_ids:
                if self._nvbuf.NvBufSurfaceMapEglImage(surface, index) != 0:
                    raise RuntimeError(f"NvBufSurfaceMapEglImage failed for frame {index}")
                egl_mapped.append(index)
                image = surface.contents.surfaceList[index].mappedAddr.eglImage
                resource = ctypes.c_void_p()
                _check(self._cuda.cuGraphicsEGLRegisterImage(ctypes.byref(resource), image, 0), "register")
                resources.append(resource)
                frame = CUeglFrame()
                _check(self._cuda.cuGraphicsResourceGetMappedEglFrame(ctypes.byref(frame), resource, 0, 0), "map")
                if frame.frameType != CU_EGL_FRAME_TYPE_PITCH:
                    raise RuntimeError("the EGL frame is a CUDA array, not pitched memory (use RGBA surfaces)")
                frames[index] = MappedFrame(
                    int(frame.pPitch[0] or 0), int(frame.pitch), int(frame.width), int(frame.height)
                )
            yield frames
        finally:
            for resource in resources:
                self._cuda.cuGraphicsUnregisterResource(resource)
            for index in egl_mapped:
                self._nvbuf.NvBufSurfaceUnMapEglImage(surface, index)


def _check(result: int, what: str) -> None:
    if result != 0:
        raise RuntimeError(f"CUDA EGL interop ({what}) failed with CUresult {result}")
