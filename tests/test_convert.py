"""The TFLite → ONNX conversion of BlazePose against the TFLite interpreter, and the model cache around it."""

from __future__ import annotations

import hashlib
import json
import math
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import pytest
import tflite
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from blazestream.engines.errors import ModelChecksumError, ModelsMissingError, UnsupportedOpError
from blazestream.models.cache import (
    MODELS,
    POSE_DETECTION,
    POSE_LANDMARK_FULL,
    ModelPaths,
    ModelSpec,
    ensure_models,
    load_model_paths,
)
from blazestream.models.tflite_onnx import CONVERTER_VERSION, convert_tflite
from blazestream.models.tflite_onnx.sparsity import DENSE, SPARSE_CSR, DimMetadata, SparsityParams, densify

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
RTOL = 1e-3
FloatArray = npt.NDArray[np.float32]


def _onnx_path(paths: ModelPaths, spec: ModelSpec) -> Path:
    return paths.detector_onnx if spec is POSE_DETECTION else paths.landmark_onnx


def _tflite_path(paths: ModelPaths, spec: ModelSpec) -> Path:
    return paths.detector_tflite if spec is POSE_DETECTION else paths.landmark_tflite


@pytest.fixture(scope="module")
def sessions(model_paths: ModelPaths) -> dict[str, Any]:
    files = {
        "pose_detection": model_paths.detector_onnx,
        "pose_landmark_full": model_paths.landmark_onnx,
        "noseg": model_paths.landmark_noseg_onnx,
    }
    return {name: ort.InferenceSession(str(f), providers=["CPUExecutionProvider"]) for name, f in files.items()}


@pytest.fixture(scope="module")
def interpreters(model_paths: ModelPaths) -> dict[str, Any]:
    """TFLite's builtin kernels. XNNPACK (the default delegate) sums in another order; the landmark model's
    segmentation head amplifies that rounding noise to a few 1e-4 of its range, even between TFLite's own
    kernel sets, so the builtin kernels are the steadier reference."""
    found = {}
    for spec in MODELS.values():
        interpreter = Interpreter(
            model_path=str(_tflite_path(model_paths, spec)),
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            num_threads=2,
        )
        interpreter.allocate_tensors()
        found[spec.name] = interpreter
    return found


def _run_tflite(interpreter: Any, nhwc: FloatArray) -> dict[str, FloatArray]:
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], nhwc)
    interpreter.invoke()
    return {d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}


def _run_onnx(session: Any, nchw: FloatArray) -> dict[str, FloatArray]:
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"input": nchw}), strict=True))


def _letterboxed_image(spec: ModelSpec) -> FloatArray:
    """messi5.jpg fitted into the model's square input (black bars), scaled to the model's input range."""
    bgr = cv2.imread(str(DATA_DIR / "messi5.jpg"))
    assert bgr is not None
    image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    size = spec.input_size
    scale = size / max(image.shape[:2])
    height, width = round(image.shape[0] * scale), round(image.shape[1] * scale)
    canvas = np.zeros((size, size, 3), np.uint8)
    top, left = (size - height) // 2, (size - width) // 2
    canvas[top : top + height, left : left + width] = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    low, high = spec.input_range
    return (canvas[None].astype(np.float32) / 255.0 * (high - low) + low).astype(np.float32)


def _random_input(spec: ModelSpec, batch: int = 1, seed: int = 0) -> FloatArray:
    low, high = spec.input_range
    size = spec.input_size
    return np.random.default_rng(seed).uniform(low, high, (batch, size, size, 3)).astype(np.float32)


def _to_nchw(nhwc: FloatArray) -> FloatArray:
    return np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2))


def _assert_close(name: str, got: FloatArray, ref: FloatArray) -> None:
    assert got.shape == ref.shape, name
    scale = float(np.abs(ref).max())
    if name == "pose_flag":
        # A probability: ONNX Runtime's Sigmoid flushes p < ~1e-8 to 0 where TFLite returns 1e-9, so compare
        # it on its [0, 1] range rather than relative to a reference that can be 1e-9.
        scale = max(scale, 1.0)
    error = float(np.abs(got - ref).max())
    assert error <= RTOL * scale, f"{name}: max |diff| {error:.3g} > {RTOL} x max |ref| {scale:.3g}"


@pytest.mark.parametrize("spec", list(MODELS.values()), ids=list(MODELS))
@pytest.mark.parametrize("source", ["random", "image"])
def test_onnx_matches_tflite(
    spec: ModelSpec, source: str, sessions: dict[str, Any], interpreters: dict[str, Any]
) -> None:
    nhwc = _random_input(spec) if source == "random" else _letterboxed_image(spec)
    reference = _run_tflite(interpreters[spec.name], nhwc)
    outputs = _run_onnx(sessions[spec.name], _to_nchw(nhwc))
    assert list(outputs) == [onnx_name for _, onnx_name in spec.outputs]
    for tflite_name, onnx_name in spec.outputs:
        got = outputs[onnx_name]
        if got.ndim == 4:  # 4-D outputs are NCHW in ONNX
            got = got.transpose(0, 2, 3, 1)
        _assert_close(onnx_name, got, reference[tflite_name])


