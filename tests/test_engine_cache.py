"""Engine sidecars and staleness: a stale or foreign TensorRT engine is refused with the command to rebuild it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from blazestream.trt_build.engine_cache import (
    Expected,
    Platform,
    Profile,
    Sidecar,
    StaleEngineError,
    engine_path,
    read_sidecar,
    rebuild_command,
    require_fresh,
    sidecar_path,
    staleness,
    write_sidecar,
)

ORIN = Platform(tensorrt_version="10.3.0", gpu_name="Orin", compute_capability="8.7")
SHA = "a" * 64


def _built(tmp_path: Path, **changes: object) -> Path:
    plan = engine_path(tmp_path, "pose_detection.onnx", "fp16")
    plan.write_bytes(b"plan")
    sidecar = Sidecar(
        model="detector",
        onnx_file="pose_detection.onnx",
        onnx_sha256=SHA,
        precision="fp16",
        profile=Profile(1, 4, 16),
        input_shape=(3, 224, 224),
        platform=ORIN,
        blazestream_version="0.1.0",
        built_at="2025-01-01T00:00:00+00:00",
        build_seconds=312.5,
    )
    write_sidecar(plan, dataclasses.replace(sidecar, **changes))  # type: ignore[arg-type]
    return plan


def _expected(**changes: object) -> Expected:
    return dataclasses.replace(Expected(onnx_sha256=SHA, precision="fp16", platform=ORIN), **changes)  # type: ignore[arg-type]


def test_engine_and_sidecar_names(tmp_path: Path) -> None:
    plan = engine_path(tmp_path, Path("/models/pose_landmark_full_noseg.onnx"), "int8")
    assert plan == tmp_path / "pose_landmark_full_noseg.int8.engine"
    assert sidecar_path(plan).name == "pose_landmark_full_noseg.int8.engine.json"


def test_sidecar_round_trips_through_json(tmp_path: Path) -> None:
    plan = _built(tmp_path, calibration="data/messi_moves.mp4")
    data = json.loads(sidecar_path(plan).read_text())
    assert data["platform"]["compute_capability"] == "8.7"
    assert data["profile"] == {"min": 1, "opt": 4, "max": 16}
    sidecar = read_sidecar(plan)
    assert sidecar is not None
    assert sidecar.calibration == "data/messi_moves.mp4"
    assert sidecar.input_shape == (3, 224, 224)


def test_a_fresh_engine_passes(tmp_path: Path) -> None:
    plan = _built(tmp_path)
    assert staleness(plan, _expected()) == []
    assert require_fresh(plan, _expected(), rebuild="blazestream build-engines").profile.max == 16


@pytest.mark.parametrize(
    ("expected", "problem"),
    [
        ({"onnx_sha256": "b" * 64}, "built from another pose_detection.onnx"),
        ({"precision": "fp32"}, "built for fp16, the configuration asks for fp32"),
        ({"min_batch": 32}, "batch profile ends at 16, the run needs batches of 32"),
        ({"platform": dataclasses.replace(ORIN, tensorrt_version="10.7.0")}, "built with TensorRT 10.3.0"),
        (
            {"platform": Platform("10.3.0", "NVIDIA A100", "8.0")},
            "compute capability 8.7 (Orin), this one is 8.0 (NVIDIA A100)",
        ),
    ],
)
def test_stale_or_foreign_engines_are_refused(tmp_path: Path, expected: dict[str, object], problem: str) -> None:
    plan = _built(tmp_path)
    problems = staleness(plan, _expected(**expected))
    assert len(problems) == 1
    assert problem in problems[0]
    rebuild = rebuild_command(precision="fp16", max_batch=32, engines_dir=tmp_path)
    with pytest.raises(StaleEngineError, match="Rebuild it with `blazestream build-engines --precision fp16"):
        require_fresh(plan, _expected(**expected), rebuild=rebuild)


def test_another_gpu_of_the_same_architecture_is_accepted(tmp_path: Path) -> None:
    plan = _built(tmp_path)
    assert staleness(plan, _expected(platform=dataclasses.replace(ORIN, gpu_name="Orin NX"))) == []


def test_without_a_gpu_only_the_model_checks_run(tmp_path: Path) -> None:
    plan = _built(tmp_path, platform=Platform("8.6.1", "T4", "7.5"))
    assert staleness(plan, _expected(platform=None)) == []


def test_missing_engine_or_sidecar(tmp_path: Path) -> None:
    missing = engine_path(tmp_path, "pose_detection.onnx", "fp16")
    assert "does not exist" in staleness(missing, _expected())[0]
    plan = _built(tmp_path)
    sidecar_path(plan).write_text("{not json")
    assert "missing or unreadable" in staleness(plan, _expected())[0]
    sidecar_path(plan).write_text(json.dumps({"model": "detector"}))
    assert read_sidecar(plan) is None


def test_rebuild_command_names_every_setting(tmp_path: Path) -> None:
    command = rebuild_command(
        precision="int8", max_batch=8, models_dir=tmp_path / "m", engines_dir=tmp_path / "e", segmentation=True
    )
    assert command == (
        f"blazestream build-engines --precision int8 --max-batch 8 --models-dir {tmp_path / 'm'} "
        f"--engines-dir {tmp_path / 'e'} --segmentation"
    )


def test_profiles_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="min <= opt <= max"):
        Profile(1, 8, 4)
