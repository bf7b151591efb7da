"""A loopback RTSP server that serves video files looped forever, paced in real time: stand-in IP cameras.

Each distinct file is decoded and encoded once by a private reader pipeline (x264 with 1 s keyframes, so
any input format works and clients start within a second), paced by its appsink's clock sync. A thread
pulls the access units, seeks back to 0 at EOS and pushes them, re-timestamped with the running time of
each RTSP media, into the appsrc of every prepared media of the mounts serving that file. Looping inside the
RTSP media would send RTP timestamps backwards; re-timestamping keeps them monotonic across the loop.

    python -m blazestream.rtsp_serve data/messi_moves.mp4 data/vtest.avi --port 8554
"""

from __future__ import annotations

import argparse
import itertools
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from blazestream.errors import BlazestreamError, InputError
from blazestream.gst import glib, gst, parse_launch, require_elements, rtsp_server

log = logging.getLogger(__name__)

CLIENT_THREADS = 16

START_TIMEOUT_S = 20.0
"""How long a reader may take to produce its first access unit (decoder and encoder start-up)."""


@dataclass
class _Target:
    appsrc: Any
    synced: bool = False
    """False until the first keyframe was pushed: clients must start decoding at an IDR."""


def probe_frame_rate(path: Path, timeout: float = START_TIMEOUT_S) -> float:
    """The file's video frame rate (30 if it declares none), read by prerolling a decoder.

    Needed before the encoder is built: x264enc ignores `key-int-max` once it is past READY.
    """
    Gst = gst()
    pipeline = parse_launch("filesrc name=file ! decodebin ! video/x-raw ! fakesink name=sink", f"probe-{path.name}")
    pipeline.get_by_name("file").set_property("location", str(path))
    try:
        pipeline.set_state(Gst.State.PAUSED)
        message = pipeline.get_bus().timed_pop_filtered(
            int(timeout * Gst.SECOND), Gst.MessageType.ASYNC_DONE | Gst.MessageType.ERROR
        )
        if message is None or message.type == Gst.MessageType.ERROR:
            why = message.parse_error()[0].message if message is not None else "timed out"
            raise InputError(f"{path}: not a video file GStreamer can decode ({why})")
        caps = pipeline.get_by_name("sink").get_static_pad("sink").get_current_caps()
        ok, num, den = caps.get_structure(0).get_fraction("framerate")
        return num / den if ok and num > 0 and den > 0 else 30.0
    finally:
        pipeline.set_state(Gst.State.NULL)


