"""`blazestream checks`: what this machine can run, and what is missing for the rest.

Every probe is defensive (a missing GPU, driver or plugin is a row in the report, never an exception),
so the command works on any machine and exits 0 when the backend `auto` would pick can run. Rows that
only matter to other backends are informational.
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from blazestream import __version__
from blazestream.precisions import TensorRTPrecision as Precision

if TYPE_CHECKING:
    from rich.table import Table

Status = Literal["ok", "missing", "stale", "info"]

CPU_ELEMENTS = ("uridecodebin", "rtspsrc", "videoconvert", "appsink", "avdec_h264", "x264enc", "h264parse", "mp4mux")
"""The CPU graph: decoding, RTSP, and the annotated video output."""
CPU_REQUIRED = ("uridecodebin", "videoconvert", "appsink")
DEEPSTREAM_ELEMENTS = (
    "nvurisrcbin",
    "nvstreammux",
    "nvinfer",
    "nvvideoconvert",
    "nvmultistreamtiler",
    "nvdsosd",
    "nvv4l2decoder",
    "nvv4l2h264enc",
)
DEEPSTREAM_VERSION_FILE = Path("/opt/nvidia/deepstream/deepstream/version")


@dataclass(frozen=True)
class Check:
    """One row: `needed_by` names the backends that cannot run without it."""

    group: str
    name: str
    status: Status
    detail: str
    needed_by: tuple[str, ...] = ()


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    backend: str = "cpu"
    """What `--backend auto` picks here."""

    @property
    def blocking(self) -> list[Check]:
        """Problems that stop the backend `auto` picks."""
        return [c for c in self.checks if c.status in ("missing", "stale") and self.backend in c.needed_by]

    @property
    def exit_code(self) -> int:
        return 1 if self.blocking else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "blazestream": __version__,
            "backend": self.backend,
            "ok": not self.blocking,
            "checks": [asdict(c) | {"needed_by": list(c.needed_by)} for c in self.checks],
        }


def _version(*distributions: str) -> str | None:
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _guard(group: str, name: str, needed_by: tuple[str, ...], probe: Callable[[], Check]) -> Check:
    try:
        return probe()
    except Exception as exc:  # a probe must never stop the report
        return Check(group, name, "missing", f"{type(exc).__name__}: {exc}", needed_by)


def _gstreamer() -> list[Check]:
    try:
        from blazestream.gst import gst

        Gst = gst()
    except Exception as exc:
        return [Check("gstreamer", "GStreamer", "missing", str(exc), ("cpu", "tensorrt", "deepstream"))]
    rows = [Check("gstreamer", "GStreamer", "ok", str(Gst.version_string()), ("cpu", "tensorrt", "deepstream"))]
    for element in CPU_ELEMENTS:
        found = Gst.ElementFactory.find(element) is not None
        needed: tuple[str, ...] = ("cpu", "tensorrt") if element in CPU_REQUIRED else ()
        rows.append(Check("gstreamer", element, "ok" if found else "missing", "" if found else "not found", needed))
    for element in DEEPSTREAM_ELEMENTS:
        found = Gst.ElementFactory.find(element) is not None
        detail = "" if found else "not found (DeepStream SDK)"
        rows.append(Check("deepstream", element, "ok" if found else "missing", detail, ("deepstream",)))
    return rows


def _deepstream() -> list[Check]:
    from blazestream import backends

    rows = []
    if DEEPSTREAM_VERSION_FILE.is_file():
        text = DEEPSTREAM_VERSION_FILE.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        rows.append(Check("deepstream", "DeepStream SDK", "ok", text[0] if text else "present", ("deepstream",)))
    else:
        rows.append(Check("deepstream", "DeepStream SDK", "missing", f"no {DEEPSTREAM_VERSION_FILE}", ("deepstream",)))
    probe = backends.deepstream()
    version = _version("pyds")
    detail = probe.detail + (f" (pyds {version})" if version and probe.ok else "")
    rows.append(Check("deepstream", "pyds", "ok" if probe.ok else "missing", detail, ("deepstream",)))
    return rows


def _gpu() -> list[Check]:
    from blazestream import backends

    gpu_backends = ("tensorrt", "deepstream")
    cuda = backends.cuda_device()
    trt = backends.tensorrt()
    cupy_version = _version("cupy-cuda12x", "cupy-cuda13x", "cupy-cuda11x", "cupy")
    return [
        Check("gpu", "CUDA device", "ok" if cuda.ok else "missing", cuda.detail, gpu_backends),
        Check(
            "gpu",
            "CuPy",
            "ok" if cupy_version else "missing",
            cupy_version or "not installed (pip install 'blazestream[gpu]')",
            gpu_backends,
        ),
        Check("gpu", "TensorRT", "ok" if trt.ok else "missing", trt.detail, gpu_backends),
        Check("gpu", "nvcc", "info", _nvcc(), ()),
    ]


def _nvcc() -> str:
    import shutil

    found = shutil.which("nvcc")
    return (
        f"{found} (compiles the CUDA kernels in `make gpu-check`)"
        if found
        else "not found (only `make gpu-check` needs it)"
    )


def _onnxruntime() -> Check:
    import onnxruntime as ort

    providers = ", ".join(ort.get_available_providers())
    return Check("cpu", "ONNX Runtime", "ok", f"{ort.__version__}; providers: {providers}", ("cpu",))


def _cpu_precisions() -> list[Check]:
    """Which `--precision` runs fast on this CPU (every one runs; a slow one warns when chosen)."""
    from blazestream.engines.openvino import INSTALL_HINT, openvino_version
    from blazestream.models.precision import PRECISIONS, cpu_features, precision_speed

    features = cpu_features()
    version = openvino_version()
    rows = [
        Check("cpu", "CPU features", "info", features.summary, ()),
        Check(
            "cpu",
            "OpenVINO",
            "info",
            f"{version}: the bf16 runtime where the CPU has bf16 arithmetic and the build measures it faster"
            if version
            else f"not installed; only bf16 on AVX512_BF16/AMX CPUs would use it: {INSTALL_HINT}",
            (),
        ),
    ]
    for precision in PRECISIONS:
        fast, why = precision_speed(precision, features)
        rows.append(
            Check(
                "cpu",
                f"--precision {precision}",
                "ok" if fast else "info",
                ("fast: " if fast else "runs, not faster: ") + why,
                (),
            )
        )
    return rows


def _models(models_dir: Path) -> Check:
    from blazestream.models.cache import load_model_paths

    try:
        paths = load_model_paths(models_dir)
    except Exception as exc:
        return Check("models", "models", "missing", str(exc), ("cpu", "tensorrt", "deepstream"))
    return Check("models", "models", "ok", f"{paths.models_dir} (manifest checked)", ("cpu", "tensorrt", "deepstream"))


def _engines(models_dir: Path, engines_dir: Path, precision: Precision, gpu_ready: bool) -> list[Check]:
    from blazestream.trt_build.build_plan import BuildRequest, plan_builds
    from blazestream.trt_build.engine_cache import Expected, rebuild_command, staleness

    try:
        planned = plan_builds(BuildRequest(models_dir=models_dir, engines_dir=engines_dir, precision=precision))
    except Exception as exc:
        return [Check("engines", "engines", "missing", f"cannot plan engines: {exc}", ("tensorrt", "deepstream"))]
    platform_here = None
    if gpu_ready:
        from blazestream.trt_build.engine_cache import current_platform

        platform_here = current_platform()
    rebuild = rebuild_command(precision=precision, max_batch=16, models_dir=models_dir, engines_dir=engines_dir)
    rows = []
    for engine in planned:
        expected = Expected(onnx_sha256=engine.onnx_sha256, precision=precision, platform=platform_here)
        problems = staleness(engine.path, expected)
        if not problems:
            note = "" if platform_here else " (TensorRT version and GPU not compared: no GPU here)"
            rows.append(Check("engines", engine.label, "ok", f"{engine.path}{note}", ("tensorrt", "deepstream")))
            continue
        status: Status = "missing" if not engine.path.is_file() else "stale"
        rows.append(
            Check(
                "engines",
                engine.label,
                status,
                "; ".join(problems) + f"; build with `{rebuild}`",
                ("tensorrt", "deepstream"),
            )
        )
    return rows


def run_checks(*, models_dir: Path, engines_dir: Path, precision: Precision = "fp16") -> Report:
    """Probe everything; never raises."""
    from blazestream import backends

    report = Report()
    report.checks.append(
        Check(
            "runtime",
            "Python",
            "ok",
            f"{platform.python_version()} ({sys.executable})",
            ("cpu", "tensorrt", "deepstream"),
        )
    )
    report.checks.append(Check("runtime", "blazestream", "ok", __version__, ()))
    report.checks += _gstreamer()
    report.checks += _guard_list("deepstream", _deepstream)
    gpu_rows = _guard_list("gpu", _gpu)
    report.checks += gpu_rows
    report.checks.append(_guard("cpu", "ONNX Runtime", ("cpu",), _onnxruntime))
    report.checks += _guard_list("cpu", _cpu_precisions)
    report.checks.append(_guard("models", "models", ("cpu", "tensorrt", "deepstream"), lambda: _models(models_dir)))
    gpu_ready = all(r.status == "ok" for r in gpu_rows if r.name in ("CUDA device", "TensorRT"))
    report.checks += _guard_list("engines", lambda: _engines(models_dir, engines_dir, precision, gpu_ready))
    try:
        report.backend = backends.resolve_backend("auto")
    except Exception:
        report.backend = "cpu"
    report.checks.append(Check("backend", "--backend auto", "info", f"would run on: {report.backend}", ()))
    return report


def _guard_list(group: str, probe: Callable[[], list[Check]]) -> list[Check]:
    try:
        return probe()
    except Exception as exc:
        return [Check(group, group, "missing", f"{type(exc).__name__}: {exc}", ())]


STATUS_STYLE = {
    "ok": "[green]ok[/]",
    "missing": "[red]missing[/]",
    "stale": "[yellow]stale[/]",
    "info": "[blue]info[/]",
}


def render_table(report: Report) -> Table:
    """The report as a rich table; rows another backend needs are dimmed when they are missing."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"blazestream checks: --backend auto runs on [bold]{report.backend}[/]")
    for column in ("group", "check", "status", "detail"):
        table.add_column(column, overflow="fold")
    for check in report.checks:
        status = STATUS_STYLE[check.status]
        if check.status in ("missing", "stale") and report.backend not in check.needed_by:
            status = f"[dim]{check.status}[/] (not needed for {report.backend})"
        table.add_row(escape(check.group), escape(check.name), status, escape(check.detail))
    return table
