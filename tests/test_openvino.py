"""OpenVINO, the bf16 runtime for CPUs with bf16 arithmetic: the keep-fp32 marks, the engine against ONNX
Runtime, and the bf16 build's choice, measured on this CPU.

This machine has no bf16 arithmetic, so OpenVINO compiles bf16 requests as f32 here: the build must notice
and fall back to ONNX Runtime. The OpenVINO build path itself (mixed IR, marks, timing, engine) is run
here with that fallback accepted, at f32; what bf16 does to accuracy and speed is measured by the build
on the CPU that has it.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from blazestream.models.precision import (
    LANDMARK_BUDGET_PX,
    OUTPUTS,
    cpu_features,
    landmark_errors,
    landmark_model,
    session,
)
from conftest import DATA_DIR, scratch_model_cache

ov = pytest.importorskip("openvino", reason="make setup installs openvino (the bf16 runtime)")


@pytest.fixture(scope="module")
def person_crops(models_dir: Path) -> np.ndarray:
    from blazestream.images import load_image
    from blazestream.models.calibration import landmark_tensors

    image = load_image(DATA_DIR / "messi5.jpg")
    return landmark_tensors([image, np.ascontiguousarray(image[:, ::-1])], models_dir)


def test_marks_keep_exactly_the_layers_outside_the_reduced_set(models_dir: Path, tmp_path: Path) -> None:
    from blazestream.engines.openvino import KEEP_FP32_TYPES, kept_fp32, mark_keep_fp32

    source = models_dir / "pose_landmark_full_noseg.onnx"
    ov.save_model(ov.Core().read_model(str(source)), str(tmp_path / "m.xml"), compress_to_fp16=False)
    xml = (tmp_path / "m.xml").read_text()
    network = ov.Core().read_model(str(tmp_path / "m.xml"))
    layers = {op.get_friendly_name() for op in network.get_ops() if op.get_type_name() in KEEP_FP32_TYPES}
    assert len(layers) == 86, "83 convolutions and 3 upsamplings"
    reduced = {"conv_2d_3", "depthwise_conv_2d_6"}
    (tmp_path / "marked.xml").write_text(mark_keep_fp32(xml, reduced))
    shutil.copy(tmp_path / "m.bin", tmp_path / "marked.bin")
    kept = kept_fp32(ov.Core().read_model(str(tmp_path / "marked.xml")))
    assert kept == {name for name in layers if name.split("/")[0] not in reduced}
    assert len(kept) == 84
    assert kept_fp32(network) == set(), "the unmarked IR has no marks"
    # Every computing layer: the reduced convolutions' bias additions go with them, the rest stays fp32.
    (tmp_path / "marked.xml").write_text(mark_keep_fp32(xml, reduced, "all"))
    kept_all = kept_fp32(ov.Core().read_model(str(tmp_path / "marked.xml")))
    plain = ("Parameter", "Result", "Constant")  # the IR's Const
    computing = {op.get_friendly_name() for op in network.get_ops() if op.get_type_name() not in plain}
    assert kept_all == {name for name in computing if name.split("/")[0] not in reduced}
    assert kept_all > kept
    assert {"conv_2d_3", "conv_2d_3/WithoutBiases"} <= computing - kept_all, "a convolution and its bias"


def test_engine_matches_onnx_runtime_on_person_crops(models_dir: Path, person_crops: np.ndarray) -> None:
    """f32 here (bf16 requests fall back to it on this CPU): OpenVINO must give ONNX Runtime's landmarks,
    also with two lanes calling it at once."""
    from blazestream.engines.base import Engine
    from blazestream.engines.openvino import OpenVinoEngine
    from blazestream.factory import LANDMARK_OUTPUTS

    source = models_dir / "pose_landmark_full_noseg.onnx"
    bf16 = OpenVinoEngine(source, inference_precision="bf16", outputs=LANDMARK_OUTPUTS)
    assert bf16.precision == ("bf16" if cpu_features().bf16 else "f32"), "asked bf16, OpenVINO says what it did"
    bf16.close()
    engine = OpenVinoEngine(source, inference_precision="f32", outputs=LANDMARK_OUTPUTS)
    assert isinstance(engine, Engine)
    assert engine.precision == "f32"
    assert engine.input_shape == (3, 256, 256)
    reference = session(source).run(OUTPUTS, {"input": person_crops})
    results: list[dict[str, np.ndarray]] = []
    threads = [threading.Thread(target=lambda: results.append(dict(engine.infer(person_crops)))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2
    for result in results:
        assert [result[name].shape for name in OUTPUTS] == [np.asarray(r).shape for r in reference]
        errors = landmark_errors(reference, [result[name] for name in OUTPUTS])
        assert errors["landmark_px"] < 0.01
        assert errors["world_cm"] < 0.01
    assert engine.infer(person_crops[:0])["landmarks"].shape == (0, 195)
    engine.close()


@pytest.mark.skipif(cpu_features().bf16, reason="this CPU has bf16: the build may rightly use OpenVINO")
def test_bf16_build_notices_openvino_cannot_run_bf16_here(scratch_models: Path) -> None:
    path = landmark_model(scratch_models, "bf16", candidates=4, runtime="openvino")
    manifest = json.loads(path.with_suffix(".json").read_text())
    assert path.suffix == ".onnx"
    assert manifest["runtime"] == "onnxruntime"
    assert manifest["openvino"]["used"] is False
    assert "compiles bf16 as f32" in manifest["openvino"]["reason"]


def test_openvino_build_path_writes_a_marked_ir_that_the_pipeline_runs(
    models_dir: Path, person_crops: np.ndarray, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The path a bf16 CPU takes, here at f32: OpenVINO's fallback is accepted and any speed-up will do.
    (On a CPU with bf16 the trials are real bf16: the errors are then the budget's, not fp32's.)"""
    import blazestream.engines.openvino as engine_module
    import blazestream.models.precision as precision_module
    from blazestream.engines.openvino import OpenVinoEngine, kept_fp32
    from blazestream.factory import landmark_engine

    monkeypatch.setattr(engine_module, "compiled_precision", lambda compiled: "bf16")
    monkeypatch.setattr(precision_module, "MIN_OPENVINO_SPEEDUP", 0.0)
    scratch_models = scratch_model_cache(models_dir, tmp_path / "models")
    path = landmark_model(scratch_models, "bf16", candidates=4, runtime="openvino")
    assert path.suffix == ".xml"
    assert path.with_suffix(".bin").is_file()
    manifest = json.loads(path.with_suffix(".json").read_text())
    assert manifest["model"] == path.name
    assert manifest["runtime"] == "openvino"
    record = manifest["openvino"]
    assert record["used"] is True
    assert record["timing"]["openvino_bf16_ms"] > 0
    assert record["timing"]["onnxruntime_fp32_ms"] > 0
    reduced = manifest["layers"]["reduced"]
    assert reduced
    assert len(reduced) <= 4
    assert 0 < manifest["layers"]["reduced_mac_share"] < 0.5
    assert set(record["tried"]) == {"significant", "all"}, "both ways of keeping fp32 measured"
    exact = not cpu_features().bf16  # OpenVINO runs f32 here: every trial gives fp32's results
    for tried in record["tried"].values():
        if exact:
            assert tried["baseline_error"]["landmark_px"] < 0.01, "no layer reduced: fp32's results"
            assert tried["speedup"] > 0
        else:
            assert "speedup" in tried or "reason" in tried
    kept = kept_fp32(ov.Core().read_model(str(path)))
    if record["kept_fp32"] == "significant":
        assert len(kept) == 86 - len(reduced)
    assert not {name.split("/")[0] for name in kept} & set(reduced)
    engine = landmark_engine(path)
    assert isinstance(engine, OpenVinoEngine)
    reference = session(scratch_models / "pose_landmark_full_noseg.onnx").run(OUTPUTS, {"input": person_crops})
    result = engine.infer(person_crops)
    limit = 0.01 if exact else 2 * LANDMARK_BUDGET_PX
    assert landmark_errors(reference, [result[name] for name in OUTPUTS])["landmark_px"] < limit
    engine.close()
    # Cached: the same request builds nothing.
    stamp = path.stat().st_mtime_ns
    assert landmark_model(scratch_models, "bf16", candidates=4, runtime="openvino") == path
    assert path.stat().st_mtime_ns == stamp


