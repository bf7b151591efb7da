"""INT8 calibration data: model inputs made by the pose core from sample frames, exactly as at run time.

The detector is calibrated on letterboxed whole frames, the landmark model on rotated person crops
(ROIs from the ONNX Runtime detector, MediaPipe's geometry). The default sample is the bundled
data/messi_moves.mp4; any video or image file can be given instead. Pure CPU code (OpenCV, ONNX
Runtime): it runs and is tested without a GPU.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from blazestream.errors import InputError

DEFAULT_FRAMES = 128
BUNDLED_SAMPLE = "messi_moves.mp4"


def default_calibration_source() -> Path:
    """data/messi_moves.mp4 of the source tree, or $BLAZESTREAM_DATA/messi_moves.mp4 in an installed image."""
    import os

    configured = os.environ.get("BLAZESTREAM_DATA")
    candidates = [Path(configured) / BUNDLED_SAMPLE] if configured else []
    candidates.append(Path(__file__).resolve().parents[3] / "data" / BUNDLED_SAMPLE)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise InputError(
        f"no calibration sample: {BUNDLED_SAMPLE} is not in {', '.join(str(c.parent) for c in candidates)}; "
        "pass --calibration-source FILE (a video or an image of people, like the cameras will see)"
    )


def sample_frames(source: Path, count: int = DEFAULT_FRAMES) -> list[npt.NDArray[np.uint8]]:
    """Up to `count` RGB frames spread evenly over a video (or the one frame of an image)."""
    if not source.is_file():
        raise InputError(f"calibration source {source} does not exist")
    image = cv2.imread(str(source), cv2.IMREAD_COLOR)
    if image is not None:
        return [np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), dtype=np.uint8)]
    capture = cv2.VideoCapture(str(source))
    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if not capture.isOpened() or total <= 0:
            raise InputError(f"calibration source {source}: OpenCV cannot read it as an image or a video")
        wanted = set(np.linspace(0, total - 1, num=min(count, total)).round().astype(int).tolist())
        frames = []
        for index in range(total):
            ok, frame = capture.read()
            if not ok:
                break
            if index in wanted:
                frames.append(np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), dtype=np.uint8))
        if not frames:
            raise InputError(f"calibration source {source}: no frame could be decoded")
        return frames
    finally:
        capture.release()


def detector_tensors(frames: list[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float32]:
    """(N, 3, 224, 224) letterboxed detector inputs in [-1, 1], MediaPipe's CPU crop."""
    from blazestream.estimator import CpuCropper

    return CpuCropper().detector_input(frames)[0]


def landmark_tensors(frames: list[npt.NDArray[np.uint8]], models_dir: Path) -> npt.NDArray[np.float32]:
    """(M, 3, 256, 256) rotated person crops in [0, 1], from the ONNX Runtime detector's ROIs.

    Frames without a detection still contribute their centre square, so the ranges also see background.
    """
    from blazestream.engines.onnxruntime import OnnxRuntimeEngine
    from blazestream.estimator import CpuCropper, EstimatorSettings, PoseEstimator
    from blazestream.models.cache import load_model_paths

    # Built here rather than by blazestream.factory, which depends on this package (precision builds).
    paths = load_model_paths(models_dir)
    estimator = PoseEstimator(
        OnnxRuntimeEngine(paths.detector_onnx),
        OnnxRuntimeEngine(paths.landmark_noseg_onnx),
        EstimatorSettings(min_detection_confidence=0.3, max_poses=2),
    )
    try:
        detections = estimator.detect(frames)
    finally:
        estimator.close()
    index: list[int] = []
    rois: list[npt.NDArray[np.float32]] = []
    for b, found in enumerate(detections):
        height, width = frames[b].shape[:2]
        side = min(width, height)
        fallback = np.array([[0.5, 0.5, side / width, side / height, 0.0]], dtype=np.float32)
        chosen = found.rois if len(found.rois) else fallback
        index += [b] * len(chosen)
        rois.append(chosen.astype(np.float32))
    return CpuCropper().landmark_input(frames, index, np.concatenate(rois))[0]
