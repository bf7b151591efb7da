"""Four RTSP cameras from a real gst-rtsp-server on loopback: batching, one camera's outage, the server's.

Two server processes stand in for the cameras: A serves cam0, cam2, cam3 and B serves cam1, so killing
B takes one camera down and killing both takes the whole "site" down. The run's JSON Lines are tailed
while it runs to see which camera delivers when.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import DATA_DIR, RtspServer, _free_port

pytestmark = [pytest.mark.gst, pytest.mark.slow]

CLIP = DATA_DIR / "messi_moves.mp4"
RECOVERY_LIMIT_S = 10.0


class Tail:
    """Follows a growing JSON Lines file; remembers when (wall clock) each stream's records arrived."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.buffer = ""
        self.seen: dict[str, list[float]] = {}
        self.poses: dict[str, int] = {}

    def poll(self) -> None:
        if not self.path.exists():
            return
        with self.path.open() as fh:
            fh.seek(self.offset)
            chunk = fh.read()
            self.offset = fh.tell()
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split("\n")
        now = time.monotonic()
        for line in lines:
            record = json.loads(line)
            self.seen.setdefault(record["stream"], []).append(now)
            self.poses[record["stream"]] = self.poses.get(record["stream"], 0) + len(record["poses"])

    def count(self, stream: str, since: float, until: float | None = None) -> int:
        stop = until if until is not None else float("inf")
        return sum(1 for t in self.seen.get(stream, []) if since <= t < stop)

    def wait_for(self, streams: list[str], since: float, timeout: float) -> float | None:
        """Seconds until every stream delivered a record after `since` (None on timeout)."""
        deadline = since + timeout
        while time.monotonic() < deadline:
            self.poll()
            if all(self.count(s, since) > 0 for s in streams):
                return max(min(t for t in self.seen[s] if t >= since) for s in streams) - since
            time.sleep(0.1)
        return None

    def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.poll()
            time.sleep(0.1)


@pytest.fixture
def servers() -> Iterator[tuple[RtspServer, RtspServer]]:
    a, b = RtspServer(CLIP, ["cam0", "cam2", "cam3"], favoured=False), RtspServer(CLIP, ["cam1"], favoured=False)
    a.start()
    b.start()
    yield a, b
    a.kill()
    b.kill()


def _metric(port: int, name: str, camera: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(f'{name}{{camera="{camera}"}}'):
            return float(line.split()[-1])
    raise AssertionError(f"{name} for {camera} not in the metrics")


@pytest.mark.timeout(240)
def test_four_rtsp_cameras_survive_outages(
    servers: tuple[RtspServer, RtspServer], models_dir: Path, tmp_path: Path
) -> None:
    metrics_port = _free_port()
    a, b = servers
    out = tmp_path / "poses.jsonl"
    cams = ["cam0", "cam1", "cam2", "cam3"]
    urls = {"cam0": a.url("cam0"), "cam1": b.url("cam1"), "cam2": a.url("cam2"), "cam3": a.url("cam3")}
    args = [sys.executable, "-m", "blazestream", "run", "--jsonl", str(out), "--metrics-port", str(metrics_port)]
    for cam in cams:
        args += ["--source", f"{cam}={urls[cam]}"]
    env = {**os.environ, "BLAZESTREAM_MODELS": str(models_dir)}
    log = tmp_path / "run.log"
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log.open("w"), text=True, env=env)
    tail = Tail(out)
    try:
        start = time.monotonic()
        assert tail.wait_for(cams, start, 60) is not None, "all four cameras deliver"
        tail.sleep(4)
        before = time.monotonic()
        tail.sleep(4)
        rate_before = {c: tail.count(c, before) / 4 for c in cams}
        assert min(rate_before.values()) > 2, rate_before

        # one camera down: the others keep their rate
        b.kill()
        down = time.monotonic()
        tail.sleep(6)
        during = {c: tail.count(c, down + 2) / 4 for c in cams}
        for cam in ("cam0", "cam2", "cam3"):
            assert during[cam] >= 0.6 * rate_before[cam], (during, rate_before)
        assert during["cam1"] == 0
        assert _metric(metrics_port, "blazestream_camera_up", "cam1") == 0

        b.start()
        back = time.monotonic()
        recovery = tail.wait_for(["cam1"], back, 20)
        assert recovery is not None, "cam1 came back"
        assert recovery <= RECOVERY_LIMIT_S, f"cam1 back {recovery:.1f} s after its server returned"
        print(f"\nrecovery after one camera's outage: {recovery:.1f} s")

        # the whole server down, then back
        a.kill()
        b.kill()
        tail.sleep(5)
        a.start()
        b.start()
        back = time.monotonic()
        recovery_all = tail.wait_for(cams, back, 20)
        assert recovery_all is not None, "every camera came back"
        assert recovery_all <= RECOVERY_LIMIT_S, f"all back {recovery_all:.1f} s after the server returned"
        print(f"recovery after the whole server's outage: {recovery_all:.1f} s")
        assert _metric(metrics_port, "blazestream_reconnects_total", "cam1") >= 2
        assert _metric(metrics_port, "blazestream_camera_up", "cam0") == 1
        assert all(tail.poses.get(c, 0) > 0 for c in cams), "poses found on every camera"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        print(log.read_text()[-3000:])
    assert proc.returncode == 0


@pytest.mark.timeout(180)
def test_a_hung_camera_is_caught_by_the_watchdog(
    servers: tuple[RtspServer, RtspServer], models_dir: Path, tmp_path: Path
) -> None:
    """SIGSTOP: the socket stays open and rtspsrc posts nothing; only the stall watchdog notices."""
    a, b = servers
    out = tmp_path / "poses.jsonl"
    args = [sys.executable, "-m", "blazestream", "run", "--jsonl", str(out)]
    args += ["--source", f"cam0={a.url('cam0')}", "--source", f"cam1={b.url('cam1')}"]
    log = tmp_path / "run.log"
    env = {**os.environ, "BLAZESTREAM_MODELS": str(models_dir)}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log.open("w"), env=env)
    tail = Tail(out)
    assert b.proc is not None
    try:
        assert tail.wait_for(["cam0", "cam1"], time.monotonic(), 60) is not None
        b.proc.send_signal(signal.SIGSTOP)
        frozen = time.monotonic()
        tail.sleep(8)
        assert tail.count("cam1", frozen + 1) == 0
        assert tail.count("cam0", frozen + 1) > 20, "the other camera goes on"
        b.proc.send_signal(signal.SIGCONT)
        back = time.monotonic()
        recovery = tail.wait_for(["cam1"], back, 20)
        assert recovery is not None, "cam1 came back after the hang"
        assert recovery <= RECOVERY_LIMIT_S
        print(f"\nrecovery after a hung server: {recovery:.1f} s")
    finally:
        b.proc.send_signal(signal.SIGCONT)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    text = log.read_text()
    assert "no frame for" in text, "the watchdog, not rtspsrc, noticed"
    assert proc.returncode == 0