def test_real_image_gives_a_confident_pose(sessions: dict[str, Any]) -> None:
    """Guards the image test against comparing two equally wrong outputs on an image without a person."""
    outputs = _run_onnx(sessions["pose_landmark_full"], _to_nchw(_letterboxed_image(POSE_LANDMARK_FULL)))
    assert float(outputs["pose_flag"][0, 0]) > 0.9
    detections = _run_onnx(sessions["pose_detection"], _to_nchw(_letterboxed_image(POSE_DETECTION)))
    assert float(detections["scores"].max()) > 2.0  # a logit: sigmoid > 0.88


@pytest.mark.parametrize("name", ["pose_detection", "pose_landmark_full", "noseg"])
def test_dynamic_batch(name: str, sessions: dict[str, Any]) -> None:
    spec = POSE_DETECTION if name == "pose_detection" else POSE_LANDMARK_FULL
    batch = _to_nchw(_random_input(spec, batch=3, seed=7))
    together = _run_onnx(sessions[name], batch)
    for item in range(3):
        alone = _run_onnx(sessions[name], batch[item : item + 1])
        for output, value in alone.items():
            assert together[output].shape[0] == 3
            np.testing.assert_allclose(
                together[output][item : item + 1], value, rtol=1e-5, atol=1e-5 * np.abs(value).max()
            )