def test_on_a_bf16_cpu_the_build_tries_openvino_and_says_why_it_was_not_kept(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What the acceptance machine does, down to OpenVINO's answer: only the CPU flags are this CPU's
    claim to bf16 (OpenVINO, asked for bf16 here, compiles f32 and the build must keep ONNX Runtime)."""
    import blazestream.models.precision as precision_module
    from blazestream.models.precision import CpuFeatures

    if cpu_features().bf16:
        pytest.skip("this CPU has bf16: the real build runs in test_openvino_build_path...")
    monkeypatch.setattr(precision_module, "cpu_features", lambda: CpuFeatures(frozenset({"avx512f", "avx512_bf16"})))
    scratch = scratch_model_cache(models_dir, tmp_path / "models")
    with caplog.at_level("WARNING"):
        path = landmark_model(scratch, "bf16", candidates=4)
    assert path.name.endswith(".bf16.bf16cpu.onnx"), "cached under the bf16 CPU class"
    manifest = json.loads(path.with_suffix(".json").read_text())
    assert manifest["key"]["runtime"] == "auto"
    assert manifest["openvino"] == {
        "used": False,
        "version": manifest["key"]["openvino"],
        "reason": "OpenVINO compiles bf16 as f32 here",
    }
    assert "OpenVINO was not kept (OpenVINO compiles bf16 as f32 here)" in caplog.text


def test_openvino_survives_its_own_exceptions_after_gstreamer_loaded(models_dir: Path) -> None:
    """GStreamer links libunwind; loaded first, its unwinder used to abort OpenVINO's first C++ exception
    (the whole process, e.g. compiling the model inside a running pipeline)."""
    import subprocess
    import sys

    code = (
        "from pathlib import Path\n"
        "from blazestream.gst import gst\n"
        "gst()\n"
        "import openvino as ov\n"
        "from blazestream.engines.openvino import compile_landmark_model\n"
        f"compile_landmark_model(Path({str(models_dir / 'pose_landmark_full_noseg.onnx')!r}), 'f32', 1)\n"
        "try:\n"
        "    ov.PartialShape([1, 2]).get_dimension(5)\n"
        "except RuntimeError:\n"
        "    print('caught')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "caught"
