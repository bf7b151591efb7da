"""The Redis Streams output against a real redis-server: order, trimming, outages, overflow, bad URLs."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from blazestream.outputs.redis_streams import OutputLossError, RedisStreamSink, parse_redis_url
from conftest import RedisServer, _free_port
from test_outputs import compact, make_result


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def records(client: Any, key: str) -> list[str]:
    return [fields["record"] for _, fields in client.xrange(key)]


def test_redis_url_parsing() -> None:
    target = parse_redis_url("redis://broker")
    assert (target.host, target.port, target.db, target.username, target.password) == ("broker", 6379, 0, None, None)
    target = parse_redis_url("redis://u:p%40ss@10.0.0.2:6380/3")
    assert (target.host, target.port, target.db, target.username, target.password) == ("10.0.0.2", 6380, 3, "u", "p@ss")
    assert "p@ss" not in target.display
    assert parse_redis_url("rediss://:secret@h/1").tls
    for bad in ("http://broker", "redis://", "redis://h:port", "broker:6379", "redis://h/x", "redis://h/0?a=b"):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            parse_redis_url(bad)


@pytest.mark.timeout(30)
def test_redis_appends_each_record_to_its_camera_stream_in_order(redis_server: RedisServer) -> None:
    results = [make_result(cam, i) for i in range(5) for cam in ("cam0", "cam1")]
    sink = RedisStreamSink(redis_server.url, stream_prefix="test")
    sink.write(results[:3])
    sink.write(results[3:])
    sink.close()
    client = redis_server.client()
    for cam in ("cam0", "cam1"):
        assert records(client, f"test:{cam}") == [compact(r) for r in results if r.stream == cam]
    assert sink.delivered == {"cam0": 5, "cam1": 5}
    assert sink.dropped == {}


@pytest.mark.timeout(30)
def test_redis_maxlen_trims_each_stream_approximately(redis_server: RedisServer) -> None:
    sink = RedisStreamSink(redis_server.url, maxlen=100)
    for i in range(600):
        sink.write([make_result("cam0", i, poses=0)])
    sink.close()
    client = redis_server.client()
    length = client.xlen("blazestream:cam0")
    assert 100 <= length < 600, length  # "~": whole nodes are trimmed, so a little over the cap is kept
    last = json.loads(records(client, "blazestream:cam0")[-1])
    assert last["frame"] == 599


@pytest.mark.timeout(60)
def test_redis_unreachable_at_start_buffers_then_delivers_everything(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer(_free_port(), tmp_path)
    registry = CollectorRegistry()
    sink = RedisStreamSink(server.url, registry=registry, flush_timeout_s=20)
    start = time.monotonic()
    for i in range(300):
        sink.write([make_result("cam0", i, poses=0), make_result("cam1", i, poses=0)])
    assert time.monotonic() - start < 1.0, "writing never waits for the server"
    assert wait_until(lambda: registry.get_sample_value("blazestream_redis_buffered") == 600)
    assert not sink.connected
    warnings = [r for r in caplog.records if r.name.endswith("redis_streams") and r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "unreachable" in warnings[0].getMessage()
    assert f"127.0.0.1:{server.port}" in warnings[0].getMessage()
    server.start()
    try:
        assert wait_until(lambda: sink.connected and sink.buffered == 0, timeout=20)
        sink.close()
        client = server.client()
        for cam in ("cam0", "cam1"):
            frames = [json.loads(r)["frame"] for r in records(client, f"blazestream:{cam}")]
            assert frames == list(range(300))
        assert registry.get_sample_value("blazestream_redis_connected") == 1
        assert registry.get_sample_value("blazestream_redis_buffered") == 0
    finally:
        server.stop()


@pytest.mark.timeout(60)
def test_redis_outage_mid_stream_loses_nothing_and_duplicates_nothing(redis_server: RedisServer) -> None:
    sink = RedisStreamSink(redis_server.url, flush_timeout_s=20)
    client = redis_server.client()
    frame = 0
    stopped_at = restarted_at = None
    # Write continuously; take the server down for a while and back up on the same port in between.
    while frame < 1500:
        sink.write([make_result("cam0", frame, poses=0), make_result("cam1", frame, poses=0)])
        frame += 1
        if frame == 300:
            assert wait_until(lambda: client.xlen("blazestream:cam0") > 0)
            redis_server.stop()
            stopped_at = frame
        if frame == 900:
            assert not sink.connected
            redis_server.start()
            restarted_at = frame
        time.sleep(0.002)
    sink.close()
    assert stopped_at is not None
    assert restarted_at is not None
    client = redis_server.client()
    for cam in ("cam0", "cam1"):
        frames = [json.loads(r)["frame"] for r in records(client, f"blazestream:{cam}")]
        assert frames == list(range(1500)), f"{cam}: gaps or duplicates"
    assert sink.dropped == {}


@pytest.mark.timeout(30)
def test_redis_buffer_overflow_drops_the_oldest_and_counts_them(tmp_path: Any) -> None:
    server = RedisServer(_free_port(), tmp_path)
    registry = CollectorRegistry()
    sink = RedisStreamSink(server.url, buffer=50, flush_timeout_s=0.5, registry=registry)
    for i in range(80):
        sink.write([make_result("cam0", i, poses=0)])
    assert registry.get_sample_value("blazestream_redis_dropped_total", {"camera": "cam0"}) == 30
    with pytest.raises(OutputLossError, match=r"80 record\(s\) not delivered \(cam0: 80\)"):
        sink.close()  # the 50 still buffered when the run ends count as well
    assert sink.dropped == {"cam0": 80}
    assert registry.get_sample_value("blazestream_redis_dropped_total", {"camera": "cam0"}) == 80


@pytest.mark.timeout(30)
def test_redis_overflow_keeps_the_newest_for_delivery(tmp_path: Any) -> None:
    server = RedisServer(_free_port(), tmp_path)
    sink = RedisStreamSink(server.url, buffer=50, flush_timeout_s=20)
    for i in range(80):
        sink.write([make_result("cam0", i, poses=0)])
    server.start()
    try:
        with pytest.raises(OutputLossError, match=r"30 record\(s\)"):
            sink.close()
        frames = [json.loads(r)["frame"] for r in records(server.client(), "blazestream:cam0")]
        assert frames == list(range(30, 80))
    finally:
        server.stop()


@pytest.mark.timeout(30)
def test_redis_resent_entries_are_not_duplicated_and_ids_follow_the_stream(redis_server: RedisServer) -> None:
    from blazestream.outputs.redis_streams import _Entry

    client = redis_server.client()
    client.xadd("blazestream:cam0", {"record": "older"}, id="99999999999999-5")  # a stream "from the future"
    sink = RedisStreamSink(redis_server.url)
    sink.write([make_result("cam0", i, poses=0) for i in range(3)])
    assert wait_until(lambda: sink.delivered.get("cam0") == 3)
    ids = [entry_id for entry_id, _ in client.xrange("blazestream:cam0")]
    assert ids == ["99999999999999-5", "99999999999999-6", "99999999999999-7", "99999999999999-8"]
    # A batch cut off after the server stored it is sent again with the same ids: stored once.
    again = [_Entry("cam0", "dup", (99999999999999, seq), sent=True) for seq in (7, 8)]
    assert sink._send(again) == []
    sink.close()
    assert client.xlen("blazestream:cam0") == 4
    assert sink.delivered == {"cam0": 5}
    assert sink.dropped == {}


# ---------------------------------------------------------------- `blazestream run --redis`


def _blazestream(*args: str, models_dir: Path | None = None) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if models_dir is not None:
        env["BLAZESTREAM_MODELS"] = str(models_dir)
    return [sys.executable, "-m", "blazestream", *args], env


@pytest.mark.timeout(60)
@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "redis://127.0.0.1:notaport", "redis://h/db0"])
def test_run_refuses_a_malformed_redis_url_before_starting(url: str) -> None:
    cmd, env = _blazestream("run", "--source", "test:", "--redis", url)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=50)
    assert done.returncode == 2, done.stderr
    assert "outputs.redis.url" in done.stderr
    assert url in done.stderr


@pytest.fixture(scope="module")
def ball_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 600-frame 320x240 H.264 MP4 made by GStreamer (no person in it: the detector runs on every frame)."""
    path = tmp_path_factory.mktemp("clips") / "ball600.mp4"
    subprocess.run(
        [
            "gst-launch-1.0",
            "-q",
            "videotestsrc",
            "num-buffers=600",
            "pattern=ball",
            "!",
            "video/x-raw,width=320,height=240,framerate=30/1",
            "!",
            "x264enc",
            "speed-preset=ultrafast",
            "!",
            "mp4mux",
            "!",
            "filesink",
            f"location={path}",
        ],
        check=True,
        timeout=120,
    )
    return path


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.gst
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_run_delivers_every_record_to_redis_across_a_4_s_outage(
    models_dir: Path, tmp_path: Path, redis_server: RedisServer, ball_clip: Path
) -> None:
    jsonl = tmp_path / "poses.jsonl"
    config = tmp_path / "cameras.yaml"
    config.write_text(
        f"cameras:\n  - {{id: left, uri: '{ball_clip}'}}\n  - {{id: right, uri: '{ball_clip}'}}\n"
        f"outputs:\n  jsonl: '{jsonl}'\n  redis: {{url: '{redis_server.url}', flush_timeout_s: 120}}\n"
    )
    cmd, env = _blazestream("run", str(config), models_dir=models_dir)
    client = redis_server.client()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert wait_until(lambda: client.xlen("blazestream:left") >= 50 or proc.poll() is not None, timeout=200)
        assert proc.poll() is None, "the run ended before the outage"
        redis_server.stop()
        at_stop = len(_lines(jsonl))
        time.sleep(4.0)
        during = len(_lines(jsonl)) - at_stop
        redis_server.start()
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert during > 0 or at_stop == 1200, "the pipeline went on while Redis was down"
    assert "unreachable" in stderr
    written = _lines(jsonl)
    assert len(written) == 1200
    client = redis_server.client()
    for camera in ("left", "right"):
        expected = [line for line in written if json.loads(line)["stream"] == camera]
        assert len(expected) == 600
        assert records(client, f"blazestream:{camera}") == expected, f"{camera}: every record, once, in order"


