"""`blazestream run` on file sources through the real GStreamer graph: every frame, bad sources, SIGINT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import DATA_DIR

pytestmark = [pytest.mark.gst, pytest.mark.slow]

CLIP = DATA_DIR / "messi_moves.mp4"
CLIP_FRAMES = 250


def _cmd(models_dir: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "BLAZESTREAM_MODELS": str(models_dir), "PYTHONUNBUFFERED": "1"}
    return [sys.executable, "-m", "blazestream", "run", *args], env


def _run(models_dir: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    cmd, env = _cmd(models_dir, *args)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def _records(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.timeout(300)
def test_file_sources_process_every_frame(models_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "poses.jsonl"
    done = _run(models_dir, "--source", str(CLIP), "--source", f"side={CLIP}", "--jsonl", str(out))
    assert done.returncode == 0, done.stderr
    records = _records(out)
    by_stream: dict[str, list[int]] = {}
    for r in records:
        by_stream.setdefault(r["stream"], []).append(r["frame"])
    assert set(by_stream) == {"cam0", "side"}
    for frames in by_stream.values():
        assert frames == list(range(CLIP_FRAMES)), "every frame, once, in order"
    first = records[0]
    assert set(first) == {"stream", "frame", "pts", "width", "height", "poses"}
    assert (first["width"], first["height"]) == (640, 480)
    with_pose = [r for r in records if r["poses"]]
    assert len(with_pose) >= 0.95 * len(records), "a person is in every frame of the clip"
    pose = with_pose[-1]["poses"][0]
    assert isinstance(pose["track_id"], int)
    assert len(pose["landmarks"]) == 33
    pts = [r["pts"] for r in records if r["stream"] == "cam0"]
    assert pts == sorted(pts)
    assert pts[-1] - pts[0] == pytest.approx(9.96, abs=0.1), "pts in seconds of the clip"


@pytest.mark.timeout(300)
def test_lanes_change_the_schedule_not_the_poses(models_dir: Path, tmp_path: Path) -> None:
    """Three cameras in two lanes (2 + 1) give each camera exactly the poses one batch of all three gives:
    tracking is per camera, and a crop's landmarks do not depend on the batch it ran in."""
    per_lanes: dict[int, dict[str, list[str]]] = {}
    for lanes in (1, 2):
        config, out = tmp_path / f"lanes{lanes}.yaml", tmp_path / f"lanes{lanes}.jsonl"
        config.write_text(f"batch:\n  lanes: {lanes}\n")
        sources = [arg for name in ("a", "b", "c") for arg in ("--source", f"{name}={CLIP}")]
        done = _run(models_dir, str(config), *sources, "--jsonl", str(out))
        assert done.returncode == 0, done.stderr
        by_stream: dict[str, list[str]] = {}
        for line in out.read_text().splitlines():
            by_stream.setdefault(json.loads(line)["stream"], []).append(line)
        per_lanes[lanes] = by_stream
    assert set(per_lanes[1]) == {"a", "b", "c"}
    for stream, lines in per_lanes[1].items():
        assert len(lines) == CLIP_FRAMES
        assert per_lanes[2][stream] == lines, f"{stream}: the two-lane run differs"


