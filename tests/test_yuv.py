"""Exact mode's pixels: frames kept as the decoder's 4:2:0 planes convert like FFmpeg does for cv2 users.

The reference is what a MediaPipe user's frames are: `cv2.VideoCapture` on the same file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from blazestream.estimator import CpuCropper
from blazestream.pipeline.frames import Frame
from blazestream.yuv import Yuv420, tables_yuv420_to_rgb, yuv420_to_rgb
from conftest import DATA_DIR


def _decode_ours(path: Path, count: int) -> list[Any]:
    """The first `count` frames through the camera's own source branch."""
    from blazestream.config import SourceConfig
    from blazestream.gst import buffer_to_pixels, gst, parse_launch
    from blazestream.pipeline.sources import SINK_NAME, source_description
    from blazestream.source_spec import parse_source_uri

    pipeline = parse_launch(source_description(parse_source_uri(str(path), "t"), SourceConfig()), "test-decode")
    sink = pipeline.get_by_name(SINK_NAME)
    pipeline.set_state(gst().State.PLAYING)
    frames = []
    try:
        while len(frames) < count:
            sample = sink.try_pull_sample(10 * 1_000_000_000)
            assert sample is not None, f"{path}: the decoder stopped after {len(frames)} frames"
            frames.append(buffer_to_pixels(sample.get_buffer(), sample.get_caps()))
    finally:
        pipeline.set_state(gst().State.NULL)
    return frames


def _decode_cv2(path: Path, count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    for _ in range(count):
        ok, bgr = capture.read()
        assert ok
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


@pytest.fixture(scope="module")
def clip_frames() -> dict[str, tuple[list[Any], list[np.ndarray]]]:
    pytest.importorskip("gi")
    return {
        name: (_decode_ours(DATA_DIR / name, 12), _decode_cv2(DATA_DIR / name, 12))
        for name in ("messi_moves.mp4", "vtest.avi")
    }


@pytest.mark.gst
@pytest.mark.parametrize("name", ["messi_moves.mp4", "vtest.avi"])
def test_planes_convert_exactly_like_cv2(clip_frames: dict[str, Any], name: str) -> None:
    ours, reference = clip_frames[name]
    assert all(isinstance(f, Yuv420) for f in ours), "the source branch hands over the decoder's planes"
    for index, (planes, rgb) in enumerate(zip(ours, reference, strict=True)):
        assert planes.shape == rgb.shape
        for how, converted in (
            ("libswscale", planes.rgb()),
            ("tables", tables_yuv420_to_rgb(planes.y, planes.u, planes.v)),
        ):
            diff = np.abs(converted.astype(np.int16) - rgb)
            assert diff.max() == 0, f"{name} frame {index}, {how}: {np.count_nonzero(diff)} values differ"


@pytest.mark.gst
@pytest.mark.parametrize("libswscale", [True, False])
def test_regions_and_crops_from_planes_equal_the_rgb_path(
    clip_frames: dict[str, Any], libswscale: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With libswscale frames convert whole; without, crops convert only what their ROI reads."""
    from blazestream import swscale

    if not libswscale:
        monkeypatch.setattr(swscale, "available", lambda: False)
    ours, reference = clip_frames["messi_moves.mp4"]
    planes, rgb = ours[5], reference[5]
    # An odd rectangle: the region is widened to whole chroma samples and exact inside.
    region = Yuv420(planes.y, planes.u, planes.v).region(101, 33, 377, 299)
    assert np.array_equal(region[33:299, 101:377], rgb[33:299, 101:377])
    # ROIs (normalized x, y, w, h, rotation): inside, rotated, and crossing the frame's edges.
    rois = np.array(
        [[0.5, 0.5, 0.4, 0.5, 0.0], [0.3, 0.6, 0.5, 0.5, 0.7], [0.95, 0.1, 0.6, 0.8, -2.5], [0.5, 0.5, 1.6, 1.6, 3.1]],
        dtype=np.float32,
    )
    index = [0, 0, 1, 1]
    fresh = [Yuv420(planes.y, planes.u, planes.v), Yuv420(planes.y, planes.u, planes.v)]
    from_planes, pad_a = CpuCropper(workers=2).landmark_input(fresh, index, rois)
    from_rgb, pad_b = CpuCropper().landmark_input([rgb, rgb], index, rois)
    assert np.array_equal(pad_a, pad_b)
    assert np.array_equal(from_planes, from_rgb), "crops read only converted pixels"
    detector_planes, _ = CpuCropper().detector_input([planes])
    detector_rgb, _ = CpuCropper().detector_input([rgb])
    assert np.array_equal(detector_planes, detector_rgb)


def test_odd_sizes_and_nv12_convert_like_i420() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 256, (7, 9), dtype=np.uint8)
    u = rng.integers(0, 256, (4, 5), dtype=np.uint8)
    v = rng.integers(0, 256, (4, 5), dtype=np.uint8)
    rgb = tables_yuv420_to_rgb(y, u, v)
    assert rgb.shape == (7, 9, 3)
    even = tables_yuv420_to_rgb(np.pad(y, ((0, 1), (0, 1)), mode="edge"), u, v)
    assert np.array_equal(rgb, even[:7, :9]), "each chroma sample covers its 2x2 block, clipped at the edge"
    uv = np.stack([u, v], axis=-1).reshape(4, 10)
    assert np.array_equal(Yuv420.from_nv12(y, uv).rgb(), yuv420_to_rgb(y, u, v))
    # Limited range: black and white luma with neutral chroma are 0 and 255.
    grey = tables_yuv420_to_rgb(
        np.array([[16, 235]], np.uint8).repeat(2, 0), np.full((1, 1), 128, np.uint8), np.full((1, 1), 128, np.uint8)
    )
    assert grey[0, 0].tolist() == [0, 0, 0]
    assert grey[0, 1].tolist() == [255, 255, 255]


def test_frame_converts_lazily_once() -> None:
    y = np.full((4, 6), 120, np.uint8)
    c = np.full((2, 3), 128, np.uint8)
    frame = Frame("cam0", 0, 0.0, Yuv420(y, c, c), 0.0, 1)
    assert frame.size == (6, 4)
    assert "image" not in frame.__dict__, "nothing converted until asked"
    image = frame.image
    assert image.shape == (4, 6, 3)
    assert frame.image is image
    rgb = np.zeros((4, 6, 3), np.uint8)
    assert Frame("cam0", 0, 0.0, rgb, 0.0, 1).image is rgb