@pytest.mark.timeout(30)
def test_redis_credentials_and_database_from_the_url(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = RedisServer(_free_port(), tmp_path, extra_args=("--requirepass", "s3cr@t"))
    server.start()
    try:
        good = RedisStreamSink(f"redis://:s3cr%40t@127.0.0.1:{server.port}/2")
        good.write([make_result("cam0", 0)])
        good.close()
        assert records(server.client(password="s3cr@t", db=2), "blazestream:cam0") == [compact(make_result("cam0", 0))]
        assert server.client(password="s3cr@t", db=0).exists("blazestream:cam0") == 0
        wrong = RedisStreamSink(f"redis://:nope@127.0.0.1:{server.port}/2", flush_timeout_s=0.5)
        wrong.write([make_result("cam0", 1)])
        assert wait_until(lambda: any("refused the credentials" in r.getMessage() for r in caplog.records))
        with pytest.raises(OutputLossError, match=r"1 record\(s\) not delivered"):
            wrong.close()
    finally:
        server.stop()
    assert "nope" not in caplog.text
    assert "s3cr" not in caplog.text


@pytest.mark.timeout(30)
def test_redis_a_key_that_is_not_a_stream_loses_only_its_camera(redis_server: RedisServer) -> None:
    client = redis_server.client()
    client.set("blazestream:cam1", "a string, not a stream")
    sink = RedisStreamSink(redis_server.url)
    for i in range(3):
        sink.write([make_result("cam0", i, poses=0), make_result("cam1", i, poses=0)])
    with pytest.raises(OutputLossError, match=r"3 record\(s\) not delivered \(cam1: 3\)"):
        sink.close()
    assert len(records(client, "blazestream:cam0")) == 3
