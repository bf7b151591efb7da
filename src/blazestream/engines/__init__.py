"""Model runtimes behind one protocol (ONNX Runtime, TensorRT), the model cache and the TFLite converter."""
