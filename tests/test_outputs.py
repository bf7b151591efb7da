"""Outputs against real components: files, an HTTP scrape, a mosquitto broker, x264/mp4mux, an RTSP client."""

from __future__ import annotations

import json
import logging
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from blazestream.outputs.jsonl import JsonlSink
from blazestream.outputs.metrics import Metrics
from blazestream.outputs.mqtt import MqttSink, parse_mqtt_url
from blazestream.outputs.video import AnnotatedVideoSink, RtspOutSink, Tiler, VideoFileSink
from blazestream.pose.skeleton import NUM_LANDMARKS
from blazestream.pose.types import Pose
from blazestream.results import FrameResult


def make_pose(cx: float = 0.5, cy: float = 0.5, track_id: int | None = 1) -> Pose:
    rng = np.random.default_rng(track_id or 0)
    landmarks = np.column_stack(
        [
            cx + rng.uniform(-0.15, 0.15, NUM_LANDMARKS),
            cy + rng.uniform(-0.3, 0.3, NUM_LANDMARKS),
            rng.uniform(-0.2, 0.2, NUM_LANDMARKS),
            np.full(NUM_LANDMARKS, 0.9),
            np.full(NUM_LANDMARKS, 0.95),
        ]
    )
    return Pose.from_rows(
        score=0.9,
        presence=0.99,
        roi=(cx, cy, 0.4, 0.4 * 4 / 3, 0.1),
        landmarks=landmarks,
        world_landmarks=rng.uniform(-0.5, 0.5, (NUM_LANDMARKS, 3)),
        track_id=track_id,
    )


