"""A TFLite → ONNX converter for the operator set of MediaPipe's BlazePose models (detector and landmarks).

It reads the flatbuffer with the ``tflite`` package and writes ONNX with ``onnx.helper``: no TensorFlow.
"""

from typing import Any

from blazestream.models.tflite_onnx.version import CONVERTER_VERSION

__all__ = ["CONVERTER_VERSION", "SUPPORTED_OPS", "check_supported", "convert_tflite"]


def __getattr__(name: str) -> Any:
    """The converter itself is imported on first use: a run that loads cached models never needs it."""
    if name in ("check_supported", "convert_tflite"):
        from blazestream.models.tflite_onnx import convert

        return getattr(convert, name)
    if name == "SUPPORTED_OPS":
        from blazestream.models.tflite_onnx.ops import SUPPORTED_OPS

        return SUPPORTED_OPS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
