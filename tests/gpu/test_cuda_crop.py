"""The CUDA crop kernel against its NumPy twin (the math spec) and against MediaPipe's OpenCV crop."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from blazestream.estimator import CpuCropper
from blazestream.kernels import BORDER_CONSTANT, BORDER_REPLICATE
from blazestream.kernels.reference import Nv12, crop_rois
from blazestream.pose.roi import crop_affine, pad_roi

pytestmark = pytest.mark.gpu
DATA = Path(__file__).resolve().parents[2] / "data"


def _frame() -> np.ndarray:
    return np.ascontiguousarray(cv2.cvtColor(cv2.imread(str(DATA / "messi5.jpg")), cv2.COLOR_BGR2RGB))


def _rois(width: int, height: int) -> np.ndarray:
    return np.array(
        [
            [width * 0.5, height * 0.5, 200, 200, 0.0],
            [width * 0.4, height * 0.6, 300, 300, 0.5],
            [width * 0.9, height * 0.1, 350, 350, 2.4],
            [10, height - 5, 150, 150, -1.0],
        ],
        np.float32,
    )


@pytest.mark.parametrize("border", [BORDER_REPLICATE, BORDER_CONSTANT])
def test_kernel_equals_the_reference(border: int) -> None:
    import cupy as cp

    from blazestream.kernels.cuda_crop import CudaCropper

    frame = _frame()
    height, width = frame.shape[:2]
    padded, _ = pad_roi(_rois(width, height), tensor_width=256, tensor_height=256)
    affine = crop_affine(padded, out_width=256, out_height=256)
    # A pitched RGBA frame on the GPU, as DeepStream hands them out: rows 64 bytes longer than the pixels.
    rgba = cp.zeros((height, width + 16, 4), dtype=cp.uint8)[:, :width]
    rgba[..., :3] = cp.asarray(frame)
    frames = [frame, rgba]  # the host frame is uploaded by the cropper
    index = [0, 1, 0, 1]
    got = cp.asnumpy(CudaCropper().crop(frames, index, affine, size=256, border=border, scale=1.0, offset=0.0))
    want = crop_rois([frame, frame], index, affine, out_w=256, out_h=256, border=border)
    diff = np.abs(got - want)
    assert (diff > 1e-3).mean() < 1e-3  # FMA contraction may flip a rare 1/32-pixel rounding
    assert np.median(diff) < 1e-4


def test_nv12_kernel_equals_the_reference() -> None:
    import cupy as cp

    from blazestream.kernels.cuda_crop import CudaCropper, DeviceNv12

    frame = _frame()[:340, :548]
    height, width = frame.shape[:2]
    i420 = cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420)
    u = i420[height : height + height // 4].reshape(height // 2, width // 2)
    v = i420[height + height // 4 :].reshape(height // 2, width // 2)
    nv12 = Nv12(np.ascontiguousarray(i420[:height]), np.ascontiguousarray(np.stack([u, v], -1)), bt709=True)
    padded, _ = pad_roi(_rois(width, height), tensor_width=224, tensor_height=224)
    affine = crop_affine(padded, out_width=224, out_height=224)
    device = DeviceNv12(cp.asarray(nv12.y), cp.asarray(nv12.uv), bt709=True)
    got = cp.asnumpy(CudaCropper().crop([device], [0] * 4, affine, size=224, border=BORDER_CONSTANT, scale=1, offset=0))
    want = crop_rois([nv12], [0] * 4, affine, out_w=224, out_h=224, border=BORDER_CONSTANT)
    assert (np.abs(got - want) > 1e-2).mean() < 1e-3


def test_gpu_cropper_matches_the_cpu_cropper_within_one_grey_level() -> None:
    import cupy as cp

    from blazestream.kernels.cuda_crop import CudaCropper

    frames = [_frame(), _frame()[::-1].copy()]
    height, width = frames[0].shape[:2]
    rois = _rois(width, height) / np.asarray([width, height, width, height, 1], np.float32)
    cpu, gpu = CpuCropper(), CudaCropper()
    for (want, want_pad), (got, got_pad) in [
        (cpu.detector_input(frames), gpu.detector_input(frames)),
        (cpu.landmark_input(frames, [0, 1, 1, 0], rois), gpu.landmark_input(frames, [0, 1, 1, 0], rois)),
    ]:
        np.testing.assert_allclose(got_pad, want_pad, atol=1e-6)
        scale = 127.5 if want.min() < 0 else 255.0
        diff = np.abs(cp.asnumpy(got) - want) * scale
        assert diff.mean() < 0.3
        assert (diff > 1.0 + 1e-3).mean() < 2e-4
