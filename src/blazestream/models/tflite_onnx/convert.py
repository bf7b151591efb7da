"""The TFLite → ONNX driver: checks the op set, converts operator by operator, names and prunes the outputs.

The result takes an NCHW float32 input with a dynamic batch (``[batch, C, H, W]``), which is what ONNX
Runtime and TensorRT batch best, and keeps the model's numerics (float16 weights are widened to float32
once, at conversion).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

import onnx
from onnx import TensorProto, helper

from blazestream.engines.errors import UnsupportedOpError
from blazestream.models.tflite_onnx.graph import NATIVE, NCHW, GraphBuilder, Layout
from blazestream.models.tflite_onnx.ops import OP_CONVERTERS, SUPPORTED_OPS
from blazestream.models.tflite_onnx.reader import TFLiteModel
from blazestream.models.tflite_onnx.version import CONVERTER_VERSION

OPSET = 17
IR_VERSION = 8  # the newest IR that onnxruntime 1.17 loads
BATCH_DIM = "batch"


def check_supported(model: TFLiteModel) -> None:
    """Fails on the first operator outside the supported set, before any work is done."""
    supported = ", ".join(SUPPORTED_OPS)
    for op in model.operators:
        if op.opcode == "CUSTOM":
            raise UnsupportedOpError(
                f"{model.name}: operator #{op.index} is the custom op {op.custom_code!r}, which is not "
                f"supported by blazestream's converter (supported: {supported})"
            )
        if op.opcode not in OP_CONVERTERS:
            raise UnsupportedOpError(
                f"{model.name}: operator #{op.index} {op.opcode} is not supported by blazestream's converter "
                f"(supported: {supported})"
            )


def _prune(
    nodes: list[onnx.NodeProto], initializers: Mapping[str, TensorProto], outputs: Iterable[str]
) -> tuple[list[onnx.NodeProto], list[TensorProto]]:
    """Keeps the nodes (in order) and initializers that some output needs."""
    needed = set(outputs)
    kept: list[onnx.NodeProto] = []
    for node in reversed(nodes):
        if any(name in needed for name in node.output):
            kept.append(node)
            needed.update(name for name in node.input if name)
    kept.reverse()
    return kept, [tensor for name, tensor in initializers.items() if name in needed]


def _rename(nodes: list[onnx.NodeProto], renames: Mapping[str, str]) -> None:
    for node in nodes:
        node.input[:] = [renames.get(name, name) for name in node.input]
        node.output[:] = [renames.get(name, name) for name in node.output]


def convert_tflite(
    tflite_bytes: bytes,
    *,
    input_name: str = "input",
    output_names: Mapping[str, str] | None = None,
    drop_outputs: Iterable[str] = (),
    model_name: str = "model.tflite",
) -> onnx.ModelProto:
    """Converts a single-input float TFLite model to an ONNX model (opset 17, IR 8).

    ``output_names`` maps TFLite output names to ONNX names (unmapped outputs keep their TFLite name).
    ``drop_outputs`` (TFLite or ONNX names) removes outputs and every node only they needed.
    4-D inputs and outputs are NCHW; other tensors keep TFLite's axis order. The first axis of the input
    and of every output is the symbolic ``batch`` dimension. ``model_name`` is used in error messages and
    recorded, with the sha256 of ``tflite_bytes``, in the model's metadata.
    """
    model = TFLiteModel(tflite_bytes, model_name)
    check_supported(model)
    output_names = dict(output_names or {})
    tflite_outputs = {model.tensors[i].name: i for i in model.outputs}
    unknown = sorted(set(output_names) - set(tflite_outputs))
    if unknown:
        raise ValueError(f"{model_name}: no output named {unknown}; its outputs are {sorted(tflite_outputs)}")
    onnx_names = {name: output_names.get(name, name) for name in tflite_outputs}
    dropped = set(drop_outputs)
    unknown = sorted(dropped - set(onnx_names) - set(onnx_names.values()))
    if unknown:
        raise ValueError(f"{model_name}: cannot drop {unknown}; its outputs are {sorted(onnx_names.values())}")

    if len(model.inputs) != 1:
        raise UnsupportedOpError(f"{model_name}: has {len(model.inputs)} inputs; the converter handles one")
    (input_index,) = model.inputs
    input_tensor = model.tensors[input_index]
    if input_tensor.type_name != "FLOAT32":
        raise UnsupportedOpError(f"{model_name}: input is {input_tensor.type_name}; only FLOAT32 inputs convert")

    g = GraphBuilder(model)
    g.fresh(input_name)
    in_shape = input_tensor.shape
    input_layout: Layout = NCHW if len(in_shape) == 4 else NATIVE
    onnx_in_shape = [in_shape[i] for i in (0, 3, 1, 2)] if input_layout == NCHW else list(in_shape)
    g.define(input_index, input_name, input_layout)
    graph_input = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [BATCH_DIM, *onnx_in_shape[1:]])

    for op in model.operators:
        OP_CONVERTERS[op.opcode](g, op)

    renames: dict[str, str] = {}
    graph_outputs = []
    for tflite_name, index in tflite_outputs.items():
        onnx_name = onnx_names[tflite_name]
        if tflite_name in dropped or onnx_name in dropped:
            continue
        shape = model.tensors[index].shape
        layout: Layout = NCHW if len(shape) == 4 else NATIVE
        value = g.get(index, layout)
        if value in renames or value in g.initializers or value == input_name:
            g.add_node("Identity", [value], [onnx_name], name=f"output_{onnx_name}")
        else:
            renames[value] = onnx_name
        out_shape = [shape[i] for i in (0, 3, 1, 2)] if layout == NCHW else list(shape)
        graph_outputs.append(helper.make_tensor_value_info(onnx_name, TensorProto.FLOAT, [BATCH_DIM, *out_shape[1:]]))
    if not graph_outputs:
        raise ValueError(f"{model_name}: every output was dropped")
    _rename(g.nodes, renames)
    nodes, initializers = _prune(g.nodes, g.initializers, (o.name for o in graph_outputs))

    sha256 = hashlib.sha256(tflite_bytes).hexdigest()
    graph = helper.make_graph(nodes, model_name.rsplit(".", 1)[0], [graph_input], graph_outputs, initializers)
    onnx_model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="blazestream",
        producer_version=CONVERTER_VERSION,
        doc_string=(
            f"{model_name} (sha256 {sha256}) converted by blazestream's TFLite converter "
            f"{CONVERTER_VERSION}: input {input_name!r} is NCHW float32 with a dynamic batch"
        ),
    )
    helper.set_model_props(
        onnx_model,
        {
            "source_file": model_name,
            "source_sha256": sha256,
            "converter": "blazestream.models.tflite_onnx",
            "converter_version": CONVERTER_VERSION,
            "dropped_outputs": ",".join(sorted(dropped)),
        },
    )
    onnx.checker.check_model(onnx_model)
    return onnx_model