class _FileReader:
    """One file -> H.264 access units at real-time pace, looped; fans them out to the registered appsrcs."""

    def __init__(self, path: Path, bitrate_kbps: int) -> None:
        self.path = path
        self.fps = probe_frame_rate(path)
        self.caps: Any = None
        self._lock = threading.Lock()
        self._targets: dict[int, _Target] = {}
        self._stop = threading.Event()
        self._first = threading.Event()
        self._error: str | None = None
        self.loops = 0
        self.access_units = 0
        self._pipeline = parse_launch(
            "filesrc name=file ! decodebin ! videoconvert ! video/x-raw,format=I420 "
            "! x264enc tune=zerolatency speed-preset=ultrafast "
            f"key-int-max={max(1, round(self.fps))} bitrate={bitrate_kbps} "
            "! h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au "
            "! appsink name=sink sync=true max-buffers=4 drop=false emit-signals=false",
            f"rtsp-serve-{path.name}",
        )
        self._pipeline.get_by_name("file").set_property("location", str(path))
        self._sink = self._pipeline.get_by_name("sink")
        self._thread = threading.Thread(target=self._run, name=f"rtsp-serve-{path.name}", daemon=True)

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        Gst = gst()
        if self._pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            self._pipeline.set_state(Gst.State.NULL)
            raise InputError(f"{self.path}: cannot start reading it: {self._bus_error() or 'unknown error'}")
        self._thread.start()
        if not self._first.wait(timeout) or self.caps is None:
            self.stop()
            raise InputError(f"{self.path}: no video decoded within {timeout:.0f} s: {self._error or 'no frames'}")

    def _bus_error(self) -> str | None:
        """Drain the bus (every loop's seek posts messages; left there they pile up) and return the first error."""
        bus, error_type = self._pipeline.get_bus(), gst().MessageType.ERROR
        found = None
        while (message := bus.pop()) is not None:
            if message.type == error_type and found is None:
                error, debug = message.parse_error()
                found = f"{error.message} ({debug})"
        return found

    def add(self, key: int, appsrc: Any) -> None:
        with self._lock:
            self._targets[key] = _Target(appsrc)

    def remove(self, key: int) -> None:
        with self._lock:
            self._targets.pop(key, None)

    def _run(self) -> None:
        Gst = gst()
        flags = Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT
        while not self._stop.is_set():
            error = self._bus_error()
            if error is not None:
                self._error = error
                log.error("%s: %s", self.path, error)
                self._first.set()
                if self.caps is None:
                    return
                self._stop.wait(1.0)  # a transient error (it played before): restart from 0
                self._pipeline.set_state(Gst.State.NULL)
                self._pipeline.set_state(Gst.State.PLAYING)
                continue
            sample = self._sink.emit("try-pull-sample", 100 * Gst.MSECOND)
            if sample is None:
                if self._sink.is_eos():
                    self.loops += 1
                    if not self._pipeline.seek_simple(Gst.Format.TIME, flags, 0):
                        log.warning("%s: seek to 0 failed; restarting the reader", self.path)
                        self._pipeline.set_state(Gst.State.NULL)
                        self._pipeline.set_state(Gst.State.PLAYING)
                continue
            if self.caps is None:
                self.caps = sample.get_caps()
                self._first.set()
            self.access_units += 1
            self._fan_out(sample.get_buffer())

    def _fan_out(self, buffer: Any) -> None:
        Gst = gst()
        keyframe = not buffer.has_flags(Gst.BufferFlags.DELTA_UNIT)
        with self._lock:
            targets = list(self._targets.values())
        for target in targets:
            if not target.synced and not keyframe:
                continue
            clock = target.appsrc.get_clock()
            if clock is None:  # media not playing yet
                continue
            out = buffer.copy()  # shallow: shares the memory, own timestamps
            out.pts = out.dts = max(0, clock.get_time() - target.appsrc.get_base_time())
            out.duration = Gst.CLOCK_TIME_NONE
            target.synced = True
            target.appsrc.emit("push-buffer", out)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._pipeline.set_state(gst().State.NULL)


