"""Generated nvinfer configs: valid key files with known keys and existing paths; nvinfer's letterbox emulated."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from blazestream.models.cache import POSE_DETECTION, POSE_LANDMARK_FULL
from blazestream.pipeline.nvinfer_config import (
    NVINFER_PROPERTY_KEYS,
    DetectorInferConfig,
    nvinfer_letterbox,
    parse_key_file,
    scale_and_offset,
    validate,
    write_detector_config,
)

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture
def engine(tmp_path: Path) -> Path:
    plan = tmp_path / "pose_detection.fp16.engine"
    plan.write_bytes(b"not a real plan: the config only has to point at an existing file")
    return plan


def _config(engine: Path, **overrides: object) -> DetectorInferConfig:
    values: dict[str, object] = {"engine": engine, "model": POSE_DETECTION, "batch_size": 4, "precision": "fp16"}
    values.update(overrides)
    return DetectorInferConfig(**values)  # type: ignore[arg-type]


def test_generated_config_is_a_valid_nvinfer_key_file(engine: Path, tmp_path: Path) -> None:
    path = write_detector_config(tmp_path / "detector.txt", _config(engine))
    assert validate(path) == []
    properties = parse_key_file(path)["property"]
    assert set(properties) <= NVINFER_PROPERTY_KEYS
    assert properties["model-engine-file"] == str(engine)
    assert properties["network-type"] == "100"
    assert properties["output-tensor-meta"] == "1"
    assert properties["batch-size"] == "4"
    assert properties["network-mode"] == "2"
    assert properties["infer-dims"] == "3;224;224"
    assert properties["output-blob-names"] == "boxes;scores"
    assert properties["maintain-aspect-ratio"] == "1"
    assert properties["symmetric-padding"] == "1"
    assert float(properties["net-scale-factor"]) == pytest.approx(1 / 127.5)
    assert [float(v) for v in properties["offsets"].split(";")] == [127.5] * 3


def test_glib_reads_it_like_nvinfer(engine: Path, tmp_path: Path) -> None:
    """nvinfer loads its config with g_key_file_load_from_file: so does this test."""
    gi = pytest.importorskip("gi")
    gi.require_version("GLib", "2.0")
    from gi.repository import GLib

    path = write_detector_config(tmp_path / "detector.txt", _config(engine, precision="int8", batch_size=16))
    key_file = GLib.KeyFile.new()
    assert key_file.load_from_file(str(path), GLib.KeyFileFlags.NONE)
    assert key_file.get_groups()[0] == ["property"]
    assert key_file.get_integer("property", "batch-size") == 16
    assert key_file.get_integer("property", "network-mode") == 1
    assert key_file.get_double("property", "net-scale-factor") == pytest.approx(1 / 127.5)
    assert list(key_file.get_double_list("property", "offsets")) == [127.5, 127.5, 127.5]
    keys, _ = key_file.get_keys("property")
    assert set(keys) <= NVINFER_PROPERTY_KEYS


def test_validation_catches_unknown_keys_and_missing_files(engine: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("[property]\nmodel-engine-file=/nonexistent.engine\nbatch-sise=4\nnetwork-type=100\n")
    problems = validate(path)
    assert "unknown key 'batch-sise'" in problems
    assert "missing key 'batch-size'" in problems
    assert any("does not exist" in p for p in problems)
    with pytest.raises(ValueError, match="does not exist"):
        write_detector_config(tmp_path / "detector.txt", _config(tmp_path / "missing.engine"))


def test_scale_and_offset_follow_the_model_input_range() -> None:
    assert scale_and_offset(POSE_DETECTION.input_range) == pytest.approx((1 / 127.5, 127.5))
    assert scale_and_offset(POSE_LANDMARK_FULL.input_range) == pytest.approx((1 / 255, 0.0))
    scale, offset = scale_and_offset(POSE_DETECTION.input_range)
    assert scale * (0 - offset) == pytest.approx(-1.0)
    assert scale * (255 - offset) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1920, 1080), (0.0, 49 / 224, 0.0, 49 / 224)),  # 224 * 1080 / 1920 = 126 rows of picture
        ((640, 480), (0.0, 28 / 224, 0.0, 28 / 224)),
        ((480, 640), (28 / 224, 0.0, 28 / 224, 0.0)),
        ((548, 342), (0.0, 42 / 224, 0.0, 43 / 224)),  # 139.8 rows truncated to 139: the odd row goes below
        ((224, 224), (0.0, 0.0, 0.0, 0.0)),
    ],
)
def test_nvinfer_letterbox_reproduces_its_integer_arithmetic(
    size: tuple[int, int], expected: tuple[float, float, float, float]
) -> None:
    assert nvinfer_letterbox(*size, 224, 224) == pytest.approx(expected)


def _nvinfer_input(frame: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """nvinfer's detector input, emulated with OpenCV: bilinear resize into a black, centred letterbox."""
    height, width = frame.shape[:2]
    left, top, right, bottom = nvinfer_letterbox(width, height, 224, 224)
    x0, y0 = round(left * 224), round(top * 224)
    w, h = 224 - x0 - round(right * 224), 224 - y0 - round(bottom * 224)
    canvas = np.zeros((224, 224, 3), np.uint8)
    even = frame[: height - height % 2, : width - width % 2]
    canvas[y0 : y0 + h, x0 : x0 + w] = cv2.resize(even, (w, h), interpolation=cv2.INTER_LINEAR)
    tensor = ((canvas.astype(np.float32) - 127.5) / 127.5).transpose(2, 0, 1)
    return tensor, np.asarray([left, top, right, bottom], np.float32)


def test_nvinfer_scaling_changes_detections_by_a_few_pixels(models_dir: Path) -> None:
    """The measured cost of letting nvinfer resize instead of MediaPipe's warp (docs/gpu.md quotes it).

    Same detector (ONNX Runtime), same decoder; only the detector input differs. On 25 frames of the
    bundled clips: same detections, ROI centres a few pixels apart, sizes within ~10 %.
    """
    from blazestream.estimator import EstimatorSettings, frame_sizes
    from blazestream.factory import create_cpu_estimator
    from blazestream.models.calibration import sample_frames

    estimator = create_cpu_estimator(models_dir, EstimatorSettings())
    frames = [cv2.cvtColor(cv2.imread(str(DATA / "messi5.jpg")), cv2.COLOR_BGR2RGB)]
    frames += sample_frames(DATA / "messi_moves.mp4", 24)
    mediapipe = estimator.detect(frames)
    tensors, padding = zip(*(_nvinfer_input(f) for f in frames), strict=True)
    out = estimator.detector.infer(np.stack(tensors))
    nvinfer = estimator.decode_detector(out["boxes"], out["scores"], np.stack(padding), frame_sizes(frames))
    centre, size = [], []
    for frame, a, b in zip(frames, mediapipe, nvinfer, strict=True):
        assert len(a.rois) == len(b.rois) == 1
        height, width = frame.shape[:2]
        centre.append(np.hypot((a.rois[0, 0] - b.rois[0, 0]) * width, (a.rois[0, 1] - b.rois[0, 1]) * height))
        size.append(abs(a.rois[0, 2] / b.rois[0, 2] - 1.0))
    assert np.mean(centre) < 6.0  # measured 3.5 px mean, 9.6 px max on 640x480
    assert np.max(centre) < 15.0
    assert np.mean(size) < 0.06  # measured 3 % mean, 9 % max
