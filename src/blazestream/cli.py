"""The `blazestream` command line: thin wrappers over the library, one sub-command per job."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from blazestream import __version__
from blazestream.errors import BlazestreamError, ConfigError, exit_code_for
from blazestream.precisions import TENSORRT_PRECISIONS
from blazestream.precisions import CpuPrecision as CpuPrecisionName
from blazestream.uris import RedactingFilter, redact_text

if TYPE_CHECKING:
    from blazestream.config import AppConfig
    from blazestream.pose.windows import WindowSpec

_Command = TypeVar("_Command", bound=Callable[..., Any])
_verbose = False
"""--verbose: debug logs, and the traceback of an unexpected error."""


class _GuardedTyper(typer.Typer):
    """Every command runs inside the one error boundary (`_guarded`)."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[_Command], _Command]:
        register = super().command(*args, **kwargs)

        def decorator(func: _Command) -> _Command:
            register(_guarded(func))
            return func

        return decorator


def _guarded(func: _Command) -> _Command:
    """The CLI's error boundary: an error becomes one message and its documented exit code (errors.exit_code_for).

    No traceback unless --verbose: BlazestreamError and OSError messages say what to do; anything else is
    reported as an internal error.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except (Exception, KeyboardInterrupt) as exc:
            raise _fail(exc) from exc

    return wrapper  # type: ignore[return-value]  # functools.wraps keeps the signature typer reads


app = _GuardedTyper(
    name="blazestream",
    help="Multi-camera BlazePose: MediaPipe-exact 33-keypoint poses on GStreamer, ONNX Runtime or TensorRT.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Logs and tables go to stderr; when that is a file or pipe, a wide fixed width keeps tables readable.
err = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 160)

ModelsDir = Annotated[
    Path | None,
    typer.Option(
        "--models-dir",
        help="Model cache (default: $BLAZESTREAM_MODELS or ~/.cache/blazestream/models/mediapipe-0.10.21).",
        show_default=False,
    ),
]


def _setup_logging(verbose: bool) -> None:
    """Rich output on a terminal; plain, unwrapped lines when stderr goes to a file or a pipe."""
    level = logging.DEBUG if verbose else logging.INFO
    if err.is_terminal:
        handler: logging.Handler = RichHandler(console=err, show_path=False, rich_tracebacks=False)
        fmt = "%(message)s"
    else:
        handler = logging.StreamHandler(sys.stderr)
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler.addFilter(RedactingFilter())
    logging.basicConfig(level=level, format=fmt, handlers=[handler], force=True)


def _models_dir(value: Path | None) -> Path:
    from blazestream.models.cache import default_models_dir

    return value if value is not None else default_models_dir()


def _fail(exc: BaseException) -> typer.Exit:
    """Print one line for the error (credentials redacted) and return the Exit with its code."""
    if isinstance(exc, BlazestreamError | OSError):
        text = str(exc)
    elif isinstance(exc, KeyboardInterrupt):
        text = "interrupted"
    else:
        text = f"internal error ({type(exc).__name__}: {exc}); please report it with the --verbose output"
    if _verbose and not isinstance(exc, KeyboardInterrupt):
        logging.getLogger("blazestream").error("traceback", exc_info=exc)
    hint = "" if _verbose or isinstance(exc, BlazestreamError | KeyboardInterrupt) else " (--verbose for details)"
    err.print(f"[bold red]error:[/] {escape(redact_text(text))}{escape(hint)}", highlight=False)
    return typer.Exit(exit_code_for(exc))


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging, and tracebacks.")] = False,
) -> None:
    global _verbose
    _verbose = verbose
    _setup_logging(verbose)


@app.command()
def version() -> None:
    """Print the version."""
    print(__version__)


@app.command()
def models(
    models_dir: ModelsDir = None,
    wheel: Annotated[
        Path | None,
        typer.Option(help="A local mediapipe-0.10.21 wheel to read the .tflite files from (offline)."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Convert again even if the cache is up to date.")] = False,
    precision: Annotated[
        list[str] | None,
        typer.Option(
            help="Also build the CPU landmark model at this precision now, int8 or bf16 (repeat); "
            "otherwise it is built on first use.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Fetch MediaPipe's pose models (from the mediapipe 0.10.21 wheel), check them and convert to ONNX."""
    from blazestream.models.cache import ensure_models

    reduced = [p for p in _cpu_precisions(precision or []) if p != "fp32"]

    target = _models_dir(models_dir)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    ) as progress:
        tasks: dict[str, TaskID] = {}

        def report(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = progress.add_task(step, total=total)
            progress.update(tasks[step], completed=done, total=total)

        paths = ensure_models(target, wheel=wheel, force=force, progress=report)
    err.print(f"models ready in [bold]{target}[/]")
    for path in paths.all():
        print(path)
    for name in reduced:
        print(_build_precision(target, name))


def _cpu_precisions(values: list[str]) -> tuple[CpuPrecisionName, ...]:
    """`--precision` values, each once, in order; an unknown one is a usage error naming the choices."""
    from blazestream.models.precision import PRECISIONS

    unknown = [p for p in values if p not in PRECISIONS]
    if unknown:
        raise ConfigError(f"--precision {unknown[0]}: use {', '.join(PRECISIONS)}")
    return tuple(p for v in dict.fromkeys(values) for p in PRECISIONS if p == v)  # typed, in the given order


def _build_precision(models_dir: Path, precision: CpuPrecisionName) -> Path:
    """Build (or find cached) one reduced-precision landmark model and say what it is."""
    from blazestream.models.precision import landmark_model, read_manifest

    with err.status(f"{precision}: building the landmark model (once)") as status:
        path = landmark_model(models_dir, precision, progress=status.update)
    record = read_manifest(models_dir, precision)
    layers, errors = record.get("layers", {}), record.get("held_out_error", {})
    reduced = len(layers.get("reduced", []))
    summary = (
        f"{precision}: {record.get('runtime', '?')}, {reduced} of {layers.get('candidates', '?')} layers "
        f"({layers.get('reduced_mac_share', 0):.0%} of the multiply-adds), "
        f"{errors.get('landmark_px', 0):.2f} px / {errors.get('world_cm', 0):.2f} cm against fp32"
    )
    openvino = record.get("openvino")
    if openvino:
        summary += "; OpenVINO kept" if openvino.get("used") else f"; OpenVINO not kept: {openvino.get('reason')}"
    err.print(summary)
    return path


CpuPrecision = Annotated[
    str | None,
    typer.Option(
        help="Landmark model precision on the CPU: fp32 (exact, default), int8 or bf16 (engine.precision).",
        show_default=False,
    ),
]


@app.command()
def image(
    images: Annotated[list[Path], typer.Argument(help="Image files (JPEG, PNG, ...).", show_default=False)],
    json_out: Annotated[str, typer.Option("--json", help="Where to write the JSON results ('-' for stdout).")],
    annotate: Annotated[
        Path | None, typer.Option(help="Directory for PNGs with the skeletons drawn.", show_default=False)
    ] = None,
    max_poses: Annotated[int, typer.Option(min=1, help="Poses per image (MediaPipe: 1).")] = 1,
    min_detection_confidence: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.5,
    min_presence: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Pose-flag threshold (MediaPipe's min_tracking_confidence)."),
    ] = 0.5,
    heatmap_kernel: Annotated[
        int,
        typer.Option(help="Heatmap refinement window: 7 as MediaPipe's graph, 9 as its stock Python solution."),
    ] = 7,
    threads: Annotated[int, typer.Option(min=0, help="ONNX Runtime intra-op threads (0: one per core).")] = 0,
    models_dir: ModelsDir = None,
    segmentation: Annotated[
        bool,
        typer.Option(help="Also write each image's person mask as <name>.mask.png beside the JSON (pixel = pose + 1)."),
    ] = False,
    window_scale: Annotated[
        list[float] | None,
        typer.Option(
            help="With --max-poses > 1: detector windows of this fraction of the short side (repeat; default 1.0 "
            "and 0.5; 0 = whole frame only).",
            show_default=False,
        ),
    ] = None,
    precision: CpuPrecision = None,
) -> None:
    """Static mode: find the poses in each image on its own and write them as JSON."""
    from blazestream.config import check_output_file
    from blazestream.engines.onnxruntime import OrtSettings
    from blazestream.estimator import EstimatorSettings
    from blazestream.factory import create_cpu_estimator
    from blazestream.image_job import process_images, write_json

    check_output_file("--json", json_out)

    try:
        windows = _window_spec(window_scale)
    except ValueError as exc:
        raise ConfigError(f"--window-scale: {exc}") from exc
    settings = EstimatorSettings(
        min_detection_confidence=min_detection_confidence,
        min_presence=min_presence,
        max_poses=max_poses,
        heatmap_kernel=heatmap_kernel,
        windows=windows,
    )
    estimator = create_cpu_estimator(
        _models_dir(models_dir),
        settings,
        OrtSettings(intra_op_threads=threads),
        segmentation=segmentation,
        precision=precision or "fp32",
    )
    show = len(images) > 3 and sys.stderr.isatty()
    with Progress(
        TextColumn("images"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not show,
    ) as progress:
        task = progress.add_task("images", total=len(images))
        mask_dir = (Path(".") if json_out == "-" else Path(json_out).parent) if segmentation else None
        try:
            report = process_images(
                images, estimator, annotate_dir=annotate, on_done=lambda _: progress.advance(task), mask_dir=mask_dir
            )
        finally:
            estimator.close()
    write_json(report.document, json_out)
    found = sum(len(e["poses"]) for e in report.document["images"])
    err.print(f"{len(images)} image(s), {found} pose(s), {report.failed} failed")
    if report.failed:
        raise typer.Exit(1)


def _window_spec(scales: list[float] | None) -> WindowSpec:
    """`--window-scale` values as detector windows: none given = the defaults, 0 = the whole frame only."""
    from blazestream.pose.windows import WindowSpec

    if not scales:
        return WindowSpec()
    return WindowSpec(scales=tuple(s for s in scales if s != 0.0))


def _camera_overrides(sources: list[str]) -> list[dict[str, str]]:
    """`--source URI` or `--source ID=URI`; ids default to cam0, cam1, ... in order."""
    cameras = []
    for index, text in enumerate(sources):
        camera_id, _, rest = text.partition("=")
        if rest and "/" not in camera_id and ":" not in camera_id and camera_id:
            cameras.append({"id": camera_id, "uri": rest})
        else:
            cameras.append({"id": f"cam{index}", "uri": text})
    return cameras


@app.command()
def run(
    config: Annotated[
        Path | None, typer.Argument(help="YAML config (see configs/default.yaml).", show_default=False)
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            help="Camera: a file, file://, rtsp://, v4l2:///dev/videoN or test: (repeat; ID=URI names it).",
            show_default=False,
        ),
    ] = None,
    backend: Annotated[str | None, typer.Option(help="auto, cpu, tensorrt or deepstream.")] = None,
    jsonl: Annotated[Path | None, typer.Option(help="JSON Lines output, one line per frame.")] = None,
    video: Annotated[Path | None, typer.Option(help="Annotated, tiled H.264 MP4 output.")] = None,
    rtsp_out: Annotated[
        int | None, typer.Option(help="Serve the annotated video at rtsp://127.0.0.1:PORT/annotated.")
    ] = None,
    mqtt: Annotated[str | None, typer.Option(help="MQTT broker URL, e.g. mqtt://127.0.0.1:1883.")] = None,
    redis: Annotated[
        str | None, typer.Option(help="Redis URL, e.g. redis://127.0.0.1:6379/0: one stream per camera.")
    ] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Serve Prometheus metrics on this port.")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    max_poses: Annotated[int | None, typer.Option(help="Poses per camera (default 1, as MediaPipe).")] = None,
    models_dir: ModelsDir = None,
    shard: Annotated[
        str | None,
        typer.Option(
            help="Run only shard I of N of the cameras (I/N, e.g. 2/3; default: $BLAZESTREAM_SHARD).",
            show_default=False,
        ),
    ] = None,
    list_only: Annotated[
        bool, typer.Option("--list", help="Print the cameras this shard runs (one id per line) and exit.")
    ] = False,
    api_port: Annotated[
        int | None, typer.Option(help="Serve the HTTP API and live page here (add/remove cameras at run time).")
    ] = None,
    api_address: Annotated[
        str | None, typer.Option(help="API listen address (default 127.0.0.1; others need a token).")
    ] = None,
    segmentation: Annotated[
        bool | None, typer.Option("--segmentation", help="Person masks (drawn in the annotated video).")
    ] = None,
    precision: CpuPrecision = None,
) -> None:
    """Run the streaming graph on cameras and files until they end, --duration, or SIGINT/SIGTERM."""
    from blazestream.backends import resolve_backend
    from blazestream.config import load_config

    overrides: dict[str, object] = {}
    if source:
        overrides["cameras"] = _camera_overrides(source)
    engine: dict[str, object] = {}
    if backend is not None:
        engine["backend"] = backend
    if models_dir is not None:
        engine["models_dir"] = models_dir
    if precision is not None:
        engine["precision"] = precision
    if engine:
        overrides["engine"] = engine
    outputs: dict[str, object] = {}
    if jsonl is not None:
        outputs["jsonl"] = jsonl
    if video is not None:
        outputs["video"] = {"path": video}
    if rtsp_out is not None:
        outputs["rtsp"] = {"port": rtsp_out}
    if mqtt is not None:
        outputs["mqtt"] = {"url": mqtt}
    if redis is not None:
        outputs["redis"] = {"url": redis}
    if metrics_port is not None:
        outputs["metrics_port"] = metrics_port
    if outputs:
        overrides["outputs"] = outputs
    if duration is not None:
        overrides["duration_s"] = duration
    pose: dict[str, object] = {}
    if max_poses is not None:
        pose["max_poses"] = max_poses
    if segmentation:
        pose["segmentation"] = True
    if pose:
        overrides["pose"] = pose
    api: dict[str, object] = {"port": api_port} if api_port is not None else {}
    if api_address is not None:
        api["address"] = api_address
    if api:
        overrides["api"] = api
    cfg = load_config(config, overrides)
    if api_address is not None and cfg.api.port is None:
        raise ConfigError("--api-address needs --api-port (or api.port in the config)")
    if not cfg.cameras and cfg.api.port is None:
        raise ConfigError("no cameras: give --source URI (repeat it for more), or cameras: in the config")
    cfg = _shard_cameras(cfg, shard, list_only)
    if not cfg.cameras and cfg.api.port is None:  # with the API on, cameras may be added at run time
        from blazestream.pipeline.idle import run_idle

        summary = run_idle(cfg, "this shard owns none of the configured cameras")
        _print_summary(summary)
        raise typer.Exit(summary.exit_code)
    chosen = resolve_backend(cfg.engine.backend)
    logging.getLogger("blazestream").info("backend: %s", chosen)
    close: Callable[[], None] = lambda: None  # noqa: E731 - the DeepStream runner closes its own engines
    if cfg.api.port is not None:
        from blazestream.api.service import prepare_api_run
        from blazestream.sharding import shard_from

        this_shard = shard_from(shard)
        admit = this_shard.refusal if this_shard is not None and this_shard.count > 1 else None
        run_graph = prepare_api_run(cfg, chosen, admit=admit)
    elif chosen == "deepstream":
        from blazestream.pipeline.deepstream import build_deepstream_runner

        run_graph = build_deepstream_runner(cfg).run
    else:
        from blazestream.pipeline.graph import build_cpu_runner, create_estimator

        estimator = create_estimator(cfg, chosen)
        close = estimator.close
        run_graph = build_cpu_runner(cfg, estimator).run
    try:
        summary = run_graph()
    finally:
        close()
    _print_summary(summary)
    raise typer.Exit(summary.exit_code)


def _shard_cameras(cfg: AppConfig, option: str | None, list_only: bool) -> AppConfig:
    """Keep the cameras of this process's shard (--shard or $BLAZESTREAM_SHARD); with --list, print and exit."""
    from blazestream.sharding import Shard, assign, shard_from

    shard = shard_from(option) or Shard(0, 1)
    plan = assign([c.id for c in cfg.cameras], shard.count)
    mine = plan[shard.index]
    if shard.count > 1:
        others = ", ".join(f"{i}: {len(ids)}" for i, ids in plan.items() if i != shard.index)
        err.print(f"shard {shard}: {len(mine)} of {len(cfg.cameras)} camera(s) (other shards: {others})")
    if list_only:
        for camera_id in mine:
            print(camera_id)
        raise typer.Exit(0)
    return cfg.model_copy(update={"cameras": [c for c in cfg.cameras if c.id in set(mine)]})


def _default_bench_source() -> Path:
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = base / "data" / "messi_moves.mp4"
        if candidate.is_file():
            return candidate
    raise ConfigError("no bundled sample found here: give --source FILE")


@app.command()
def bench(
    streams: Annotated[int, typer.Option(min=1, max=64, help="Copies of the source run at once.")] = 4,
    source: Annotated[Path | None, typer.Option(help="Video file (default: data/messi_moves.mp4).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the figures as JSON.")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config for engine/pose settings.")] = None,
    backend: Annotated[str, typer.Option(help="auto, cpu, tensorrt (deepstream: use run).")] = "cpu",
    mediapipe: Annotated[
        bool,
        typer.Option(
            "--reference/--no-reference",
            "--mediapipe/--no-mediapipe",
            help="Also run MediaPipe's own Pose (the reference, `make reference`) for the ratio.",
        ),
    ] = True,
    models: Annotated[
        bool, typer.Option("--models", help="Instead: ms per image of each model, ONNX Runtime vs MediaPipe's.")
    ] = False,
    models_dir: ModelsDir = None,
    multi_person: Annotated[
        bool,
        typer.Option(
            "--multi-person", help="Instead: 4 people per frame (2x2 grid of the source): poses/s and window cost."
        ),
    ] = False,
    precision: Annotated[
        list[str] | None,
        typer.Option(help="Landmark model precision(s) to run, in turn: fp32 (default), int8, bf16 (repeat)."),
    ] = None,
) -> None:
    """Frames/s of the graph on N copies of a video, next to MediaPipe's best on this machine."""
    from blazestream.backends import resolve_backend
    from blazestream.bench import bench_config, print_report, run_bench
    from blazestream.config import check_output_file, load_config

    if json_out is not None:
        check_output_file("--json", json_out)

    if models:
        from blazestream.bench import model_timings, print_model_timings
        from blazestream.models.cache import ensure_models

        photo = _default_bench_source().with_name("messi5.jpg")
        rows = model_timings(ensure_models(_models_dir(models_dir)).models_dir, photo)
        print_model_timings(rows, err)
        if json_out is not None:
            json_out.write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
        return
    if multi_person:
        _bench_multi_person(source, config, models_dir, json_out)
        return
    path = source or _default_bench_source()
    if not path.is_file():
        raise ConfigError(f"{path}: no such video file")
    overrides: dict[str, object] = {"engine": {"models_dir": models_dir}} if models_dir else {}
    cfg = bench_config(load_config(config, overrides), path, streams)
    chosen = resolve_backend(backend)
    if chosen == "deepstream":
        chosen = "tensorrt"
    chosen_precisions = _cpu_precisions(precision or ["fp32"])
    report = run_bench(
        cfg, source=path, streams=streams, backend=chosen, mediapipe=mediapipe, precisions=chosen_precisions
    )
    print_report(report, err)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report.to_json(), indent=1) + "\n")


