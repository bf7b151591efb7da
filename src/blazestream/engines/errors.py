"""Errors of the model cache and the TFLite → ONNX converter; each message says what to do next."""

from __future__ import annotations

from blazestream.errors import BlazestreamError

__all__ = [
    "BlazestreamError",
    "ModelChecksumError",
    "ModelFetchError",
    "ModelsMissingError",
    "UnsupportedOpError",
]


class ModelsMissingError(BlazestreamError):
    """The converted models are not in the models directory (or are stale): run `blazestream models`."""


class ModelFetchError(BlazestreamError):
    """The MediaPipe models could not be obtained (no wheel, pip failed, a file is missing from the wheel)."""


class ModelChecksumError(ModelFetchError):
    """A model file does not have the sha256 blazestream was written against."""


class UnsupportedOpError(BlazestreamError):
    """The TFLite model uses an operator (or an operator option) the converter does not handle."""
