"""CUDA kernel sources shipped as package data, and the layout of the data they read.

The `.cu` files are compiled at run time (CuPy RawModule/NVRTC) on the GPU backends and ahead of time
with nvcc by `make gpu-check`, so a syntax or type error shows up in CI without a GPU. `reference.py`
holds the NumPy twin of each kernel: the math spec the GPU tests hold the kernels to.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

FORMAT_INTERLEAVED = 0
"""RGB or RGBA (`channels` 3 or 4), uint8, rows `pitch` bytes apart."""
FORMAT_NV12_BT601 = 1
"""NV12 (Y plane + interleaved UV plane at half resolution), BT.601 limited range."""
FORMAT_NV12_BT709 = 2
"""NV12, BT.709 limited range (HD cameras)."""

BORDER_REPLICATE = 0
BORDER_CONSTANT = 1

FRAME_DESC_DTYPE = np.dtype(
    {
        "names": ["data", "uv", "pitch", "uv_pitch", "width", "height", "channels", "format"],
        "formats": [np.uint64, np.uint64, np.int32, np.int32, np.int32, np.int32, np.int32, np.int32],
        "offsets": [0, 8, 16, 20, 24, 28, 32, 36],
        "itemsize": 40,
    }
)
"""`struct FrameDesc` of crop.cu (a static_assert there pins its size to 40 bytes)."""

OPENCV_SUBPIXEL_STEPS = 32
"""OpenCV's warps round the source position to 1/32 pixel (INTER_BITS = 5); the kernel does the same."""


def kernel_source(name: str) -> str:
    """The text of a `.cu` file of this package."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
