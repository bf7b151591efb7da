"""The loopback RTSP test server, read by real rtspsrc clients: rate, size, looping, clean stop, CLI."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from blazestream.errors import InputError
from blazestream.rtsp_serve import RtspTestServer, serve_files

DATA = Path(__file__).resolve().parents[1] / "data"
MESSI = DATA / "messi_moves.mp4"  # 640x480, 25 fps, 10 s


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory, gst_module: Any) -> Path:
    """A 1 s clip (30 frames at 30 fps, 320x240 H.264 MP4): the loop boundary comes quickly."""
    from blazestream.gst import parse_launch

    Gst = gst_module
    path = tmp_path_factory.mktemp("clip") / "short.mp4"
    pipeline = parse_launch(
        "videotestsrc num-buffers=30 pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 "
        "! videoconvert ! video/x-raw,format=I420 ! x264enc speed-preset=ultrafast key-int-max=30 "
        "! h264parse ! mp4mux ! filesink name=file",
        "make-clip",
    )
    pipeline.get_by_name("file").set_property("location", str(path))
    pipeline.set_state(Gst.State.PLAYING)
    message = pipeline.get_bus().timed_pop_filtered(20 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    assert message is not None
    assert message.type == Gst.MessageType.EOS
    return path


def read_concurrently(read_rtsp: Callable[[str, float], Any], urls: list[str], seconds: float) -> list[Any]:
    results: list[Any] = [None] * len(urls)

    def run(i: int) -> None:
        results[i] = read_rtsp(urls[i], seconds)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(urls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.gst
@pytest.mark.timeout(60)
def test_two_mounts_of_one_file_deliver_at_the_source_rate(
    read_rtsp: Callable[[str, float], Any],
) -> None:
    server = serve_files([MESSI, MESSI], port=0, mounts=["left", "/right"])
    port = server.port
    try:
        assert server.urls == [f"rtsp://127.0.0.1:{port}/left", f"rtsp://127.0.0.1:{port}/right"]
        seen = read_concurrently(read_rtsp, server.urls, 5.0)
    finally:
        start = time.monotonic()
        server.stop()
        stop_s = time.monotonic() - start
    for read in seen:
        assert (read.width, read.height) == (640, 480)
        assert len(read.times) >= 50, len(read.times)  # ~4 s of 25 fps after a <= 1 s start
        assert 18 <= read.fps <= 32, read.fps  # paced in real time, not as fast as possible
    assert stop_s < 3
    assert refused(port)


@pytest.mark.gst
@pytest.mark.timeout(60)
def test_the_file_loops_without_a_gap(short_clip: Path, read_rtsp: Callable[[str, float], Any]) -> None:
    with RtspTestServer([short_clip], port=0) as server:
        seen = read_rtsp(server.urls[0], 4.0)
        loops = server.reader(short_clip).loops
    assert loops >= 2  # crossed the end of the 1 s clip at least twice while the client read
    assert (seen.width, seen.height) == (320, 240)
    assert len(seen.times) >= 60, len(seen.times)
    assert 24 <= seen.fps <= 36, seen.fps
    assert seen.max_gap < 0.4, seen.max_gap  # no stall at the loop boundary


@pytest.mark.gst
@pytest.mark.timeout(30)
def test_bad_arguments_are_clear(tmp_path: Path, gst_module: Any) -> None:
    with pytest.raises(InputError, match="no such file"):
        RtspTestServer([tmp_path / "missing.mp4"], port=0)
    with pytest.raises(ValueError, match="mount name"):
        RtspTestServer([MESSI], port=0, mounts=["a", "b"])
    not_video = tmp_path / "notes.txt"
    not_video.write_text("hello\n" * 100)
    with pytest.raises(InputError, match=r"notes\.txt"):
        serve_files([not_video], port=0)


@pytest.mark.gst
@pytest.mark.timeout(60)
def test_command_line_prints_urls_and_exits_0_on_sigterm(
    short_clip: Path, free_port: int, read_rtsp: Callable[[str, float], Any]
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "blazestream.rtsp_serve", str(short_clip), "--port", str(free_port), "--mount", "x"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == f"rtsp://127.0.0.1:{free_port}/x"
        assert len(read_rtsp(line, 2.0).times) >= 20
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert refused(free_port)
