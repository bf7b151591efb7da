"""The converter's version, recorded in the model manifest: bumped whenever the converter's output
changes, so cached ONNX files are converted again.

Its own module so that loading cached models does not import the converter (onnx, tflite: ~0.2 s).
"""

CONVERTER_VERSION = "1.0"
