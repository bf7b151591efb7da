"""The one place that loads GStreamer through PyGObject, with errors that say what to install.

Import `Gst`, `GLib`, `GstApp` from here. GstApp must be imported before the first appsink or appsrc
is wrapped, or PyGObject caches a class without `try_pull_sample`/`push_buffer` for good.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from typing import Any

from blazestream.errors import MissingDependencyError

_lock = threading.Lock()
_loaded: dict[str, Any] = {}

INSTALL_HINT = (
    "install GStreamer 1.x with its introspection data and PyGObject: on Debian/Ubuntu "
    "`make setup` (or apt-get install gstreamer1.0-plugins-{base,good,bad,ugly} gstreamer1.0-libav "
    "gir1.2-gst-rtsp-server-1.0 and pip install 'blazestream[gst]')"
)


def gst() -> Any:
    """The initialized `Gst` module (loads GStreamer on first use)."""
    return _load()["Gst"]


def glib() -> Any:
    return _load()["GLib"]


def preload() -> None:
    """Start loading GStreamer on a background thread (~0.2 s, mostly C with the GIL released), for a
    caller with other start-up work to do meanwhile; the first `gst()` waits for it, and a load that
    failed here fails there again, with its message."""

    def load() -> None:
        with contextlib.suppress(Exception):
            _load()

    threading.Thread(target=load, name="gst-preload", daemon=True).start()


def _gcc_unwinder_first() -> None:
    """Make GCC's unwinder global before GStreamer loads libunwind (libgstreamer links it).

    Otherwise libunwind's `_Unwind_Resume` becomes the process's, and a C++ library that throws after
    that (OpenVINO does internally, e.g. ending an iteration) aborts the whole process.
    """
    with contextlib.suppress(OSError):  # not a GCC runtime: no such clash
        ctypes.CDLL("libgcc_s.so.1", mode=ctypes.RTLD_GLOBAL)


def _load() -> dict[str, Any]:
    with _lock:
        if _loaded:
            return _loaded
        _gcc_unwinder_first()
        try:
            import gi

            gi.require_version("Gst", "1.0")
            gi.require_version("GstApp", "1.0")
            gi.require_version("GstVideo", "1.0")
            from gi.repository import GLib, Gst, GstApp, GstVideo
        except (ImportError, ValueError) as exc:
            raise MissingDependencyError(f"GStreamer is not usable from Python ({exc}); {INSTALL_HINT}") from exc
        Gst.init(None)
        _loaded.update(Gst=Gst, GLib=GLib, GstApp=GstApp, GstVideo=GstVideo)
        return _loaded


def rtsp_server() -> Any:
    """The `GstRtspServer` module."""
    _load()
    try:
        import gi

        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GstRtspServer
    except (ImportError, ValueError) as exc:
        raise MissingDependencyError(
            f"gst-rtsp-server is missing ({exc}); apt-get install gir1.2-gst-rtsp-server-1.0"
        ) from exc
    return GstRtspServer


def require_elements(*names: str) -> None:
    """Fail early, naming the package, when a GStreamer element is not installed."""
    Gst = gst()
    missing = [n for n in names if Gst.ElementFactory.find(n) is None]
    if missing:
        raise MissingDependencyError(f"GStreamer element(s) not found: {', '.join(missing)}; {INSTALL_HINT}")


def parse_launch(description: str, name: str) -> Any:
    """Gst.parse_launch with the description in the error, and a pipeline name for logs."""
    Gst = gst()
    glib_error = glib().Error
    try:
        pipeline = Gst.parse_launch(description)
    except glib_error as exc:
        raise MissingDependencyError(
            f"{name}: cannot build the GStreamer pipeline ({exc.message}): {description}"
        ) from exc
    pipeline.set_name(name)
    return pipeline


def buffer_to_pixels(buffer: Any, caps: Any) -> Any:
    """Copy an I420 or NV12 buffer into a `Yuv420` frame (an RGB buffer into an array), honouring strides."""
    import numpy as np

    from blazestream.yuv import Yuv420

    GstVideo = _load()["GstVideo"]
    info = GstVideo.VideoInfo.new_from_caps(caps)
    name = info.finfo.name
    if name not in ("I420", "NV12"):
        return buffer_to_array(buffer, caps)
    width, height = info.width, info.height
    chroma_w, chroma_h = (width + 1) // 2, (height + 1) // 2
    size = buffer.get_size()
    data = np.empty(size + 64, dtype=np.uint8)  # slack after the last plane for SIMD block reads
    data[:size] = np.frombuffer(buffer.extract_dup(0, size), dtype=np.uint8)

    def plane(index: int, columns: int, rows: int) -> Any:
        offset, stride = info.offset[index], info.stride[index]
        return data[offset : offset + stride * rows].reshape(rows, stride)[:, :columns]

    full_range = info.colorimetry.range == getattr(GstVideo.VideoColorRange, "0_255")
    if name == "NV12":
        return Yuv420.from_nv12(plane(0, width, height), plane(1, 2 * chroma_w, chroma_h), full_range=full_range)
    return Yuv420(
        plane(0, width, height), plane(1, chroma_w, chroma_h), plane(2, chroma_w, chroma_h), full_range=full_range
    )


def buffer_to_array(buffer: Any, caps: Any) -> Any:
    """Copy an RGB buffer into an (H, W, 3) uint8 array, honouring the row stride (rows are 4-byte aligned)."""
    import numpy as np

    info = _load()["GstVideo"].VideoInfo.new_from_caps(caps)
    width, height, stride = info.width, info.height, info.stride[0]
    data = buffer.extract_dup(0, buffer.get_size())
    rows = np.frombuffer(data, dtype=np.uint8, count=stride * height).reshape(height, stride)
    return rows[:, : width * 3].reshape(height, width, 3)