def make_result(
    stream: str = "cam0",
    frame: int = 0,
    *,
    fps: float = 25.0,
    size: tuple[int, int] = (320, 240),
    image: bool = False,
    poses: int = 1,
    arrived: float | None = None,
) -> FrameResult:
    width, height = size
    pixels = None
    if image:
        pixels = np.zeros((height, width, 3), np.uint8)
        pixels[:, :, 1] = (frame * 7) % 256
        pixels[height // 4 : height // 2, width // 4 : width // 2] = 200
    return FrameResult(
        stream=stream,
        frame=frame,
        pts=frame / fps,
        width=width,
        height=height,
        poses=tuple(make_pose(0.3 + 0.4 * i, 0.5, i + 1) for i in range(poses)),
        image=pixels,
        arrived=time.monotonic() if arrived is None else arrived,
    )


def compact(result: FrameResult) -> str:
    return json.dumps(result.to_json(), separators=(",", ":"))


# ---------------------------------------------------------------- JSON Lines


@pytest.mark.timeout(10)
def test_jsonl_writes_one_compact_record_per_result_and_flushes(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "out.jsonl"
    sink = JsonlSink(path)
    first = [make_result("cam0", 0), make_result("cam1", 0, poses=0)]
    sink.write(first)
    # flushed: readable before close
    lines = path.read_text().splitlines()
    assert lines == [compact(r) for r in first]
    sink.write([make_result("cam0", 1, poses=2)])
    sink.close()
    sink.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    record = json.loads(lines[2])
    assert record["stream"] == "cam0"
    assert record["frame"] == 1
    assert len(record["poses"]) == 2
    assert ", " not in lines[0]
    assert ": " not in lines[0]
    # opened for writing, not appending
    JsonlSink(path).close()
    assert path.read_text() == ""


@pytest.mark.timeout(10)
def test_jsonl_dash_is_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    sink = JsonlSink("-")
    result = make_result()
    sink.write([result])
    sink.close()
    assert capsys.readouterr().out == compact(result) + "\n"


# ---------------------------------------------------------------- metrics


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def sample(text: str, name: str, camera: str, extra: str = "") -> float:
    labels = f'camera="{camera}"' + (f",{extra}" if extra else "")
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.MULTILINE)
    assert match is not None, f"{name}{{{labels}}} not in the scrape:\n{text}"
    return float(match.group(1))


@pytest.mark.timeout(20)
def test_metrics_scraped_over_http_match_what_was_written() -> None:
    metrics = Metrics(cameras=["cam1"])
    other = Metrics()  # a second registry in the same process must not clash
    server = metrics.serve(0)
    port = server.server_port
    try:
        for _ in range(5):
            metrics.frame_in("cam0")
        metrics.frames_dropped("cam0", 2)
        metrics.reconnect("cam0")
        metrics.camera_up("cam0", True)
        metrics.camera_up("cam1", False)
        now = time.monotonic()
        metrics.write([make_result("cam0", i, poses=2, arrived=now - 0.02) for i in range(2)])
        time.sleep(0.05)
        metrics.write([make_result("cam0", 2, poses=3, arrived=time.monotonic() - 0.3)])
        other.frame_in("cam0")

        text = scrape(port)
        assert sample(text, "blazestream_frames_in_total", "cam0") == 5
        assert sample(text, "blazestream_frames_processed_total", "cam0") == 3
        assert sample(text, "blazestream_frames_dropped_total", "cam0") == 2
        assert sample(text, "blazestream_reconnects_total", "cam0") == 1
        assert sample(text, "blazestream_camera_up", "cam0") == 1
        assert sample(text, "blazestream_camera_up", "cam1") == 0
        assert sample(text, "blazestream_poses", "cam0") == 3
        assert sample(text, "blazestream_latency_seconds_count", "cam0") == 3
        assert sample(text, "blazestream_latency_seconds_bucket", "cam0", 'le="0.005"') == 0
        assert sample(text, "blazestream_latency_seconds_bucket", "cam0", 'le="0.05"') == 2
        assert sample(text, "blazestream_latency_seconds_bucket", "cam0", 'le="0.5"') == 3
        assert 0.3 < sample(text, "blazestream_latency_seconds_sum", "cam0") < 0.5
        assert sample(text, "blazestream_fps", "cam0") > 0
        assert metrics.fps("cam0") > 0
        # a camera declared up front is exported before its first frame
        assert sample(text, "blazestream_frames_processed_total", "cam1") == 0
        assert metrics.fps("nobody") == 0.0
    finally:
        metrics.close()
    with pytest.raises(urllib.error.URLError):
        scrape(port)


@pytest.mark.timeout(10)
def test_metrics_fps_follows_the_processed_rate() -> None:
    metrics = Metrics()
    start = time.monotonic()
    frame = 0
    while time.monotonic() - start < 1.0:
        metrics.write([make_result("cam0", frame)])
        frame += 1
        time.sleep(0.02)
    rate = frame / (time.monotonic() - start)
    assert metrics.fps("cam0") == pytest.approx(rate, rel=0.2)


# ---------------------------------------------------------------- MQTT


@pytest.mark.timeout(10)
def test_mqtt_url_parsing() -> None:
    assert parse_mqtt_url("mqtt://broker") == ("broker", 1883, None, None)
    assert parse_mqtt_url("mqtt://u:p%40ss@10.0.0.2:1884") == ("10.0.0.2", 1884, "u", "p@ss")
    for bad in ("http://broker", "mqtt://", "mqtt://host:notaport", "broker:1883", "mqtt://h/topic"):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            MqttSink(bad)


@pytest.mark.timeout(30)
def test_mqtt_publishes_one_message_per_result_on_the_camera_topic(mosquitto: str) -> None:
    import paho.mqtt.client as mqtt

    host, port, _, _ = parse_mqtt_url(mosquitto)
    received: list[tuple[str, str]] = []
    subscribed = threading.Event()
    got_all = threading.Event()
    results = [make_result(cam, i) for i in range(5) for cam in ("cam0", "cam1")]

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        received.append((message.topic, message.payload.decode()))
        if len(received) >= len(results):
            got_all.set()

    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    subscriber.on_message = on_message
    subscriber.on_subscribe = lambda *args: subscribed.set()
    subscriber.on_connect = lambda client, *args: client.subscribe("test/#", qos=1)
    subscriber.connect(host, port)
    subscriber.loop_start()
    try:
        assert subscribed.wait(5), "the subscriber did not subscribe"
        sink = MqttSink(mosquitto, topic_prefix="test/", qos=1, client_id="blazestream-test")
        deadline = time.monotonic() + 5
        while not sink.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sink.connected
        sink.write(results[:4])
        sink.write(results[4:])
        sink.close()
        assert got_all.wait(5), f"received {len(received)} of {len(results)}"
    finally:
        subscriber.loop_stop()
        subscriber.disconnect()
    assert sorted(received) == sorted((f"test/{r.stream}", compact(r)) for r in results)
    # per camera, in order
    cam0 = [json.loads(p)["frame"] for t, p in received if t == "test/cam0"]
    assert cam0 == list(range(5))


@pytest.mark.timeout(20)
def test_mqtt_without_broker_never_blocks(free_port: int, caplog: pytest.LogCaptureFixture) -> None:
    sink = MqttSink(f"mqtt://127.0.0.1:{free_port}", qos=1)
    writer = threading.Thread(target=lambda: [sink.write([make_result("cam0", i)]) for i in range(200)])
    writer.start()
    writer.join(timeout=10)  # a deadlock guard, not a speed test: write only queues
    assert not writer.is_alive(), "write blocked while the broker is down"

    def mqtt_warnings() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "blazestream.outputs.mqtt" and r.levelname == "WARNING"]

    deadline = time.monotonic() + 10
    while not mqtt_warnings() and time.monotonic() < deadline:  # the event: paho's first failed attempt
        time.sleep(0.05)
    assert not sink.connected
    closer = threading.Thread(target=sink.close)
    closer.start()
    closer.join(timeout=15)
    assert not closer.is_alive(), "close() gives up on unacknowledged messages"
    warnings = mqtt_warnings()
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert f"127.0.0.1:{free_port}" in warnings[0].getMessage()


