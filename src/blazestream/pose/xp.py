"""Array-namespace helpers so the pose core runs unchanged on NumPy, CuPy and array-api-strict.

Every core function takes its namespace from its inputs (array-api-compat) and uses only the
Python array API standard; nothing here calls NumPy-only functions.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from array_api_compat import array_namespace as _compat_namespace

Array = Any
"""An array of any array-API library (NumPy, CuPy, array-api-strict)."""

__all__ = ["Array", "array_namespace", "gather_rows", "normalize_radians", "sigmoid"]


_NATIVE_NUMPY = all(hasattr(np, name) for name in ("astype", "concat", "atan2", "isdtype"))
"""NumPy >= 2.1 is itself an array-API namespace for everything the core calls."""


def array_namespace(*xs: Any) -> Any:
    """The arrays' namespace: NumPy arrays short-cut to NumPy itself, others go through array-api-compat.

    ~0.2 us instead of array-api-compat's 1.5-3 (the pose core asks dozens of times per frame). NumPy
    itself, not array-api-compat's NumPy wrapper: importing the wrapper touches every NumPy submodule
    (f2py, testing, ma: ~0.2 s of every start-up), and for what the core calls the two give the same
    results (mostly they are the same functions). NumPy 1.x (DeepStream's pyds) still gets the wrapper.
    """
    for x in xs:
        if type(x) is not np.ndarray:
            return _compat_namespace(*xs)
    if not xs:
        return _compat_namespace()
    return np if _NATIVE_NUMPY else _compat_namespace(*xs)


def sigmoid(xp: Any, x: Array) -> Array:
    """Logistic function, as MediaPipe applies it to score, visibility and heatmap logits.

    The argument is clipped to +-80 so float32 exp cannot overflow; that changes results by < 1e-34.
    minimum/maximum, not clip: the same values, and array-api-compat's NumPy clip costs ~30 us a call.
    """
    return 1.0 / (1.0 + xp.exp(-xp.minimum(xp.maximum(x, -80.0), 80.0)))


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
