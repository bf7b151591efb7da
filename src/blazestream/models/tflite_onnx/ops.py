"""One function per supported TFLite operator, each appending its ONNX equivalent to a :class:`GraphBuilder`.

4-D activations are produced NCHW (see ``graph.py``); weights are rearranged here, once, as initializers.
Paddings that TFLite computes at run time (``SAME``) are computed from the static TFLite shapes and written
out explicitly, since ONNX ``auto_pad=SAME_UPPER`` is not uniformly supported and TF's rule (the extra pixel
goes at the end) is easy to state exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import tflite

from blazestream.engines.errors import UnsupportedOpError
from blazestream.models.tflite_onnx.graph import NATIVE, NCHW, NHWC_TO_NCHW, GraphBuilder, Layout
from blazestream.models.tflite_onnx.reader import OperatorInfo

_ACTIVATION_NAMES = {
    code: name for name, code in vars(tflite.ActivationFunctionType).items() if not name.startswith("_")
}


def _unsupported(g: GraphBuilder, op: OperatorInfo, detail: str) -> UnsupportedOpError:
    return UnsupportedOpError(f"{g.model.name}: operator #{op.index} {op.opcode} {detail}")


def _options(g: GraphBuilder, op: OperatorInfo, options_class: type[Any]) -> Any:
    options = g.model.options(op, options_class)
    if options is None:
        raise _unsupported(g, op, f"has no {options_class.__name__}")
    return options


def _require_float32(g: GraphBuilder, op: OperatorInfo) -> None:
    """Quantized activations would need QLinear* ops: reject them instead of converting them wrongly."""
    for index in (*op.inputs[:1], *op.outputs):
        tensor = g.model.tensors[index]
        if tensor.type_name != "FLOAT32":
            raise _unsupported(g, op, f"works on {tensor.type_name} tensor #{index}; only FLOAT32 activations convert")


def _node_name(op: OperatorInfo) -> str:
    return f"{op.opcode.lower()}_{op.index}"


def _emit(
    g: GraphBuilder,
    op: OperatorInfo,
    op_type: str,
    inputs: list[str],
    layout: Layout,
    activation: int = tflite.ActivationFunctionType.NONE,
    **attrs: Any,
) -> None:
    """Adds the node computing ``op``'s (single) output, then its fused activation, and records the output."""
    out_index = op.outputs[0]
    out = g.tensor_name(out_index)
    if activation == tflite.ActivationFunctionType.NONE:
        g.add_node(op_type, inputs, [out], name=_node_name(op), **attrs)
    else:
        linear = g.fresh(f"t{out_index}_linear")
        g.add_node(op_type, inputs, [linear], name=_node_name(op), **attrs)
        _activation(g, op, activation, linear, out)
    g.define(out_index, out, layout)


