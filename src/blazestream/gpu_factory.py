"""Building the TensorRT estimator: fresh engines from the engine cache, the CUDA cropper, the pose core.

The detector and the landmark engine are checked against the model cache (ONNX sha256), this machine
(TensorRT version, GPU compute capability) and the configuration (precision, batch) before TensorRT
sees them; a mismatch raises StaleEngineError with the `blazestream build-engines ...` line to run.
"""

from __future__ import annotations

from pathlib import Path

from blazestream.config import TensorRTConfig
from blazestream.estimator import EstimatorSettings, PoseEstimator
from blazestream.models.cache import ModelPaths, load_model_paths
from blazestream.trt_build.engine_cache import (
    Expected,
    Platform,
    Sidecar,
    current_platform,
    default_engines_dir,
    engine_path,
    rebuild_command,
    require_fresh,
)


def manifest_sha256(paths: ModelPaths, onnx: Path) -> str:
    """The sha256 the model cache recorded for an ONNX file (no rehashing on start-up)."""
    import json

    files = json.loads(paths.manifest.read_text(encoding="utf-8"))["files"]
    return str(files[onnx.name])


def landmark_onnx(paths: ModelPaths, *, segmentation: bool) -> Path:
    """The landmark model an engine is built from: without the segmentation head unless it is asked for."""
    return paths.landmark_onnx if segmentation else paths.landmark_noseg_onnx


def fresh_engines(
    models_dir: Path,
    trt_cfg: TensorRTConfig,
    *,
    segmentation: bool = False,
    min_batch: int = 1,
    platform: Platform | None = None,
) -> tuple[tuple[Path, Sidecar], tuple[Path, Sidecar]]:
    """(detector, landmark) engine paths with their sidecars, after the staleness checks."""
    paths = load_model_paths(models_dir)
    engines_dir = trt_cfg.engines_dir or default_engines_dir()
    here = platform or current_platform()
    rebuild = rebuild_command(
        precision=trt_cfg.precision,
        max_batch=max(trt_cfg.max_batch, min_batch),
        models_dir=models_dir,
        engines_dir=trt_cfg.engines_dir,
        segmentation=segmentation,
    )
    found = []
    for onnx, needed in ((paths.detector_onnx, min_batch), (landmark_onnx(paths, segmentation=segmentation), 1)):
        plan = engine_path(engines_dir, onnx, trt_cfg.precision)
        expected = Expected(
            onnx_sha256=manifest_sha256(paths, onnx), precision=trt_cfg.precision, platform=here, min_batch=needed
        )
        found.append((plan, require_fresh(plan, expected, rebuild=rebuild)))
    return found[0], found[1]


def create_tensorrt_estimator(
    models_dir: Path,
    settings: EstimatorSettings | None,
    trt_cfg: TensorRTConfig,
    *,
    segmentation: bool = False,
) -> PoseEstimator:
    """Detector + landmark TensorRT engines with the CUDA cropper: frames may be NumPy (uploaded) or CuPy."""
    from blazestream.engines.tensorrt import TensorRTEngine
    from blazestream.kernels.cuda_crop import CudaCropper

    (detector_plan, _), (landmark_plan, _) = fresh_engines(models_dir, trt_cfg, segmentation=segmentation)
    return PoseEstimator(TensorRTEngine(detector_plan), TensorRTEngine(landmark_plan), settings, CudaCropper())
