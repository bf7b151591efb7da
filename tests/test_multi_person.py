"""Several people per frame: windowed detection, tracking and masks against MediaPipe on each person's panel.

Scenes are composites of the bundled photo and clip (tests/multi_cases.py): scaled, mirrored and
time-offset copies pasted at known places. MediaPipe 0.10.21 on one panel alone is that person's
reference. The MediaPipe runs (the heavy part) are few stills, run once per session in one worker call.
Bars (the issue's): recall >= 95%, mean landmark error <= 3% of the person's landmark box diagonal over
landmarks MediaPipe sees (visibility >= 0.5), <= 3 id switches per person over 300 frames, no pose that
matches nobody.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from blazestream.estimator import EstimatorSettings, PoseEstimator
from blazestream.factory import create_cpu_estimator
from blazestream.pipeline.frames import Frame
from blazestream.pipeline.stage import PoseStage
from blazestream.pose.tracking import PoseTracker, duplicate_poses
from blazestream.pose.types import Pose
from blazestream.pose.windows import WindowSpec, frame_windows
from blazestream.reference import run_worker
from multi_cases import GRID_PANELS, GRID_SIZE, Panel, grid_frame, overlap_scene, photo, photo_scenes, to_composite

ERROR_BAR = 0.03
MIN_VISIBILITY = 0.5
CLIP_FRAMES = 300
REFERENCE_FRAMES = (0, 150, 299)
MAX_SWITCHES = 3


def _write_png(path: Path, rgb: npt.NDArray[np.uint8]) -> Path:
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """MediaPipe (static mode) on every person's own panel: photo scenes and a few clip frames, one call."""
    d = tmp_path_factory.mktemp("panels")
    paths: dict[str, Path] = {}
    for name, (_, pairs) in photo_scenes().items():
        for k, (image, _) in enumerate(pairs):
            paths[f"{name}-{k}"] = _write_png(d / f"{name}-{k}.png", image)
    for index in REFERENCE_FRAMES:
        _, panels = grid_frame(index)
        for k, image in enumerate(panels):
            paths[f"clip{index}-{k}"] = _write_png(d / f"clip{index}-{k}.png", image)
    paths["single"] = _write_png(d / "single.png", photo())
    out = d / "reference.json"
    run_worker(["static", "--images", *map(str, paths.values()), "--out", str(out), "--segmentation"])
    results = {Path(r["path"]).stem: r for r in json.loads(out.read_text())["results"]}
    return results


@pytest.fixture(scope="module")
def estimator(models_dir: Path) -> PoseEstimator:
    return create_cpu_estimator(models_dir, EstimatorSettings(max_poses=4))


def _pixels(pose: Pose, width: int, height: int) -> npt.NDArray[np.float64]:
    return np.asarray([(lm.x * width, lm.y * height) for lm in pose.landmarks], dtype=np.float64)


def _match(
    poses: list[Pose], width: int, height: int, people: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]]
) -> tuple[list[float | None], list[int]]:
    """Per reference person: the relative error of the closest pose (None: not found); and unmatched poses.

    A pose matches a person when its error (mean distance over the landmarks MediaPipe sees, relative to
    the person's landmark box diagonal) is below 10%; each pose matches at most one person.
    """
    ours = [_pixels(p, width, height) for p in poses]
    errors: list[float | None] = []
    used: set[int] = set()
    for ref, seen in people:
        diagonal = float(np.linalg.norm(ref.max(0) - ref.min(0)))
        best: tuple[float, int] | None = None
        for j, pts in enumerate(ours):
            if j in used:
                continue
            err = float(np.linalg.norm(pts[seen] - ref[seen], axis=1).mean()) / diagonal
            if best is None or err < best[0]:
                best = (err, j)
        if best is not None and best[0] < 0.1:
            used.add(best[1])
            errors.append(best[0])
        else:
            errors.append(None)
    return errors, [j for j in range(len(ours)) if j not in used]


