"""`blazestream bench`: our graph against MediaPipe's own Pose on N copies of one video, in one run.

Both sides see the same pixels and decode them inside the timing: each MediaPipe stream reads the file
as its users do (cv2.VideoCapture), our graph decodes it itself and converts like FFmpeg does
(blazestream.yuv). MediaPipe is served as well as it can be on this machine: one process uses about
one core, so its trackers are also spread over one process per core; the faster of that and a single
process is the baseline. Display is off on our side (no video outputs): only the poses are produced.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from blazestream.config import AppConfig
from blazestream.engines.onnxruntime import available_cores
from blazestream.errors import BlazestreamError
from blazestream.pose.skeleton import NUM_LANDMARKS
from blazestream.reference import WORKER, mediapipe_python
from blazestream.results import FrameResult

log = logging.getLogger(__name__)

AGREEMENT_MIN = 0.90
MEDIAN_ERROR_MAX = 0.03


@dataclass
class SideResult:
    """One contestant's figures."""

    name: str
    frames: int
    wall_s: float
    fps: float
    latency_p50_ms: float
    latency_p95_ms: float
    cpu_cores: float
    """CPU seconds per wall second (2.0 = both cores of a 2-core machine busy)."""
    peak_rss_mb: float
    detail: str = ""
    cpu_ms_per_frame: dict[str, float] = field(default_factory=dict)
    """CPU ms per frame by where it went: decode, crop, models, rest (ours only)."""
    startup_s: float | None = None
    """Seconds from loading the engines to the first frame's result (ours only; the frames/s leave it out).
    A `blazestream run` also pays it, after its imports."""


@dataclass
class PrecisionResult:
    """Our side at one landmark-model precision, and how far its stream 0 is from fp32 and MediaPipe."""

    precision: str
    side: SideResult
    ratio: float | None = None
    vs_mediapipe: dict[str, float] = field(default_factory=dict)
    vs_fp32: dict[str, float] = field(default_factory=dict)
    """Stream 0 against our own fp32 run: presence agreement, landmark error / pose diagonal, world cm."""
    runtime: str = "onnxruntime"
    """What ran the landmark model: onnxruntime, openvino (a bf16 build that measured it faster) or tensorrt."""


@dataclass
class BenchReport:
    streams: int
    source: str
    cores: int
    blazestream: SideResult
    mediapipe: list[SideResult] = field(default_factory=list)
    ratio: float | None = None
    agreement: dict[str, float] = field(default_factory=dict)
    precisions: list[PrecisionResult] = field(default_factory=list)
    """One entry per --precision (the first is also `blazestream` / `ratio` / `agreement` above)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Collector:
    """A ResultSink that keeps what the bench needs: latencies, stream 0's landmarks, timing."""

    def __init__(self, stream0: str) -> None:
        self.stream0 = stream0
        self.latencies: list[float] = []
        self.first_arrival: float | None = None
        self.first_write: float | None = None
        self.last_write = 0.0
        self.frames = 0
        self.stream0_poses: dict[int, np.ndarray | None] = {}
        self.stream0_world: dict[int, np.ndarray] = {}
        self.stream0_rois: dict[int, np.ndarray] = {}
        """The ROI (5,) each stream-0 pose was estimated on, normalized: for the same-crops comparison."""

    def write(self, results: list[FrameResult]) -> None:
        now = time.monotonic()
        if self.first_write is None and results:
            self.first_write = now
        for r in results:
            self.latencies.append(now - r.arrived)
            self.first_arrival = r.arrived if self.first_arrival is None else min(self.first_arrival, r.arrived)
            self.frames += 1
            if r.stream == self.stream0:
                self.stream0_poses[r.frame] = (
                    np.array([[lm.x * r.width, lm.y * r.height] for lm in r.poses[0].landmarks]) if r.poses else None
                )
                if r.poses:
                    self.stream0_world[r.frame] = np.array([[w.x, w.y, w.z] for w in r.poses[0].world_landmarks])
                    roi = r.poses[0].roi
                    self.stream0_rois[r.frame] = np.array(
                        [roi.x_center, roi.y_center, roi.width, roi.height, roi.rotation], dtype=np.float32
                    )
        self.last_write = now

    def close(self) -> None:
        pass


