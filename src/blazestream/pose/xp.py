"""Array-namespace helpers so the pose core runs unchanged on NumPy, CuPy and array-api-strict.

Every core function takes its namespace from its inputs (array-api-compat) and uses only the
Python array API standard; nothing here imports NumPy-only functions.
"""

from __future__ import annotations

import math
from typing import Any

from array_api_compat import array_namespace

Array = Any
"""An array of any array-API library (NumPy, CuPy, array-api-strict)."""

__all__ = ["Array", "array_namespace", "gather_rows", "normalize_radians", "sigmoid"]


def sigmoid(xp: Any, x: Array) -> Array:
    """Logistic function, as MediaPipe applies it to score, visibility and heatmap logits.

    The argument is clipped to +-80 so float32 exp cannot overflow; that changes results by < 1e-34.
    """
    return 1.0 / (1.0 + xp.exp(-xp.clip(x, -80.0, 80.0)))


def normalize_radians(xp: Any, angle: Array) -> Array:
    """Map to [-pi, pi) exactly like MediaPipe's NormalizeRadians."""
    return angle - 2.0 * math.pi * xp.floor((angle + math.pi) / (2.0 * math.pi))


def gather_rows(xp: Any, x: Array, index: Array) -> Array:
    """``x[b, index[b], ...]`` for every batch row b, with only the standard's ``take``."""
    batch, count = x.shape[0], x.shape[1]
    flat = xp.reshape(x, (batch * count, *x.shape[2:]))
    offsets = xp.arange(batch, dtype=index.dtype, device=_device(x)) * count
    return xp.take(flat, index + offsets, axis=0)


def _device(x: Array) -> Any:
    from array_api_compat import device

    return device(x)
