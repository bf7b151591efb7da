"""Exceptions that reach the user: each message says what failed and what to do about it."""


class BlazestreamError(Exception):
    """Base class of every error blazestream raises on purpose."""


class InputError(BlazestreamError):
    """An input (image, video, camera URI) cannot be used."""


class ConfigError(BlazestreamError):
    """The configuration is invalid."""


class MissingDependencyError(BlazestreamError):
    """An optional dependency (GStreamer, TensorRT, DeepStream, CuPy, paho-mqtt) is not installed."""
