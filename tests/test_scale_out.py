"""Three `blazestream run` processes as three shards of one 12-camera config, as a StatefulSet runs them.

Every camera is served by exactly one process; killing one takes down only its cameras (what an operator
sees: its scrape target gone, its cameras without fresh frames), and restarting it brings them back.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from blazestream.sharding import assign
from conftest import _free_port

pytestmark = [pytest.mark.gst, pytest.mark.slow]

SHARDS = 3
CAMERAS = [f"cam{i:02d}" for i in range(12)]


@dataclass
class Replica:
    index: int
    port: int
    jsonl: Path
    proc: subprocess.Popen[str] | None = None

    def start(self, config: Path, models_dir: Path) -> None:
        env = {**os.environ, "BLAZESTREAM_MODELS": str(models_dir), "PYTHONUNBUFFERED": "1"}
        env |= {"BLAZESTREAM_SHARD": str(self.index), "BLAZESTREAM_SHARDS": str(SHARDS)}  # as in deploy/k8s
        cmd = [sys.executable, "-m", "blazestream", "run", str(config)]
        cmd += ["--metrics-port", str(self.port), "--jsonl", str(self.jsonl)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def processed(self) -> dict[str, float] | None:
        """frames processed per camera from this replica's /metrics; None when the scrape fails."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=3) as response:
                text = response.read().decode()
        except (urllib.error.URLError, OSError):
            return None
        pattern = r'^blazestream_frames_processed_total\{camera="([^"]+)"\} (\S+)$'
        return {m.group(1): float(m.group(2)) for m in re.finditer(pattern, text, re.MULTILINE)}


def fleet(replicas: list[Replica]) -> dict[str, tuple[int, float]]:
    """The operator's view: camera -> (replica exporting it, frames processed); cameras of a dead one absent."""
    view: dict[str, tuple[int, float]] = {}
    for replica in replicas:
        for camera, frames in (replica.processed() or {}).items():
            assert camera not in view, f"{camera} exported by replicas {view[camera][0]} and {replica.index}"
            view[camera] = (replica.index, frames)
    return view


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return bool(predicate())


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[list[Replica]]:
    started = [Replica(i, _free_port(), tmp_path / f"shard{i}.jsonl") for i in range(SHARDS)]
    try:
        yield started
    finally:
        for replica in started:
            if replica.proc is not None and replica.proc.poll() is None:
                replica.proc.kill()
                replica.proc.communicate()


@pytest.mark.timeout(420)
def test_three_shards_serve_twelve_cameras_once_and_a_dead_one_shows(
    models_dir: Path, tmp_path: Path, replicas: list[Replica]
) -> None:
    config = tmp_path / "cameras.yaml"
    config.write_text(
        "cameras:\n"
        + "".join(f"  - {{id: {c}, uri: 'test:?width=96&height=72&fps=2'}}\n" for c in CAMERAS)
        + "engine:\n  onnxruntime: {intra_op_threads: 1, parallel_runs: 1}\n"
    )
    plan = assign(CAMERAS, SHARDS)
    assert all(plan.values())
    for replica in replicas:
        replica.start(config, models_dir)

    # 1. every camera is served, by exactly one replica: the one the rule names
    def all_served() -> bool:
        view = fleet(replicas)
        return sorted(view) == CAMERAS and all(frames > 0 for _, frames in view.values())

    assert wait_for(all_served, timeout=240), fleet(replicas)
    view = fleet(replicas)
    assert {camera: index for camera, (index, _) in view.items()} == {c: i for i, cs in plan.items() for c in cs}

    # 2. one replica dies (SIGKILL: no clean stop); the operator sees its target down and its cameras gone
    dead = replicas[1]
    assert dead.proc is not None
    dead.proc.send_signal(signal.SIGKILL)
    dead.proc.communicate(timeout=30)
    assert dead.processed() is None, "its scrape target is down"
    before = fleet(replicas)
    assert sorted(before) == sorted(set(CAMERAS) - set(plan[1])), "exactly its cameras have no series"
    # ... while the others go on: every one of their cameras keeps getting new frames
    assert wait_for(lambda: all(fleet(replicas).get(c, (0, 0.0))[1] > before[c][1] for c in before), timeout=60), fleet(
        replicas
    )

    # 3. restarted (as the StatefulSet would), it takes its own cameras back, and no others
    dead.start(config, models_dir)
    assert wait_for(all_served, timeout=240), fleet(replicas)
    assert {c for c, (index, _) in fleet(replicas).items() if index == 1} == set(plan[1])

    # 4. a clean stop of every replica; the JSON Lines agree: each camera in one replica's output only
    for replica in replicas:
        assert replica.proc is not None
        replica.proc.send_signal(signal.SIGTERM)
    for replica in replicas:
        assert replica.proc is not None
        _, stderr = replica.proc.communicate(timeout=60)
        assert replica.proc.returncode == 0, stderr
        assert f"shard {replica.index}/{SHARDS}: {len(plan[replica.index])} of 12 camera(s)" in stderr
        streams = {json.loads(line)["stream"] for line in replica.jsonl.read_text().splitlines()}
        assert streams == set(plan[replica.index])
