"""The model cache: MediaPipe's .tflite files, their ONNX conversions and reduced-precision builds."""