def _bench_multi_person(
    source: Path | None, config: Path | None, models_dir: Path | None, json_out: Path | None
) -> None:
    """`bench --multi-person`: the pose stage on a 2x2 grid of the source with max_poses 4 (at least)."""
    from blazestream.bench_multi import print_multi_person, run_multi_person
    from blazestream.config import load_config
    from blazestream.pipeline.graph import create_estimator

    path = source or _default_bench_source()
    if not path.is_file():
        raise ConfigError(f"{path}: no such video file")
    base = load_config(config, {"engine": {"models_dir": models_dir}} if models_dir else {})
    pose = base.pose.model_copy(update={"max_poses": max(4, base.pose.max_poses)})
    cfg = base.model_copy(update={"pose": pose, "cameras": []})
    report = run_multi_person(create_estimator(cfg, "cpu"), path, redetect_frames=cfg.pose.detection.redetect_frames)
    print_multi_person(report, err)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps({**asdict(report), "window_cost_ms": report.window_cost_ms}, indent=1) + "\n")


def _print_summary(summary: object) -> None:
    from rich.table import Table

    from blazestream.pipeline.runner import RunSummary

    assert isinstance(summary, RunSummary)
    table = Table(title=f"blazestream run: {summary.wall_s:.1f} s, stopped by {summary.stopped_by}")
    for column in ("camera", "frames", "poses", "fps", "status"):
        table.add_column(column)
    for camera, frames in summary.frames.items():
        fps = frames / summary.wall_s if summary.wall_s else 0.0
        status = summary.failures.get(camera, "removed" if camera in summary.removed else "ok")
        table.add_row(camera, str(frames), str(summary.poses[camera]), f"{fps:.1f}", status)
    err.print(table)
    for problem in summary.output_errors:
        err.print(f"[red]output error:[/] {problem}")