def probe_video(source: Path) -> tuple[int, int, int]:
    """(frames as the container counts them, width, height) of a file cv2.VideoCapture (a MediaPipe user's
    reader) can decode: its first frame is decoded to make sure."""
    import cv2

    capture = cv2.VideoCapture(str(source))
    try:
        ok, bgr = capture.read()
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    if not ok:
        raise BlazestreamError(f"{source}: no video frame could be decoded; is it a video file?")
    return count, bgr.shape[1], bgr.shape[0]


def _percentile_ms(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, q)) if values else 0.0


def run_ours(cfg: AppConfig, backend: str, stream0: str) -> tuple[SideResult, _Collector]:
    from blazestream.cpu_split import CpuSplit
    from blazestream.pipeline.graph import build_cpu_runner, create_estimator

    collector = _Collector(stream0)
    loading = time.monotonic()
    estimator = create_estimator(cfg, backend)
    runner = build_cpu_runner(cfg, estimator, extra_sinks=[collector])
    split = CpuSplit()
    cpu0 = time.process_time()
    split.start()
    try:
        summary = runner.run()
    finally:
        estimator.close()
    cpu = time.process_time() - cpu0
    cpu_split = split.stop(collector.frames)
    if summary.failures:
        raise BlazestreamError(f"bench sources failed: {summary.failures}")
    wall = collector.last_write - (collector.first_arrival or collector.last_write)
    startup = collector.first_write - loading if collector.first_write is not None else None
    return (
        SideResult(
            name=f"blazestream {backend}",
            frames=collector.frames,
            wall_s=wall,
            fps=collector.frames / wall if wall > 0 else 0.0,
            latency_p50_ms=_percentile_ms(collector.latencies, 50),
            latency_p95_ms=_percentile_ms(collector.latencies, 95),
            cpu_cores=cpu / summary.wall_s if summary.wall_s else 0.0,
            peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            cpu_ms_per_frame=cpu_split.ms_per_frame(),
            detail=f"lanes {runner.lanes}",
            startup_s=startup,
        ),
        collector,
    )


