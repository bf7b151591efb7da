"""Read-only access to a TFLite flatbuffer (one subgraph): tensors, constant buffers and operators.

The generated ``tflite`` package exposes raw flatbuffer tables; this module turns them into small frozen
records once, so the rest of the converter never touches flatbuffer offsets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import tflite

from blazestream.models.tflite_onnx.sparsity import SparsityParams, read_sparsity

_NUMPY_DTYPES: dict[int, np.dtype[Any]] = {
    tflite.TensorType.FLOAT32: np.dtype(np.float32),
    tflite.TensorType.FLOAT16: np.dtype(np.float16),
    tflite.TensorType.FLOAT64: np.dtype(np.float64),
    tflite.TensorType.INT8: np.dtype(np.int8),
    tflite.TensorType.UINT8: np.dtype(np.uint8),
    tflite.TensorType.INT16: np.dtype(np.int16),
    tflite.TensorType.UINT16: np.dtype(np.uint16),
    tflite.TensorType.INT32: np.dtype(np.int32),
    tflite.TensorType.UINT32: np.dtype(np.uint32),
    tflite.TensorType.INT64: np.dtype(np.int64),
    tflite.TensorType.BOOL: np.dtype(np.bool_),
}

BUILTIN_NAMES: dict[int, str] = {
    code: name for name, code in vars(tflite.BuiltinOperator).items() if not name.startswith("_")
}
_TYPE_NAMES: dict[int, str] = {code: name for name, code in vars(tflite.TensorType).items() if not name.startswith("_")}

T = TypeVar("T")


@dataclass(frozen=True)
class TensorInfo:
    """A tensor of the subgraph. ``data`` is the raw little-endian buffer of a constant, else None."""

    index: int
    name: str
    shape: tuple[int, ...]
    type_name: str
    dtype: np.dtype[Any] | None
    data: bytes | None
    sparsity: SparsityParams | None

    @property
    def is_constant(self) -> bool:
        return self.data is not None


@dataclass(frozen=True)
class OperatorInfo:
    """An operator: ``opcode`` is the builtin name ("CONV_2D"), or "CUSTOM" with ``custom_code`` set."""

    index: int
    opcode: str
    custom_code: str | None
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: Any  # the raw BuiltinOptions flatbuffer table, or None when every option has its default


class TFLiteModel:
    """The single subgraph of a TFLite model, read once into TensorInfo and OperatorInfo records."""

    def __init__(self, data: bytes, name: str = "model.tflite") -> None:
        self.name = name
        self._data = data
        try:
            model = tflite.Model.GetRootAsModel(data, 0)
            if model.SubgraphsLength() < 1:
                raise ValueError("the model has no subgraph")
        except Exception as exc:
            raise ValueError(f"{name}: not a readable TFLite flatbuffer ({exc})") from exc
        if model.SubgraphsLength() != 1:
            raise ValueError(f"{name}: has {model.SubgraphsLength()} subgraphs; only single-subgraph models convert")
        graph = model.Subgraphs(0)
        self.tensors: list[TensorInfo] = [
            self._read_tensor(model, graph.Tensors(i), i) for i in range(graph.TensorsLength())
        ]
        self.operators: list[OperatorInfo] = [
            self._read_operator(model, graph.Operators(i), i) for i in range(graph.OperatorsLength())
        ]
        self.inputs: tuple[int, ...] = tuple(int(i) for i in graph.InputsAsNumpy()) if graph.InputsLength() else ()
        self.outputs: tuple[int, ...] = tuple(int(i) for i in graph.OutputsAsNumpy()) if graph.OutputsLength() else ()

    def _buffer_bytes(self, model: Any, buffer_index: int) -> bytes | None:
        """Constant data, inline in the flatbuffer or (models > 2 GB) at an offset after it."""
        if buffer_index <= 0 or buffer_index >= model.BuffersLength():
            return None
        buffer = model.Buffers(buffer_index)
        if buffer.Offset() > 1:
            start = int(buffer.Offset())
            return bytes(self._data[start : start + int(buffer.Size())])
        if buffer.DataLength() == 0:
            return None
        return buffer.DataAsNumpy().tobytes()  # type: ignore[no-any-return]

    def _read_tensor(self, model: Any, tensor: Any, index: int) -> TensorInfo:
        shape = tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
        sparsity = tensor.Sparsity()
        return TensorInfo(
            index=index,
            name=tensor.Name().decode("utf-8", "replace") if tensor.Name() else f"tensor_{index}",
            shape=shape,
            type_name=_TYPE_NAMES.get(tensor.Type(), str(tensor.Type())),
            dtype=_NUMPY_DTYPES.get(tensor.Type()),
            data=self._buffer_bytes(model, tensor.Buffer()),
            sparsity=read_sparsity(sparsity) if sparsity is not None else None,
        )

    def _read_operator(self, model: Any, op: Any, index: int) -> OperatorInfo:
        code = model.OperatorCodes(op.OpcodeIndex())
        # Codes above 127 are only in `builtin_code`; older files fill only the deprecated int8 field.
        builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
        opcode = BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}")
        custom = code.CustomCode()
        return OperatorInfo(
            index=index,
            opcode=opcode,
            custom_code=custom.decode("utf-8", "replace") if custom is not None else None,
            inputs=tuple(int(i) for i in op.InputsAsNumpy()) if op.InputsLength() else (),
            outputs=tuple(int(i) for i in op.OutputsAsNumpy()) if op.OutputsLength() else (),
            options=op.BuiltinOptions(),
        )

    def options(self, op: OperatorInfo, options_class: type[T]) -> T | None:
        """The operator's builtin options as ``options_class`` (e.g. ``tflite.Conv2DOptions``), or None."""
        if op.options is None:
            return None
        parsed = options_class()
        parsed.Init(op.options.Bytes, op.options.Pos)  # type: ignore[attr-defined]
        return parsed

    def raw_constant(self, index: int) -> npt.NDArray[Any] | None:
        """The stored values of a constant tensor (for a sparse tensor: the compressed values, 1-D)."""
        tensor = self.tensors[index]
        if tensor.data is None:
            return None
        if tensor.dtype is None:
            raise ValueError(f"{self.name}: tensor #{index} {tensor.name!r} has unsupported type {tensor.type_name}")
        values = np.frombuffer(tensor.data, dtype=tensor.dtype.newbyteorder("<"))
        if tensor.sparsity is not None:
            return values
        return values.reshape(tensor.shape)
