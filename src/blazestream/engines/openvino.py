"""OpenVINO engine: the bf16 landmark model on CPUs with bf16 arithmetic (AVX512_BF16, AMX).

ONNX Runtime has no x86 bf16 kernels; OpenVINO's CPU plugin (oneDNN) has. The bf16 build picks this
engine only where it measured it faster than ONNX Runtime fp32 on the CPU it runs on
(`models/precision.py`); everywhere else the CPU path is ONNX Runtime.
"""

from __future__ import annotations

import collections
import queue
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from blazestream.engines.base import EngineFacts, chosen_outputs, require_model_file
from blazestream.engines.onnxruntime import available_cores
from blazestream.errors import BlazestreamError

InferencePrecision = Literal["f32", "bf16"]
INSTALL_HINT = "install it with `pip install 'blazestream[openvino]'` (make setup does)"


def openvino_version() -> str | None:
    """OpenVINO's version, or None where it is not installed."""
    try:
        import openvino
    except ImportError:
        return None
    return str(openvino.get_version())


def compile_landmark_model(
    model: Path | tuple[bytes, bytes], inference_precision: InferencePrecision, streams: int
) -> Any:
    """Compile an ONNX file, an IR file or an in-memory IR (xml, weights) for the CPU, batch 1.

    Batch 1 because a static shape ran 10% faster than a dynamic batch here, and the callers run one
    crop per core anyway. Each stream is one single-threaded inference, like ONNX Runtime's parallel runs.
    """
    try:
        import openvino as ov
    except ImportError as exc:
        raise BlazestreamError(f"OpenVINO is not installed: {INSTALL_HINT}") from exc
    core = ov.Core()
    if isinstance(model, Path):
        require_model_file(model)
        network = core.read_model(str(model))
    else:
        xml, weights = model
        network = core.read_model(model=xml, weights=ov.Tensor(np.frombuffer(weights, np.uint8)))
    first = network.inputs[0]
    shape = first.get_partial_shape()
    if shape.rank.get_length() != 4:
        raise BlazestreamError(f"{model if isinstance(model, Path) else 'model'}: expected an NCHW input")
    network.reshape({first.get_any_name(): [1, *(int(d.get_length()) for d in list(shape)[1:])]})
    return core.compile_model(
        network,
        "CPU",
        {
            "INFERENCE_PRECISION_HINT": inference_precision,
            "NUM_STREAMS": str(streams),
            "INFERENCE_NUM_THREADS": str(streams),
            "ENABLE_CPU_PINNING": "NO",  # the decoders and crop threads share these cores
        },
    )


def compiled_precision(compiled: Any) -> InferencePrecision:
    """The precision OpenVINO actually compiled for: bf16 falls back to f32 on CPUs without it."""
    import openvino as ov

    return "bf16" if compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.bf16 else "f32"


def run_one_by_one(compiled: Any, crops: Any, outputs: Sequence[str]) -> list[Any]:
    """Every crop through one request in turn, the outputs stacked in `outputs` order (builds, tests)."""
    request = compiled.create_infer_request()
    names = [o.get_any_name() for o in compiled.outputs]
    ports = [names.index(n) for n in outputs]
    rows = []
    for crop in np.ascontiguousarray(crops, np.float32):
        request.infer({0: crop[None]})
        rows.append([request.get_output_tensor(p).data.copy() for p in ports])
    return [np.concatenate([r[i] for r in rows]) for i in range(len(ports))]


class OpenVinoEngine(EngineFacts):
    """One landmark model in OpenVINO, behind the same Engine protocol as ONNX Runtime.

    A batch is run as one asynchronous single-item request per crop, spread over one stream per core.
    """

    def __init__(
        self,
        model: Path,
        *,
        inference_precision: InferencePrecision = "f32",
        outputs: Sequence[str] | None = None,
        streams: int = 0,
    ) -> None:
        streams = streams or available_cores()
        self._compiled = compile_landmark_model(model, inference_precision, streams)
        self.precision = compiled_precision(self._compiled)
        available = [o.get_any_name() for o in self._compiled.outputs]
        self._outputs = chosen_outputs(model, available, outputs)
        self._ports = [available.index(n) for n in self._outputs]
        shape = self._compiled.inputs[0].get_shape()
        self._input_shape = (int(shape[1]), int(shape[2]), int(shape[3]))
        self._name = model.stem
        self._streams = streams
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        """Idle infer requests, created on demand: as many as lanes x streams ever ran at once."""

    def infer(self, batch: Any) -> Mapping[str, Any]:
        data = np.ascontiguousarray(batch, np.float32)
        results: list[list[Any]] = []
        running: collections.deque[Any] = collections.deque()

        def finish() -> None:
            request = running.popleft()
            request.wait()
            results.append([request.get_output_tensor(port).data.copy() for port in self._ports])
            self._requests.put(request)

        for item in data:
            if len(running) >= self._streams:  # one request per stream in flight from this caller
                finish()
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                request = self._compiled.create_infer_request()
            request.start_async({0: item[None]})
            running.append(request)
        while running:
            finish()
        if not results:
            shapes = [self._compiled.outputs[port].get_shape() for port in self._ports]
            return {n: np.zeros((0, *shape[1:]), np.float32) for n, shape in zip(self._outputs, shapes, strict=True)}
        return {name: np.concatenate([r[i] for r in results]) for i, name in enumerate(self._outputs)}

    def close(self) -> None:
        self._compiled = None


KEEP_FP32_TYPES = ("Convolution", "GroupConvolution", "Interpolate")
"""The layers OpenVINO's CPU plugin runs in bf16 for speed (its "significant" nodes, as found in this model)."""
NEVER_MARKED = ("Parameter", "Result", "Const")

KeepScope = Literal["significant", "all"]
"""What stays fp32 outside the reduced layers: only the significant layers (the operations between them
follow OpenVINO's own choice, bf16 unless they end the graph), or every layer (a reduced convolution's
neighbours, residual additions included, stay fp32: more conversions, less error)."""


def mark_keep_fp32(xml: str, reduced: set[str], scope: KeepScope = "significant") -> str:
    """The IR with the layers outside `reduced` (ONNX node names: a convolution and its bias addition)
    marked to stay fp32: those of KEEP_FP32_TYPES, or with scope "all" every computing layer.

    The mark is the `DisablePrecisionConversion` runtime attribute, which the CPU plugin honours when it
    lowers the graph to the inference precision (`keepOrigPrecision`). The IR reader builds it from XML;
    Python cannot set it on a node.
    """
    import xml.etree.ElementTree as ET

    root = ET.fromstring(xml)
    for layer in root.iter("layer"):
        kind, base = layer.get("type"), layer.get("name", "").split("/")[0]
        marked = kind in KEEP_FP32_TYPES if scope == "significant" else kind not in NEVER_MARKED
        if not marked or base in reduced:
            continue
        info = layer.find("rt_info")
        if info is None:
            info = ET.Element("rt_info")
            layer.insert(1 if layer.find("data") is not None else 0, info)
        ET.SubElement(info, "attribute", name="DisablePrecisionConversion", version="0", value="dynamic:bf16,f16")
    return ET.tostring(root, encoding="unicode")


def kept_fp32(network: Any) -> set[str]:
    """Names of the layers of a read model that carry the keep-fp32 mark (tests, manifests)."""
    return {op.get_friendly_name() for op in network.get_ops() if "DisablePrecisionConversion_0" in op.get_rt_info()}
