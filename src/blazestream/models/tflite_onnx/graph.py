"""The ONNX graph under construction, and the layout of every TFLite tensor in it.

TFLite activations are NHWC; the ONNX graph keeps 4-D activations NCHW, the layout ONNX Conv, Resize and
DepthToSpace expect, so that no Transpose surrounds every convolution. Each TFLite tensor is recorded with
the ONNX value(s) holding it and their layout: ``NCHW`` (a 4-D tensor with its axes permuted) or
``NATIVE`` (TFLite's own axis order). A Transpose is inserted only when an operator needs the other layout
(RESHAPE flattening in NHWC order, a 4-D model output), and at most once per tensor and layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnx
from onnx import helper, numpy_helper

from blazestream.engines.errors import UnsupportedOpError
from blazestream.models.tflite_onnx.reader import OperatorInfo, TFLiteModel
from blazestream.models.tflite_onnx.sparsity import densify

Layout = Literal["nchw", "native"]
NCHW: Layout = "nchw"
NATIVE: Layout = "native"

NHWC_TO_NCHW = (0, 3, 1, 2)
NCHW_TO_NHWC = (0, 2, 3, 1)


@dataclass
class GraphBuilder:
    """Collects nodes and initializers; maps TFLite tensor indices to ONNX value names per layout."""

    model: TFLiteModel
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: dict[str, onnx.TensorProto] = field(default_factory=dict)
    values: dict[int, dict[Layout, str]] = field(default_factory=dict)
    constants: dict[int, npt.NDArray[Any]] = field(default_factory=dict)
    _names: set[str] = field(default_factory=set)

    # -- names, nodes, initializers -------------------------------------------------------------------

    def fresh(self, hint: str) -> str:
        """A value name not used yet."""
        name, n = hint, 1
        while name in self._names:
            n += 1
            name = f"{hint}_{n}"
        self._names.add(name)
        return name

    def tensor_name(self, index: int) -> str:
        """The ONNX name of the value that first holds TFLite tensor ``index``."""
        return self.fresh(f"t{index}")

    def add_node(self, op_type: str, inputs: list[str], outputs: list[str], name: str, **attrs: Any) -> None:
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=self.fresh(name), **attrs))

    def initializer(self, name: str, array: npt.NDArray[Any]) -> str:
        """Adds ``array`` as an initializer called ``name`` (once: later calls with the name reuse it)."""
        if name not in self.initializers:
            self._names.add(name)
            self.initializers[name] = numpy_helper.from_array(np.ascontiguousarray(array), name)
        return name

    # -- constants -------------------------------------------------------------------------------------

    def constant(self, index: int) -> npt.NDArray[Any] | None:
        """The value of a constant tensor: stored in the file, or folded (DENSIFY, DEQUANTIZE); else None."""
        if index in self.constants:
            return self.constants[index]
        tensor = self.model.tensors[index]
        if tensor.data is None or tensor.sparsity is not None:
            return None  # a sparse tensor is only a constant once DENSIFY has folded it
        value = self.model.raw_constant(index)
        assert value is not None
        self.constants[index] = value
        return value

    def sparse_constant(self, index: int) -> npt.NDArray[Any]:
        """The dense value of a sparse constant tensor."""
        tensor = self.model.tensors[index]
        values = self.model.raw_constant(index)
        if values is None or tensor.sparsity is None:
            raise ValueError(f"{self.model.name}: tensor #{index} {tensor.name!r} is not a sparse constant")
        return densify(values, tensor.shape, tensor.sparsity)

    def require_constant(self, op: OperatorInfo, position: int, what: str) -> npt.NDArray[Any]:
        """Input ``position`` of ``op`` as a constant, or an UnsupportedOpError naming the operator."""
        index = op.inputs[position]
        value = self.constant(index) if index >= 0 else None
        if value is None:
            raise UnsupportedOpError(
                f"{self.model.name}: operator #{op.index} {op.opcode} has a computed {what} "
                f"(tensor #{index}); blazestream's converter needs it to be a constant"
            )
        return value

    # -- activations and their layouts -----------------------------------------------------------------

    def shape(self, index: int) -> tuple[int, ...]:
        return self.model.tensors[index].shape

    def define(self, index: int, name: str, layout: Layout) -> None:
        """Records that ONNX value ``name`` holds TFLite tensor ``index`` in ``layout``."""
        if layout == NCHW and len(self.shape(index)) != 4:
            raise ValueError(f"tensor #{index} has rank {len(self.shape(index))}; only 4-D tensors are held NCHW")
        self.values.setdefault(index, {})[layout] = name

    def layout(self, index: int) -> Layout:
        """The layout the tensor was produced in (NCHW wins if both exist); constants count as NATIVE."""
        held = self.values.get(index, {})
        return NCHW if NCHW in held else NATIVE

    def get(self, index: int, layout: Layout) -> str:
        """The ONNX value holding tensor ``index`` in ``layout``, transposing (once) if needed."""
        held = self.values.get(index)
        if held is None:
            value = self.constant(index)
            if value is None:
                raise ValueError(f"{self.model.name}: tensor #{index} is used before it is computed")
            if layout == NCHW:
                if value.ndim != 4:
                    raise ValueError(f"constant tensor #{index} has rank {value.ndim}; cannot hold it NCHW")
                value = value.transpose(NHWC_TO_NCHW)
            suffix = "_nchw" if layout == NCHW else ""
            return self.initializer(f"c{index}{suffix}", value.astype(value.dtype, copy=False))
        if layout in held:
            return held[layout]
        source_layout: Layout = NATIVE if layout == NCHW else NCHW
        if len(self.shape(index)) != 4:
            raise ValueError(f"tensor #{index} has rank {len(self.shape(index))}; cannot change its layout")
        perm = NHWC_TO_NCHW if layout == NCHW else NCHW_TO_NHWC
        name = self.fresh(f"t{index}_{layout}")
        self.add_node("Transpose", [held[source_layout]], [name], name=f"transpose_t{index}", perm=list(perm))
        held[layout] = name
        return name
