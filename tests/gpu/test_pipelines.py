"""End to end on the GPU: the TensorRT estimator, the TensorRT backend on plain GStreamer, the DeepStream
graph (same JSON Lines schema as the CPU graph), and the bench at 1, 4 and 16 streams."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = [pytest.mark.gpu, pytest.mark.needs_tensorrt, pytest.mark.slow]
DATA = Path(__file__).resolve().parents[2] / "data"
SAMPLE = DATA / "messi_moves.mp4"


def _blazestream(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "blazestream", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _keys(record: dict) -> tuple:
    pose_keys = tuple(sorted(record["poses"][0])) if record["poses"] else ()
    return tuple(sorted(record)), pose_keys


def test_tensorrt_estimator_matches_the_cpu_estimator(models_dir: Path, build: Callable[[str], Path]) -> None:
    from blazestream.config import TensorRTConfig
    from blazestream.factory import create_cpu_estimator
    from blazestream.gpu_factory import create_tensorrt_estimator

    frame = cv2.cvtColor(cv2.imread(str(DATA / "messi5.jpg")), cv2.COLOR_BGR2RGB)
    trt_cfg = TensorRTConfig(precision="fp32", engines_dir=build("fp32"))
    want = create_cpu_estimator(models_dir).process_static([frame])[0]
    got = create_tensorrt_estimator(models_dir, None, trt_cfg).process_static([frame])[0]
    assert len(got) == len(want) == 1
    height, width = frame.shape[:2]
    a = np.asarray([(lm.x * width, lm.y * height) for lm in want[0].landmarks])
    b = np.asarray([(lm.x * width, lm.y * height) for lm in got[0].landmarks])
    assert np.abs(a - b).max() < 2.0  # pixels; fp32 engine, GPU crop within a grey level of OpenCV's


def _run(backend: str, out: Path, models_dir: Path, engines: Path | None) -> list[dict]:
    config = out.with_suffix(".yaml")
    engine = {"models_dir": str(models_dir)}
    if engines is not None:
        engine["tensorrt"] = {"precision": "fp16", "engines_dir": str(engines)}  # type: ignore[assignment]
    config.write_text(json.dumps({"engine": engine}))
    result = _blazestream("run", str(config), "--source", str(SAMPLE), "--backend", backend, "--jsonl", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    return _lines(out)


def test_tensorrt_backend_on_gstreamer_writes_the_cpu_schema(
    models_dir: Path, build: Callable[[str], Path], tmp_path: Path
) -> None:
    cpu = _run("cpu", tmp_path / "cpu.jsonl", models_dir, None)
    gpu = _run("tensorrt", tmp_path / "trt.jsonl", models_dir, build("fp16"))
    assert len(gpu) == len(cpu)
    assert {_keys(r) for r in gpu if r["poses"]} == {_keys(r) for r in cpu if r["poses"]}
    assert sum(bool(r["poses"]) for r in gpu) >= 0.95 * sum(bool(r["poses"]) for r in cpu)


@pytest.mark.needs_deepstream
def test_deepstream_graph_writes_the_cpu_schema(models_dir: Path, build: Callable[[str], Path], tmp_path: Path) -> None:
    cpu = _run("cpu", tmp_path / "cpu.jsonl", models_dir, None)
    ds = _run("deepstream", tmp_path / "ds.jsonl", models_dir, build("fp16"))
    assert len(ds) == len(cpu)  # a file source: every frame, none dropped
    assert {_keys(r) for r in ds if r["poses"]} == {_keys(r) for r in cpu if r["poses"]}
    assert {r["stream"] for r in ds} == {"cam0"}
    assert sum(bool(r["poses"]) for r in ds) >= 0.9 * sum(bool(r["poses"]) for r in cpu)


@pytest.mark.parametrize("streams", [1, 4, 16])
def test_bench(streams: int, models_dir: Path, build: Callable[[str], Path], tmp_path: Path) -> None:
    config = tmp_path / "bench.yaml"
    config.write_text(json.dumps({"engine": {"tensorrt": {"precision": "fp16", "engines_dir": str(build("fp16"))}}}))
    out = tmp_path / f"bench{streams}.json"
    result = _blazestream(
        "bench", "--backend", "tensorrt", "--streams", str(streams), "--no-mediapipe", "--config", str(config),
        "--models-dir", str(models_dir), "--json", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())["blazestream"]
    print(f"{streams} stream(s): {figures['fps']:.1f} frames/s, p95 latency {figures['latency_p95_ms']:.1f} ms")
    assert figures["frames"] > 0
    assert figures["fps"] > 0