# ---------------------------------------------------------------- tiling


@pytest.mark.timeout(10)
def test_tiler_grid_letterbox_poses_and_waiting_cells() -> None:
    background = np.array([24, 24, 24], np.uint8)
    tiler = Tiler(["a", "b", "c"], 640, 480)
    assert (tiler.cols, tiler.rows, tiler.cell_width, tiler.cell_height) == (2, 2, 320, 240)
    assert tiler.fit(1280, 720) == (320, 180)  # 16:9 in a 4:3 cell: full width, bars above and below
    blank = tiler.compose(lambda cam: 12.5).copy()  # compose reuses its canvas
    assert blank.shape == (480, 640, 3)
    assert blank.dtype == np.uint8
    for x0, y0 in ((0, 0), (320, 0), (0, 240)):  # dark cells with their id and "waiting"
        cell = blank[y0 : y0 + 240, x0 : x0 + 320]
        assert cell.max() > 100
        assert np.median(cell) == 24
    assert (blank[240:, 320:] == background).all()  # no 4th camera

    image = np.full((720, 1280, 3), 255, np.uint8)
    tiler.update(FrameResult(**{**make_result("a", 0, size=(1280, 720)).__dict__, "image": image}))
    tiler.update(make_result("b", 0, size=(320, 240), poses=0, image=True))
    tiler.update(make_result("zzz", 0))  # not in the layout: ignored
    canvas = tiler.compose(lambda cam: 12.5)
    cell_a = canvas[:240, :320]
    assert (cell_a[5:25, 250:320] == background).all()  # top letterbox bar (right of the label)
    assert (cell_a[215:240] == background).all()  # bottom bar
    frame_area = cell_a[30:210]
    assert (frame_area == 255).all(axis=-1).mean() > 0.5  # the white frame, scaled into the cell...
    colours = {tuple(int(c) for c in px) for px in frame_area.reshape(-1, 3)}
    assert (255, 120, 0) in colours  # ...with track 1's skeleton drawn on it
    cell_b = canvas[:240, 320:]
    assert (cell_b[100:110, 100:150] == (200, 200, 200)).all()  # b's own image, unscaled
    np.testing.assert_array_equal(canvas[240:], blank[240:])  # c still waiting


