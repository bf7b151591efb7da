"""Errors at the edges: bad settings exit 2 naming key and value, run-time failures exit 1, never a traceback,
every output failure counted, credentials never printed."""

from __future__ import annotations

import logging
import os
import resource
import signal
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from prometheus_client import generate_latest
from typer.testing import CliRunner

from blazestream.cli import app
from blazestream.errors import EXIT_CONFIG, EXIT_RUNTIME, ConfigError, RunError, exit_code_for
from blazestream.outputs.fanout import SinkFanout
from blazestream.outputs.metrics import Metrics
from blazestream.uris import RedactingFilter, redact_text, redact_uri

DATA = Path(__file__).resolve().parents[1] / "data"


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--mqtt", "not a url"], ["outputs.mqtt.url", "'not a url'", "mqtt://"]),
        (["--mqtt", "mqtt://user:hunter2@broker:70000"], ["outputs.mqtt.url", "mqtt://user:***@broker:70000"]),
        (["--source", "test:?fps=abc"], ["cameras.0.uri", "fps='abc'"]),
        (["--source", "test:?patern=ball"], ["cameras.0.uri", "did you mean 'pattern'"]),
        (["--source", "test:?pattern=bal"], ["cameras.0.uri", "did you mean 'ball'"]),
        (["--source", "test:?width=640"], ["width and height together"]),
        (["--source", "rtsp://cam:hunter2@192.0.2.1:99999/s"], ["cameras.0.uri", "rtsp://cam:***@192.0.2.1:99999/s"]),
        (["--backend", "cpuu"], ["engine.backend", "'cpuu'", "did you mean 'cpu'"]),
        (["--jsonl", "/nonexistent-dir/x.jsonl"], ["outputs.jsonl", "/nonexistent-dir", "does not exist"]),
        (["--video", "/nonexistent-dir/x.mp4"], ["outputs.video.path", "/nonexistent-dir"]),
    ],
)
def test_bad_settings_exit_2_naming_key_and_value(args: list[str], expected: list[str], tmp_path: Path) -> None:
    if "--source" not in args:
        args = ["--source", "test:", *args]
    code, output = _invoke("run", *args)
    assert code == EXIT_CONFIG, output
    for text in expected:
        assert text in output
    assert "hunter2" not in output
    assert "Traceback" not in output


def test_output_into_a_directory_or_a_missing_one(tmp_path: Path) -> None:
    code, output = _invoke("run", "--source", "test:", "--jsonl", str(tmp_path))
    assert code == EXIT_CONFIG
    assert "is a directory" in output
    code, output = _invoke("image", str(DATA / "messi5.jpg"), "--json", str(tmp_path / "missing" / "out.json"))
    assert code == EXIT_CONFIG
    assert "--json" in output
    assert "does not exist" in output
    assert "Traceback" not in output


def test_a_taken_metrics_port_is_a_runtime_error_without_traceback(models_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, output = _invoke(
            "run", "--source", "test:", "--models-dir", str(models_dir), "--metrics-port", str(port), "--duration", "1"
        )
    assert code == EXIT_RUNTIME, output
    assert f"127.0.0.1:{port}" in output
    assert "--metrics-port" in output
    assert "Traceback" not in output


def test_the_boundary_maps_error_kinds_to_exit_codes() -> None:
    assert exit_code_for(ConfigError("x")) == EXIT_CONFIG
    assert exit_code_for(RunError("x")) == EXIT_RUNTIME
    assert exit_code_for(OSError(28, "No space left on device")) == EXIT_RUNTIME
    assert exit_code_for(ValueError("bug")) == EXIT_RUNTIME
    assert exit_code_for(KeyboardInterrupt()) == 130


def test_redaction() -> None:
    assert redact_uri("rtsp://admin:s3cret@10.0.0.5:554/stream1") == "rtsp://admin:***@10.0.0.5:554/stream1"
    assert redact_uri("rtsp://10.0.0.5/stream1") == "rtsp://10.0.0.5/stream1"
    assert redact_uri("rtsp://admin@10.0.0.5/x") == "rtsp://admin@10.0.0.5/x"
    assert redact_uri("mqtt://u:p@ss@broker") == "mqtt://u:***@broker"  # an unescaped @ in the password
    text = "cam1 (rtsp://a:one@h/x) and mqtt://b:two@broker:1883 failed"
    assert redact_text(text) == "cam1 (rtsp://a:***@h/x) and mqtt://b:***@broker:1883 failed"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "camera %s down", ("rtsp://a:pw@h/x",), None)
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "camera rtsp://a:***@h/x down"


class _Broken:
    name = "broken"

    def __init__(self, fail_on_close: bool = False) -> None:
        self.writes = 0
        self.fail_on_close = fail_on_close

    def write(self, results: list) -> None:  # type: ignore[type-arg]
        self.writes += 1
        if not self.fail_on_close:
            raise OSError(28, "No space left on device")

    def close(self) -> None:
        raise OSError("closing failed too")


def test_fanout_counts_each_failing_output_once_in_summary_and_metrics() -> None:
    metrics = Metrics(["cam0"])
    errors: list[str] = []
    write_fails, close_fails = _Broken(), _Broken(fail_on_close=True)
    fanout = SinkFanout([write_fails, close_fails, metrics], errors, on_failure=metrics.output_failed)
    fanout.write([])
    fanout.write([])
    fanout.close()
    assert write_fails.writes == 1, "a failed output is switched off"
    assert close_fails.writes == 2
    assert errors == ["broken: [Errno 28] No space left on device", "broken (close): closing failed too"]
    assert fanout.failed == ["broken", "broken"]
    exposition = generate_latest(metrics.registry).decode()
    assert 'blazestream_output_errors_total{output="broken"} 2.0' in exposition


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG, like a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (600_000, 600_000))


@pytest.mark.gst
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_full_disk_fails_the_video_output_with_exit_1_and_keeps_what_was_written(
    models_dir: Path, tmp_path: Path
) -> None:
    video = tmp_path / "out.mp4"
    config = tmp_path / "run.yaml"
    config.write_text(
        "cameras:\n  - id: snow\n    uri: 'test:?pattern=snow&width=320&height=240&fps=30'\n"
        f"outputs:\n  video: {{path: '{video}', width: 320, height: 240, bitrate_kbps: 2000}}\n"
        "duration_s: 8\n"
    )
    env = {**os.environ, "BLAZESTREAM_MODELS": str(models_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "blazestream", "run", str(config)],
        preexec_fn=_limit_file_size,
        capture_output=True,
        text=True,
        env=env,
        timeout=150,
    )
    assert done.returncode == EXIT_RUNTIME, done.stderr
    assert "output error: video" in done.stderr
    assert "File too large" in done.stderr
    assert "Traceback" not in done.stderr
    capture = cv2.VideoCapture(str(video))
    readable = 0
    while capture.read()[0]:
        readable += 1
    capture.release()
    assert readable >= 25, "the fragments written before the failure stay playable"
