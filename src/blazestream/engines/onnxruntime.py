"""ONNX Runtime engine: the CPU backend (and the reference the TensorRT engines are compared with)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from blazestream.errors import BlazestreamError

GraphOptimization = Literal["disable", "basic", "extended", "all"]


@dataclass(frozen=True)
class OrtSettings:
    """Threading and graph options exposed to users (config `engine.onnxruntime`)."""

    intra_op_threads: int = 0
    """Threads inside one operator; 0 lets ONNX Runtime use one per physical core."""
    inter_op_threads: int = 1
    graph_optimization: GraphOptimization = "all"
    providers: Sequence[str] = ("CPUExecutionProvider",)
    spin_wait: bool = False
    """Busy-wait between ops; off by default so idle cameras do not burn CPU."""


class OnnxRuntimeEngine:
    """One ONNX model in an ONNX Runtime session; outputs limited to `outputs` when given."""

    def __init__(self, path: Path, settings: OrtSettings | None = None, *, outputs: Sequence[str] | None = None):
        import onnxruntime as ort

        self._settings = settings or OrtSettings()
        if not path.is_file():
            raise BlazestreamError(f"model file {path} does not exist: run `blazestream models` to create it")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self._settings.intra_op_threads
        options.inter_op_num_threads = self._settings.inter_op_threads
        options.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self._settings.graph_optimization]
        spin = "1" if self._settings.spin_wait else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        options.add_session_config_entry("session.inter_op.allow_spinning", spin)
        self._session = ort.InferenceSession(str(path), options, providers=list(self._settings.providers))
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise BlazestreamError(f"{path}: expected a model with one input, found {len(inputs)}")
        self._input = inputs[0].name
        shape = inputs[0].shape
        self._input_shape = (int(shape[1]), int(shape[2]), int(shape[3]))
        available = [o.name for o in self._session.get_outputs()]
        wanted = list(outputs) if outputs is not None else available
        missing = [n for n in wanted if n not in available]
        if missing:
            raise BlazestreamError(f"{path}: no output named {missing}; the model has {available}")
        self._outputs = tuple(wanted)
        self._name = path.stem

    @property
    def name(self) -> str:
        return self._name

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self._input_shape

    @property
    def output_names(self) -> tuple[str, ...]:
        return self._outputs

    @property
    def max_batch(self) -> int | None:
        return None

    def infer(self, batch: Any) -> Mapping[str, Any]:
        arrays = self._session.run(list(self._outputs), {self._input: np.ascontiguousarray(batch, np.float32)})
        return dict(zip(self._outputs, arrays, strict=True))

    def close(self) -> None:
        del self._session