@app.command()
def serve(
    files: Annotated[list[Path], typer.Argument(help="Video files, served looped at /cam0, /cam1, ...")],
    port: Annotated[int, typer.Option(min=0, max=65535, help="RTSP port (0: a free one).")] = 8554,
    address: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    mount: Annotated[
        list[str] | None, typer.Option("--mount", help="Mount name per file, in order (default cam0, cam1, ...).")
    ] = None,
) -> None:
    """Serve video files over RTSP, each looped forever in real time: stand-in cameras for tests and demos."""
    from blazestream.rtsp_serve import run_until_signalled

    try:
        code = run_until_signalled(files, port, address, mount or None)
    except (BlazestreamError, ValueError, OSError) as exc:
        raise _fail(exc) from exc
    raise typer.Exit(code)


EnginesDir = Annotated[
    Path | None,
    typer.Option(
        help="TensorRT engines (default: $BLAZESTREAM_ENGINES or ~/.cache/blazestream/engines).", show_default=False
    ),
]


@app.command("build-engines")
def build_engines(
    precision: Annotated[str, typer.Option(help="fp16, fp32 or int8 (calibrated on sample frames).")] = "fp16",
    max_batch: Annotated[int, typer.Option(min=1, max=256, help="Largest batch (cameras, or poses per batch).")] = 16,
    opt_batch: Annotated[
        int | None, typer.Option(min=1, help="Batch TensorRT tunes for: your camera count (default min(4, max)).")
    ] = None,
    workspace: Annotated[int, typer.Option(min=64, help="Builder workspace in MB.")] = 1024,
    segmentation: Annotated[bool, typer.Option(help="Also build the landmark model with segmentation.")] = False,
    calibration_source: Annotated[
        Path | None, typer.Option(help="INT8: video or image to calibrate on (default: data/messi_moves.mp4).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Rebuild even engines that are up to date.")] = False,
    models_dir: ModelsDir = None,
    engines_dir: EnginesDir = None,
) -> None:
    """Build the TensorRT engines (detector and landmark model) for this GPU, with a sidecar JSON each."""
    from blazestream.trt_build.build_plan import BuildRequest
    from blazestream.trt_build.build_progress import RichBuildProgress
    from blazestream.trt_build.engine_cache import default_engines_dir

    if precision not in TENSORRT_PRECISIONS:
        raise _fail(ConfigError(f"--precision {precision}: use fp16, fp32 or int8"))
    try:
        from blazestream.trt_build.build import build_engines as build

        request = BuildRequest(
            models_dir=_models_dir(models_dir),
            engines_dir=engines_dir or default_engines_dir(),
            precision=precision,  # narrowed by the check above
            max_batch=max_batch,
            opt_batch=opt_batch,
            workspace_mb=workspace,
            segmentation=segmentation,
            calibration_source=calibration_source,
            force=force,
        )
        request.profile  # noqa: B018 - validates opt <= max before the long build starts
        with RichBuildProgress(err) as progress:
            built = build(request, progress)
    except (BlazestreamError, ValueError) as exc:
        raise _fail(exc) from exc
    for result in built:
        print(result.engine.path)


@app.command()
def checks(
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable report on stdout.")] = False,
    precision: Annotated[str, typer.Option(help="Engine precision to look for.")] = "fp16",
    models_dir: ModelsDir = None,
    engines_dir: EnginesDir = None,
) -> None:
    """What this machine can run: GStreamer, DeepStream, CUDA, TensorRT, ONNX Runtime, models, engines."""
    from blazestream.checks import render_table, run_checks
    from blazestream.trt_build.engine_cache import default_engines_dir

    if precision not in TENSORRT_PRECISIONS:
        raise _fail(ConfigError(f"--precision {precision}: use fp16, fp32 or int8"))
    report = run_checks(
        models_dir=_models_dir(models_dir),
        engines_dir=engines_dir or default_engines_dir(),
        precision=precision,  # narrowed by the check above
    )
    if json_out:
        print(json.dumps(report.to_json(), indent=1))
    else:
        err.print(render_table(report))
    raise typer.Exit(report.exit_code)
