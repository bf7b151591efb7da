"""TensorRT engine: the `Engine` protocol over a deserialized plan, with CuPy device buffers and streams.

TensorRT 10's name-based API: set_input_shape / set_tensor_address / execute_async_v3 on the engine's
own CuPy stream, ordered after the caller's stream (the input may still be being written) and before it
again (the outputs are read there), so nothing synchronizes the host. Inputs may be NumPy (copied up)
or CuPy; outputs are fresh CuPy arrays that stay on the GPU, where the pose core decodes them.
Guarded module: it imports tensorrt (and CuPy through cupy_api); import it lazily.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from blazestream.engines.base import EngineFacts
from blazestream.engines.cupy_api import device_pointer, load_cupy
from blazestream.errors import BlazestreamError, MissingDependencyError

try:
    import tensorrt as trt

    trt.Builder  # noqa: B018 - tensorrt-stubs alone install an empty `tensorrt` namespace package
except (ImportError, AttributeError) as exc:  # pragma: no cover - depends on the machine
    raise MissingDependencyError(
        f"TensorRT's Python package is not installed ({exc}); it comes with the DeepStream/JetPack images"
    ) from exc

if TYPE_CHECKING:
    from cupy import ndarray

log = logging.getLogger(__name__)


class TrtLogger(trt.ILogger):
    """Routes TensorRT's messages to `logging` (errors stay errors; info and verbose become debug)."""

    def __init__(self) -> None:
        trt.ILogger.__init__(self)

    def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
        if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR):
            log.error("TensorRT: %s", msg)
        elif severity == trt.ILogger.Severity.WARNING:
            log.warning("TensorRT: %s", msg)
        else:
            log.debug("TensorRT: %s", msg)


_LOGGER: TrtLogger | None = None


def trt_logger() -> TrtLogger:
    """One logger per process: TensorRT keeps a pointer to it for as long as its objects live."""
    global _LOGGER
    if _LOGGER is None:
        _LOGGER = TrtLogger()
    return _LOGGER


def _numpy_dtype(dtype: trt.DataType) -> np.dtype[Any]:
    """trt.nptype, typed (tensorrt-stubs declare `nptype(trt_type)` without annotations)."""
    table: dict[trt.DataType, type[np.generic]] = {
        trt.DataType.FLOAT: np.float32,
        trt.DataType.HALF: np.float16,
        trt.DataType.INT8: np.int8,
        trt.DataType.INT32: np.int32,
        trt.DataType.INT64: np.int64,
        trt.DataType.UINT8: np.uint8,
        trt.DataType.BOOL: np.bool_,
    }
    if dtype not in table:
        raise BlazestreamError(f"unsupported TensorRT output type {dtype}")
    return np.dtype(table[dtype])


def _shape(dims: trt.Dims) -> tuple[int, ...]:
    return tuple(int(dims[i]) for i in range(len(dims)))


class TensorRTEngine(EngineFacts):
    """One plan, one execution context, one stream; `max_batch` is the top of optimization profile 0."""

    def __init__(self, plan: Path) -> None:
        self._cp = load_cupy()
        runtime = trt.Runtime(trt_logger())
        engine = runtime.deserialize_cuda_engine(plan.read_bytes())
        if engine is None:
            raise BlazestreamError(
                f"TensorRT could not load {plan} (see the TensorRT error above); "
                "rebuild it with `blazestream build-engines`"
            )
        self._runtime = runtime
        self._engine: trt.ICudaEngine = engine
        self._context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if len(inputs) != 1:
            raise BlazestreamError(f"{plan}: expected one input tensor, found {inputs}")
        self._input = inputs[0]
        if engine.get_tensor_dtype(self._input) != trt.DataType.FLOAT:
            raise BlazestreamError(f"{plan}: the input {self._input!r} must be float32")
        profile_min, _opt, profile_max = (_shape(d) for d in engine.get_tensor_profile_shape(self._input, 0))
        self._min_batch = profile_min[0]
        self._max_batch = profile_max[0]
        self._input_shape = (profile_max[1], profile_max[2], profile_max[3])
        self._outputs = tuple(n for n in names if n != self._input)
        self._dtypes = {n: _numpy_dtype(engine.get_tensor_dtype(n)) for n in self._outputs}
        self._stream = self._cp.cuda.Stream(non_blocking=True)
        self._name = plan.name.split(".")[0]

    @property
    def max_batch(self) -> int | None:
        return self._max_batch

    def infer(self, batch: Any) -> Mapping[str, ndarray]:
        cp = self._cp
        tensor = cp.ascontiguousarray(cp.asarray(batch), dtype=np.float32)  # NumPy: one host-to-device copy
        count = int(tensor.shape[0])
        if not self._min_batch <= count <= self._max_batch:
            raise BlazestreamError(
                f"{self._name}: batch of {count}, the engine's profile takes {self._min_batch}..{self._max_batch} "
                "(callers split larger batches with infer_in_chunks)"
            )
        if tuple(int(s) for s in tensor.shape[1:]) != self._input_shape:
            raise BlazestreamError(f"{self._name}: input {tuple(tensor.shape)}, expected (N, *{self._input_shape})")
        context = self._context
        if not context.set_input_shape(self._input, trt.Dims(list(tensor.shape))):
            raise BlazestreamError(f"{self._name}: TensorRT rejected the input shape {tuple(tensor.shape)}")
        context.set_tensor_address(self._input, device_pointer(tensor))
        outputs: dict[str, ndarray] = {}
        for name in self._outputs:
            out = cp.empty(_shape(context.get_tensor_shape(name)), dtype=self._dtypes[name])
            context.set_tensor_address(name, device_pointer(out))
            outputs[name] = out
        caller = cp.cuda.get_current_stream()
        self._stream.wait_event(caller.record())  # the input is complete before TensorRT reads it
        if not context.execute_async_v3(self._stream.ptr):
            raise BlazestreamError(f"{self._name}: TensorRT execution failed (see the TensorRT error above)")
        caller.wait_event(self._stream.record())  # work queued on the caller's stream sees the outputs
        return outputs

    def close(self) -> None:
        self._stream.synchronize()
        del self._context
        del self._engine
