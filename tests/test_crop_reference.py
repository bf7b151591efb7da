"""The CUDA crop's math spec (kernels/reference.py) against MediaPipe's OpenCV crop, on real images.

The kernel samples in float at OpenCV's 1/32-pixel positions, so it must land within one grey level of
OpenCV's fixed-point warp almost everywhere; the GPU tests then hold the kernel to this reference.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from blazestream.kernels import BORDER_CONSTANT, BORDER_REPLICATE, FRAME_DESC_DTYPE, kernel_source
from blazestream.kernels.reference import Nv12, crop_rois
from blazestream.pose.crop import warp_rois
from blazestream.pose.roi import crop_affine, pad_roi

DATA = Path(__file__).resolve().parents[1] / "data"


def _rgb(path: Path) -> npt.NDArray[np.uint8]:
    if path.suffix == ".avi":
        capture = cv2.VideoCapture(str(path))
        ok, frame = capture.read()
        capture.release()
        assert ok
    else:
        frame = cv2.imread(str(path))
    return np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))


def _rois(width: int, height: int) -> npt.NDArray[np.float32]:
    """Pixel ROIs: upright inside, rotated, partly outside, larger than the frame, tiny and sub-pixel placed."""
    return np.array(
        [
            [width * 0.5, height * 0.5, 200, 200, 0.0],
            [width * 0.4, height * 0.6, 300, 300, 0.5],
            [width * 0.9, height * 0.1, 350, 350, 2.4],
            [10, height - 5, 150, 150, -1.0],
            [width / 2, height / 2, width * 1.5, height * 1.5, 3.0],
            [100.3, 80.7, 33, 33, 0.1],
        ],
        dtype=np.float32,
    )


@pytest.mark.parametrize("image", ["messi5.jpg", "vtest.avi"])
@pytest.mark.parametrize(("size", "border"), [(256, "replicate"), (224, "zero")])
def test_reference_is_within_one_grey_level_of_opencv(image: str, size: int, border: str) -> None:
    frame = _rgb(DATA / image)
    height, width = frame.shape[:2]
    padded, _ = pad_roi(_rois(width, height), tensor_width=size, tensor_height=size)
    expected = warp_rois(frame, padded, size=size, border="replicate" if border == "replicate" else "zero")
    affine = crop_affine(padded.astype(np.float32), out_width=size, out_height=size)
    mode = BORDER_REPLICATE if border == "replicate" else BORDER_CONSTANT
    got = crop_rois([frame], [0] * len(padded), affine, out_w=size, out_h=size, border=mode)
    diff = np.abs(got.transpose(0, 2, 3, 1) - expected.astype(np.float32))
    for m in range(len(padded)):
        # Float vs OpenCV's rounding to uint8: at most 0.5, so the mean is about a quarter grey level.
        assert diff[m].mean() < 0.3, f"ROI {m}: mean difference {diff[m].mean():.3f}"
        # A 1/32-pixel rounding flip at a sharp edge can exceed one level: allow 1 pixel in 5,000.
        assert (diff[m] > 1.0).mean() < 2e-4, f"ROI {m}: {(diff[m] > 1.0).mean():.2e} of values off by > 1"
        assert diff[m].max() <= 255 / 32 * 2 + 0.5  # at worst both coordinates flip by 1/32 pixel


def test_normalization_and_constant_border() -> None:
    frame = np.full((40, 60, 3), 255, dtype=np.uint8)
    # An ROI twice the frame's size: the corners of the crop lie outside and take the border value.
    padded = np.array([[30.0, 20.0, 120.0, 120.0, 0.0]], dtype=np.float32)
    affine = crop_affine(padded, out_width=32, out_height=32)
    out = crop_rois([frame], [0], affine, out_w=32, out_h=32, border=BORDER_CONSTANT, scale=2 / 255, offset=-1.0)
    assert out.shape == (1, 3, 32, 32)
    assert out[0, :, 0, 0] == pytest.approx(-1.0)  # border 0 -> -1, the detector's letterbox
    assert out[0, :, 16, 16] == pytest.approx(1.0)  # white -> 1
    replicate = crop_rois([frame], [0], affine, out_w=32, out_h=32, border=BORDER_REPLICATE, scale=1 / 255)
    assert replicate.min() == pytest.approx(1.0)


def test_frames_are_picked_per_roi() -> None:
    dark = np.zeros((20, 20, 3), dtype=np.uint8)
    bright = np.full((20, 20, 4), 200, dtype=np.uint8)  # RGBA: alpha is ignored
    affine = crop_affine(np.array([[10.0, 10.0, 10.0, 10.0, 0.0]] * 3, np.float32), out_width=8, out_height=8)
    out = crop_rois([dark, bright], [1, 0, 1], affine, out_w=8, out_h=8, border=BORDER_REPLICATE)
    assert out[0].min() == pytest.approx(200.0)
    assert out[1].max() == pytest.approx(0.0)
    assert out[2].min() == pytest.approx(200.0)


def _to_nv12(rgb: npt.NDArray[np.uint8]) -> Nv12:
    height, width = rgb.shape[:2]
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
    y = i420[:height]
    u = i420[height : height + height // 4].reshape(height // 2, width // 2)
    v = i420[height + height // 4 :].reshape(height // 2, width // 2)
    return Nv12(y=np.ascontiguousarray(y), uv=np.ascontiguousarray(np.stack([u, v], axis=-1)))


def test_nv12_reference_matches_the_rgb_crop() -> None:
    """NV12 sampling (BT.601 limited) against OpenCV's own NV12->RGB conversion, cropped on the CPU."""
    rgb = _rgb(DATA / "messi5.jpg")[:340, :548]
    nv12 = _to_nv12(rgb)
    height, width = rgb.shape[:2]
    flat = np.concatenate([nv12.y, nv12.uv.reshape(height // 2, width)], axis=0)
    converted = np.ascontiguousarray(cv2.cvtColor(flat, cv2.COLOR_YUV2RGB_NV12))
    padded, _ = pad_roi(_rois(width, height)[:3], tensor_width=256, tensor_height=256)
    affine = crop_affine(padded.astype(np.float32), out_width=256, out_height=256)
    got = crop_rois([nv12], [0, 0, 0], affine, out_w=256, out_h=256, border=BORDER_REPLICATE)
    expected = crop_rois([converted], [0, 0, 0], affine, out_w=256, out_h=256, border=BORDER_REPLICATE)
    diff = np.abs(got - expected)
    # Chroma is interpolated here and replicated per 2x2 block by OpenCV: colour edges differ, the rest agrees.
    assert np.median(diff) <= 1.0
    assert diff.mean() < 2.5


def test_frame_descriptor_matches_the_kernel_struct() -> None:
    source = kernel_source("crop.cu")
    assert f"sizeof(FrameDesc) == {FRAME_DESC_DTYPE.itemsize}" in source
    fields = re.findall(
        r"^\s+(?:unsigned long long|int) (\w+);", source.split("struct FrameDesc {")[1].split("};")[0], re.M
    )
    assert tuple(fields) == FRAME_DESC_DTYPE.names
