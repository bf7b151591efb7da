"""The two models' inputs as MediaPipe feeds them (blazepose-spec.md: the ImageToTensor options), defined once.

The detector takes 224x224 RGB in [-1, 1], the landmark model 256x256 RGB in [0, 1]; a tensor value is
`pixel * SCALE + OFFSET`. The CPU crops, the CUDA kernel, nvinfer's config and the decoders all read these.
"""

from __future__ import annotations

DETECTOR_SIZE = 224
LANDMARK_SIZE = 256
DETECTOR_SCALE = 2.0 / 255.0
DETECTOR_OFFSET = -1.0
LANDMARK_SCALE = 1.0 / 255.0
LANDMARK_OFFSET = 0.0