@pytest.mark.timeout(300)
def test_bad_sources_are_named_and_the_good_one_finishes(models_dir: Path, tmp_path: Path) -> None:
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("not a video\n")
    missing = tmp_path / "missing.mp4"
    out = tmp_path / "poses.jsonl"
    video = tmp_path / "annotated.mp4"
    sources = ("--source", str(missing), "--source", str(not_video), "--source", str(CLIP))
    done = _run(models_dir, *sources, "--jsonl", str(out), "--video", str(video))
    assert done.returncode == 1, "a failed source makes the run's exit code 1"
    assert "missing.mp4" in done.stderr
    assert "no such file" in done.stderr
    assert "notes.mp4" in done.stderr
    good = [r for r in _records(out) if r["stream"] == "cam2"]
    assert [r["frame"] for r in good] == list(range(CLIP_FRAMES)), "nothing lost for the good source"
    # The annotated video's last frame: the failed cameras' cells say so (in red), not "waiting".
    import cv2

    capture = cv2.VideoCapture(str(video))
    last = None
    while (frame := capture.read())[0]:
        last = frame[1]
    capture.release()
    assert last is not None
    height, width = last.shape[:2]
    for name, (x0, y0) in {"cam0": (0, 0), "cam1": (width // 2, 0)}.items():
        cell = last[y0 + 40 : y0 + height // 2, x0 : x0 + width // 2].astype(int)
        b, r = cell[..., 0], cell[..., 2]  # BGR
        assert ((r > 180) & (r - b > 80)).sum() > 50, f"{name}'s cell shows its failure"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("uri", ["rtsp:/no-host", "http://127.0.0.1/cam", "v4l2://video0", "test:?colour=red"])
def test_malformed_sources_are_rejected_before_starting(models_dir: Path, tmp_path: Path, uri: str) -> None:
    done = _run(models_dir, "--source", uri, "--jsonl", str(tmp_path / "x.jsonl"))
    assert done.returncode == 2
    assert uri.split("?")[0] in done.stderr
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.timeout(120)
def test_unknown_config_key_gets_a_hint(models_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text('cameras:\n  - id: a\n    uri: "test:"\npose:\n  max_pose: 2\n')
    done = _run(models_dir, str(config))
    assert done.returncode == 2
    assert "pose.max_pose" in done.stderr
    assert "did you mean 'max_poses'" in done.stderr


@pytest.mark.timeout(180)
def test_sigint_stops_cleanly_with_playable_video_and_complete_jsonl(models_dir: Path, tmp_path: Path) -> None:
    out, video = tmp_path / "poses.jsonl", tmp_path / "annotated.mp4"
    cmd, env = _cmd(
        models_dir,
        "--source",
        "test:?pattern=ball&fps=15",
        "--source",
        str(CLIP),
        "--jsonl",
        str(out),
        "--video",
        str(video),
    )
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    # ~60 kB: a dozen frames with a pose, so the video has had as many canvases to encode before the stop
    while time.monotonic() < deadline and (not out.exists() or out.stat().st_size < 60_000):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "SIGINT" in stderr
    lines = out.read_text().splitlines()
    assert lines, "results were written before the stop"
    records = [json.loads(line) for line in lines]  # every line complete
    assert {r["stream"] for r in records} == {"cam0", "cam1"}
    frames = _count_video_frames(video)
    assert frames > 5, "the MP4 is finalized and decodes"


def _count_video_frames(path: Path) -> int:
    """Decode the file with GStreamer and count the frames (fails unless the MP4 is finalized)."""
    from blazestream.gst import gst, parse_launch

    Gst = gst()
    pipeline = parse_launch("filesrc name=file ! qtdemux ! h264parse ! avdec_h264 ! fakesink name=sink", "count")
    pipeline.get_by_name("file").set_property("location", str(path))
    frames = []
    pad = pipeline.get_by_name("sink").get_static_pad("sink")
    pad.add_probe(Gst.PadProbeType.BUFFER, lambda _pad, _info: frames.append(1) or Gst.PadProbeReturn.OK)
    pipeline.set_state(Gst.State.PLAYING)
    message = pipeline.get_bus().timed_pop_filtered(30 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    assert message is not None
    assert message.type == Gst.MessageType.EOS, message.parse_error()
    return len(frames)


@pytest.mark.timeout(240)
def test_mqtt_delivers_every_frame_per_camera_topic(models_dir: Path, tmp_path: Path, mosquitto: str) -> None:
    import threading
    from urllib.parse import urlsplit

    import paho.mqtt.client as mqtt

    url = urlsplit(mosquitto)
    received: dict[str, list[int]] = {}
    lock = threading.Lock()
    ready = threading.Event()

    def on_message(_client: object, _userdata: object, message: mqtt.MQTTMessage) -> None:
        record = json.loads(message.payload)
        assert message.topic == f"blazestream/{record['stream']}"
        with lock:
            received.setdefault(record["stream"], []).append(record["frame"])

    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    subscriber.on_message = on_message
    subscriber.on_subscribe = lambda *_args: ready.set()
    subscriber.connect(url.hostname or "127.0.0.1", url.port or 1883)
    subscriber.subscribe("blazestream/#", qos=1)
    subscriber.loop_start()
    try:
        assert ready.wait(10)
        config = tmp_path / "mqtt.yaml"
        config.write_text(f"outputs:\n  mqtt:\n    url: {mosquitto}\n    qos: 1\n")
        done = _run(models_dir, str(config), "--source", f"front={CLIP}", "--source", f"back={CLIP}")
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sum(map(len, received.values())) < 2 * CLIP_FRAMES:
            time.sleep(0.1)
    finally:
        subscriber.loop_stop()
        subscriber.disconnect()
    assert sorted(received) == ["back", "front"]
    for frames in received.values():
        assert sorted(frames) == list(range(CLIP_FRAMES)), "one message per frame, none lost (QoS 1)"


@pytest.mark.timeout(180)
def test_unreachable_camera_is_retried_while_the_others_go_on(models_dir: Path, tmp_path: Path) -> None:
    from conftest import _free_port

    dead = f"rtsp://127.0.0.1:{_free_port()}/cam"  # nothing listens there
    out = tmp_path / "poses.jsonl"
    done = _run(
        models_dir, "--source", f"door={dead}", "--source", f"yard={CLIP}", "--jsonl", str(out), "--duration", "12"
    )
    assert done.returncode == 1, "a camera that never delivered a frame is a failure"
    assert dead in done.stderr
    assert "reconnecting" in done.stderr
    assert "never delivered a frame" in done.stderr
    yard = [r["frame"] for r in _records(out) if r["stream"] == "yard"]
    assert yard == list(range(CLIP_FRAMES)), "the reachable source is processed completely meanwhile"
