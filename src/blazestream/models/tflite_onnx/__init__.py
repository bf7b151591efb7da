"""A TFLite → ONNX converter for the operator set of MediaPipe's BlazePose models (detector and landmarks).

It reads the flatbuffer with the ``tflite`` package and writes ONNX with ``onnx.helper``: no TensorFlow.
"""

from blazestream.models.tflite_onnx.convert import CONVERTER_VERSION, check_supported, convert_tflite
from blazestream.models.tflite_onnx.ops import SUPPORTED_OPS

__all__ = ["CONVERTER_VERSION", "SUPPORTED_OPS", "check_supported", "convert_tflite"]
