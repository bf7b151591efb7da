"""What `build-engines` will build: engines, profiles and paths, decided without TensorRT (so it is tested here)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from blazestream.models.cache import INPUT_NAME, POSE_DETECTION, POSE_LANDMARK_FULL, load_model_paths
from blazestream.precisions import TensorRTPrecision
from blazestream.trt_build.engine_cache import Profile, engine_path

Role = Literal["detector", "landmark"]
DEFAULT_OPT_BATCH = 4


@dataclass(frozen=True)
class BuildRequest:
    """Everything one `build-engines` run needs (the CLI flags, resolved)."""

    models_dir: Path
    engines_dir: Path
    precision: TensorRTPrecision = "fp16"
    max_batch: int = 16
    opt_batch: int | None = None
    """Batch TensorRT tunes for: the usual number of cameras; default min(4, max_batch)."""
    workspace_mb: int = 1024
    segmentation: bool = False
    """Also build the landmark model with its segmentation head (otherwise only the one without)."""
    calibration_source: Path | None = None
    calibration_frames: int = 128
    force: bool = False

    @property
    def profile(self) -> Profile:
        opt = self.opt_batch if self.opt_batch is not None else min(DEFAULT_OPT_BATCH, self.max_batch)
        if opt > self.max_batch:
            raise ValueError(f"--opt-batch {opt} is larger than --max-batch {self.max_batch}")
        return Profile(min=1, opt=opt, max=self.max_batch)


@dataclass(frozen=True)
class PlannedEngine:
    role: Role
    onnx: Path
    onnx_sha256: str
    path: Path
    input_name: str
    input_shape: tuple[int, int, int]
    profile: Profile

    @property
    def label(self) -> str:
        return f"{self.onnx.stem} ({self.path.name.split('.')[-2]})"


def plan_builds(request: BuildRequest) -> list[PlannedEngine]:
    """The detector, the landmark model without segmentation, and the full one only if segmentation is asked."""
    import json

    paths = load_model_paths(request.models_dir)
    hashes = json.loads(paths.manifest.read_text(encoding="utf-8"))["files"]
    det_size, lm_size = POSE_DETECTION.input_size, POSE_LANDMARK_FULL.input_size
    models: list[tuple[Role, Path, int]] = [
        ("detector", paths.detector_onnx, det_size),
        ("landmark", paths.landmark_noseg_onnx, lm_size),
    ]
    if request.segmentation:
        models.append(("landmark", paths.landmark_onnx, lm_size))
    return [
        PlannedEngine(
            role=role,
            onnx=onnx,
            onnx_sha256=str(hashes[onnx.name]),
            path=engine_path(request.engines_dir, onnx, request.precision),
            input_name=INPUT_NAME,
            input_shape=(3, size, size),
            profile=request.profile,
        )
        for role, onnx, size in models
    ]


class _TimingCache(Protocol):
    def serialize(self) -> Any: ...


class _TimingCacheConfig(Protocol):
    """The two calls of trt.IBuilderConfig this needs (so it runs, and is tested, without TensorRT)."""

    def create_timing_cache(self, serialized: bytes) -> Any: ...

    def set_timing_cache(self, cache: Any, ignore_mismatch: bool) -> bool: ...


def attach_timing_cache(config: _TimingCacheConfig, saved: bytes, where: str = "timing cache") -> bool:
    """Give the builder the saved timing cache, or a fresh one when the saved one does not load.

    A cache made by another GPU or TensorRT version is refused (`create_timing_cache` returns None or
    `set_timing_cache` False): the build goes on without it, from a fresh cache, instead of failing.
    Returns False when even a fresh cache could not be attached (the build then runs without one).
    """
    log = logging.getLogger(__name__)
    for data, what in ((saved, "saved"), (b"", "fresh")):
        if what == "saved" and not data:
            continue
        try:
            cache = config.create_timing_cache(data)
        except Exception as exc:  # TensorRT raises on a corrupt blob in some versions
            log.warning("%s: the %s timing cache cannot be read (%s)", where, what, exc)
            cache = None
        if cache is None:
            if what == "saved":
                log.warning("%s was made by another GPU or TensorRT: rebuilding without it", where)
            continue
        if config.set_timing_cache(cache, ignore_mismatch=False):
            return True
        log.warning("%s: TensorRT refused the %s timing cache", where, what)
    return False


def calibration_batches(tensors: npt.NDArray[np.float32], batch: int) -> list[npt.NDArray[np.float32]]:
    """Calibration tensors cut into batches of exactly `batch` rows (the profile's OPT: TensorRT 10
    calibrates at the OPT shape and ignores get_batch_size), the last one filled by cycling from the
    start, so TensorRT never reads past the data however few samples there are."""
    if batch < 1:
        raise ValueError(f"calibration batch must be >= 1, got {batch}")
    count = len(tensors)
    if count == 0:
        raise ValueError("no calibration tensors")
    batches = -(-count // batch)
    order = np.arange(batches * batch) % count
    return [np.ascontiguousarray(tensors[order[i * batch : (i + 1) * batch]]) for i in range(batches)]