def _reference_person(entry: dict[str, Any], panel: Panel) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    assert entry["pose"] is not None, f"MediaPipe finds nobody on its own panel {entry['path']}"
    lms = np.asarray(entry["pose"]["landmarks"], dtype=np.float64)
    return to_composite(lms, panel, (entry["width"], entry["height"])), lms[:, 3] >= MIN_VISIBILITY


@pytest.fixture(scope="module")
def segmenter(models_dir: Path) -> PoseEstimator:
    return create_cpu_estimator(models_dir, EstimatorSettings(), segmentation=True)


@pytest.mark.slow
@pytest.mark.parametrize("scene", ["pair", "sizes", "grid", "overlap"])
def test_photo_scene_finds_everyone(
    scene: str, estimator: PoseEstimator, segmenter: PoseEstimator, references: dict[str, Any]
) -> None:
    """Still composites: every person found, close to MediaPipe on their own panel, nothing extra."""
    if scene == "overlap":
        # The second person is cut out of the mirrored photo with the photo's own person mask.
        found, masks = segmenter.process_static_segmented([photo()])
        (person,), mask = found[0], masks[0]
        assert mask is not None
        xs = [lm.x * photo().shape[1] for lm in person.landmarks]
        composite, pairs = overlap_scene(mask == 1, (min(xs), max(xs)))
        names = ["pair-0", "pair-1"]  # the photo and its mirror image, each alone
    else:
        composite, pairs = photo_scenes()[scene]
        names = [f"{scene}-{k}" for k in range(len(pairs))]
    height, width = composite.shape[:2]
    poses = estimator.process_static([composite])[0]
    people = [_reference_person(references[name], panel) for name, (_, panel) in zip(names, pairs, strict=True)]
    errors, spurious = _match(poses, width, height, people)
    assert None not in errors, f"{scene}: found {len(poses)} of {len(people)} people, errors {errors}"
    assert max(e for e in errors if e is not None) <= ERROR_BAR, errors
    assert not spurious, f"{scene}: {len(spurious)} pose(s) that match nobody"


@pytest.mark.slow
def test_no_spurious_pose_on_empty_or_single_person_frames(estimator: PoseEstimator) -> None:
    blank = np.full((480, 640, 3), 90, np.uint8)
    nobody = np.ascontiguousarray(photo()[0:120, 0:160])
    found = estimator.process_static([blank, nobody, photo()])
    assert [len(p) for p in found] == [0, 0, 1]
    # Tracking with room for 4 on a one-person clip: exactly one pose in every frame, never a second.
    stage = PoseStage(estimator, redetect_frames=3)
    _, panels = grid_frame(0)
    counts = []
    for i in range(24):
        _, panels = grid_frame(i * 3)
        (result,) = stage.process([Frame("one", i, i / 10, panels[0], 0.0, 0)])
        counts.append(len(result.poses))
    assert set(counts) == {1}, counts


@pytest.fixture(scope="module")
def tracked_clip(estimator: PoseEstimator) -> list[tuple[Pose, ...]]:
    """The 2x2 grid clip (four people, mirrored, time-offset, 320x240 each) tracked with max_poses 4."""
    stage = PoseStage(estimator, redetect_frames=5)
    out = []
    for i in range(CLIP_FRAMES):
        composite, _ = grid_frame(i)
        (result,) = stage.process([Frame("grid", i, i / 25, composite, 0.0, 0)])
        out.append(result.poses)
    return out


