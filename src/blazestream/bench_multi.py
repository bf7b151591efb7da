"""`blazestream bench --multi-person`: several people per frame, and what the detector windows cost.

The frames are a 2x2 grid of four time-offset copies of the source (two mirrored): four people per
frame when the source shows one. Measured on the pose stage itself (no decoding or outputs):
frames/s and poses/s while tracking with max_poses 4, and per frame the detector's cost on the whole
frame alone against the whole frame plus its windows (one batch).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from blazestream.errors import InputError
from blazestream.estimator import PoseEstimator
from blazestream.pipeline.frames import Frame
from blazestream.pipeline.stage import PoseStage
from blazestream.pose.windows import frame_windows

Image = npt.NDArray[np.uint8]
PEOPLE = 4


@dataclass
class MultiPersonReport:
    source: str
    frames: int
    width: int
    height: int
    fps: float
    poses_per_s: float
    mean_poses: float
    detector_runs: int
    windows: int
    """Detector inputs per windowed run: the whole frame plus its windows."""
    whole_frame_ms: float
    """Median ms of the detector on the whole frame alone (MediaPipe's detector step)."""
    windowed_ms: float
    """Median ms of the detector on the whole frame plus its windows, one batch."""

    @property
    def window_cost_ms(self) -> float:
        return self.windowed_ms - self.whole_frame_ms


def grid_frames(source: Path, count: int, scale: float = 1.0) -> list[Image]:
    """`count` RGB frames of a 2x2 grid of the source, panels offset in time, two mirrored."""
    capture = cv2.VideoCapture(str(source))
    frames: list[Image] = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        rgb = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)
        if scale != 1.0:
            rgb = np.asarray(cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), np.uint8)
        frames.append(rgb)
    capture.release()
    if not frames:
        raise InputError(f"{source}: no frames could be decoded")
    n = len(frames)
    out = []
    for i in range(count):
        panels = [frames[(i + k * n // PEOPLE) % n] for k in range(PEOPLE)]
        panels = [p[:, ::-1] if k % 2 else p for k, p in enumerate(panels)]
        top = np.concatenate(panels[:2], axis=1)
        bottom = np.concatenate(panels[2:], axis=1)
        out.append(np.ascontiguousarray(np.concatenate([top, bottom], axis=0)))
    return out


def _median_ms(run: Any, items: Sequence[Any]) -> float:
    run(items[0])  # warm-up
    times = []
    for item in items:
        start = time.perf_counter()
        run(item)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def run_multi_person(
    estimator: PoseEstimator, source: Path, *, frames: int = 150, redetect_frames: int | None = 5
) -> MultiPersonReport:
    """Track the grid with the estimator's settings (max_poses should be >= 4) and time the detector."""
    images = grid_frames(source, frames)
    height, width = images[0].shape[:2]
    sample = images[:: max(1, len(images) // 10)]
    whole_ms = _median_ms(lambda im: estimator.detect([im]), sample)
    windowed_ms = _median_ms(lambda im: estimator.detect_windows([im]), sample)
    spec = estimator.settings.windows
    windows = len(frame_windows(width, height, spec)) if spec is not None else 1
    runs = 0
    detect_people = estimator.detect_people

    def counted(batch: Sequence[Any]) -> Any:
        nonlocal runs
        runs += 1
        return detect_people(batch)

    stage = PoseStage(estimator, redetect_frames=redetect_frames)
    setattr(estimator, "detect_people", counted)  # noqa: B010 - count the stage's detector runs
    poses = 0
    start = time.perf_counter()
    try:
        for i, image in enumerate(images):
            (result,) = stage.process([Frame("grid", i, i / 30.0, image, 0.0, 0)])
            poses += len(result.poses)
    finally:
        del estimator.detect_people
    wall = time.perf_counter() - start
    return MultiPersonReport(
        source=str(source),
        frames=len(images),
        width=width,
        height=height,
        fps=len(images) / wall,
        poses_per_s=poses / wall,
        mean_poses=poses / len(images),
        detector_runs=runs,
        windows=windows,
        whole_frame_ms=whole_ms,
        windowed_ms=windowed_ms,
    )


def print_multi_person(report: MultiPersonReport, console: Any) -> None:
    from rich.table import Table

    table = Table(
        title=f"blazestream bench --multi-person: 2x2 grid of {Path(report.source).name}, "
        f"{report.width}x{report.height}, {report.frames} frames"
    )
    for column in ("frames/s", "poses/s", "poses/frame", "detector runs", "windows", "detector ms", "windows +ms"):
        table.add_column(column)
    table.add_row(
        f"{report.fps:.1f}",
        f"{report.poses_per_s:.1f}",
        f"{report.mean_poses:.2f}",
        str(report.detector_runs),
        str(report.windows),
        f"{report.whole_frame_ms:.1f} -> {report.windowed_ms:.1f}",
        f"{report.window_cost_ms:.1f}",
    )
    console.print(table)


__all__ = ["MultiPersonReport", "grid_frames", "print_multi_person", "run_multi_person"]
