"""MediaPipe 0.10.21 Pose as a reference, run by MediaPipe's own interpreter (no blazestream imports).

    python mediapipe_worker.py static --images A.png B.png --out ref.json [--segmentation]
    python mediapipe_worker.py video --video clip.mp4 --streams 2 --out ref.json [--wait-for-go]
    python mediapipe_worker.py trace --frames frames.npy --max-frames 12 --out trace.json [--no-smooth]

`trace` runs one tracker and records, per frame, the graph's intermediate streams (the ROI used, the
landmarks before and after PoseLandmarkFiltering, the ROI for the next frame), so each stage of the
tracking loop can be compared with MediaPipe's on MediaPipe's own inputs.

By default the heatmap-refinement options are registered before `Pose()` is built, so the solution
runs the graph's kernel 7 like the C++ graph; `--stock` leaves the Python solution as shipped, where
those options are silently dropped and kernel 9 runs (blazepose-spec §8.3).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from typing import Any


def _pose(args: argparse.Namespace, *, static: bool) -> Any:
    if not args.stock:
        from mediapipe.calculators.util import refine_landmarks_from_heatmap_calculator_pb2  # noqa: F401
    import mediapipe as mp

    return mp.solutions.pose.Pose(
        static_image_mode=static,
        model_complexity=1,
        smooth_landmarks=True,
        enable_segmentation=bool(getattr(args, "segmentation", False)),
        min_detection_confidence=args.min_detection_confidence,
        min_tracking_confidence=args.min_tracking_confidence,
    )


def _result(res: Any) -> dict[str, Any] | None:
    if res.pose_landmarks is None:
        return None
    return {
        "landmarks": [[lm.x, lm.y, lm.z, lm.visibility] for lm in res.pose_landmarks.landmark],
        "world_landmarks": [[lm.x, lm.y, lm.z] for lm in res.pose_world_landmarks.landmark],
    }


TRACE_STREAMS = {
    "pose_rect": "rect",  # the ROI the landmark model ran on (detection or previous frame's landmarks)
    "unfiltered_pose_landmarks": "landmarks",
    "unfiltered_auxiliary_landmarks": "landmarks",
    "unfiltered_world_landmarks": "landmarks",
    "pose_landmarks": "landmarks",
    "auxiliary_landmarks": "landmarks",
    "pose_world_landmarks": "landmarks",
    "pose_rect_from_landmarks": "rect",  # the ROI for the next frame, from the filtered aux landmarks
}


def run_trace(args: argparse.Namespace) -> dict[str, Any]:
    """One video-mode tracker over the frames, with its graph's intermediate streams per frame."""
    if not args.stock:
        from mediapipe.calculators.util import refine_landmarks_from_heatmap_calculator_pb2  # noqa: F401
    import numpy as np
    from mediapipe.python.solution_base import SolutionBase
    from mediapipe.python.solutions import pose as mp_pose

    mp_pose._download_oss_pose_landmark_model(1)
    # What mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1) builds, observing more streams.
    graph = SolutionBase(
        binary_graph_path=mp_pose._BINARYPB_FILE_PATH,
        side_inputs={
            "model_complexity": 1,
            "smooth_landmarks": not args.no_smooth,
            "enable_segmentation": False,
            "smooth_segmentation": False,
            "use_prev_landmarks": True,
        },
        calculator_params={
            "posedetectioncpu__TensorsToDetectionsCalculator.min_score_thresh": args.min_detection_confidence,
            "poselandmarkbyroicpu__tensorstoposelandmarksandsegmentation__ThresholdingCalculator.threshold": (
                args.min_tracking_confidence
            ),
        },
        outputs=list(TRACE_STREAMS),
    )
    frames = np.load(args.frames, mmap_mode="r")
    count = min(args.max_frames or len(frames), len(frames))
    record: list[dict[str, Any]] = []
    with graph:
        for i in range(count):
            res = graph.process({"image": np.ascontiguousarray(frames[i])})
            entry: dict[str, Any] = {}
            for name, kind in TRACE_STREAMS.items():
                value = getattr(res, name)
                if value is None:
                    entry[name] = None
                elif kind == "rect":
                    entry[name] = [value.x_center, value.y_center, value.width, value.height, value.rotation]
                else:
                    entry[name] = [[p.x, p.y, p.z, p.visibility, p.presence] for p in value.landmark]
            record.append(entry)
    return {"mode": "trace", "stock": args.stock, "smooth": not args.no_smooth, "frames": record}


