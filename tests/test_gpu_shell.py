"""The GPU shell on a machine without a GPU: imports stay clean, errors say what to install, plans and
progress work, `blazestream checks` reports and exits 0, and the Jetson ctypes structs match the headers."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from blazestream.cli import app
from blazestream.errors import MissingDependencyError
from blazestream.trt_build.build_plan import BuildRequest, plan_builds
from blazestream.trt_build.build_progress import RichBuildProgress

DATA = Path(__file__).resolve().parents[1] / "data"
GPU_PACKAGES = ("tensorrt", "cupy", "pyds")


def _has_real(module: str) -> bool:
    import importlib.util

    spec = importlib.util.find_spec(module)
    return spec is not None and spec.origin is not None  # tensorrt-stubs leave an empty namespace package


def test_cpu_modules_never_import_gpu_packages() -> None:
    code = (
        "import sys\n"
        "import blazestream.cli, blazestream.checks, blazestream.backends, blazestream.pipeline.graph\n"
        "import blazestream.trt_build.engine_cache, blazestream.trt_build.build_plan, blazestream.gpu_factory\n"
        "import blazestream.kernels.cuda_crop, blazestream.pipeline.nvinfer_config, blazestream.kernels.reference\n"
        f"print([m for m in {GPU_PACKAGES!r} if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.skipif(_has_real("tensorrt") or _has_real("pyds"), reason="TensorRT/pyds are installed here")
@pytest.mark.parametrize(
    ("module", "hint"),
    [
        ("blazestream.engines.tensorrt", "DeepStream/JetPack images"),
        ("blazestream.trt_build.build", "DeepStream/JetPack image"),
        ("blazestream.pipeline.nvds", "PyPI's `pyds` is an unrelated package"),
    ],
)
def test_gpu_modules_say_what_is_missing(module: str, hint: str) -> None:
    import importlib

    with pytest.raises(MissingDependencyError, match=hint):
        importlib.import_module(module)


@pytest.mark.skipif(_has_real("cupy"), reason="CuPy is installed here")
def test_cuda_cropper_needs_cupy() -> None:
    from blazestream.kernels.cuda_crop import CudaCropper

    with pytest.raises(MissingDependencyError, match=r"blazestream\[gpu\]"):
        CudaCropper()


def test_build_plan(models_dir: Path, tmp_path: Path) -> None:
    plans = plan_builds(BuildRequest(models_dir=models_dir, engines_dir=tmp_path, precision="int8", max_batch=8))
    assert [(p.role, p.onnx.name, p.path.name) for p in plans] == [
        ("detector", "pose_detection.onnx", "pose_detection.int8.engine"),
        ("landmark", "pose_landmark_full_noseg.onnx", "pose_landmark_full_noseg.int8.engine"),
    ]
    assert plans[0].input_shape == (3, 224, 224)
    assert plans[1].input_shape == (3, 256, 256)
    assert (plans[0].profile.min, plans[0].profile.opt, plans[0].profile.max) == (1, 4, 8)
    manifest = json.loads((models_dir / "manifest.json").read_text())["files"]
    assert plans[0].onnx_sha256 == manifest["pose_detection.onnx"]
    with_seg = plan_builds(
        BuildRequest(models_dir=models_dir, engines_dir=tmp_path, max_batch=2, segmentation=True, opt_batch=2)
    )
    assert [p.onnx.name for p in with_seg][-1] == "pose_landmark_full.onnx"
    assert with_seg[0].profile.opt == 2
    with pytest.raises(ValueError, match="--opt-batch 9 is larger than --max-batch 4"):
        BuildRequest(models_dir=models_dir, engines_dir=tmp_path, max_batch=4, opt_batch=9).profile  # noqa: B018


def test_build_progress_draws_engines_and_phases(models_dir: Path, tmp_path: Path) -> None:
    engine = plan_builds(BuildRequest(models_dir=models_dir, engines_dir=tmp_path))[0]
    console = Console(record=True, width=120, force_terminal=False)
    with RichBuildProgress(console, transient_phases=False) as progress:
        progress.engine_started(engine)
        progress.phase_start("Building engine", None, 3)
        progress.phase_start("Tactic selection", "Building engine", 10)
        progress.phase_start("too deep", "Tactic selection", 5)  # depth 3: not drawn
        for step in range(10):
            progress.step_complete("Tactic selection", step)
        progress.phase_finish("Tactic selection")
        progress.engine_finished(engine, 42.0, skipped=False)
        tasks = {t.description.strip(): t for t in progress.progress.tasks}
    assert "Building engine" not in tasks  # a phase still open when the engine is done goes
    assert tasks["Tactic selection"].completed == 10  # a finished one stays (transient_phases=False)
    assert "too deep" not in tasks
    assert any("built in 42 s" in d for d in tasks)
    assert progress.finished == [(engine.label, 42.0, False)]


def test_checks_command_reports_and_exits_zero_without_a_gpu(models_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["checks", "--json", "--models-dir", str(models_dir), "--engines-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    rows = {row["name"]: row for row in report["checks"]}
    assert report["backend"] in ("cpu", "tensorrt", "deepstream")
    assert rows["models"]["status"] == "ok"
    assert rows["ONNX Runtime"]["status"] == "ok"
    assert "bf16" in rows["OpenVINO"]["detail"], "says what OpenVINO is for, or how to install it"
    for name in ("CUDA device", "TensorRT", "pyds", "nvinfer", "nvstreammux", "pose_detection (fp16)"):
        assert name in rows
    if report["backend"] == "cpu":
        assert rows["pose_detection (fp16)"]["status"] == "missing"
        assert "blazestream build-engines --precision fp16" in rows["pose_detection (fp16)"]["detail"]
    table = CliRunner().invoke(app, ["checks", "--models-dir", str(models_dir), "--engines-dir", str(tmp_path)])
    assert table.exit_code == 0
    assert "--backend auto runs on" in table.output


def test_checks_command_fails_when_the_models_are_missing(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["checks", "--json", "--models-dir", str(tmp_path / "none")])
    assert result.exit_code == 1
    rows = {row["name"]: row for row in json.loads(result.stdout)["checks"]}
    assert rows["models"]["status"] == "missing"
    assert "blazestream models" in rows["models"]["detail"]


def test_jetson_surface_structs_match_the_headers() -> None:
    """Sizes and offsets printed by tools/jetson_structs.c compiled against DeepStream 6.2's nvbufsurface.h and
    CUDA's cudaEGL.h (x86-64; aarch64 has the same LP64 alignment); test_kernel_host runs that probe where the
    headers are installed."""
    from blazestream.pipeline import jetson_surface as js

    assert ctypes.sizeof(js.NvBufSurfacePlaneParams) == 232
    assert ctypes.sizeof(js.NvBufSurfaceMappedAddr) == 72
    assert ctypes.sizeof(js.NvBufSurfaceParams) == 384
    assert ctypes.sizeof(js.NvBufSurface) == 64
    assert js.NvBufSurfaceParams.mappedAddr.offset + js.NvBufSurfaceMappedAddr.eglImage.offset == 312
    assert js.NvBufSurfaceParams.paramex.offset == 352
    assert js.NvBufSurface.surfaceList.offset == 24
    assert ctypes.sizeof(js.CUeglFrame) == 64
    assert (js.CUeglFrame.pitch.offset, js.CUeglFrame.frameType.offset) == (36, 48)


def test_calibration_tensors_come_from_the_pose_core(models_dir: Path) -> None:
    from blazestream.models import calibration

    frames = calibration.sample_frames(DATA / "messi_moves.mp4", 6)
    assert len(frames) == 6
    assert frames[0].dtype == np.uint8
    detector = calibration.detector_tensors(frames)
    assert detector.shape == (6, 3, 224, 224)
    assert detector.min() == -1.0  # letterbox rows are exactly -1
    assert detector.max() <= 1.0
    landmark = calibration.landmark_tensors(frames, models_dir)
    assert landmark.shape[1:] == (3, 256, 256)
    assert len(landmark) >= 6
    assert landmark.min() >= 0.0
    assert landmark.max() <= 1.0
    assert len(calibration.sample_frames(DATA / "messi5.jpg")) == 1


def test_example_deepstream_config_and_compose_file() -> None:
    import yaml

    from blazestream.config import load_config

    root = Path(__file__).resolve().parents[1]
    cfg = load_config(root / "configs" / "deepstream.example.yaml")
    assert cfg.engine.backend == "deepstream"
    assert len(cfg.cameras) == 4
    assert cfg.engine.tensorrt.max_batch >= len(cfg.cameras)
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    service = compose["services"]["blazestream"]
    assert service["build"]["target"] == "deepstream"
    assert service["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert "mosquitto" in compose["services"]
    mounted = {v.split(":")[0] for v in service["volumes"]}
    assert "./configs/deepstream.example.yaml" in mounted
    for volume in (*compose["services"]["mosquitto"]["volumes"], *compose["services"]["prometheus"]["volumes"]):
        assert (root / volume.split(":")[0]).is_file()
