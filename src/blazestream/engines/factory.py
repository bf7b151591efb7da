"""Building estimators from the model cache for a backend."""

from __future__ import annotations

from pathlib import Path

from blazestream.engines.onnxruntime import OnnxRuntimeEngine, OrtSettings, available_cores
from blazestream.estimator import CpuCropper, EstimatorSettings, PoseEstimator

LANDMARK_OUTPUTS = ("landmarks", "pose_flag", "heatmap", "world_landmarks")


def create_cpu_estimator(
    models_dir: Path,
    settings: EstimatorSettings | None = None,
    ort: OrtSettings | None = None,
    *,
    segmentation: bool = False,
) -> PoseEstimator:
    """ONNX Runtime estimator; the landmark model without its segmentation head unless asked for."""
    from blazestream.engines.models import load_model_paths

    paths = load_model_paths(models_dir)
    detector = OnnxRuntimeEngine(paths.detector_onnx, ort)
    if segmentation:
        landmarker = OnnxRuntimeEngine(paths.landmark_onnx, ort, outputs=(*LANDMARK_OUTPUTS, "segmentation"))
    else:
        landmarker = OnnxRuntimeEngine(paths.landmark_noseg_onnx, ort, outputs=LANDMARK_OUTPUTS)
    return PoseEstimator(detector, landmarker, settings, CpuCropper(workers=available_cores()))
