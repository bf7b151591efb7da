"""The `blazestream` command line: thin wrappers over the library, one sub-command per job."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from blazestream import __version__
from blazestream.errors import BlazestreamError

app = typer.Typer(
    name="blazestream",
    help="Multi-camera BlazePose: MediaPipe-exact 33-keypoint poses on GStreamer, ONNX Runtime or TensorRT.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, soft_wrap=True)

ModelsDir = Annotated[
    Path | None,
    typer.Option(
        "--models-dir",
        help="Model cache (default: $BLAZESTREAM_MODELS or ~/.cache/blazestream/models).",
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
    logging.basicConfig(level=level, format=fmt, handlers=[handler], force=True)


def _models_dir(value: Path | None) -> Path:
    from blazestream.engines.models import default_models_dir

    return value if value is not None else default_models_dir()


def _fail(exc: BaseException) -> typer.Exit:
    err.print(f"[bold red]error:[/] {exc}")
    return typer.Exit(2)


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
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
) -> None:
    """Fetch MediaPipe's pose models (from the mediapipe 0.10.21 wheel), check them and convert to ONNX."""
    from blazestream.engines.models import ensure_models

    target = _models_dir(models_dir)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    ) as progress:
        tasks: dict[str, TaskID] = {}

        def report(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = progress.add_task(step, total=total)
            progress.update(tasks[step], completed=done, total=total)

        try:
            paths = ensure_models(target, wheel=wheel, force=force, progress=report)
        except BlazestreamError as exc:
            raise _fail(exc) from exc
    err.print(f"models ready in [bold]{target}[/]")
    for path in paths.all():
        print(path)


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
) -> None:
    """Static mode: find the poses in each image on its own and write them as JSON."""
    from blazestream.engines.factory import create_cpu_estimator
    from blazestream.engines.onnxruntime import OrtSettings
    from blazestream.estimator import EstimatorSettings
    from blazestream.image_job import process_images, write_json

    settings = EstimatorSettings(
        min_detection_confidence=min_detection_confidence,
        min_presence=min_presence,
        max_poses=max_poses,
        heatmap_kernel=heatmap_kernel,
    )
    try:
        estimator = create_cpu_estimator(_models_dir(models_dir), settings, OrtSettings(intra_op_threads=threads))
    except BlazestreamError as exc:
        raise _fail(exc) from exc
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
        report = process_images(images, estimator, annotate_dir=annotate, on_done=lambda _: progress.advance(task))
    write_json(report.document, json_out)
    found = sum(len(e["poses"]) for e in report.document["images"])
    err.print(f"{len(images)} image(s), {found} pose(s), {report.failed} failed")
    if report.failed:
        raise typer.Exit(1)


def main() -> None:
    """Entry point that also honours BLAZESTREAM_DEBUG for full tracebacks."""
    if os.environ.get("BLAZESTREAM_DEBUG"):
        app.pretty_exceptions_enable = True
    app()