def _panel_of(pose: Pose) -> int:
    """The grid cell holding a pose's hip centre."""
    x = (pose.landmarks[23].x + pose.landmarks[24].x) / 2 * GRID_SIZE[0]
    y = (pose.landmarks[23].y + pose.landmarks[24].y) / 2 * GRID_SIZE[1]
    return int(y // (GRID_SIZE[1] / 2)) * 2 + int(x // (GRID_SIZE[0] / 2))


@pytest.mark.slow
def test_grid_clip_recall_and_id_switches(tracked_clip: list[tuple[Pose, ...]]) -> None:
    ids: dict[int, list[int | None]] = {k: [] for k in range(4)}
    spurious = 0
    for poses in tracked_clip:
        cells = [_panel_of(p) for p in poses]
        spurious += sum(1 for cell in cells if cells.count(cell) > 1 or cell not in ids)
        for cell in set(cells) & set(ids):
            ids[cell].append(next(p.track_id for c, p in zip(cells, poses, strict=True) if c == cell))
    recall = sum(len(v) for v in ids.values()) / (4 * len(tracked_clip))
    switches = {k: sum(a != b for a, b in itertools.pairwise(v)) for k, v in ids.items()}
    assert recall >= 0.95, (recall, {k: len(v) for k, v in ids.items()})
    assert max(switches.values()) <= MAX_SWITCHES, switches
    assert spurious == 0


@pytest.mark.slow
def test_grid_clip_landmarks_match_each_panel(tracked_clip: list[tuple[Pose, ...]], references: dict[str, Any]) -> None:
    width, height = GRID_SIZE
    for index in REFERENCE_FRAMES:
        people = [_reference_person(references[f"clip{index}-{k}"], panel) for k, (panel, _) in enumerate(GRID_PANELS)]
        errors, spurious = _match(list(tracked_clip[index]), width, height, people)
        assert None not in errors, (index, errors)
        assert float(np.mean([e for e in errors if e is not None])) <= ERROR_BAR, (index, errors)
        assert not spurious


@pytest.mark.slow
def test_single_person_mask_matches_mediapipe(segmenter: PoseEstimator, references: dict[str, Any]) -> None:
    poses, masks = segmenter.process_static_segmented([photo()])
    assert len(poses[0]) == 1
    assert masks[0] is not None
    ours = masks[0] == 1
    theirs = np.load(references["single"]["mask"]) > 0.5
    iou = float((ours & theirs).sum()) / float((ours | theirs).sum())
    assert iou >= 0.9, iou


def test_windows_cover_the_frame_with_overlap() -> None:
    spec = WindowSpec(scales=(1.0, 0.5), overlap=0.5)
    wins = frame_windows(1280, 720, spec)
    assert tuple(wins[0]) == (0.0, 0.0, 1.0, 1.0)
    squares = wins[1:]
    sides_px = (squares[:, 2] - squares[:, 0]) * 1280
    assert np.allclose((squares[:, 3] - squares[:, 1]) * 720, sides_px, atol=1e-3)  # square in pixels
    assert set(np.round(sides_px).tolist()) == {720.0, 360.0}
    assert squares.min() >= 0.0
    assert squares.max() <= 1.0 + 1e-6
    big = squares[np.isclose(sides_px, 720.0)]
    starts = np.sort(big[:, 0]) * 1280
    assert starts[0] == 0.0
    assert np.isclose(starts[-1], 560.0)
    assert np.all(np.diff(starts) <= 360.0 + 1e-3)  # at least half of each window shared
    assert len(frame_windows(480, 480, WindowSpec(scales=(1.0,)))) == 1  # a square frame is its own window


@pytest.mark.parametrize("bad", [{"scales": (0.0,)}, {"scales": (1.5,)}, {"overlap": 1.0}, {"edge_tolerance": -1.0}])
def test_nonsense_window_specs_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        WindowSpec(**bad)


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("pose:\n  max_poses: 0\n", "pose.max_poses"),
        ("pose:\n  detection:\n    window_scales: [1.5]\n", "pose.detection.window_scales"),
        ("pose:\n  detection:\n    window_overlap: 0.95\n", "pose.detection.window_overlap"),
        ("pose:\n  detection:\n    redetect_frames: null\n    redetect_s: null\n", "pose.detection"),
        ('cameras:\n  - id: a\n    uri: "test:"\n    max_poses: 0\n', "cameras.0.max_poses"),
    ],
)
def test_bad_multi_person_settings_exit_2_naming_the_key(tmp_path: Path, yaml_text: str, key: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(yaml_text)
    env = {**os.environ, "BLAZESTREAM_MODELS": str(tmp_path / "no-models")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "blazestream",
            "run",
            str(config),
            *([] if "cameras" in yaml_text else ["--source", "test:"]),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert key in done.stderr, done.stderr


def _pose_at(track_id: int, dx: float) -> Pose:
    """A synthetic upright pose shifted right by dx (normalized), with a track id."""
    rows = np.zeros((33, 5), np.float32)
    rows[:, 0] = 0.3 + dx + np.linspace(0.0, 0.1, 33)
    rows[:, 1] = np.linspace(0.1, 0.9, 33)
    rows[:, 3:] = 1.0
    return Pose.from_rows(
        score=0.9,
        presence=1.0,
        roi=[0.4, 0.5, 0.5, 0.5, 0.0],
        landmarks=rows,
        world_landmarks=np.zeros((33, 3)),
        track_id=track_id,
    )


def test_tracker_redetects_on_schedule_while_people_are_missing() -> None:
    tracker = PoseTracker(max_poses=2, redetect_frames=3)
    tracker.begin_frame(0)
    assert tracker.needs_detection
    roi = np.array([0.3, 0.5, 0.2, 0.3, 0.0], np.float32)
    assert len(tracker.seed(roi[None], [0.9])) == 1
    due = []
    for frame in range(1, 5):
        tracker.begin_frame(frame)
        due.append(tracker.needs_detection)
    assert due == [False, False, True, True]
    # The tracked person's own detection is dropped; someone beside them starts a track.
    beside = np.array([0.6, 0.5, 0.2, 0.3, 0.0], np.float32)
    same = roi + np.array([0.01, 0.0, 0.0, 0.0, 0.0], np.float32)
    started = tracker.seed(np.stack([same, beside]), [0.9, 0.8])
    assert [r.roi[0] for r in started] == [pytest.approx(0.6)]
    tracker.begin_frame(5)
    assert not tracker.needs_detection  # full: no detector


def test_converged_tracks_merge_into_the_older_id() -> None:
    tracker = PoseTracker(max_poses=3)
    rois = np.array([[0.2, 0.5, 0.2, 0.3, 0.0], [0.5, 0.5, 0.2, 0.3, 0.0], [0.8, 0.5, 0.2, 0.3, 0.0]], np.float32)
    ids = [r.track_id for r in tracker.seed(rois, [0.9, 0.8, 0.7])]
    poses = [_pose_at(ids[0], 0.0), _pose_at(ids[1], 0.001), _pose_at(ids[2], 0.3)]
    kept = tracker.resolve(poses, (640, 480))
    assert [p.track_id for p in kept] == [ids[0], ids[2]]
    assert [r.track_id for r in tracker.tracked()] == [ids[0], ids[2]]
    tracker.begin_frame(1)
    assert not tracker.needs_detection  # the freed slot waits for the schedule (redetect_frames)


def test_duplicate_poses_tell_neighbours_apart() -> None:
    a = np.stack([np.linspace(100, 140, 33), np.linspace(50, 350, 33)], axis=-1).astype(np.float32)
    beside = a + np.array([100.0, 0.0], np.float32)  # a third of a 300 px person's height away
    jitter = a + np.float32(3.0)
    result = duplicate_poses(a[None], np.stack([beside, jitter]))
    assert result.tolist() == [[False, True]]


def test_image_refuses_a_nonsense_window_scale(tmp_path: Path) -> None:
    env = {**os.environ, "BLAZESTREAM_MODELS": str(tmp_path / "no-models")}
    args = ["image", "x.jpg", "--json", "-", "--max-poses", "2", "--window-scale", "2"]
    done = subprocess.run(
        [sys.executable, "-m", "blazestream", *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert "--window-scale" in done.stderr
