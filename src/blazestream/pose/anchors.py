"""SSD anchors of the pose detector (MediaPipe `SsdAnchorsCalculator`, pose_detection_cpu.pbtxt).

With `fixed_anchor_size: true` every anchor is 1x1, so only the centres matter: 2254 of them for a
224x224 input, strides 8, 16, 32 (layers of equal stride merged), two anchors per cell each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from blazestream.pose.model_io import DETECTOR_SIZE


@dataclass(frozen=True)
class SsdAnchorOptions:
    """The options the detector graph sets; defaults are pose_detection_cpu.pbtxt's values."""

    input_size: int = DETECTOR_SIZE
    num_layers: int = 5
    min_scale: float = 0.1484375
    max_scale: float = 0.75
    anchor_offset: float = 0.5
    strides: Sequence[int] = field(default=(8, 16, 32, 32, 32))
    aspect_ratios: Sequence[float] = field(default=(1.0,))
    interpolated_scale_aspect_ratio: float = 1.0


def generate_anchors(options: SsdAnchorOptions | None = None) -> npt.NDArray[np.float32]:
    """Anchor centres (x, y), normalized, in the detector's output order: shape (num_anchors, 2).

    Follows SsdAnchorsCalculator: consecutive layers with the same stride share one feature map;
    each layer adds its aspect ratios plus one interpolated-scale anchor per cell; loop y, x, anchor.
    """
    opts = options or SsdAnchorOptions()
    centres: list[tuple[float, float]] = []
    layer = 0
    while layer < opts.num_layers:
        anchors_per_cell = 0
        last = layer
        while last < opts.num_layers and opts.strides[last] == opts.strides[layer]:
            anchors_per_cell += len(opts.aspect_ratios)
            if opts.interpolated_scale_aspect_ratio > 0.0:
                anchors_per_cell += 1
            last += 1
        stride = opts.strides[layer]
        size = math.ceil(opts.input_size / stride)
        for y in range(size):
            for x in range(size):
                cx = (x + opts.anchor_offset) / size
                cy = (y + opts.anchor_offset) / size
                centres.extend([(cx, cy)] * anchors_per_cell)
        layer = last
    return np.asarray(centres, dtype=np.float32)


NUM_ANCHORS = 2254