def run_static(args: argparse.Namespace) -> dict[str, Any]:
    import cv2

    results: list[dict[str, Any]] = []
    with _pose(args, static=True) as pose:
        for path in args.images:
            bgr = cv2.imread(path, cv2.IMREAD_COLOR)
            if bgr is None:
                results.append({"path": path, "error": "unreadable"})
                continue
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            res = pose.process(rgb)
            out = _result(res)
            entry = {"path": path, "width": rgb.shape[1], "height": rgb.shape[0], "pose": out}
            if args.segmentation:
                import numpy as np

                entry["mask"] = None
                if res.segmentation_mask is not None:
                    entry["mask"] = f"{args.out}.mask{len(results)}.npy"
                    np.save(entry["mask"], np.asarray(res.segmentation_mask, dtype=np.float32))
            results.append(entry)
    return {"mode": "static", "stock": args.stock, "results": results}


def run_timing(args: argparse.Namespace) -> dict[str, Any]:
    """Static-mode Pose.process per image, after a warm-up: MediaPipe's own end-to-end time."""
    import cv2

    rgb = cv2.cvtColor(cv2.imread(args.images[0], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    with _pose(args, static=True) as pose:
        for _ in range(3):
            pose.process(rgb)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            pose.process(rgb)
            times.append(time.perf_counter() - t0)
    return {"mode": "timing", "times_s": times}


def run_video(args: argparse.Namespace) -> dict[str, Any]:
    """One tracker per stream, round robin, each stream decoding the file itself as a MediaPipe user does
    (cv2.VideoCapture, BGR to RGB) inside the timing, until the file (or --max-frames) ends."""
    import cv2

    trackers = [_pose(args, static=False) for _ in range(args.streams)]
    captures = [cv2.VideoCapture(args.video) for _ in trackers]
    probe = cv2.VideoCapture(args.video)
    ok, warm = probe.read()
    probe.release()
    if not ok or not all(c.isOpened() for c in captures):
        raise SystemExit(f"{args.video}: OpenCV cannot read this video")
    _pose(args, static=True).process(cv2.cvtColor(warm, cv2.COLOR_BGR2RGB))  # XNNPACK kernels loaded first
    if args.wait_for_go:
        print("READY", flush=True)
        sys.stdin.readline()
    record: list[dict[str, Any] | None] = []
    latencies: list[float] = []
    cpu0 = time.process_time()
    start = time.perf_counter()
    count = 0
    while not args.max_frames or count < args.max_frames:
        reads = [capture.read() for capture in captures]  # inside the timing, as for a MediaPipe user
        if not all(ok for ok, _ in reads):
            break
        for s, (tracker, (_, bgr)) in enumerate(zip(trackers, reads, strict=True)):
            t0 = time.perf_counter()
            res = tracker.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            latencies.append(time.perf_counter() - t0)
            if s == 0 and args.record:
                record.append(_result(res))
        count += 1
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    for tracker in trackers:
        tracker.close()
    for capture in captures:
        capture.release()
    return {
        "mode": "video",
        "stock": args.stock,
        "streams": args.streams,
        "frames_per_stream": count,
        "wall_s": wall,
        "cpu_s": cpu,
        "latencies_s": latencies,
        "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "stream0": record if args.record else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["static", "video", "timing", "trace"])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--images", nargs="*", default=[])
    parser.add_argument("--frames")
    parser.add_argument("--video", help="video mode: the file each stream decodes itself (cv2.VideoCapture)")
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--max-frames", type=int, default=0)
    parser.add_argument("--record", action="store_true", help="keep stream 0's landmarks in the output")
    parser.add_argument("--out", required=True)
    parser.add_argument("--stock", action="store_true", help="the Python solution as shipped (kernel 9)")
    parser.add_argument("--wait-for-go", action="store_true")
    parser.add_argument("--no-smooth", action="store_true", help="trace: smooth_landmarks=False")
    parser.add_argument("--segmentation", action="store_true", help="static: also save segmentation_mask (.npy)")
    parser.add_argument("--min-detection-confidence", type=float, default=0.5)
    parser.add_argument("--min-tracking-confidence", type=float, default=0.5)
    args = parser.parse_args()
    runners = {"static": run_static, "video": run_video, "timing": run_timing, "trace": run_trace}
    out = runners[args.mode](args)
    with open(args.out, "w") as fh:
        json.dump(out, fh)


if __name__ == "__main__":
    main()
