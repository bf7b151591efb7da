"""GPU tests: what this machine has is probed once; tests needing more are skipped, each with the reason.

Markers on top of `gpu` (which every test here carries): `needs_tensorrt`, `needs_deepstream`. Engines
are built once per precision into a session directory (minutes on a Jetson, about a minute on a dGPU).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from blazestream import backends


@functools.cache
def missing(requirement: str) -> str | None:
    """Why `requirement` ('cuda', 'tensorrt', 'deepstream') cannot run here, or None."""
    probes = {"cuda": [backends.cuda_device], "tensorrt": [backends.cuda_device, backends.tensorrt]}
    probes["deepstream"] = [*probes["tensorrt"], backends.deepstream]
    for probe in probes[requirement]:
        result = probe()
        if not result.ok:
            return result.detail
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_tensorrt: needs TensorRT besides CUDA")
    config.addinivalue_line("markers", "needs_deepstream: needs DeepStream (pyds, nvinfer)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here not in Path(str(item.fspath)).parents:
            continue
        item.add_marker(pytest.mark.gpu)
        need = "deepstream" if item.get_closest_marker("needs_deepstream") else None
        need = need or ("tensorrt" if item.get_closest_marker("needs_tensorrt") else "cuda")
        reason = missing(need)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=f"needs {need}: {reason}"))


class _Quiet:
    """A BuildListener that only logs (pytest captures it)."""

    def engine_started(self, engine: Any) -> None:
        print(f"building {engine.label}")

    def engine_finished(self, engine: Any, seconds: float, *, skipped: bool) -> None:
        print(f"{engine.label}: {'up to date' if skipped else f'{seconds:.0f} s'}")

    def phase_start(self, phase: str, parent: str | None, steps: int) -> None: ...

    def step_complete(self, phase: str, step: int) -> None: ...

    def phase_finish(self, phase: str) -> None: ...


@pytest.fixture(scope="session")
def engines_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engines")


@pytest.fixture(scope="session")
def build(models_dir: Path, engines_dir: Path) -> Callable[[str], Path]:
    """build(precision) -> the engines directory holding fresh engines of that precision (built once)."""
    from blazestream.trt_build.build import build_engines
    from blazestream.trt_build.build_plan import BuildRequest

    def run(precision: str) -> Path:
        request = BuildRequest(models_dir=models_dir, engines_dir=engines_dir, precision=precision, max_batch=16)  # type: ignore[arg-type]
        build_engines(request, _Quiet())
        return engines_dir

    return functools.cache(run)
