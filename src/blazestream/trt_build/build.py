"""`blazestream build-engines`: TensorRT plans from the cached ONNX models, with a sidecar each.

One optimization profile over the dynamic batch dimension of the input "input" [N, 3, H, W] (min 1, opt
= the usual number of cameras, max = --max-batch), FP16 or FP32, or INT8 calibrated on frames made by
the pose core (models/calibration.py). A timing cache next to the engines makes rebuilds quick. Builds
take minutes on a Jetson, so progress goes to a `BuildListener` (TensorRT's IProgressMonitor phases
where this TensorRT has it). Guarded module: it imports tensorrt; import it lazily.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from blazestream import __version__
from blazestream.engines.cupy_api import device_pointer, load_cupy
from blazestream.errors import RunError
from blazestream.trt_build.build_plan import (
    BuildRequest,
    PlannedEngine,
    attach_timing_cache,
    calibration_batches,
    plan_builds,
)
from blazestream.trt_build.engine_cache import (
    Expected,
    Sidecar,
    current_platform,
    read_sidecar,
    sidecar_path,
    staleness,
    timing_cache_path,
    write_sidecar,
)

# engines.tensorrt refuses to import, with the install hint, where TensorRT's Python package is missing.
from blazestream.engines.tensorrt import trt_logger  # isort: skip

import tensorrt as trt  # isort: skip

log = logging.getLogger(__name__)


class EngineBuildError(RunError):
    """TensorRT could not parse or build a model."""


class BuildListener(Protocol):
    """Where build progress goes (the CLI draws it with rich)."""

    def engine_started(self, engine: PlannedEngine) -> None: ...

    def engine_finished(self, engine: PlannedEngine, seconds: float, *, skipped: bool) -> None: ...

    def phase_start(self, phase: str, parent: str | None, steps: int) -> None: ...

    def step_complete(self, phase: str, step: int) -> None: ...

    def phase_finish(self, phase: str) -> None: ...


@dataclass(frozen=True)
class BuiltEngine:
    engine: PlannedEngine
    sidecar: Sidecar
    skipped: bool
    """True when a fresh engine was already there (nothing rebuilt)."""


def _progress_monitor(listener: BuildListener) -> trt.IProgressMonitor | None:
    """TensorRT's phase/step callbacks forwarded to `listener`, where this TensorRT has IProgressMonitor."""
    if not hasattr(trt, "IProgressMonitor"):
        return None

    class Monitor(trt.IProgressMonitor):
        # TensorRT calls these from its own threads; the listener locks.
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str, num_steps: int) -> None:
            listener.phase_start(phase_name, parent_phase or None, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            listener.step_complete(phase_name, step)
            return True

        def phase_finish(self, phase_name: str) -> None:
            listener.phase_finish(phase_name)

    return Monitor()


def _entropy_calibrator(tensors: npt.NDArray[np.float32], batch: int, cache_file: Path) -> object:
    """An IInt8EntropyCalibrator2 feeding `tensors` in batches of exactly `batch` (the profile's OPT).

    Made on demand: TensorRT 11 removed implicit INT8 calibration, and a class deriving from it at import
    time would break `build-engines` for every precision there.
    """
    base: Any = getattr(trt, "IInt8EntropyCalibrator2", None)
    if base is None:
        raise EngineBuildError(
            f"TensorRT {trt.__version__} has no INT8 calibrator (removed in TensorRT 11): build fp16 or fp32"
        )
    batches = calibration_batches(tensors, batch)

    class EntropyCalibrator(base):  # type: ignore[misc]  # resolved at run time, see above
        """One device buffer of `batch` rows, filled from the host batch by batch."""

        def __init__(self) -> None:
            base.__init__(self)
            self._cp = load_cupy()
            self._device = self._cp.empty(batches[0].shape, dtype=np.float32)
            self._next = 0

        def get_batch_size(self) -> int:  # ignored by TensorRT 10 (it uses the OPT shape), kept consistent
            return batch

        def get_batch(self, names: list[str]) -> list[int]:
            if self._next >= len(batches):
                return []  # no more data
            self._device[...] = self._cp.asarray(batches[self._next])
            self._next += 1
            self._cp.cuda.get_current_stream().synchronize()
            return [device_pointer(self._device)]

        # TensorRT documents None for "no cache" (always: the frames may differ from the last build, so
        # every INT8 build calibrates again).
        def read_calibration_cache(self) -> bytes | None:
            return None

        def write_calibration_cache(self, cache: bytes) -> None:
            cache_file.write_bytes(bytes(cache))

    return EntropyCalibrator()


def _calibration_tensors(engine: PlannedEngine, request: BuildRequest) -> npt.NDArray[np.float32]:
    from blazestream.models import calibration

    source = request.calibration_source or calibration.default_calibration_source()
    frames = calibration.sample_frames(source, request.calibration_frames)
    if engine.role == "detector":
        return calibration.detector_tensors(frames)
    return calibration.landmark_tensors(frames, request.models_dir)


def _parse(builder: trt.Builder, onnx: Path) -> tuple[trt.INetworkDefinition, trt.OnnxParser]:
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, trt_logger())
    if not parser.parse(onnx.read_bytes(), str(onnx)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT cannot parse {onnx}: {errors}")
    return network, parser


def build_one(engine: PlannedEngine, request: BuildRequest, listener: BuildListener) -> Sidecar:
    """Build one plan and its sidecar (written last: a plan without a sidecar is never used)."""
    started = time.monotonic()
    builder = trt.Builder(trt_logger())
    network, _parser = _parse(builder, engine.onnx)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, request.workspace_mb << 20)
    profile = builder.create_optimization_profile()
    channels, height, width = engine.input_shape
    p = engine.profile
    profile.set_shape(
        engine.input_name,
        trt.Dims([p.min, channels, height, width]),
        trt.Dims([p.opt, channels, height, width]),
        trt.Dims([p.max, channels, height, width]),
    )
    config.add_optimization_profile(profile)
    if request.precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # INT8 layers fall back to FP16, not FP32
    calibration_note: str | None = None
    if request.precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        tensors = _calibration_tensors(engine, request)
        calibrator = _entropy_calibrator(tensors, engine.profile.opt, engine.path.with_suffix(".calib"))
        config.int8_calibrator = calibrator  # type: ignore[assignment]  # referenced until built
        config.set_calibration_profile(profile)
        calibration_note = str(request.calibration_source or "bundled messi_moves.mp4")
    cache_file = timing_cache_path(request.engines_dir)
    saved = cache_file.read_bytes() if cache_file.is_file() else b""
    with_cache = attach_timing_cache(config, saved, str(cache_file))
    monitor = _progress_monitor(listener)
    if monitor is not None:
        config.progress_monitor = monitor
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineBuildError(f"TensorRT could not build {engine.onnx.name} (see the TensorRT errors above)")
    engine.path.write_bytes(bytes(plan))
    timing = config.get_timing_cache() if with_cache else None
    if timing is not None:
        cache_file.write_bytes(bytes(timing.serialize()))
    sidecar = Sidecar(
        model=engine.role,
        onnx_file=engine.onnx.name,
        onnx_sha256=engine.onnx_sha256,
        precision=request.precision,
        profile=engine.profile,
        input_shape=engine.input_shape,
        platform=current_platform(),
        blazestream_version=__version__,
        built_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        build_seconds=round(time.monotonic() - started, 1),
        calibration=calibration_note,
    )
    write_sidecar(engine.path, sidecar)
    return sidecar


def build_engines(request: BuildRequest, listener: BuildListener) -> Sequence[BuiltEngine]:
    """Build every planned engine that is missing or stale (all of them with request.force)."""
    request.engines_dir.mkdir(parents=True, exist_ok=True)
    here = current_platform()
    results: list[BuiltEngine] = []
    for engine in plan_builds(request):
        listener.engine_started(engine)
        expected = Expected(
            onnx_sha256=engine.onnx_sha256, precision=request.precision, platform=here, min_batch=engine.profile.max
        )
        started = time.monotonic()
        if not request.force and not staleness(engine.path, expected):
            existing = read_sidecar(engine.path)
            if existing is not None and existing.profile == engine.profile:
                listener.engine_finished(engine, 0.0, skipped=True)
                results.append(BuiltEngine(engine, existing, skipped=True))
                continue
        sidecar_path(engine.path).unlink(missing_ok=True)  # a half-written plan is never mistaken for fresh
        sidecar = build_one(engine, request, listener)
        listener.engine_finished(engine, time.monotonic() - started, skipped=False)
        results.append(BuiltEngine(engine, sidecar, skipped=False))
    return results