def run_mediapipe(video: Path, streams: int, processes: int, *, record: bool, out_dir: Path) -> tuple[SideResult, Any]:
    """MediaPipe's Pose (video mode, full model, one tracker per stream) over `processes` processes, each
    stream decoding the video itself as a MediaPipe user does (cv2.VideoCapture): the same job as ours."""
    python = mediapipe_python()
    shares = [streams // processes + (1 if i < streams % processes else 0) for i in range(processes)]
    shares = [s for s in shares if s]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(GLOG_minloglevel="2", TF_CPP_MIN_LOG_LEVEL="2", OMP_NUM_THREADS="1")
    procs = []
    for i, share in enumerate(shares):
        out = out_dir / f"mp_{processes}_{i}.json"
        args = [str(python), str(WORKER), "video", "--video", str(video), "--streams", str(share), "--out", str(out)]
        args += ["--wait-for-go"] + (["--record"] if record and i == 0 else [])
        procs.append(
            (
                subprocess.Popen(
                    args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
                ),
                out,
            )
        )
    for proc, _ in procs:  # all loaded and warm before the clock starts
        line = proc.stdout.readline() if proc.stdout else ""
        if line.strip() != "READY":
            raise BlazestreamError(f"MediaPipe worker did not start: {proc.stderr.read() if proc.stderr else ''}")
    for proc, _ in procs:
        assert proc.stdin is not None
        proc.stdin.write("GO\n")
        proc.stdin.flush()
    results = []
    for proc, out in procs:
        _, err = proc.communicate(timeout=3600)
        if proc.returncode != 0:
            raise BlazestreamError(f"MediaPipe worker failed: {err[-2000:]}")
        results.append(json.loads(out.read_text()))
    total = sum(r["streams"] * r["frames_per_stream"] for r in results)
    wall = max(r["wall_s"] for r in results)
    latencies = [v for r in results for v in r["latencies_s"]]
    return (
        SideResult(
            name=f"MediaPipe x{len(results)} proc",
            frames=total,
            wall_s=wall,
            fps=total / wall,
            latency_p50_ms=_percentile_ms(latencies, 50),
            latency_p95_ms=_percentile_ms(latencies, 95),
            cpu_cores=sum(r["cpu_s"] for r in results) / wall,
            peak_rss_mb=sum(r["max_rss_kb"] for r in results) / 1024.0,
            detail=f"streams/process {shares}, each decoding with cv2",
        ),
        results[0].get("stream0"),
    )


def error_of_diagonal(ours: np.ndarray, reference: np.ndarray) -> float:
    """Mean landmark distance (N, 2 pixels) over the reference pose's box diagonal: every bench accuracy
    figure is the median of this over frames."""
    diagonal = float(np.linalg.norm(reference.max(0) - reference.min(0)))
    return float(np.linalg.norm(ours - reference, axis=1).mean()) / diagonal


def world_error_m(ours: np.ndarray, reference: np.ndarray) -> float:
    """Mean world-landmark distance (N, 3), in metres."""
    return float(np.linalg.norm(ours - reference, axis=1).mean())


def agreement(ours: dict[int, np.ndarray | None], reference: list[Any], width: int, height: int) -> dict[str, float]:
    """Stream 0: share of frames where both agree on pose/no pose; median error / pose diagonal."""
    same = 0
    errors = []
    for index, ref in enumerate(reference):
        mine = ours.get(index)
        if (mine is not None) == (ref is not None):
            same += 1
        if mine is not None and ref is not None:
            errors.append(error_of_diagonal(mine, np.asarray(ref["landmarks"])[:, :2] * [width, height]))
    return {
        "frames": float(len(reference)),
        "same_presence": same / len(reference) if reference else 0.0,
        "mediapipe_found": sum(r is not None for r in reference) / len(reference) if reference else 0.0,
        "median_error_of_diagonal": float(np.median(errors)) if errors else float("nan"),
        "p95_error_of_diagonal": float(np.percentile(errors, 95)) if errors else float("nan"),
    }


def against_fp32(ours: _Collector, fp32: _Collector) -> dict[str, float]:
    """Stream 0 of a reduced-precision run against the fp32 run: presence, landmarks, world landmarks."""
    frames = sorted(fp32.stream0_poses)
    same = sum((ours.stream0_poses.get(i) is None) == (fp32.stream0_poses[i] is None) for i in frames)
    errors, world = [], []
    for i in frames:
        a, b = ours.stream0_poses.get(i), fp32.stream0_poses[i]
        if a is not None and b is not None:
            errors.append(error_of_diagonal(a, b))
            world.append(world_error_m(ours.stream0_world[i], fp32.stream0_world[i]))
    return {
        "same_presence": same / len(frames) if frames else 0.0,
        "median_error_of_diagonal": float(np.median(errors)) if errors else float("nan"),
        "world_mean_cm": float(np.mean(world) * 100.0) if world else float("nan"),
    }


def same_crops(source: Path, fp32: _Collector, precision: str, cfg: AppConfig) -> dict[str, float]:
    """The reduced model against fp32 on fp32's own crops of stream 0 (its ROI of every frame).

    In tracking, each frame's ROI comes from the last frame's landmarks, so any difference is fed back
    and grows: a one-grey-level change of one pixel of the first frame moves fp32's world landmarks by
    ~0.8 cm over the bundled clip. This is the model's own share of the difference, loop taken out.
    """
    import cv2

    from blazestream.pipeline.graph import create_estimator

    estimators = {}
    for name in ("fp32", precision):
        engine = cfg.engine.model_copy(update={"precision": name})
        estimators[name] = create_estimator(cfg.model_copy(update={"engine": engine}), "cpu")
    capture = cv2.VideoCapture(str(source))
    errors, world = [], []
    try:
        index = 0
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            roi = fp32.stream0_rois.get(index)
            index += 1
            if roi is None:
                continue
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            a, b = (estimators[n].estimate([rgb], [0], roi[None]) for n in (precision, "fp32"))
            size = np.asarray(rgb.shape[1::-1], dtype=np.float64)
            pa, pb = (r.landmarks[0, :NUM_LANDMARKS, :2] * size for r in (a, b))
            errors.append(error_of_diagonal(pa, pb))
            world.append(world_error_m(a.world[0], b.world[0]))
    finally:
        capture.release()
        for estimator in estimators.values():
            estimator.close()
    return {
        "median_error_of_diagonal_same_crops": float(np.median(errors)) if errors else float("nan"),
        "world_mean_cm_same_crops": float(np.mean(world) * 100.0) if world else float("nan"),
    }


def run_bench(
    cfg: AppConfig,
    *,
    source: Path,
    streams: int,
    backend: str,
    mediapipe: bool = True,
    precisions: tuple[str, ...] = ("fp32",),
) -> BenchReport:
    cores = available_cores()
    if mediapipe:
        mediapipe_python()  # missing reference: say so (and how to get it) before minutes of our side
    with tempfile.TemporaryDirectory(prefix="blazestream-bench-") as tmp:
        tmp_dir = Path(tmp)
        count, width, height = probe_video(source)
        log.info("%s: %d frames of %dx%d; %d streams; %d cores", source, count, width, height, streams, cores)
        runs = []
        for precision in precisions:
            engine = cfg.engine.model_copy(update={"precision": precision})
            side, collector = run_ours(cfg.model_copy(update={"engine": engine}), backend, cfg.cameras[0].id)
            side.name += f" {precision}"
            runs.append((precision, side, collector))
        _, ours, collector = runs[0]
        report = BenchReport(streams=streams, source=str(source), cores=cores, blazestream=ours)
        fp32 = next((c for p, _, c in runs if p == "fp32"), None)
        for precision, side, run_collector in runs:
            result = PrecisionResult(precision, side, runtime=landmark_runtime(cfg, precision, backend))
            if fp32 is not None and precision != "fp32":
                result.vs_fp32 = against_fp32(run_collector, fp32)
                if backend == "cpu":
                    log.info("%s against fp32 on fp32's own crops of stream 0", precision)
                    result.vs_fp32 |= same_crops(source, fp32, precision, cfg)
            report.precisions.append(result)
        if mediapipe:
            single, stream0 = run_mediapipe(source, streams, 1, record=True, out_dir=tmp_dir)
            report.mediapipe.append(single)
            if min(cores, streams) > 1:
                multi, _ = run_mediapipe(source, streams, min(cores, streams), record=False, out_dir=tmp_dir)
                report.mediapipe.append(multi)
            best = max(report.mediapipe, key=lambda s: s.fps)
            report.ratio = ours.fps / best.fps if best.fps else None
            if stream0:
                report.agreement = agreement(collector.stream0_poses, stream0, width, height)
            for result, (_, _, run_collector) in zip(report.precisions, runs, strict=True):
                result.ratio = result.side.fps / best.fps if best.fps else None
                if stream0:
                    result.vs_mediapipe = agreement(run_collector.stream0_poses, stream0, width, height)
    return report


def landmark_runtime(cfg: AppConfig, precision: str, backend: str) -> str:
    """The runtime that ran the landmark model at `precision`: a reduced build records its own."""
    if backend != "cpu":
        return "tensorrt"
    if precision == "fp32":
        return "onnxruntime"
    from blazestream.models.cache import default_models_dir
    from blazestream.models.precision import Precision, read_manifest

    manifest = read_manifest(cfg.engine.models_dir or default_models_dir(), cast("Precision", precision))
    return str(manifest.get("runtime", "onnxruntime"))


def bench_config(base: AppConfig, source: Path, streams: int) -> AppConfig:
    """The run config for the bench: N file cameras, display off, no outputs."""
    data = base.model_dump()
    data["cameras"] = [{"id": f"cam{i}", "uri": str(source)} for i in range(streams)]
    data["outputs"] = {}
    data["duration_s"] = None
    return AppConfig.model_validate(data)


def print_report(report: BenchReport, console: Any) -> None:
    from rich.table import Table

    table = Table(
        title=f"blazestream bench: {report.streams} stream(s) of {Path(report.source).name}, {report.cores} cores"
    )
    for column in ("", "frames/s", "frames", "p50 ms", "p95 ms", "CPU (cores)", "peak RSS MB", "note"):
        table.add_column(column)
    for side in [*(p.side for p in report.precisions), *report.mediapipe]:
        table.add_row(
            side.name,
            f"{side.fps:.1f}",
            str(side.frames),
            f"{side.latency_p50_ms:.1f}",
            f"{side.latency_p95_ms:.1f}",
            f"{side.cpu_cores:.2f}",
            f"{side.peak_rss_mb:.0f}",
            side.detail,
        )
    console.print(table)
    if len(report.precisions) > 1:
        table = Table(title="per precision (stream 0 accuracy)")
        for column in ("precision", "frames/s", "× MediaPipe", "CPU ms/frame", "decode", "crop", "models", "rest"):
            table.add_column(column)
        for column in ("vs MediaPipe: presence / median", "vs fp32: presence / median / world (same crops)"):
            table.add_column(column)
        for p in report.precisions:
            split = p.side.cpu_ms_per_frame
            mp, fp = p.vs_mediapipe, p.vs_fp32
            table.add_row(
                f"{p.precision} ({p.runtime})",
                f"{p.side.fps:.1f}",
                f"{p.ratio:.2f}" if p.ratio is not None else "-",
                f"{sum(split.values()):.2f}",
                *(f"{split.get(k, 0.0):.2f}" for k in ("decode", "crop", "models", "rest")),
                f"{mp['same_presence']:.1%} / {mp['median_error_of_diagonal']:.2%}" if mp else "-",
                _against_fp32_cell(fp),
            )
        console.print(table)
    for p in report.precisions:
        split = p.side.cpu_ms_per_frame
        if split:
            parts = ", ".join(f"{name} {ms:.2f}" for name, ms in split.items())
            console.print(f"{p.side.name} CPU ms per frame: {sum(split.values()):.2f} = {parts}")
        if p.side.startup_s is not None:
            console.print(f"{p.side.name} start-up (engines, graph, first result): {p.side.startup_s:.2f} s")
    if report.ratio is not None:
        console.print(f"ratio blazestream / best MediaPipe: [bold]{report.ratio:.2f}x[/]")
    if report.agreement:
        a = report.agreement
        ok = a["same_presence"] >= AGREEMENT_MIN and a["median_error_of_diagonal"] <= MEDIAN_ERROR_MAX
        console.print(
            f"stream 0 vs MediaPipe: same pose/no-pose on {a['same_presence']:.1%} of {int(a['frames'])} frames, "
            f"median landmark error {a['median_error_of_diagonal']:.2%} of the pose diagonal "
            f"(p95 {a['p95_error_of_diagonal']:.2%}) [{'bold green' if ok else 'bold red'}]{'OK' if ok else 'OFF'}[/]"
        )


def _against_fp32_cell(fp: dict[str, float]) -> str:
    if not fp:
        return "-"
    cell = f"{fp['same_presence']:.1%} / {fp['median_error_of_diagonal']:.2%} / {fp['world_mean_cm']:.2f} cm"
    if "world_mean_cm_same_crops" in fp:
        cell += f" ({fp['median_error_of_diagonal_same_crops']:.2%} / {fp['world_mean_cm_same_crops']:.2f} cm)"
    return cell


@dataclass
class ModelTiming:
    name: str
    runtime: str
    ms_1_thread: float
    ms_all_cores: float


def _median_ms(run: Any, repeats: int) -> float:
    for _ in range(3):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000.0)


