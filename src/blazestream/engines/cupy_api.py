"""The part of CuPy the GPU backends use, typed: cupy-stubs where they cover it, a Protocol where they lag.

cupy-stubs 1.2.0 types `cupy.ndarray` and a handful of functions (asarray, concatenate, ...), but has no
`empty`, `zeros`, `ascontiguousarray`, `RawModule`, `UnownedMemory`, `get_current_stream`, an empty
`cupy.cuda.Stream`, and a `MemoryPointer` without `.ptr`. `load_cupy()` therefore returns the real module
cast to `CupyModule` below, whose signatures follow CuPy 13's documentation; arrays stay the stubs'
`cupy.ndarray`. Importing this module does not import CuPy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

from blazestream.errors import MissingDependencyError

if TYPE_CHECKING:
    from cupy import ndarray as CupyArray
    from numpy.typing import DTypeLike


class Event(Protocol):
    def synchronize(self) -> None: ...


class CudaStream(Protocol):
    """cupy.cuda.Stream (or ExternalStream): `ptr` is the cudaStream_t handle TensorRT takes."""

    @property
    def ptr(self) -> int: ...

    def synchronize(self) -> None: ...

    def record(self, event: Event | None = None) -> Event: ...

    def wait_event(self, event: Event) -> None: ...

    def __enter__(self) -> CudaStream: ...

    def __exit__(self, *exc: object) -> None: ...


class RawKernel(Protocol):
    def __call__(
        self,
        grid: tuple[int, int, int],
        block: tuple[int, int, int],
        args: tuple[object, ...],
        *,
        shared_mem: int = 0,
        stream: CudaStream | None = None,
    ) -> None: ...


class RawModule(Protocol):
    def get_function(self, name: str) -> RawKernel: ...


class Memory(Protocol):
    """cupy.cuda.UnownedMemory: device memory CuPy does not free (a DeepStream surface or tensor)."""


class DevicePointer(Protocol):
    @property
    def ptr(self) -> int: ...


class Runtime(Protocol):
    def getDeviceCount(self) -> int: ...

    def getDevice(self) -> int: ...

    def getDeviceProperties(self, device: int) -> dict[str, Any]: ...


class Device(Protocol):
    """cupy.cuda.Device: `with cp.cuda.Device(n):` makes GPU n current for the thread."""

    def use(self) -> None: ...

    def __enter__(self) -> Device: ...

    def __exit__(self, *exc: object) -> None: ...


class Cuda(Protocol):
    """cupy.cuda."""

    runtime: Runtime

    def Device(self, device: int | None = None) -> Device: ...

    def Stream(self, null: bool = False, non_blocking: bool = False) -> CudaStream: ...

    def ExternalStream(self, ptr: int) -> CudaStream: ...

    def UnownedMemory(self, ptr: int, size: int, owner: object, device_id: int = -1) -> Memory: ...

    def MemoryPointer(self, mem: Memory, offset: int) -> DevicePointer: ...

    def get_current_stream(self) -> CudaStream: ...


class CupyModule(Protocol):
    """`cupy`, as far as blazestream uses it."""

    __version__: str
    cuda: Cuda
    float32: Any
    int32: Any
    uint8: Any

    def asarray(self, a: object, dtype: DTypeLike | None = None) -> CupyArray: ...

    def ascontiguousarray(self, a: object, dtype: DTypeLike | None = None) -> CupyArray: ...

    def empty(self, shape: Sequence[int], dtype: DTypeLike = ...) -> CupyArray: ...

    def ndarray(
        self,
        shape: Sequence[int],
        dtype: DTypeLike,
        memptr: DevicePointer,
        strides: Sequence[int] | None = None,
    ) -> CupyArray: ...

    def stack(self, arrays: Sequence[CupyArray], axis: int = 0) -> CupyArray: ...

    def RawModule(self, *, code: str, options: tuple[str, ...] = ()) -> RawModule: ...


def load_cupy() -> CupyModule:
    """Import CuPy, typed as `CupyModule`; MissingDependencyError saying how to install it otherwise."""
    try:
        import cupy
    except ImportError as exc:
        raise MissingDependencyError(
            f"CuPy is not installed ({exc}): pip install 'blazestream[gpu]' (cupy-cuda12x), or use the DeepStream image"
        ) from exc
    return cast("CupyModule", cupy)  # the stubs lag the real module; see the module docstring


def device_pointer(array: CupyArray) -> int:
    """The device address of an array's first element (`a.data.ptr`; cupy-stubs' MemoryPointer has no `ptr`)."""
    return int(cast(Any, array).data.ptr)


def strides(array: CupyArray) -> tuple[int, ...]:
    """Byte strides (cupy-stubs' ndarray has no `strides`)."""
    return tuple(int(s) for s in cast(Any, array).strides)


def is_cupy_array(value: object) -> bool:
    """True for a cupy.ndarray, without importing CuPy when it is not loaded already."""
    return type(value).__module__.startswith("cupy")