@pytest.mark.timeout(10)
def test_a_failed_camera_cell_says_why() -> None:
    """A camera that gave up shows "failed" and its reason (cut to the cell) where a waiting one says "waiting"."""
    tiler = Tiler(["a", "b", "c"], 640, 480)
    tiler.update(make_result("b", 0, size=(320, 240), poses=0, image=True))
    reason = "no such file: /srv/cameras/" + "very-long-directory-name/" * 6 + "entrance.mp4"
    failures = {"a": reason, "b": "the stream ended with an error"}
    canvas = tiler.compose(lambda cam: 12.5, failures.get)

    def reddish(cell: np.ndarray) -> int:
        r, b = cell[..., 0].astype(int), cell[..., 2].astype(int)
        return int(((r > 180) & (r - b > 80)).sum())

    assert reddish(canvas[40:240, :320]) > 50, "a: failed, in the failure colour"
    assert reddish(canvas[240:, :320]) == 0, "c: still waiting, grey"
    assert reddish(canvas[40:240, 320:]) == 0, "b's own picture is kept under its label"
    fitted = tiler._fit_text(reason)
    assert fitted.endswith("...")
    assert fitted.startswith("no such file: /srv/cameras/")
    import cv2

    assert cv2.getTextSize(fitted, cv2.FONT_HERSHEY_SIMPLEX, tiler._font_scale, tiler._thickness)[0][0] <= 320
    assert tiler._fit_text("short") == "short"


# ---------------------------------------------------------------- video file


def count_mp4_frames(gst: Any, path: Path) -> tuple[int, str, list[int]]:
    """Decode the MP4 with GStreamer; return (frames, h264parse caps, decoded PTS in ns)."""
    from blazestream.gst import parse_launch

    pipeline = parse_launch(
        "filesrc name=file ! qtdemux ! h264parse name=parse ! avdec_h264 ! fakesink name=sink", "count"
    )
    pipeline.get_by_name("file").set_property("location", str(path))
    pts: list[int] = []

    def on_buffer(pad: Any, info: Any) -> Any:
        pts.append(info.get_buffer().pts)
        return gst.PadProbeReturn.OK

    pipeline.get_by_name("sink").get_static_pad("sink").add_probe(gst.PadProbeType.BUFFER, on_buffer)
    pipeline.set_state(gst.State.PLAYING)
    message = pipeline.get_bus().timed_pop_filtered(20 * gst.SECOND, gst.MessageType.EOS | gst.MessageType.ERROR)
    caps = pipeline.get_by_name("parse").get_static_pad("src").get_current_caps()
    pipeline.set_state(gst.State.NULL)
    assert message is not None
    assert message.type == gst.MessageType.EOS, message.parse_error()
    return len(pts), caps.to_string(), pts


def top_level_boxes(path: Path) -> list[str]:
    boxes = []
    with path.open("rb") as f:
        while header := f.read(8):
            size, kind = struct.unpack(">I4s", header)
            if size == 1:
                size = struct.unpack(">Q", f.read(8))[0] - 8
            boxes.append(kind.decode("latin1"))
            if size < 8:
                break
            f.seek(size - 8, 1)
    return boxes


@pytest.mark.gst
@pytest.mark.timeout(60)
def test_video_file_is_a_regular_h264_mp4_with_every_frame(gst_module: Any, tmp_path: Path) -> None:
    path = tmp_path / "sub" / "out.mp4"
    sink = VideoFileSink(path, 320, 240, fps_hint=25)
    pushed = 40
    for i in range(pushed):
        canvas = np.zeros((240, 320, 3), np.uint8)
        canvas[:, : (i * 8) % 320, 0] = 255
        sink.push(canvas, 0.0 if i == 10 else i / 25)  # one non-increasing PTS: fixed up, not dropped
    sink.close()
    frames, caps, pts = count_mp4_frames(gst_module, path)
    assert frames == pushed
    assert pts == sorted(pts)
    assert len(set(pts)) == pushed
    assert pts[-1] == pytest.approx(39 / 25 * 1e9, abs=1e6)
    assert re.search(r"profile=\(string\)(high|main)\b", caps), caps
    assert "chroma-format=(string)4:2:0" in caps
    assert "width=(int)320" in caps
    assert "height=(int)240" in caps
    boxes = top_level_boxes(path)
    assert "moov" in boxes, boxes
    assert "moof" not in boxes, boxes  # finalised: a regular, non-fragmented MP4