def model_timings(models_dir: Path, photo: Path, repeats: int = 30) -> list[ModelTiming]:
    """ms per image, batch 1: each model in ONNX Runtime, and in TFLite/XNNPACK (MediaPipe's runtime),
    plus the whole static pipeline of both, measured one after the other in this run."""
    import onnxruntime as ort

    from blazestream.engines.onnxruntime import OrtSettings
    from blazestream.factory import create_cpu_estimator
    from blazestream.images import load_image

    cores = available_cores()
    rng = np.random.default_rng(0)
    rows = []
    specs = [
        ("detector", "pose_detection", 224, (-1.0, 1.0)),
        ("landmark, with segmentation", "pose_landmark_full", 256, (0.0, 1.0)),
        ("landmark, pruned (no segmentation)", "pose_landmark_full_noseg", 256, (0.0, 1.0)),
    ]
    for label, stem, size, (lo, hi) in specs:
        x = rng.uniform(lo, hi, (1, 3, size, size)).astype(np.float32)
        ms = []
        for threads in (1, cores):
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = ort.InferenceSession(
                str(models_dir / f"{stem}.onnx"), options, providers=["CPUExecutionProvider"]
            )
            ms.append(_median_ms(lambda s=session, v=x: s.run(None, {"input": v}), repeats))
        rows.append(ModelTiming(label, "ONNX Runtime", ms[0], ms[1]))
        tflite = models_dir / f"{stem}.tflite"
        if tflite.is_file():
            try:
                from ai_edge_litert.interpreter import Interpreter
            except ImportError:
                continue
            ms = []
            for threads in (1, cores):
                interpreter = Interpreter(model_path=str(tflite), num_threads=threads)
                interpreter.allocate_tensors()
                index = interpreter.get_input_details()[0]["index"]
                nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))

                def invoke(it: Any = interpreter, i: int = index, v: np.ndarray = nhwc) -> None:
                    it.set_tensor(i, v)
                    it.invoke()

                ms.append(_median_ms(invoke, repeats))
            rows.append(ModelTiming(label, "TFLite + XNNPACK (MediaPipe's runtime)", ms[0], ms[1]))
    image = load_image(photo)
    ms = []
    for threads in (1, cores):
        estimator = create_cpu_estimator(models_dir, ort=OrtSettings(intra_op_threads=threads, parallel_runs=1))
        ms.append(_median_ms(lambda e=estimator: e.process_static([image]), repeats))
    rows.append(ModelTiming("whole static pipeline", "blazestream (ONNX Runtime)", ms[0], ms[1]))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "timing.json"
        from blazestream.reference import run_worker

        run_worker(["timing", "--images", str(photo), "--repeats", str(repeats), "--out", str(out)])
        times = json.loads(out.read_text())["times_s"]
    mp_ms = float(np.median(times) * 1000.0)
    rows.append(ModelTiming("whole static pipeline", "MediaPipe 0.10.21 Pose (its own threads)", mp_ms, mp_ms))
    return rows


def print_model_timings(rows: list[ModelTiming], console: Any) -> None:
    from rich.table import Table

    table = Table(title=f"ms per image, batch 1 (median), {available_cores()} cores")
    for column in ("model", "runtime", "1 thread", "all cores"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.name, row.runtime, f"{row.ms_1_thread:.2f}", f"{row.ms_all_cores:.2f}")
    console.print(table)
