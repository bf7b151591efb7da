"""TensorRT engine files and their sidecars: where they live, what they were built from, whether they still fit.

A TensorRT plan only runs on the TensorRT version and GPU architecture that built it, and only means
what its ONNX meant. `build-engines` writes `<engine>.json` next to each plan; loading compares it with
the model cache and this machine and refuses a stale or foreign engine with the command that rebuilds
it. Pure Python: no TensorRT or CUDA import, so it is tested anywhere.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from blazestream.errors import BlazestreamError
from blazestream.files import atomic_write, cache_dir

SIDECAR_FORMAT = 1
TIMING_CACHE_NAME = "timing.cache"
"""TensorRT's kernel timing cache, shared by every build in an engines directory (makes rebuilds faster)."""


class StaleEngineError(BlazestreamError):
    """An engine is missing, or was built from other models, TensorRT or GPU: it must be rebuilt."""


@dataclass(frozen=True)
class Profile:
    """The optimization profile over the batch dimension: min <= opt <= max."""

    min: int
    opt: int
    max: int

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise ValueError(f"a batch profile needs 1 <= min <= opt <= max, got {self.min}/{self.opt}/{self.max}")


@dataclass(frozen=True)
class Platform:
    """What a plan is bound to: the TensorRT version and the GPU (compute capability as 'major.minor')."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str


@dataclass(frozen=True)
class Sidecar:
    """Everything a build depended on, written as `<engine>.json`."""

    model: str
    onnx_file: str
    onnx_sha256: str
    precision: str
    profile: Profile
    input_shape: tuple[int, int, int]
    platform: Platform
    blazestream_version: str
    built_at: str
    """UTC, ISO 8601."""
    build_seconds: float
    calibration: str | None = None
    """INT8 only: the file the calibration frames came from."""
    format: int = field(default=SIDECAR_FORMAT)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["input_shape"] = list(self.input_shape)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Sidecar:
        try:
            return cls(
                model=str(data["model"]),
                onnx_file=str(data["onnx_file"]),
                onnx_sha256=str(data["onnx_sha256"]),
                precision=str(data["precision"]),
                profile=Profile(**data["profile"]),
                input_shape=(int(data["input_shape"][0]), int(data["input_shape"][1]), int(data["input_shape"][2])),
                platform=Platform(**data["platform"]),
                blazestream_version=str(data["blazestream_version"]),
                built_at=str(data["built_at"]),
                build_seconds=float(data["build_seconds"]),
                calibration=data.get("calibration"),
                format=int(data["format"]),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"not a blazestream engine sidecar ({exc!r})") from exc


def default_engines_dir() -> Path:
    """`$BLAZESTREAM_ENGINES` if set, else <user cache>/blazestream/engines (~/.cache/blazestream/engines)."""
    configured = os.environ.get("BLAZESTREAM_ENGINES")
    if configured:
        return Path(configured).expanduser()
    return cache_dir() / "engines"


def engine_path(engines_dir: Path, onnx_file: Path | str, precision: str) -> Path:
    """`<engines_dir>/<onnx stem>.<precision>.engine`: one plan per model and precision."""
    return Path(engines_dir) / f"{Path(onnx_file).stem}.{precision}.engine"


def sidecar_path(engine: Path) -> Path:
    return engine.with_name(engine.name + ".json")


def timing_cache_path(engines_dir: Path) -> Path:
    return Path(engines_dir) / TIMING_CACHE_NAME


def write_sidecar(engine: Path, sidecar: Sidecar) -> Path:
    """Write the sidecar atomically (a reader never sees half a file)."""
    target = sidecar_path(engine)
    atomic_write(target, json.dumps(sidecar.to_json(), indent=2, sort_keys=True) + "\n")
    return target


def read_sidecar(engine: Path) -> Sidecar | None:
    """The sidecar of an engine, or None when it is missing or unreadable."""
    try:
        return Sidecar.from_json(json.loads(sidecar_path(engine).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class Expected:
    """What the engine for this run must have been built from and for."""

    onnx_sha256: str
    precision: str
    platform: Platform | None
    """This machine; None skips the platform checks (no TensorRT or GPU here to compare with)."""
    min_batch: int = 1
    """The batch the run needs at least (DeepStream: the number of cameras)."""


def staleness(engine: Path, expected: Expected) -> list[str]:
    """Why `engine` cannot be used for `expected`; empty when it can."""
    if not engine.is_file():
        return [f"{engine} does not exist"]
    sidecar = read_sidecar(engine)
    if sidecar is None:
        return [
            f"{sidecar_path(engine).name} is missing or unreadable, so nothing says what {engine.name} was built from"
        ]
    problems: list[str] = []
    if sidecar.format != SIDECAR_FORMAT:
        problems.append(f"sidecar format {sidecar.format}, this blazestream writes {SIDECAR_FORMAT}")
    if sidecar.onnx_sha256 != expected.onnx_sha256:
        problems.append(
            f"built from another {sidecar.onnx_file} (sha256 {sidecar.onnx_sha256[:12]}…, "
            f"the model cache has {expected.onnx_sha256[:12]}…)"
        )
    if sidecar.precision != expected.precision:
        problems.append(f"built for {sidecar.precision}, the configuration asks for {expected.precision}")
    if sidecar.profile.max < expected.min_batch:
        problems.append(
            f"its batch profile ends at {sidecar.profile.max}, the run needs batches of {expected.min_batch}"
        )
    here = expected.platform
    if here is not None:
        built = sidecar.platform
        if built.tensorrt_version != here.tensorrt_version:
            problems.append(f"built with TensorRT {built.tensorrt_version}, this machine has {here.tensorrt_version}")
        if built.compute_capability != here.compute_capability:
            problems.append(
                f"built for a GPU of compute capability {built.compute_capability} ({built.gpu_name}), "
                f"this one is {here.compute_capability} ({here.gpu_name})"
            )
    return problems


def rebuild_command(
    *,
    precision: str,
    max_batch: int,
    models_dir: Path | None = None,
    engines_dir: Path | None = None,
    segmentation: bool = False,
) -> str:
    """The `blazestream build-engines ...` line that rebuilds engines for these settings."""
    parts = ["blazestream build-engines", f"--precision {precision}", f"--max-batch {max_batch}"]
    if models_dir is not None:
        parts.append(f"--models-dir {models_dir}")
    if engines_dir is not None:
        parts.append(f"--engines-dir {engines_dir}")
    if segmentation:
        parts.append("--segmentation")
    return " ".join(parts)


def require_fresh(engine: Path, expected: Expected, *, rebuild: str) -> Sidecar:
    """The engine's sidecar; StaleEngineError naming every problem and the rebuild command otherwise."""
    problems = staleness(engine, expected)
    if problems:
        raise StaleEngineError(
            f"cannot use the TensorRT engine {engine}: " + "; ".join(problems) + f". Rebuild it with `{rebuild}`."
        )
    sidecar = read_sidecar(engine)
    assert sidecar is not None  # staleness() found it
    return sidecar


def current_platform() -> Platform:
    """TensorRT version and GPU 0 of this process (imports TensorRT and CuPy)."""
    import tensorrt as trt

    from blazestream.engines.cupy_api import load_cupy

    cp = load_cupy()
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.runtime.getDevice())
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    return Platform(
        tensorrt_version=str(trt.__version__),
        gpu_name=name,
        compute_capability=f"{props['major']}.{props['minor']}",
    )
