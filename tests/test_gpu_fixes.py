"""GPU defects fixed in code that runs here: INT8 calibration batches, the timing cache fallback, NV12 chroma
siting. (OSD clamping, per-frame letterbox, EGL and NVENC decisions, pad caps: tests/test_control.py.)"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from blazestream.kernels import BORDER_REPLICATE
from blazestream.kernels.reference import Nv12, crop_rois
from blazestream.trt_build.build_plan import attach_timing_cache, calibration_batches


def test_calibration_batches_have_the_profile_opt_rows_even_with_one_sample() -> None:
    """TensorRT 10 calibrates at the profile's OPT shape: every batch must hold exactly OPT inputs."""
    one = np.arange(3 * 2 * 2, dtype=np.float32).reshape(1, 3, 2, 2)
    batches = calibration_batches(one, 4)
    assert [b.shape for b in batches] == [(4, 3, 2, 2)], "one image fills a whole OPT batch"
    assert all(np.array_equal(row, one[0]) for row in batches[0])
    ten = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1)
    batches = calibration_batches(ten, 4)
    assert [len(b) for b in batches] == [4, 4, 4]
    assert np.concatenate(batches).ravel().tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1], "every sample used"
    assert all(b.flags.c_contiguous for b in batches)
    with pytest.raises(ValueError, match="no calibration"):
        calibration_batches(ten[:0], 4)


class _Config:
    """The two IBuilderConfig calls, behaving as TensorRT does with a cache from another GPU/version."""

    def __init__(self, *, accept_saved: bool, create_fails: bool = False) -> None:
        self.accept_saved = accept_saved
        self.create_fails = create_fails
        self.attached: list[bytes] = []

    def create_timing_cache(self, serialized: bytes) -> object:
        if serialized and self.create_fails:
            return None  # TensorRT returns None for a blob it cannot read
        return ("cache", serialized)

    def set_timing_cache(self, cache: object, ignore_mismatch: bool) -> bool:
        assert ignore_mismatch is False
        data = cache[1]  # type: ignore[index]
        if data and not self.accept_saved:
            return False  # a mismatching cache is refused
        self.attached.append(data)
        return True


@pytest.mark.parametrize("failure", ["refused", "unreadable"])
def test_a_timing_cache_from_another_gpu_is_replaced_by_a_fresh_one(
    failure: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = _Config(accept_saved=False, create_fails=failure == "unreadable")
    with caplog.at_level(logging.WARNING):
        assert attach_timing_cache(config, b"old-gpu", "engines/timing.cache")
    assert config.attached == [b""], "the build goes on with a fresh cache"
    assert "engines/timing.cache" in caplog.text


def test_a_good_timing_cache_is_used() -> None:
    config = _Config(accept_saved=True)
    assert attach_timing_cache(config, b"same-gpu")
    assert config.attached == [b"same-gpu"]
    fresh = _Config(accept_saved=True)
    assert attach_timing_cache(fresh, b"")
    assert fresh.attached == [b""]


def test_nv12_chroma_is_left_sited_as_h264_defaults() -> None:
    """H.264/H.265 default chroma siting (chroma_sample_loc_type 0): chroma sample k sits on luma column 2k
    (horizontally co-sited), halfway between rows 2k and 2k+1. A crop at luma column 2k must then take
    chroma column k as it is, with no blend from column k-1."""
    height, width = 8, 16
    y = np.full((height, width), 126, np.uint8)
    uv = np.zeros((height // 2, width // 2, 2), np.uint8)
    uv[..., 0] = (96 + 8 * np.arange(width // 2)).astype(np.uint8)[None, :]  # Cb ramps by column
    uv[..., 1] = 128
    frame = Nv12(y=y, uv=uv)
    identity = np.array([[1, 0, 0, 0, 1, 0]], np.float32)  # output pixel (u, v) = source pixel (u, v)
    out = crop_rois([frame], [0], identity, out_w=width, out_h=height, border=BORDER_REPLICATE)
    blue = out[0, 2, 3]  # a middle row, all columns
    luma = 1.164383 * (126 - 16)
    expected_cb = uv[0, :, 0].astype(np.float32)
    even = blue[0::2]
    np.testing.assert_allclose(even, np.clip(luma + 2.017232 * (expected_cb - 128), 0, 255), atol=1e-3)
    odd = blue[1:-1:2]  # halfway between chroma samples k and k+1
    mid = (expected_cb[:-1] + expected_cb[1:]) / 2
    np.testing.assert_allclose(odd, np.clip(luma + 2.017232 * (mid - 128), 0, 255), atol=1e-3)
