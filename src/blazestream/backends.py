"""Which backend can run here: DeepStream, TensorRT on plain GStreamer, or the CPU (ONNX Runtime).

Probing never raises: `blazestream checks` reports what is missing and `--backend auto` picks the
best that works. Importing the GPU packages is deferred to these probes, so a machine without a GPU
never loads them.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from blazestream.errors import MissingDependencyError


@dataclass(frozen=True)
class Probe:
    ok: bool
    detail: str


def cuda_device() -> Probe:
    """A usable CUDA device, seen through CuPy (the one GPU array library)."""
    if importlib.util.find_spec("cupy") is None:
        return Probe(False, "CuPy is not installed (pip install 'blazestream[gpu]')")
    try:
        from blazestream.engines.cupy_api import load_cupy

        cupy = load_cupy()
        count = cupy.cuda.runtime.getDeviceCount()
        if count < 1:
            return Probe(False, "no CUDA device")
        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        return Probe(True, f"{name}, compute capability {props['major']}.{props['minor']}")
    except Exception as exc:  # CUDA driver missing, no device, ...
        return Probe(False, f"no usable CUDA device ({exc})")


def tensorrt() -> Probe:
    spec = importlib.util.find_spec("tensorrt")
    if spec is None or spec.origin is None:  # tensorrt-stubs alone leave an empty namespace package
        return Probe(False, "TensorRT's Python package is not installed (it comes with the DeepStream/JetPack images)")
    try:
        import tensorrt as trt

        return Probe(True, f"TensorRT {trt.__version__}")
    except Exception as exc:
        return Probe(False, f"TensorRT does not load ({exc})")


def deepstream() -> Probe:
    """pyds (NVIDIA's wheel, not PyPI's unrelated `pyds`) and the nvinfer element."""
    if importlib.util.find_spec("pyds") is None:
        return Probe(False, "pyds (DeepStream's Python bindings) is not installed; use the DeepStream image")
    try:
        import pyds  # noqa: F401

        from blazestream.gst import gst

        if gst().ElementFactory.find("nvinfer") is None:
            return Probe(False, "pyds is present but the nvinfer element is not (DeepStream SDK missing)")
        return Probe(True, "DeepStream (pyds and nvinfer)")
    except Exception as exc:
        return Probe(False, f"DeepStream does not load ({exc})")


def resolve_backend(requested: str) -> str:
    """`auto` -> deepstream, else tensorrt, else cpu; an explicit GPU backend must be usable."""
    if requested == "cpu":
        return "cpu"
    gpu = cuda_device()
    trt = tensorrt()
    if requested == "auto":
        if gpu.ok and trt.ok and deepstream().ok:
            return "deepstream"
        if gpu.ok and trt.ok:
            return "tensorrt"
        return "cpu"
    problems = [p.detail for p in (gpu, trt) if not p.ok]
    if requested == "deepstream":
        ds = deepstream()
        if not ds.ok:
            problems.append(ds.detail)
    if problems:
        raise MissingDependencyError(
            f"--backend {requested} cannot run here: {'; '.join(problems)}. Use --backend cpu or auto."
        )
    return requested
