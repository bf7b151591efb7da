"""Annotated video: all cameras tiled into one canvas, skeletons drawn, encoded to an MP4 file and/or RTSP.

Encoding is the expensive part (1280x720 on a 2-core AMD EPYC VM: x264 ultrafast 4-6 ms a frame, 7-8 ms with the
RGB->I420 conversion and the copy into GStreamer: ~25 % of a core at 30 fps), so
`AnnotatedVideoSink` composes and encodes at most `max_fps` canvases per second of stream time,
whatever the number of cameras.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from blazestream.gst import glib, gst, parse_launch, require_elements, rtsp_server
from blazestream.outputs.annotate import draw_poses
from blazestream.results import FrameResult

log = logging.getLogger(__name__)

Frame = npt.NDArray[np.uint8]

_BACKGROUND = 24
"""Dark grey (one value for R, G and B: a memset)."""
_TEXT = (255, 255, 255)
_GREY = (160, 160, 160)
_FAILED = (255, 110, 90)
"""A failed camera's cell text (RGB)."""
_FONT = cv2.FONT_HERSHEY_SIMPLEX
RTSP_CLIENT_THREADS = 8
MIN_PTS_STEP_S = 0.001
"""A non-increasing PTS is moved this far past the previous one: encoders and muxers need strictly increasing ones."""


def _rgb_caps(width: int, height: int, fps: int) -> str:
    return f"video/x-raw,format=RGB,width={width},height={height},framerate={fps}/1,pixel-aspect-ratio=1/1"


def _x264(bitrate_kbps: int, key_int: int, *, high_profile: bool) -> str:
    """x264enc settings: I420 is forced before it (BGR/RGB input would give High 4:4:4, which players refuse).

    ultrafast gives Constrained Baseline; CABAC and 8x8 transforms (High profile) cost ~30 % more encoder time
    but compress better and match what the file players expect.
    """
    extra = " option-string=cabac=1:8x8dct=1" if high_profile else ""
    return f"x264enc speed-preset=ultrafast tune=zerolatency key-int-max={key_int} bitrate={bitrate_kbps}{extra}"


