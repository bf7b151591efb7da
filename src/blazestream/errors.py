"""Exceptions that reach the user: each message says what failed and what to do about it.

Each kind carries the exit code the command line turns it into (README: 2 for bad configuration or
input, 1 when something failed at run time); `exit_code_for` is the one mapping, used by the CLI's
error boundary for these and for the errors of the standard library.
"""

from __future__ import annotations

import logging
from typing import ClassVar

EXIT_OK = 0
EXIT_RUNTIME = 1
"""Something failed while running: a camera, an output, a port already taken, a full disk."""
EXIT_CONFIG = 2
"""Bad configuration or input: nothing was started."""
EXIT_INTERRUPTED = 130


class BlazestreamError(Exception):
    """Base class of every error blazestream raises on purpose."""

    exit_code: ClassVar[int] = EXIT_CONFIG


class InputError(BlazestreamError):
    """An input (image, video, camera URI) cannot be used."""


class ConfigError(BlazestreamError):
    """The configuration is invalid."""


class MissingDependencyError(BlazestreamError):
    """An optional dependency (GStreamer, TensorRT, DeepStream, CuPy, paho-mqtt) is not installed."""


class RunError(BlazestreamError):
    """Something failed at run time (an output, a port, a GPU resource): exit code 1."""

    exit_code: ClassVar[int] = EXIT_RUNTIME


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code of an error that reached the command line."""
    if isinstance(exc, BlazestreamError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_RUNTIME


def log_error(logger: logging.Logger, what: str, exc: BaseException) -> None:
    """One line at ERROR naming what failed; the traceback only at DEBUG (seen with --verbose)."""
    logger.error("%s: %s", what, str(exc) or type(exc).__name__)
    logger.debug("traceback of: %s", what, exc_info=exc)