def _activation(g: GraphBuilder, op: OperatorInfo, activation: int, x: str, out: str) -> None:
    if activation == tflite.ActivationFunctionType.RELU:
        g.add_node("Relu", [x], [out], name=f"{_node_name(op)}_relu")
    elif activation == tflite.ActivationFunctionType.RELU6:
        low = g.initializer("relu6_min", np.array(0.0, dtype=np.float32))
        high = g.initializer("relu6_max", np.array(6.0, dtype=np.float32))
        g.add_node("Clip", [x, low, high], [out], name=f"{_node_name(op)}_relu6")
    else:
        name = _ACTIVATION_NAMES.get(activation, str(activation))
        raise _unsupported(g, op, f"has fused activation {name}; supported: NONE, RELU, RELU6")


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TF's SAME padding of one spatial axis: output ceil(size / stride), the odd pixel at the end."""
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _spatial_pads(
    g: GraphBuilder,
    op: OperatorInfo,
    padding: int,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> list[int]:
    """ONNX ``pads`` [top, left, bottom, right], checked against TFLite's static output shape."""
    _, height, width, _ = g.shape(op.inputs[0])
    if padding == tflite.Padding.VALID:
        top = bottom = left = right = 0
    elif padding == tflite.Padding.SAME:
        top, bottom = same_padding(height, kernel[0], stride[0], dilation[0])
        left, right = same_padding(width, kernel[1], stride[1], dilation[1])
    else:
        raise _unsupported(g, op, f"has unknown padding {padding}")
    expected = g.shape(op.outputs[0])[1:3]
    got = tuple(
        (size + pad - (k - 1) * d - 1) // s + 1
        for size, pad, k, d, s in zip(
            (height, width), (top + bottom, left + right), kernel, dilation, stride, strict=True
        )
    )
    if got != tuple(expected):
        raise _unsupported(g, op, f"padding gives output {got}, but the model says {tuple(expected)}")
    return [top, left, bottom, right]


def _bias(g: GraphBuilder, op: OperatorInfo) -> list[str]:
    if len(op.inputs) < 3 or op.inputs[2] < 0:
        return []
    bias = g.require_constant(op, 2, "bias")
    return [g.initializer(f"c{op.inputs[2]}", bias.astype(np.float32))]


def _filter(g: GraphBuilder, op: OperatorInfo) -> npt.NDArray[np.float32]:
    weights = g.require_constant(op, 1, "filter")
    if weights.dtype != np.float32:
        raise _unsupported(g, op, f"has a {weights.dtype} filter; only float filters convert")
    return weights


# -- operators ---------------------------------------------------------------------------------------------


def conv_2d(g: GraphBuilder, op: OperatorInfo) -> None:
    """CONV_2D: filter OHWI → OIHW; grouped when the input has a multiple of the filter's channels."""
    _require_float32(g, op)
    options = _options(g, op, tflite.Conv2DOptions)
    weights = _filter(g, op)
    _, kh, kw, filter_channels = weights.shape
    in_channels = g.shape(op.inputs[0])[3]
    if in_channels % filter_channels:
        raise _unsupported(g, op, f"has {in_channels} input channels for a filter of {filter_channels}")
    w = g.initializer(f"c{op.inputs[1]}_oihw", weights.transpose(0, 3, 1, 2))
    _emit_conv(g, op, options, w, (kh, kw), group=in_channels // filter_channels)


def depthwise_conv_2d(g: GraphBuilder, op: OperatorInfo) -> None:
    """DEPTHWISE_CONV_2D: filter 1HW(C·M) → (C·M)1HW with group=C (output channel c·M+m, as in TFLite)."""
    _require_float32(g, op)
    options = _options(g, op, tflite.DepthwiseConv2DOptions)
    weights = _filter(g, op)
    _, kh, kw, out_channels = weights.shape
    in_channels = g.shape(op.inputs[0])[3]
    if out_channels % in_channels:
        raise _unsupported(g, op, f"has {out_channels} filter channels for {in_channels} input channels")
    w = g.initializer(f"c{op.inputs[1]}_dw_oihw", weights[0].transpose(2, 0, 1)[:, None])
    _emit_conv(g, op, options, w, (kh, kw), group=in_channels)


def _emit_conv(
    g: GraphBuilder, op: OperatorInfo, options: Any, weights: str, kernel: tuple[int, int], *, group: int
) -> None:
    """The ONNX Conv shared by CONV_2D and DEPTHWISE_CONV_2D: strides, dilations, TF padding, fused activation."""
    stride = (options.StrideH(), options.StrideW())
    dilation = (options.DilationHFactor(), options.DilationWFactor())
    pads = _spatial_pads(g, op, options.Padding(), kernel, stride, dilation)
    inputs = [g.get(op.inputs[0], NCHW), weights, *_bias(g, op)]
    _emit(
        g,
        op,
        "Conv",
        inputs,
        NCHW,
        options.FusedActivationFunction(),
        kernel_shape=list(kernel),
        strides=list(stride),
        dilations=list(dilation),
        pads=pads,
        group=group,
    )


def max_pool_2d(g: GraphBuilder, op: OperatorInfo) -> None:
    """MAX_POOL_2D: padded pixels never win, in TFLite and in ONNX MaxPool alike."""
    _require_float32(g, op)
    options = _options(g, op, tflite.Pool2DOptions)
    kernel = (options.FilterHeight(), options.FilterWidth())
    stride = (options.StrideH(), options.StrideW())
    pads = _spatial_pads(g, op, options.Padding(), kernel, stride, (1, 1))
    _emit(
        g,
        op,
        "MaxPool",
        [g.get(op.inputs[0], NCHW)],
        NCHW,
        options.FusedActivationFunction(),
        kernel_shape=list(kernel),
        strides=list(stride),
        pads=pads,
    )


def _elementwise_inputs(g: GraphBuilder, op: OperatorInfo) -> tuple[list[str], Layout]:
    """Inputs of a broadcasting op in one layout: NCHW if any computed 4-D input is held NCHW."""
    computed = [i for i in op.inputs if g.constant(i) is None]
    layout: Layout = NCHW if any(g.layout(i) == NCHW for i in computed) else NATIVE
    names = []
    for index in op.inputs:
        value = g.constant(index)
        if value is None:
            names.append(g.get(index, layout))
        elif layout == NCHW:
            if value.ndim > 4:
                raise _unsupported(g, op, f"broadcasts a rank-{value.ndim} constant against a 4-D tensor")
            aligned = value.reshape((1,) * (4 - value.ndim) + value.shape).transpose(NHWC_TO_NCHW)
            names.append(g.initializer(f"c{index}_nchw", aligned))
        else:
            names.append(g.get(index, NATIVE))
    return names, layout


def add(g: GraphBuilder, op: OperatorInfo) -> None:
    _require_float32(g, op)
    options = g.model.options(op, tflite.AddOptions)
    activation = options.FusedActivationFunction() if options is not None else tflite.ActivationFunctionType.NONE
    names, layout = _elementwise_inputs(g, op)
    _emit(g, op, "Add", names, layout, activation)


def logistic(g: GraphBuilder, op: OperatorInfo) -> None:
    _require_float32(g, op)
    layout = g.layout(op.inputs[0])
    _emit(g, op, "Sigmoid", [g.get(op.inputs[0], layout)], layout)


def pad(g: GraphBuilder, op: OperatorInfo) -> None:
    """PAD: the [rank, 2] paddings become ONNX's [begins..., ends...], reordered to NCHW when needed."""
    _require_float32(g, op)
    paddings = g.require_constant(op, 1, "paddings").astype(np.int64).reshape(-1, 2)
    layout = g.layout(op.inputs[0])
    if layout == NCHW:
        paddings = paddings[list(NHWC_TO_NCHW)]
    pads = g.initializer(f"c{op.inputs[1]}_pads_{layout}", np.concatenate([paddings[:, 0], paddings[:, 1]]))
    _emit(g, op, "Pad", [g.get(op.inputs[0], layout), pads], layout, mode="constant")


def resize_bilinear(g: GraphBuilder, op: OperatorInfo) -> None:
    """RESIZE_BILINEAR → Resize(linear); exact scale factors keep the batch dynamic without a Shape op.

    TF's half-pixel rule (source = (dst + 0.5) · in/out - 0.5, clamped to the edge pixels) is ONNX's
    ``half_pixel``; ``align_corners`` maps to itself and the legacy rule (dst · in/out) to ``asymmetric``.
    """
    _require_float32(g, op)
    options = g.model.options(op, tflite.ResizeBilinearOptions)
    align_corners = bool(options.AlignCorners()) if options is not None else False
    half_pixel = bool(options.HalfPixelCenters()) if options is not None else False
    if align_corners and half_pixel:
        raise _unsupported(g, op, "sets both align_corners and half_pixel_centers")
    mode = "align_corners" if align_corners else "half_pixel" if half_pixel else "asymmetric"
    size = [int(v) for v in g.require_constant(op, 1, "size").reshape(-1)]
    _, height, width, _ = g.shape(op.inputs[0])
    x = g.get(op.inputs[0], NCHW)
    ratios = [size[0] / height, size[1] / width]
    exact = all(
        float(np.float32(r)) == r and int(np.floor(n * r)) == s
        for r, n, s in zip(ratios, (height, width), size, strict=True)
    )
    if exact:
        scales = g.initializer(f"scales_{op.index}", np.array([1.0, 1.0, *ratios], dtype=np.float32))
        inputs = [x, "", scales]
    else:  # sizes = [N, C] of the input at run time + the static [H, W]
        shape = g.fresh(f"t{op.inputs[0]}_shape")
        g.add_node("Shape", [x], [shape], name=f"{_node_name(op)}_shape", start=0, end=2)
        hw = g.initializer(f"size_{op.index}", np.array(size, dtype=np.int64))
        sizes = g.fresh(f"sizes_{op.index}")
        g.add_node("Concat", [shape, hw], [sizes], name=f"{_node_name(op)}_sizes", axis=0)
        inputs = [x, "", "", sizes]
    _emit(g, op, "Resize", inputs, NCHW, mode="linear", coordinate_transformation_mode=mode)


def depth_to_space(g: GraphBuilder, op: OperatorInfo) -> None:
    """DEPTH_TO_SPACE: TF orders the depth as (block_y, block_x, channel), which is ONNX's DCR mode."""
    _require_float32(g, op)
    options = _options(g, op, tflite.DepthToSpaceOptions)
    _emit(g, op, "DepthToSpace", [g.get(op.inputs[0], NCHW)], NCHW, blocksize=options.BlockSize(), mode="DCR")


def _flattens_alike(nhwc_shape: tuple[int, ...]) -> bool:
    """True if NCHW and NHWC storage of this shape order the elements alike (C == 1 or H·W == 1)."""
    nhwc = [axis for axis in (1, 2, 3) if nhwc_shape[axis] > 1]
    nchw = [axis for axis in (3, 1, 2) if nhwc_shape[axis] > 1]
    return nhwc == nchw


def reshape(g: GraphBuilder, op: OperatorInfo) -> None:
    """RESHAPE flattens in TFLite's (NHWC) order; the batch entry of the target shape is 0 (copy it)."""
    x_index, out_index = op.inputs[0], op.outputs[0]
    in_shape, out_shape = g.shape(x_index), g.shape(out_index)
    if not in_shape or not out_shape or in_shape[0] != out_shape[0]:
        raise _unsupported(
            g, op, f"reshapes {list(in_shape)} to {list(out_shape)}, mixing the batch axis with the others"
        )
    layout: Layout = NCHW if g.layout(x_index) == NCHW and _flattens_alike(in_shape) else NATIVE
    target = g.initializer(f"shape_{op.index}", np.array([0, *out_shape[1:]], dtype=np.int64))
    _emit(g, op, "Reshape", [g.get(x_index, layout), target], NATIVE)


def concatenation(g: GraphBuilder, op: OperatorInfo) -> None:
    _require_float32(g, op)
    options = _options(g, op, tflite.ConcatenationOptions)
    rank = len(g.shape(op.outputs[0]))
    axis = options.Axis() % rank
    computed = [i for i in op.inputs if g.constant(i) is None]
    layout: Layout = NCHW if rank == 4 and computed and all(g.layout(i) == NCHW for i in computed) else NATIVE
    onnx_axis = NHWC_TO_NCHW.index(axis) if layout == NCHW else axis
    names = [g.get(i, layout) for i in op.inputs]
    _emit(g, op, "Concat", names, layout, options.FusedActivationFunction(), axis=onnx_axis)


def dequantize(g: GraphBuilder, op: OperatorInfo) -> None:
    """DEQUANTIZE of a float16 constant: folded into a float32 constant (no node)."""
    value = g.constant(op.inputs[0])
    if value is None:
        raise _unsupported(g, op, f"dequantizes computed tensor #{op.inputs[0]}; only constants are folded")
    if value.dtype != np.float16:
        raise _unsupported(g, op, f"dequantizes {value.dtype} data; only float16 weights convert")
    g.constants[op.outputs[0]] = value.astype(np.float32)


def densify(g: GraphBuilder, op: OperatorInfo) -> None:
    """DENSIFY of a sparse constant: folded into a dense constant (no node)."""
    if g.model.tensors[op.inputs[0]].sparsity is None:
        raise _unsupported(g, op, f"has input tensor #{op.inputs[0]}, which is not a sparse constant")
    g.constants[op.outputs[0]] = g.sparse_constant(op.inputs[0])


OP_CONVERTERS: dict[str, Callable[[GraphBuilder, OperatorInfo], None]] = {
    "ADD": add,
    "CONCATENATION": concatenation,
    "CONV_2D": conv_2d,
    "DENSIFY": densify,
    "DEPTH_TO_SPACE": depth_to_space,
    "DEPTHWISE_CONV_2D": depthwise_conv_2d,
    "DEQUANTIZE": dequantize,
    "LOGISTIC": logistic,
    "MAX_POOL_2D": max_pool_2d,
    "PAD": pad,
    "RESHAPE": reshape,
    "RESIZE_BILINEAR": resize_bilinear,
}
SUPPORTED_OPS: tuple[str, ...] = tuple(sorted(OP_CONVERTERS))