class Tiler:
    """Keeps the latest annotated frame of each camera and composes them into a grid, letterboxed per cell."""

    def __init__(self, camera_ids: Sequence[str], width: int, height: int) -> None:
        if len(set(camera_ids)) != len(camera_ids):
            raise ValueError(f"camera ids must be unique: {list(camera_ids)}")
        self.width, self.height = width, height
        self.camera_ids: list[str | None] = list(camera_ids)
        """Cells in order; None is the blank cell of a camera removed at run time."""
        self._cells: dict[str, Frame] = {}
        self._canvas: Frame = np.empty((height, width, 3), np.uint8)
        self._unknown: set[str] = set()
        self._layout()

    def _layout(self) -> None:
        count = max(1, len(self.camera_ids))
        self.cols = math.ceil(math.sqrt(count))
        self.rows = math.ceil(count / self.cols)
        self.cell_width, self.cell_height = self.width // self.cols, self.height // self.rows
        self._origin = {
            cam: ((i % self.cols) * self.cell_width, (i // self.cols) * self.cell_height)
            for i, cam in enumerate(self.camera_ids)
            if cam is not None
        }
        self._font_scale = max(0.35, min(1.0, self.cell_height / 480))
        self._thickness = 1 if self.cell_height < 600 else 2
        for cam, cell in list(self._cells.items()):  # a grown grid has smaller cells: keep the pictures
            h, w = cell.shape[:2]
            fit_w, fit_h = self.fit(w, h)
            if (fit_h, fit_w) != (h, w):
                self._cells[cam] = np.asarray(cv2.resize(cell, (fit_w, fit_h), interpolation=cv2.INTER_AREA), np.uint8)

    def add_camera(self, camera_id: str) -> None:
        """A camera added at run time takes the first blank cell, or the grid grows by one cell."""
        if camera_id in self._origin:
            return
        self._unknown.discard(camera_id)
        if None in self.camera_ids:
            self.camera_ids[self.camera_ids.index(None)] = camera_id
        else:
            self.camera_ids.append(camera_id)
        self._layout()

    def remove_camera(self, camera_id: str) -> None:
        """A camera removed at run time leaves its cell blank (the others keep their place)."""
        if camera_id in self._origin:
            self.camera_ids[self.camera_ids.index(camera_id)] = None
            self._cells.pop(camera_id, None)
            self._layout()

    def fit(self, width: int, height: int) -> tuple[int, int]:
        """The size of a width x height frame scaled to fit a cell, aspect ratio kept."""
        scale = min(self.cell_width / width, self.cell_height / height)
        return max(1, round(width * scale)), max(1, round(height * scale))

    def update(self, result: FrameResult) -> None:
        """Scale the frame into its cell and draw its poses there (poses are normalized, so they scale with it)."""
        if result.stream not in self._origin:
            if result.stream not in self._unknown:
                self._unknown.add(result.stream)
                log.warning(
                    "annotated video: camera %r is not in the layout %s; ignored", result.stream, self.camera_ids
                )
            return
        fit_w, fit_h = self.fit(result.width, result.height)
        cell = self._cells.get(result.stream)
        if cell is None or cell.shape[:2] != (fit_h, fit_w):
            cell = self._cells[result.stream] = np.empty((fit_h, fit_w, 3), np.uint8)
        image = result.image
        if image is None:
            cell.fill(0)
        elif image.shape[:2] == (fit_h, fit_w):
            np.copyto(cell, image)  # never draw on the caller's frame
        else:
            shrink = fit_w < image.shape[1]
            cv2.resize(image, (fit_w, fit_h), dst=cell, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        draw_poses(cell, result.poses, mask=result.mask)

    def compose(
        self, fps_of: Callable[[str], float] | None = None, failure_of: Callable[[str], str | None] | None = None
    ) -> Frame:
        """The width x height RGB canvas: each camera's latest frame, its id and (if given) its rate; a camera
        that gave up (`failure_of` says why) shows why in its cell instead of "waiting".

        The array is reused (fresh 2.7 MB allocations cost more than the drawing): it is overwritten by the
        next `compose`, so copy it to keep it.
        """
        canvas = self._canvas
        canvas.fill(_BACKGROUND)
        for cam in self.camera_ids:
            if cam is None:
                continue
            x0, y0 = self._origin[cam]
            cell = self._cells.get(cam)
            failure = failure_of(cam) if failure_of is not None else None
            if cell is None:
                self._label(canvas, x0, y0, cam)
                if failure is None:
                    self._centred(canvas, x0, y0, "waiting")
                else:
                    self._centred(canvas, x0, y0, "failed", colour=_FAILED)
                    self._centred(canvas, x0, y0, self._fit_text(failure), line=1, colour=_FAILED)
                continue
            h, w = cell.shape[:2]
            ox, oy = x0 + (self.cell_width - w) // 2, y0 + (self.cell_height - h) // 2
            canvas[oy : oy + h, ox : ox + w] = cell
            if failure is not None:
                label = f"{cam}  failed"
            else:
                label = f"{cam}  {fps_of(cam):.1f} fps" if fps_of is not None else cam
            self._label(canvas, x0, y0, label)
        return canvas

    def _fit_text(self, text: str) -> str:
        """`text` cut (with "...") to fit a cell's width: Hershey fonts draw ASCII only."""
        return _fit_text(text, self.cell_width - 16, self._font_scale, self._thickness)

    def _label(self, canvas: Frame, x0: int, y0: int, text: str) -> None:
        (tw, th), base = cv2.getTextSize(text, _FONT, self._font_scale, self._thickness)
        pad = 4
        cv2.rectangle(canvas, (x0, y0), (x0 + tw + 2 * pad, y0 + th + base + 2 * pad), (0, 0, 0), -1)
        cv2.putText(
            canvas, text, (x0 + pad, y0 + pad + th), _FONT, self._font_scale, _TEXT, self._thickness, cv2.LINE_AA
        )

    def _centred(
        self, canvas: Frame, x0: int, y0: int, text: str, *, line: int = 0, colour: tuple[int, int, int] = _GREY
    ) -> None:
        """`text` centred in the cell; `line` 1 is the line below the centre one."""
        (tw, th), _ = cv2.getTextSize(text, _FONT, self._font_scale, self._thickness)
        org = (x0 + (self.cell_width - tw) // 2, y0 + (self.cell_height + th) // 2 + line * 2 * th)
        cv2.putText(canvas, text, org, _FONT, self._font_scale, colour, self._thickness, cv2.LINE_AA)


@functools.lru_cache(maxsize=64)
def _fit_text(text: str, limit: int, scale: float, thickness: int) -> str:
    """Cached: a failed camera's reason is drawn on every composed canvas, unchanged."""
    text = text.encode("ascii", "replace").decode()
    if cv2.getTextSize(text, _FONT, scale, thickness)[0][0] <= limit:
        return text
    while len(text) > 1 and cv2.getTextSize(text + "...", _FONT, scale, thickness)[0][0] > limit:
        text = text[:-1]
    return text + "..."


def _to_buffer(canvas: Frame, width: int, height: int) -> Any:
    """One Gst.Buffer holding a copy of the canvas (resized if it is not width x height)."""
    if canvas.shape[:2] != (height, width):
        canvas = np.asarray(cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA), np.uint8)
    data = np.ascontiguousarray(canvas, dtype=np.uint8).tobytes()
    buffer = gst().Buffer.new_allocate(None, len(data), None)
    buffer.fill(0, data)
    return buffer


class VideoFileSink:
    """RGB canvases -> H.264 (I420, High profile) in an MP4 file.

    mp4mux writes 1 s fragments while recording, so a crash still leaves a playable file, and rewrites them
    into a regular MP4 (one moov, no fragments) when `close()` sends EOS. At most ~3 frames wait in the appsrc:
    `push` blocks when the encoder is behind, so memory stays flat.
    """

    def __init__(
        self,
        path: Path | str,
        width: int,
        height: int,
        fps_hint: int = 30,
        bitrate_kbps: int = 4000,
    ) -> None:
        require_elements("appsrc", "videoconvert", "x264enc", "h264parse", "mp4mux", "filesink")
        Gst = gst()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.width, self.height = width, height
        self.frames = 0
        self._frame_duration = int(Gst.SECOND / max(1, fps_hint))
        self._last_pts: int | None = None
        self._failed: str | None = None
        self._reported = False
        self._closed = False
        self._pipeline = parse_launch(
            f"appsrc name=src format=time is-live=false block=true max-bytes={3 * width * height * 3} "
            f'caps="{_rgb_caps(width, height, fps_hint)}" '
            "! videoconvert ! video/x-raw,format=I420 "
            f"! {_x264(bitrate_kbps, max(1, fps_hint), high_profile=True)} "
            "! h264parse ! mp4mux fragment-duration=1000 fragment-mode=first-moov-then-finalise "
            "! filesink name=file",
            f"video-file-{self.path.name}",
        )
        self._pipeline.get_by_name("file").set_property("location", str(self.path))
        self._src = self._pipeline.get_by_name("src")
        bus = self._pipeline.get_bus()
        bus.set_sync_handler(self._on_sync_message)
        if self._pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            why = self._failed or "the pipeline did not start"
            self._pipeline.set_state(Gst.State.NULL)
            raise OSError(f"cannot write the video file {self.path}: {why}")

    def _on_sync_message(self, bus: Any, message: Any) -> Any:
        """Keep only EOS and errors (nobody pops the rest: hours of messages would pile up in the bus).

        On an error (disk full...), stop the pipeline from another thread: that unblocks a `push` waiting for room.
        """
        Gst = gst()
        if message.type == Gst.MessageType.ERROR:
            if self._failed is None:
                error, debug = message.parse_error()
                detail = (debug or "").strip().splitlines()[-1:]  # the system error, without the element path
                self._failed = f"{error.message} ({detail[0]})" if detail else str(error.message)
                log.error("video file %s: %s; no more frames are written", self.path, self._failed)
                threading.Thread(target=self._pipeline.set_state, args=(Gst.State.NULL,), daemon=True).start()
            return Gst.BusSyncReply.PASS
        return Gst.BusSyncReply.PASS if message.type == Gst.MessageType.EOS else Gst.BusSyncReply.DROP

    @property
    def failure(self) -> str | None:
        """Why the file stopped being written (an encoder or disk error), or None."""
        return self._failed

    def _raise_failure(self) -> None:
        """Raise the pipeline's error once, so the fan-out counts it (the file holds what came before)."""
        if self._failed is not None and not self._reported:
            self._reported = True
            raise OSError(f"video file {self.path}: {self._failed}; it holds the frames written before")

    def push(self, canvas: Frame, pts_seconds: float) -> None:
        """Encode one canvas at `pts_seconds`; a PTS that does not increase is moved just past the previous one.

        Raises OSError once when the pipeline has failed (disk full...): the caller switches the output off.
        """
        self._raise_failure()
        if self._closed or self._failed is not None:
            return
        pts = max(0, round(pts_seconds * 1e9))
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + round(MIN_PTS_STEP_S * 1e9)
        self._last_pts = pts
        buffer = _to_buffer(canvas, self.width, self.height)
        buffer.pts = pts
        buffer.dts = pts
        buffer.duration = self._frame_duration
        if self._src.emit("push-buffer", buffer) == gst().FlowReturn.OK:
            self.frames += 1

    def close(self, timeout: float = 30.0) -> None:
        """EOS, wait for mp4mux to finish the file, then stop; OSError if the file could not be finished."""
        if self._closed:
            return
        self._closed = True
        Gst = gst()
        if self._failed is None:
            self._src.emit("end-of-stream")
            bus = self._pipeline.get_bus()
            message = bus.timed_pop_filtered(int(timeout * Gst.SECOND), Gst.MessageType.EOS | Gst.MessageType.ERROR)
            if message is None:
                self._failed = f"no EOS within {timeout:.0f} s; the file may be incomplete"
            elif message.type == Gst.MessageType.ERROR and self._failed is None:
                self._failed = message.parse_error()[0].message
        self._pipeline.set_state(Gst.State.NULL)
        self._pipeline.get_bus().set_sync_handler(None)
        self._raise_failure()


class RtspOutSink:
    """Re-stream canvases as H.264 over RTSP at rtsp://ADDRESS:PORT/MOUNT, from a GstRtspServer in this process.

    The server is attached to the *default* GLib main context: a GLib main loop must run on it (the streaming
    runner's does), or clients connect but get no answer. The factory is shared, so the encoder runs once
    per connected group of clients; with no client, `push` does nothing.
    """

    def __init__(
        self,
        port: int,
        address: str = "127.0.0.1",
        mount: str = "/annotated",
        *,
        width: int,
        height: int,
        fps_hint: int = 30,
        bitrate_kbps: int = 2000,
    ) -> None:
        require_elements("appsrc", "videoconvert", "x264enc", "rtph264pay")
        GstRtspServer = rtsp_server()
        if not mount.startswith("/"):
            raise ValueError(f"RTSP mount must start with '/': {mount!r}")
        self.address, self.mount = address, mount
        self.width, self.height = width, height
        self._lock = threading.Lock()
        self._appsrcs: dict[int, Any] = {}
        self._media_keys = itertools.count()
        self._closed = False
        frame_bytes = width * height * 3
        launch = (
            f"( appsrc name=src is-live=true format=time do-timestamp=true max-bytes={2 * frame_bytes} "
            f'leaky-type=downstream caps="{_rgb_caps(width, height, fps_hint)}" '
            "! videoconvert ! video/x-raw,format=I420 "
            f"! {_x264(bitrate_kbps, max(1, fps_hint), high_profile=False)} "
            "! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        )
        self._server = GstRtspServer.RTSPServer.new()
        self._server.set_address(address)
        self._server.set_service(str(port))
        # Clients get their own threads: a DESCRIBE blocks until the media has its first frame, and must not
        # block the runner's main loop meanwhile.
        self._server.get_thread_pool().set_max_threads(RTSP_CLIENT_THREADS)
        factory = GstRtspServer.RTSPMediaFactory.new()
        factory.set_launch(launch)
        factory.set_shared(True)
        factory.connect("media-configure", self._on_media_configure)
        self._server.get_mount_points().add_factory(mount, factory)
        self._source_id: int | None = self._server.attach(None)
        if not self._source_id:
            raise OSError(f"RTSP output: cannot listen on {address}:{port}")
        self.port: int = self._server.get_bound_port()

    @property
    def url(self) -> str:
        return f"rtsp://{self.address}:{self.port}{self.mount}"

    @property
    def clients(self) -> int:
        """Prepared medias (one per group of clients of the shared factory)."""
        with self._lock:
            return len(self._appsrcs)

    def _on_media_configure(self, factory: Any, media: Any) -> None:
        appsrc = media.get_element().get_by_name("src")
        key = next(self._media_keys)  # not id(media): Python wrappers come and go, their ids get reused
        with self._lock:
            if self._closed:
                return
            self._appsrcs[key] = appsrc
        media.connect("unprepared", self._on_unprepared, key)

    def _on_unprepared(self, media: Any, key: int) -> None:
        with self._lock:
            self._appsrcs.pop(key, None)

    def push(self, canvas: Frame) -> None:
        """Send a canvas to every connected client (timestamped on arrival); no client, no work."""
        with self._lock:
            targets = list(self._appsrcs.values())
        if not targets:
            return
        buffer = _to_buffer(canvas, self.width, self.height)
        for appsrc in targets:
            appsrc.emit("push-buffer", buffer)

    def close(self, timeout: float = 5.0) -> None:
        """Disconnect the clients, drop the medias and detach the server from the main context."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._appsrcs.clear()
        GLib = glib()
        context = GLib.MainContext.default()
        if context.acquire():  # no loop is running on it: tear down here
            try:
                self._teardown()
            finally:
                context.release()
            return
        done = threading.Event()

        def run() -> bool:
            try:
                self._teardown()
            finally:
                done.set()
            return False

        GLib.idle_add(run)
        if not done.wait(timeout):
            log.warning("RTSP output: the main loop did not run the teardown within %.0f s", timeout)

    def _teardown(self) -> None:
        GstRtspServer = rtsp_server()
        self._server.client_filter(lambda server, client: GstRtspServer.RTSPFilterResult.REMOVE)
        self._server.get_mount_points().remove_factory(self.mount)
        if self._source_id is not None:
            source = glib().MainContext.default().find_source_by_id(self._source_id)
            if source is not None:
                source.destroy()
            self._source_id = None


class _Timeline:
    """Output PTS from the cameras' own PTS: the furthest any camera has got, each anchored where it joined.

    A file played faster than real time keeps its real speed in the output. A camera whose PTS jump back
    (reconnect, loop) is re-anchored at the current output time.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self._offset: dict[str, float] = {}
        self._last: dict[str, float] = {}

    def advance(self, results: Sequence[FrameResult]) -> float:
        for result in results:
            last = self._last.get(result.stream)
            if last is None or result.pts < last:
                self._offset[result.stream] = self.now - result.pts
            self._last[result.stream] = result.pts
            self.now = max(self.now, result.pts + self._offset[result.stream])
        return self.now


class AnnotatedVideoSink:
    """A ResultSink drawing every camera's poses into one tiled canvas, to an MP4 file and/or an RTSP mount.

    Each `write` updates the cells of the cameras it carries; a canvas is composed and encoded when the
    output time has advanced by ~1/max_fps (or 0.5 s of wall time passed, so a stalled camera's neighbours
    still show up), i.e. never more than ~max_fps encodes per second of stream, however many cameras.
    """

    STALL_PUSH_S = 0.5
    name = "video"

    def __init__(
        self,
        camera_ids: Sequence[str],
        *,
        path: Path | str | None = None,
        rtsp_port: int | None = None,
        rtsp_address: str = "127.0.0.1",
        rtsp_mount: str = "/annotated",
        width: int = 1280,
        height: int = 720,
        bitrate_kbps: int = 4000,
        fps_of: Callable[[str], float] | None = None,
        failure_of: Callable[[str], str | None] | None = None,
        max_fps: int = 30,
    ) -> None:
        if path is None and rtsp_port is None:
            raise ValueError("AnnotatedVideoSink needs a file path, an RTSP port, or both")
        self.tiler = Tiler(camera_ids, width, height)
        self._fps_of = fps_of
        self._failure_of = failure_of
        self._min_step = 0.8 / max_fps
        self._timeline = _Timeline()
        self._last_pts: float | None = None
        self._last_wall = 0.0
        self.file: VideoFileSink | None = None
        self.rtsp: RtspOutSink | None = None
        if path is not None:
            self.file = VideoFileSink(path, width, height, fps_hint=max_fps, bitrate_kbps=bitrate_kbps)
        if rtsp_port is not None:
            try:
                self.rtsp = RtspOutSink(
                    rtsp_port,
                    rtsp_address,
                    rtsp_mount,
                    width=width,
                    height=height,
                    fps_hint=max_fps,
                    bitrate_kbps=bitrate_kbps,
                )
            except BaseException:
                if self.file is not None:
                    self.file.close()
                raise

    def write(self, results: list[FrameResult]) -> None:
        if not results:
            return
        for result in results:
            self.tiler.update(result)
        pts = self._timeline.advance(results)
        wall = time.monotonic()
        due = (
            self._last_pts is None
            or pts - self._last_pts >= self._min_step
            or wall - self._last_wall >= self.STALL_PUSH_S
        )
        if not due or (self.file is None and self.rtsp is not None and self.rtsp.clients == 0):
            return
        self._last_pts, self._last_wall = pts, wall
        canvas = self.tiler.compose(self._fps_of, self._failure_of)
        if self.file is not None:
            self.file.push(canvas, pts)
        if self.rtsp is not None:
            self.rtsp.push(canvas)

    def add_camera(self, camera_id: str) -> None:
        self.tiler.add_camera(camera_id)

    def remove_camera(self, camera_id: str) -> None:
        self.tiler.remove_camera(camera_id)

    def close(self) -> None:
        try:
            if self.file is not None:
                self.file.close()
        finally:
            if self.rtsp is not None:
                self.rtsp.close()
