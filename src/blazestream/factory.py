"""Building estimators from the model cache for a backend."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from blazestream.engines.base import Engine
from blazestream.engines.onnxruntime import OnnxRuntimeEngine, OrtSettings, available_cores
from blazestream.errors import ConfigError
from blazestream.estimator import CpuCropper, EstimatorSettings, PoseEstimator

LANDMARK_OUTPUTS = ("landmarks", "pose_flag", "heatmap", "world_landmarks")


def create_cpu_estimator(
    models_dir: Path,
    settings: EstimatorSettings | None = None,
    ort: OrtSettings | None = None,
    *,
    segmentation: bool = False,
    precision: str = "fp32",
) -> PoseEstimator:
    """ONNX Runtime estimator; the landmark model without its segmentation head unless asked for.

    `precision` int8 or bf16 swaps in the reduced-precision landmark model (built on first use); a bf16
    build that measured OpenVINO faster on this CPU comes as an OpenVINO IR and runs there.
    """
    from blazestream.models.cache import load_model_paths
    from blazestream.models.precision import PRECISIONS, landmark_model

    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if segmentation and precision != "fp32":
        raise ConfigError(f"precision {precision} applies to the pruned landmark model: segmentation needs fp32")
    paths = load_model_paths(models_dir)
    # The landmark model may be built first (a reduced precision, once); then both engines load at once:
    # building ONNX Runtime sessions releases the GIL, and every start-up waits for them.
    landmark_path = paths.landmark_onnx if segmentation else landmark_model(paths.models_dir, precision)
    outputs = (*LANDMARK_OUTPUTS, "segmentation") if segmentation else LANDMARK_OUTPUTS
    with ThreadPoolExecutor(1, thread_name_prefix="engine-load") as loader:
        pending = loader.submit(landmark_engine, landmark_path, ort, outputs)
        detector = OnnxRuntimeEngine(paths.detector_onnx, ort)
        landmarker = pending.result()
    return PoseEstimator(detector, landmarker, settings, CpuCropper(workers=available_cores()))


def landmark_engine(model: Path, ort: OrtSettings | None = None, outputs: tuple[str, ...] = LANDMARK_OUTPUTS) -> Engine:
    """The engine for a built landmark model: OpenVINO (bf16) for an IR, ONNX Runtime for ONNX."""
    if model.suffix == ".xml":
        from blazestream.engines.openvino import OpenVinoEngine

        return OpenVinoEngine(model, inference_precision="bf16", outputs=outputs)
    return OnnxRuntimeEngine(model, ort, outputs=outputs)
