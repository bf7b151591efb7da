"""Reduced precision: CPU feature detection, the bf16/int8 builds (measured sensitivity, cache, provenance)
and their accuracy against fp32 on crops the build never saw. Accuracy only: `bench` measures speed.

The builds here consider only the first layers of the model (`candidates`) so they stay short; the
selection, calibration and caching are the same code as a full build.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from blazestream.models.precision import (
    LANDMARK_BUDGET_PX,
    OUTPUTS,
    WORLD_BUDGET_CM,
    CpuFeatures,
    cpu_features,
    landmark_errors,
    landmark_model,
    precision_speed,
    round_to_bf16,
    session,
)
from conftest import DATA_DIR


def test_bf16_rounding_is_round_to_nearest_even() -> None:
    values = np.array([1.0, 1.0 + 2**-8, 1.0 + 3 * 2**-8, -2.5, 3.0e-20, 65504.0], dtype=np.float32)
    rounded = round_to_bf16(values)
    assert rounded.tolist()[0] == 1.0
    assert rounded[1] == 1.0, "a tie rounds to the even mantissa"
    assert rounded[2] == np.float32(1.0 + 4 * 2**-8)
    assert rounded[3] == -2.5
    assert (rounded.view(np.uint32) & 0xFFFF == 0).all(), "only bf16's 16 high bits remain"
    assert np.all(np.abs(rounded - values) <= np.abs(values) * 2**-8)


def test_which_precisions_run_fast_follows_the_cpu_flags() -> None:
    avx2 = CpuFeatures(frozenset({"avx2", "fma"}))
    vnni = CpuFeatures(frozenset({"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"}))
    assert precision_speed("fp32", avx2)[0]
    assert not precision_speed("int8", avx2)[0]
    assert "VNNI" in precision_speed("int8", avx2)[1]
    assert precision_speed("int8", vnni)[0]
    slow, why = precision_speed("bf16", avx2)
    assert not slow
    assert "no speed-up" in why
    fast, why = precision_speed("bf16", vnni)
    assert fast, "OpenVINO (installed by make setup) has bf16 kernels for this CPU"
    assert "OpenVINO" in why


@pytest.fixture(scope="module")
def unseen_crops(models_dir: Path) -> np.ndarray:
    """Person crops from the bundled photo, jittered: never used by a build (it calibrates on the clips)."""
    from blazestream.images import load_image
    from blazestream.models.calibration import landmark_tensors

    image = load_image(DATA_DIR / "messi5.jpg")
    frames = [image, np.ascontiguousarray(image[:, ::-1]), np.clip(image.astype(np.int16) + 9, 0, 255).astype(np.uint8)]
    return landmark_tensors(frames, models_dir)


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("precision", "candidates"), [("bf16", 16), ("int8", 8)])
def test_reduced_model_is_built_once_within_budget_with_provenance(
    scratch_models: Path, unseen_crops: np.ndarray, precision: str, candidates: int
) -> None:
    path = landmark_model(scratch_models, precision, candidates=candidates)  # type: ignore[arg-type]
    manifest = json.loads(path.with_suffix(".json").read_text())
    if manifest["runtime"] == "openvino":
        pytest.skip("this CPU built an OpenVINO bf16 model: tests/test_openvino.py checks that one")
    assert manifest["key"]["precision"] == precision
    assert manifest["key"]["model_sha256"]
    assert manifest["key"]["onnxruntime"]
    clips = manifest["calibration"]["clips"]
    assert {c["file"] for c in clips} >= {"messi_moves.mp4"}
    assert all(len(c["sha256"]) == 64 and c["crops"] > 0 for c in clips)
    reduced = manifest["layers"]["reduced"]
    assert 0 < len(reduced) <= candidates
    assert 0 < manifest["layers"]["reduced_mac_share"] < 0.5, "a share of the multiply-adds: few layers here"
    assert manifest["held_out_error"]["landmark_px"] <= LANDMARK_BUDGET_PX
    assert manifest["held_out_error"]["world_cm"] <= WORLD_BUDGET_CM
    # Accuracy on crops the build never saw.
    fp32 = session(scratch_models / "pose_landmark_full_noseg.onnx").run(OUTPUTS, {"input": unseen_crops})
    ours = session(path).run(OUTPUTS, {"input": unseen_crops})
    errors = landmark_errors(fp32, ours)
    assert errors["landmark_px"] <= 2 * LANDMARK_BUDGET_PX
    assert errors["world_cm"] <= 2.0, "the issue's budget: world landmarks within 2 cm of fp32"
    assert np.array_equal(np.asarray(fp32[1]) > 0.5, np.asarray(ours[1]) > 0.5), "same pose/no-pose"
    # Cached: the second call builds nothing.
    stamp = path.stat().st_mtime_ns
    assert landmark_model(scratch_models, precision, candidates=candidates) == path  # type: ignore[arg-type]
    assert path.stat().st_mtime_ns == stamp


def _small_bf16_as_full_build(models: Path) -> str:
    """A full bf16 build takes minutes: a small one (16 candidate layers) stands in for it. Returns its
    runtime: ONNX Runtime here, OpenVINO on a CPU with bf16 arithmetic where it measured faster."""
    built = landmark_model(models, "bf16", candidates=16)
    manifest = json.loads(built.with_suffix(".json").read_text())
    manifest["key"]["candidates"] = None  # what a full build records
    built.with_suffix(".json").write_text(json.dumps(manifest))
    return str(manifest["runtime"])


def test_image_runs_at_a_slow_precision_with_a_warning(scratch_models: Path, tmp_path: Path) -> None:
    """The CLI path, with the small bf16 build standing in for the full one."""
    runtime = _small_bf16_as_full_build(scratch_models)
    out = tmp_path / "poses.json"
    env = {**os.environ, "BLAZESTREAM_MODELS": str(scratch_models)}
    args = [sys.executable, "-m", "blazestream", "image", str(DATA_DIR / "messi5.jpg"), "--json", str(out)]
    done = subprocess.run([*args, "--precision", "bf16"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    if runtime == "onnxruntime":  # the warning: on this CPU bf16 is no faster
        assert "bf16" in done.stderr
        assert "no speed-up" in done.stderr.replace("\n", " ")
    assert "building" not in done.stderr, "the cached model was used"
    poses = json.loads(out.read_text())["images"][0]["poses"]
    assert len(poses) == 1
    bad = subprocess.run([*args, "--precision", "fp8"], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2
    assert "fp8" in bad.stderr


def test_same_crops_comparison_takes_the_tracking_loop_out(scratch_models: Path) -> None:
    """bench's same-crops figures: the reduced model on fp32's own ROIs, frame by frame (no feedback)."""
    import cv2

    from blazestream.bench import _Collector, same_crops
    from blazestream.config import AppConfig
    from blazestream.factory import create_cpu_estimator

    _small_bf16_as_full_build(scratch_models)
    clip = DATA_DIR / "messi_moves.mp4"
    capture = cv2.VideoCapture(str(clip))
    fp32 = create_cpu_estimator(scratch_models)
    collector = _Collector("cam0")
    try:
        for index in range(0, 8):
            ok, bgr = capture.read()
            assert ok
            found = fp32.detect([cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)])[0]
            if index % 2 == 0 and len(found.rois):  # frames without a ROI are skipped
                collector.stream0_rois[index] = found.rois[0]
    finally:
        capture.release()
        fp32.close()
    assert len(collector.stream0_rois) == 4
    cfg = AppConfig.model_validate(
        {"cameras": [{"id": "cam0", "uri": str(clip)}], "engine": {"models_dir": str(scratch_models)}}
    )
    same = same_crops(clip, collector, "fp32", cfg)
    assert same == {"median_error_of_diagonal_same_crops": 0.0, "world_mean_cm_same_crops": 0.0}
    bf16 = same_crops(clip, collector, "bf16", cfg)
    assert 0.0 < bf16["world_mean_cm_same_crops"] < 2.0
    assert 0.0 < bf16["median_error_of_diagonal_same_crops"] < 0.01


def test_convolution_costs_add_up_to_the_model(models_dir: Path) -> None:
    """The multiply-add shares the manifests record: every convolution counted once, depthwise ones by group."""
    import onnx

    from blazestream.models.precision import candidate_convolutions, conv_shapes, reduced_share

    model = onnx.load(str(models_dir / "pose_landmark_full_noseg.onnx"))
    shapes = conv_shapes(model)
    first = shapes[0]
    assert first.kernel[0] == first.output[1], "weights' output channels are the output's channels"
    depthwise = [c for c in shapes if c.group > 1]
    assert depthwise
    assert all(c.kernel[1] == 1 for c in depthwise), "depthwise: one input channel per group"
    assert depthwise[0].macs == int(np.prod(depthwise[0].output[1:])) * depthwise[0].kernel[2] * depthwise[0].kernel[3]
    assert reduced_share(model, [c.name for c in shapes]) == pytest.approx(1.0)
    pointwise = candidate_convolutions(model, "int8")
    assert 0.5 < reduced_share(model, pointwise) < 1.0, "pointwise convolutions carry most of the work"


def test_models_command_builds_a_precision_ahead_and_says_what_it_chose(scratch_models: Path) -> None:
    """`blazestream models --precision bf16`: the build (here the small one, cached) and its summary."""
    from typer.testing import CliRunner

    from blazestream.cli import app

    runtime = _small_bf16_as_full_build(scratch_models)
    result = CliRunner().invoke(app, ["models", "--models-dir", str(scratch_models), "--precision", "bf16"])
    assert result.exit_code == 0, result.output
    assert f"bf16: {runtime}, " in result.output
    assert "of the multiply-adds" in result.output
    assert "px /" in result.output
    suffix = ".xml" if runtime == "openvino" else ".onnx"
    cpu_class = "bf16cpu" if cpu_features().bf16 else "nobf16cpu"
    assert result.stdout.strip().splitlines()[-1].endswith(f".bf16.{cpu_class}{suffix}"), "the model's path last"
    bad = CliRunner().invoke(app, ["models", "--models-dir", str(scratch_models), "--precision", "fp8"])
    assert bad.exit_code == 2
    assert "fp8" in bad.output