class RtspTestServer:
    """Serve files at rtsp://ADDRESS:PORT/MOUNT, each looped forever, from a GLib main loop in its own thread.

    `port=0` picks a free port (see `.port`). Use as a context manager, or call `start()` and `stop()`.
    """

    def __init__(
        self,
        files: Sequence[Path | str],
        port: int = 8554,
        address: str = "127.0.0.1",
        mounts: Sequence[str] | None = None,
        bitrate_kbps: int = 2000,
    ) -> None:
        if not files:
            raise ValueError("RtspTestServer needs at least one file")
        names = list(mounts) if mounts is not None else [f"cam{i}" for i in range(len(files))]
        if len(names) != len(files):
            raise ValueError(f"{len(files)} file(s) but {len(names)} mount name(s)")
        self.mounts = ["/" + name.strip("/") for name in names]
        if len(set(self.mounts)) != len(self.mounts) or any(m == "/" for m in self.mounts):
            raise ValueError(f"mount names must be unique and not empty: {names}")
        self.files = [Path(f) for f in files]
        for path in self.files:
            if not path.is_file():
                raise InputError(f"{path}: no such file")
        self.address = address
        self.port = port
        self._bitrate = bitrate_kbps
        self._readers: dict[Path, _FileReader] = {}
        self._context: Any = None
        self._loop: Any = None
        self._server: Any = None
        self._source_id: int | None = None
        self._thread: threading.Thread | None = None
        self._media_keys = itertools.count()

    @property
    def urls(self) -> list[str]:
        return [f"rtsp://{self.address}:{self.port}{mount}" for mount in self.mounts]

    def reader(self, file: Path | str) -> _FileReader:
        return self._readers[Path(file).resolve()]

    def start(self) -> RtspTestServer:
        """Start the readers (waiting for their first frame), then listen."""
        require_elements("filesrc", "decodebin", "videoconvert", "x264enc", "h264parse", "appsink", "appsrc")
        GLib, GstRtspServer = glib(), rtsp_server()
        try:
            for path in self.files:
                key = path.resolve()
                if key not in self._readers:
                    self._readers[key] = _FileReader(path, self._bitrate)
                    self._readers[key].start()
            self._context = GLib.MainContext.new()
            self._loop = GLib.MainLoop.new(self._context, False)
            self._server = GstRtspServer.RTSPServer.new()
            self._server.set_address(self.address)
            self._server.set_service(str(self.port))
            # One thread per client: a DESCRIBE waits up to a keyframe (1 s) for its media; not for the others'.
            self._server.get_thread_pool().set_max_threads(CLIENT_THREADS)
            mount_points = self._server.get_mount_points()
            for path, mount in zip(self.files, self.mounts, strict=True):
                reader = self._readers[path.resolve()]
                factory = GstRtspServer.RTSPMediaFactory.new()
                factory.set_launch(
                    "( appsrc name=src is-live=true format=time do-timestamp=false "
                    f'max-bytes=4000000 leaky-type=downstream caps="{reader.caps.to_string()}" '
                    "! rtph264pay name=pay0 pt=96 config-interval=-1 )"
                )
                factory.set_shared(True)
                factory.connect("media-configure", self._on_media_configure, reader)
                mount_points.add_factory(mount, factory)
            self._source_id = self._server.attach(self._context)
            if not self._source_id:
                raise OSError(f"cannot listen on {self.address}:{self.port}")
            self.port = self._server.get_bound_port()
        except BaseException:
            self.stop()
            raise
        self._thread = threading.Thread(target=self._loop.run, name="rtsp-serve-loop", daemon=True)
        self._thread.start()
        return self

    def _on_media_configure(self, factory: Any, media: Any, reader: _FileReader) -> None:
        appsrc = media.get_element().get_by_name("src")
        key = next(self._media_keys)  # not id(media): Python wrappers come and go, their ids get reused
        reader.add(key, appsrc)
        media.connect("unprepared", lambda _media: reader.remove(key))

    def stop(self, timeout: float = 5.0) -> None:
        """Drop the clients, stop listening, stop the loop and the readers. Safe to call twice."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            GLib, GstRtspServer = glib(), rtsp_server()
            server, loop, source_id, context = self._server, self._loop, self._source_id, self._context

            def teardown(*_args: Any) -> bool:
                server.client_filter(lambda _server, _client: GstRtspServer.RTSPFilterResult.REMOVE)
                if source_id:
                    source = context.find_source_by_id(source_id)
                    if source is not None:
                        source.destroy()
                loop.quit()
                return False

            idle = GLib.idle_source_new()
            idle.set_callback(teardown)
            idle.attach(context)
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("RTSP test server: the main loop did not stop within %.0f s", timeout)
                loop.quit()
        elif self._source_id and self._context is not None:
            source = self._context.find_source_by_id(self._source_id)
            if source is not None:
                source.destroy()
        self._source_id = None
        self._thread = None
        for reader in self._readers.values():
            reader.stop()
        self._readers.clear()

    def __enter__(self) -> RtspTestServer:
        return self.start() if self._thread is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve_files(
    files: Sequence[Path | str],
    port: int = 8554,
    address: str = "127.0.0.1",
    mounts: Sequence[str] | None = None,
) -> RtspTestServer:
    """Start an `RtspTestServer` (already serving when this returns); call `.stop()` when done."""
    return RtspTestServer(files, port, address, mounts).start()


def run_until_signalled(
    files: Sequence[Path | str],
    port: int = 8554,
    address: str = "127.0.0.1",
    mounts: Sequence[str] | None = None,
) -> int:
    """Serve in the foreground, print one URL per mount, return 0 on SIGINT/SIGTERM."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server = serve_files(files, port, address, mounts)
        try:
            for url in server.urls:
                print(url, flush=True)
            while not stop.wait(0.5):
                pass
        finally:
            server.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m blazestream.rtsp_serve",
        description="Serve video files over RTSP on loopback, each looped forever in real time, at /cam0, /cam1, ...",
    )
    parser.add_argument("files", nargs="+", type=Path, help="video files (any format GStreamer decodes)")
    parser.add_argument("--port", type=int, default=8554, help="RTSP port (0: a free one)")
    parser.add_argument("--address", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--mount", action="append", dest="mounts", metavar="NAME", help="mount name per file, in order")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run_until_signalled(args.files, args.port, args.address, args.mounts)
    except (BlazestreamError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
