"""Shared fixtures. The converted models live in the user's model cache, so repeated test runs reuse them."""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from blazestream.models.cache import ModelPaths

# `make venv` installs blazestream in editable mode; a bare checkout still finds it under src/.
if importlib.util.find_spec("blazestream") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

DATA_DIR = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="session")
def model_paths() -> ModelPaths:
    """The models in ``$BLAZESTREAM_MODELS`` (or ~/.cache/blazestream/models/mediapipe-0.10.21), made if needed."""
    from blazestream.models.cache import default_models_dir, ensure_models

    return ensure_models(default_models_dir())


@pytest.fixture(scope="session")
def models_dir(model_paths: ModelPaths) -> Path:
    """The model cache directory, after ``ensure_models`` has filled it."""
    return model_paths.models_dir


def scratch_model_cache(models_dir: Path, target: Path) -> Path:
    """A copy of the model cache without its reduced-precision builds: small test builds land there, never
    in the shared cache."""
    import shutil

    shutil.copytree(models_dir, target, ignore=shutil.ignore_patterns("precision"))
    return target


@pytest.fixture(scope="module")
def scratch_models(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One test module's scratch copy of the model cache (scratch_model_cache)."""
    return scratch_model_cache(models_dir, tmp_path_factory.mktemp("models") / "models")


# --- network fixtures (outputs, RTSP test server): loopback only ---

MOSQUITTO = Path("/usr/sbin/mosquitto")


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    return _free_port()


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> bool:
    """True once something accepts TCP connections on host:port."""
    import socket
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[str]:
    """A real mosquitto broker on a free loopback port; yields its mqtt:// URL."""
    import subprocess

    if not MOSQUITTO.exists():
        pytest.skip(f"the mosquitto broker is not installed ({MOSQUITTO}); apt-get install mosquitto")
    port = _free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    log = (tmp_path / "mosquitto.log").open("w")
    proc = subprocess.Popen([str(MOSQUITTO), "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        if not wait_for_port(port):
            proc.kill()
            pytest.fail(f"mosquitto did not listen on {port}: {(tmp_path / 'mosquitto.log').read_text()}")
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


REDIS_SERVER = Path("/usr/bin/redis-server")


class RedisServer:
    """A real redis-server on a fixed loopback port that a test can stop and start again (an outage)."""

    def __init__(self, port: int, workdir: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.port = port
        self.workdir = workdir
        self.extra_args = extra_args
        self.url = f"redis://127.0.0.1:{port}/0"
        self._proc: Any = None
        self._log: Any = None

    def start(self) -> None:
        import subprocess

        assert self._proc is None, "already running"
        self._log = (self.workdir / f"redis-{self.port}.log").open("a")
        # An append-only file in the test's directory: a restart keeps what the server had acknowledged.
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"]
        self._proc = subprocess.Popen(
            [str(REDIS_SERVER), *args, "--dir", str(self.workdir), *self.extra_args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        if not wait_for_port(self.port):
            self.stop()
            pytest.fail(f"redis-server did not listen on {self.port}")

    def stop(self) -> None:
        import subprocess

        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None
        self._log.close()

    def client(self, **kwargs: Any) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True, **kwargs)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server (Debian's) on a free loopback port, started; stopped at the end."""
    if not REDIS_SERVER.exists():
        pytest.skip(f"redis-server is not installed ({REDIS_SERVER}); apt-get install redis-server")
    server = RedisServer(_free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- GStreamer helpers for the output / RTSP tests ---


def favoured() -> None:
    """Run the child (in a session of its own) ahead of unrelated processes when allowed (root): on a
    shared machine other jobs' load would otherwise swamp the rate comparisons. Linux schedules sessions
    as groups (autogroup), so the group's nice is raised too. Without the right to, nothing changes."""
    with contextlib.suppress(OSError):
        os.nice(-5)
    with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as group:
        group.write("-5")


class RtspServer:
    """`blazestream serve` in its own process: one file under several mounts, restartable on its port."""

    def __init__(self, clip: Path, mounts: list[str], *, favoured: bool = True) -> None:
        """`favoured`: scheduled ahead of unrelated processes (see `favoured`), for rate comparisons."""
        self.clip, self.mounts, self.port, self.favoured = clip, mounts, _free_port(), favoured
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> RtspServer:
        args = [sys.executable, "-m", "blazestream", "serve", *[str(self.clip)] * len(self.mounts)]
        args += ["--port", str(self.port)]
        for mount in self.mounts:
            args += ["--mount", mount]
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=self.favoured,
            preexec_fn=favoured if self.favoured else None,
        )
        assert self.proc.stdout is not None
        for _ in self.mounts:
            assert self.proc.stdout.readline().startswith("rtsp://"), "the RTSP server started"
        assert wait_for_port(self.port)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def url(self, mount: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{mount}"


@pytest.fixture(scope="session")
def gst_module() -> Any:
    """The initialized Gst module; skips GStreamer tests where PyGObject/GStreamer are missing."""
    from blazestream.errors import MissingDependencyError
    from blazestream.gst import gst, rtsp_server

    try:
        rtsp_server()
        return gst()
    except MissingDependencyError as exc:
        pytest.skip(str(exc))


@dataclass
class RtspRead:
    """What an rtspsrc client saw: frame arrival times (monotonic) and the decoded frame size."""

    times: list[float]
    width: int | None
    height: int | None

    @property
    def fps(self) -> float:
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])

    @property
    def max_gap(self) -> float:
        return max((b - a for a, b in itertools.pairwise(self.times)), default=0.0)


@pytest.fixture
def read_rtsp(gst_module: Any) -> Callable[[str, float], RtspRead]:
    """A real rtspsrc client: decode `url` to RGB for `seconds` and report what arrived."""
    import time

    from blazestream.gst import parse_launch

    Gst = gst_module

    def read(url: str, seconds: float) -> RtspRead:
        pipeline = parse_launch(
            f"rtspsrc location={url} protocols=tcp latency=100 tcp-timeout=3000000 "
            "! rtph264depay ! h264parse ! avdec_h264 ! videoconvert ! video/x-raw,format=RGB "
            "! appsink name=sink max-buffers=2 drop=true sync=false emit-signals=false",
            "test-rtsp-client",
        )
        sink = pipeline.get_by_name("sink")
        pipeline.set_state(Gst.State.PLAYING)
        times: list[float] = []
        width = height = None
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                sample = sink.emit("try-pull-sample", 100 * Gst.MSECOND)
                if sample is None:
                    continue
                times.append(time.monotonic())
                structure = sample.get_caps().get_structure(0)
                width, height = structure.get_int("width")[1], structure.get_int("height")[1]
        finally:
            pipeline.set_state(Gst.State.NULL)
        return RtspRead(times, width, height)

    return read
