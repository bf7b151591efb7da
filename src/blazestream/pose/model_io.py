"""The two models' inputs as MediaPipe feeds them (blazepose-spec.md: the ImageToTensor options), defined once.

The detector takes 224x224 RGB in [-1, 1], the landmark model 256x256 RGB in [0, 1]; a tensor value is
`pixel * SCALE + OFFSET`. The CPU crops, the CUDA kernel, nvinfer's config and the decoders all read these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Border = Literal["replicate", "zero"]
"""What a crop samples outside the image: the nearest edge pixel (estimator) or black (detector letterbox)."""

DETECTOR_SIZE = 224
LANDMARK_SIZE = 256
DETECTOR_SCALE = 2.0 / 255.0
DETECTOR_OFFSET = -1.0
LANDMARK_SCALE = 1.0 / 255.0
LANDMARK_OFFSET = 0.0


@dataclass(frozen=True)
class InputSpec:
    """One model's input crop: size x size pixels, its border, and `pixel * scale + offset`."""

    size: int
    border: Border
    scale: float
    offset: float


DETECTOR_INPUT = InputSpec(DETECTOR_SIZE, "zero", DETECTOR_SCALE, DETECTOR_OFFSET)
LANDMARK_INPUT = InputSpec(LANDMARK_SIZE, "replicate", LANDMARK_SCALE, LANDMARK_OFFSET)
