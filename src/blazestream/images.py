"""Reading still images into the RGB uint8 frames the pipeline expects, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from blazestream.errors import InputError

Frame = npt.NDArray[np.uint8]


def load_image(path: Path) -> Frame:
    """Decode an image file to RGB uint8 (H, W, 3).

    Grayscale becomes RGB, an alpha channel is dropped, 16-bit samples are scaled to 8 bits, and the
    EXIF orientation is applied (OpenCV's IMREAD_COLOR, which MediaPipe's examples use too).
    """
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise InputError(f"{path}: is a directory; pass image files (e.g. {path}/*.jpg)")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}); check its permissions") from exc
    if data.size == 0:
        raise InputError(f"{path}: the file is empty")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if image is None or image.size == 0:
        raise InputError(
            f"{path}: not a decodable image (corrupt, truncated, or not an image format OpenCV reads: "
            "use JPEG, PNG, BMP, TIFF or WebP)"
        )
    if image.dtype == np.uint16:
        image = np.round(image.astype(np.float32) / 257.0).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise InputError(f"{path}: unsupported sample type {image.dtype}; convert it to 8- or 16-bit")
    return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