def _cost(model: onnx.ModelProto) -> tuple[int, int]:
    """(Conv multiply-adds, activation elements written by all nodes) of one batch item."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in (*inferred.graph.value_info, *inferred.graph.output)
    }
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    macs = sum(
        math.prod(shapes[n.output[0]][1:]) * math.prod(weights[n.input[1]][1:])
        for n in model.graph.node
        if n.op_type == "Conv"
    )
    return macs, sum(math.prod(shapes[name][1:]) for n in model.graph.node for name in n.output)


def test_pruned_landmark_model(model_paths: ModelPaths, sessions: dict[str, Any]) -> None:
    """The segmentation head is light in multiply-adds but works at 128² and 256²: a third of the traffic."""
    full, pruned = onnx.load(str(model_paths.landmark_onnx)), onnx.load(str(model_paths.landmark_noseg_onnx))
    assert [o.name for o in pruned.graph.output] == ["landmarks", "pose_flag", "heatmap", "world_landmarks"]
    assert len(pruned.graph.node) < 0.9 * len(full.graph.node)
    (full_macs, full_activations), (pruned_macs, pruned_activations) = _cost(full), _cost(pruned)
    assert pruned_macs < 0.95 * full_macs
    assert pruned_activations < 0.75 * full_activations
    nchw = _to_nchw(_random_input(POSE_LANDMARK_FULL, seed=3))
    with_segmentation, without = (
        _run_onnx(sessions["pose_landmark_full"], nchw),
        _run_onnx(sessions["noseg"], nchw),
    )
    for name, value in without.items():
        np.testing.assert_allclose(value, with_segmentation[name], rtol=1e-6, atol=1e-6 * np.abs(value).max())


def test_onnx_model_contract(model_paths: ModelPaths) -> None:
    for spec in MODELS.values():
        model = onnx.load(str(_onnx_path(model_paths, spec)))
        onnx.checker.check_model(model, full_check=True)
        assert model.ir_version == 8
        assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
        (graph_input,) = model.graph.input
        dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
        assert (graph_input.name, dims) == ("input", ["batch", 3, spec.input_size, spec.input_size])
        for output in model.graph.output:
            assert output.type.tensor_type.shape.dim[0].dim_param == "batch"
        props = {p.key: p.value for p in model.metadata_props}
        assert props["source_file"] == spec.tflite_filename
        assert props["source_sha256"] == spec.sha256
        assert props["converter_version"] == CONVERTER_VERSION
        assert spec.sha256 in model.doc_string
    landmark = onnx.load(str(model_paths.landmark_onnx))
    shapes = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in landmark.graph.output}
    assert shapes["segmentation"] == ["batch", 1, 256, 256]
    assert shapes["heatmap"] == ["batch", 39, 64, 64]


# -- errors ------------------------------------------------------------------------------------------------


def _with_opcode(data: bytes, old: int, new: int) -> bytes:
    """A copy of a TFLite model whose operator-code entry ``old`` reads ``new`` (edited in place)."""
    buffer = bytearray(data)
    model = tflite.Model.GetRootAsModel(buffer, 0)
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) == old:
            table = code._tab
            # vtable slots: deprecated_builtin_code (int8) and builtin_code (int32)
            for vtable_slot, layout in ((4, "<b"), (10, "<i")):
                offset = table.Offset(vtable_slot)
                if offset:
                    struct.pack_into(layout, buffer, table.Pos + offset, new)
            return bytes(buffer)
    raise AssertionError(f"no operator code {old}")


def test_unsupported_op_is_named(model_paths: ModelPaths) -> None:
    data = model_paths.detector_tflite.read_bytes()
    mutated = _with_opcode(data, tflite.BuiltinOperator.PAD, tflite.BuiltinOperator.MUL)
    expected = r"^pose_detection\.tflite: operator #0 MUL is not supported by blazestream's converter"
    with pytest.raises(UnsupportedOpError, match=expected) as info:
        convert_tflite(mutated, output_names={}, model_name="pose_detection.tflite")
    assert "(supported: ADD, CONCATENATION, CONV_2D, DENSIFY" in str(info.value)
    custom = _with_opcode(data, tflite.BuiltinOperator.PAD, tflite.BuiltinOperator.CUSTOM)
    with pytest.raises(UnsupportedOpError, match=r"operator #0 is the custom op"):
        convert_tflite(custom, model_name="pose_detection.tflite")


def _write_wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_checksum_mismatch_is_explained(tmp_path: Path) -> None:
    bogus = b"not a tflite model"
    wheel = _write_wheel(tmp_path / "mediapipe.whl", {s.wheel_member: bogus for s in MODELS.values()})
    with pytest.raises(ModelChecksumError) as info:
        ensure_models(tmp_path / "models", wheel=wheel)
    message = str(info.value)
    assert "pose_detection.tflite" in message
    assert POSE_DETECTION.sha256 in message
    assert hashlib.sha256(bogus).hexdigest() in message
    assert not (tmp_path / "models" / "manifest.json").exists()


def test_missing_models_say_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(ModelsMissingError, match="blazestream models"):
        load_model_paths(tmp_path)


def test_ensure_models_from_a_wheel_then_idempotent(tmp_path: Path, model_paths: ModelPaths) -> None:
    wheel = _write_wheel(
        tmp_path / "mediapipe-0.10.21.whl",
        {s.wheel_member: _tflite_path(model_paths, s).read_bytes() for s in MODELS.values()},
    )
    steps: list[tuple[str, int, int]] = []
    record: Callable[[str, int, int], None] = lambda *a: steps.append(a)  # noqa: E731
    paths = ensure_models(tmp_path / "models", wheel=wheel, progress=record)
    assert paths == load_model_paths(tmp_path / "models")
    assert all(p.is_file() for p in paths.all())
    assert [s for s, done, _ in steps if done == 1][1:] == [
        "Converting pose_detection.onnx",
        "Converting pose_landmark_full.onnx",
        "Converting pose_landmark_full_noseg.onnx",
    ]
    manifest = json.loads(paths.manifest.read_text())
    assert manifest["files"]["pose_landmark_full.tflite"] == POSE_LANDMARK_FULL.sha256
    assert manifest["converter_version"] == CONVERTER_VERSION

    before = {p: p.stat().st_mtime_ns for p in paths.all()}
    steps.clear()
    ensure_models(tmp_path / "models", wheel=wheel, progress=record)
    assert {p: p.stat().st_mtime_ns for p in paths.all()} == before
    assert len(steps) == 2
    assert "up to date" in steps[0][0]

    # A manifest from another converter version: the cached .tflite files are reused, the ONNX files redone.
    manifest["converter_version"] = "0.0"
    paths.manifest.write_text(json.dumps(manifest))
    with pytest.raises(ModelsMissingError, match=r"converted by converter 0\.0"):
        load_model_paths(tmp_path / "models")
    steps.clear()
    ensure_models(tmp_path / "models", progress=record)  # no wheel needed
    assert not any("Extracting" in s for s, _, _ in steps)
    assert load_model_paths(tmp_path / "models") == paths


# -- DENSIFY -----------------------------------------------------------------------------------------------


def test_densify_block_sparse() -> None:
    """TFLite's own example (sparsity_format_converter_test): a 4x4 matrix in 2x2 blocks, block rows CSR."""
    params = SparsityParams(
        traversal_order=(0, 1, 2, 3),
        block_map=(0, 1),
        dim_metadata=(
            DimMetadata(DENSE, dense_size=2),
            DimMetadata(SPARSE_CSR, array_segments=np.array([0, 2, 3]), array_indices=np.array([0, 1, 1])),
            DimMetadata(DENSE, dense_size=2),
            DimMetadata(DENSE, dense_size=2),
        ),
    )
    values = np.array([1, 0, 0, 4, 2, 3, 0, 0, 5, 0, 0, 6], dtype=np.float16)
    expected = np.array([[1, 0, 2, 3], [0, 4, 0, 0], [0, 0, 5, 0], [0, 0, 0, 6]], dtype=np.float16)
    np.testing.assert_array_equal(densify(values, (4, 4), params), expected)


def test_densify_csr_column_major() -> None:
    """Traversal order (1, 0): columns outermost, the rows of each column stored sparse."""
    params = SparsityParams(
        traversal_order=(1, 0),
        block_map=(),
        dim_metadata=(
            DimMetadata(DENSE, dense_size=3),
            DimMetadata(SPARSE_CSR, array_segments=np.array([0, 1, 1, 3]), array_indices=np.array([1, 0, 1])),
        ),
    )
    values = np.array([7.0, 8.0, 9.0], dtype=np.float32)
    expected = np.array([[0, 0, 8], [7, 0, 9]], dtype=np.float32)
    np.testing.assert_array_equal(densify(values, (2, 3), params), expected)