@pytest.mark.gst
@pytest.mark.timeout(60)
def test_video_file_survives_an_unclean_stop(gst_module: Any, tmp_path: Path) -> None:
    path = tmp_path / "crash.mp4"
    script = (
        "import os, sys, time, numpy as np\n"
        "from blazestream.outputs.video import VideoFileSink\n"
        f"sink = VideoFileSink({str(path)!r}, 160, 120, fps_hint=25)\n"
        "for i in range(75):\n"
        "    sink.push(np.full((120, 160, 3), i, np.uint8), i / 25)\n"
        "time.sleep(1.5)\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=40)
    frames, _, _ = count_mp4_frames(gst_module, path)
    assert frames >= 25  # at least the first 1 s fragment


@pytest.mark.gst
@pytest.mark.timeout(60)
def test_annotated_video_sink_tiles_cameras_into_the_file(gst_module: Any, tmp_path: Path) -> None:
    path = tmp_path / "annotated.mp4"
    sink = AnnotatedVideoSink(
        ["cam0", "cam1"], path=path, width=640, height=360, bitrate_kbps=1000, fps_of=lambda cam: 25.0
    )
    for i in range(25):  # 1 s of two 25 fps cameras
        sink.write([make_result("cam0", i, image=True), make_result("cam1", i, image=True, size=(160, 120))])
    sink.close()
    frames, caps, pts = count_mp4_frames(gst_module, path)
    assert frames == 25  # one canvas per write
    assert "width=(int)640" in caps
    assert "height=(int)360" in caps
    assert pts[-1] == pytest.approx(24 / 25 * 1e9, abs=2e6)  # the cameras' own timeline: real speed
    assert sink.file is not None
    assert sink.file.frames == 25


# ---------------------------------------------------------------- RTSP output


@pytest.fixture
def main_loop(gst_module: Any) -> Iterator[Any]:
    """The runner's situation: a GLib main loop on the default context, in another thread."""
    from blazestream.gst import glib

    loop = glib().MainLoop()
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    yield loop
    loop.quit()
    thread.join(5)


@pytest.mark.gst
@pytest.mark.timeout(60)
def test_rtsp_output_is_readable_by_rtspsrc(
    main_loop: Any, free_port: int, read_rtsp: Callable[[str, float], Any]
) -> None:
    sink = RtspOutSink(free_port, width=320, height=240)
    assert sink.url == f"rtsp://127.0.0.1:{free_port}/annotated"
    sink.push(np.zeros((240, 320, 3), np.uint8))  # no client: nothing to do
    assert sink.clients == 0
    stop = threading.Event()

    def pusher() -> None:
        i = 0
        while not stop.is_set():
            frame = np.zeros((240, 320, 3), np.uint8)
            frame[:, : i % 320] = 200
            sink.push(frame)
            i += 4
            time.sleep(1 / 30)

    thread = threading.Thread(target=pusher)
    thread.start()
    try:
        seen = read_rtsp(sink.url, 3.0)
        assert len(seen.times) >= 20, len(seen.times)
        assert (seen.width, seen.height) == (320, 240)
        deadline = time.monotonic() + 5
        while sink.clients and time.monotonic() < deadline:  # the client left: its media is dropped
            time.sleep(0.05)
        assert sink.clients == 0
        seen_again = read_rtsp(sink.url, 3.0)  # a new client gets a new media (as long to set up as the first)
        assert len(seen_again.times) >= 10
    finally:
        stop.set()
        thread.join()
    start = time.monotonic()
    sink.close()
    assert time.monotonic() - start < 2
    with pytest.raises(ConnectionRefusedError):  # no longer listening
        socket.create_connection(("127.0.0.1", free_port), timeout=1)
