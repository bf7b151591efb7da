"""The images both blazestream and MediaPipe see in the parity tests, built from the bundled photo."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
DATA = Path(__file__).resolve().parents[1] / "data"


def _messi() -> Image:
    bgr = cv2.imread(str(DATA / "messi5.jpg"), cv2.IMREAD_COLOR)
    assert bgr is not None
    return bgr


def _rotate(image: Image, degrees: float) -> Image:
    """Rotate about the centre onto a canvas that holds the whole picture (black corners)."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    nw, nh = int(h * sin + w * cos), int(h * cos + w * sin)
    matrix[0, 2] += nw / 2 - w / 2
    matrix[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(image, matrix, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))


def _video_frame(name: str, index: int) -> Image:
    cap = cv2.VideoCapture(str(DATA / name))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = cap.read()
    cap.release()
    assert ok, f"cannot read frame {index} of {name}"
    return frame


CASES: dict[str, Callable[[], Image]] = {
    "rot0": _messi,
    "rot90": lambda: np.ascontiguousarray(np.rot90(_messi(), 1)),
    "rot180": lambda: np.ascontiguousarray(np.rot90(_messi(), 2)),
    "rot270": lambda: np.ascontiguousarray(np.rot90(_messi(), 3)),
    "crop": lambda: np.ascontiguousarray(_messi()[30:330, 120:420]),
    "scale_up": lambda: cv2.resize(_messi(), None, fx=1.7, fy=1.7, interpolation=cv2.INTER_LINEAR),
    "scale_down": lambda: cv2.resize(_messi(), None, fx=0.55, fy=0.55, interpolation=cv2.INTER_AREA),
    "rot30": lambda: _rotate(_messi(), 30.0),
    "rot_minus_125": lambda: _rotate(_messi(), -125.0),
    "video_frame": lambda: _video_frame("messi_moves.mp4", 45),
    "grayscale": lambda: cv2.cvtColor(_messi(), cv2.COLOR_BGR2GRAY),
    "nobody": lambda: np.ascontiguousarray(_messi()[0:120, 0:160]),
    "pedestrians": lambda: _video_frame("vtest.avi", 100),
}
"""Name -> BGR image (written as PNG, so both sides read the same pixels)."""


def write_cases(directory: Path) -> dict[str, Path]:
    paths = {}
    for name, make in CASES.items():
        path = directory / f"{name}.png"
        assert cv2.imwrite(str(path), make())
        paths[name] = path
    return paths
