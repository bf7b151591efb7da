"""The real kernels/crop.cu, compiled as C++ with a host shim (tests/kernel_host) and run on the CPU over its
whole grid, against MediaPipe's OpenCV crop and the NumPy reference: the kernel's own code runs in CI, not
only its twin. (Float rounding may differ from the GPU's by FMA contraction: far below one grey level.)"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from blazestream.kernels import (
    BORDER_CONSTANT,
    BORDER_REPLICATE,
    FORMAT_INTERLEAVED,
    FORMAT_NV12_BT601,
    FRAME_DESC_DTYPE,
)
from blazestream.kernels.cuda_crop import BLOCK
from blazestream.kernels.reference import Nv12, crop_rois
from blazestream.pose.crop import warp_rois
from blazestream.pose.roi import crop_affine, pad_roi

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ROOT / "src" / "blazestream" / "kernels"
HOST = Path(__file__).resolve().parent / "kernel_host"
DATA = ROOT / "data"

F32 = npt.NDArray[np.float32]


@pytest.fixture(scope="module")
def host_kernel(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.fail("no C++ compiler: apt-get install g++ (make setup installs it)")
    library = tmp_path_factory.mktemp("kernel") / "libcrop_host.so"
    flags = ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-I", str(KERNELS)]
    subprocess.run(
        [compiler, *flags, "-o", str(library), str(HOST / "crop_host.cpp")],
        check=True,
        capture_output=True,
        text=True,
    )
    lib = ctypes.CDLL(str(library))
    pointer = ctypes.c_void_p
    lib.crop_rois_host.argtypes = [pointer, pointer, pointer, pointer] + [ctypes.c_int] * 4 + [ctypes.c_float] * 3
    lib.crop_rois_host.argtypes += [ctypes.c_uint, ctypes.c_uint]
    lib.crop_rois_host.restype = None
    return lib


def run_kernel(
    lib: ctypes.CDLL,
    frames: list[npt.NDArray[np.uint8] | Nv12],
    frame_of_roi: list[int],
    affine: F32,
    *,
    size: int,
    border: int,
    scale: float = 1.0,
    offset: float = 0.0,
    border_value: float = 0.0,
) -> F32:
    """The kernel's launch, as kernels/cuda_crop.py makes it, with host pointers in the frame table."""
    table = np.zeros(len(frames), dtype=FRAME_DESC_DTYPE)
    for desc, frame in zip(table, frames, strict=True):
        if isinstance(frame, Nv12):
            desc["data"], desc["uv"] = frame.y.ctypes.data, frame.uv.ctypes.data
            desc["pitch"], desc["uv_pitch"] = frame.y.strides[0], frame.uv.strides[0]
            desc["width"], desc["height"], desc["channels"] = frame.y.shape[1], frame.y.shape[0], 1
            desc["format"] = frame.format
        else:
            desc["data"], desc["uv"], desc["pitch"], desc["uv_pitch"] = frame.ctypes.data, 0, frame.strides[0], 0
            desc["width"], desc["height"], desc["channels"] = frame.shape[1], frame.shape[0], frame.shape[2]
            desc["format"] = FORMAT_INTERLEAVED
    index = np.ascontiguousarray(frame_of_roi, dtype=np.int32)
    matrices = np.ascontiguousarray(np.asarray(affine, np.float32).reshape(-1, 6))
    out = np.full((len(index), 3, size, size), np.nan, dtype=np.float32)
    lib.crop_rois_host(
        table.ctypes.data, index.ctypes.data, matrices.ctypes.data, out.ctypes.data,
        len(index), size, size, border, border_value, scale, offset, BLOCK[0], BLOCK[1],
    )  # fmt: skip
    return out


def _rgb(name: str) -> npt.NDArray[np.uint8]:
    return np.ascontiguousarray(cv2.cvtColor(cv2.imread(str(DATA / name)), cv2.COLOR_BGR2RGB))


def _rois(width: int, height: int) -> F32:
    """Upright, rotated, partly outside, larger than the frame, small and sub-pixel placed."""
    return np.array(
        [
            [width * 0.5, height * 0.5, 200, 200, 0.0],
            [width * 0.4, height * 0.6, 300, 300, 0.5],
            [width * 0.9, height * 0.1, 350, 350, 2.4],
            [width / 2, height / 2, width * 1.5, height * 1.5, 3.0],
            [100.3, 80.7, 33, 33, 0.1],
        ],
        dtype=np.float32,
    )


@pytest.mark.parametrize(("size", "border"), [(256, "replicate"), (224, "zero")])
def test_the_cuda_kernel_matches_opencv_and_its_reference(host_kernel: ctypes.CDLL, size: int, border: str) -> None:
    frame = _rgb("messi5.jpg")
    rgba = np.ascontiguousarray(np.concatenate([frame, np.full((*frame.shape[:2], 1), 7, np.uint8)], axis=2))
    height, width = frame.shape[:2]
    padded, _ = pad_roi(_rois(width, height), tensor_width=size, tensor_height=size)
    affine = crop_affine(padded.astype(np.float32), out_width=size, out_height=size)
    mode = BORDER_REPLICATE if border == "replicate" else BORDER_CONSTANT
    got = run_kernel(host_kernel, [frame, rgba], [0, 1, 0, 1, 0], affine, size=size, border=mode)
    assert not np.isnan(got).any(), "every output pixel of every ROI is written"
    reference = crop_rois([frame, rgba], [0, 1, 0, 1, 0], affine, out_w=size, out_h=size, border=mode)
    np.testing.assert_allclose(got, reference, atol=1e-3)
    expected = warp_rois(frame, padded, size=size, border="replicate" if border == "replicate" else "zero")
    diff = np.abs(got.transpose(0, 2, 3, 1) - expected.astype(np.float32))
    for m in range(len(padded)):
        assert diff[m].mean() < 0.3, f"ROI {m}: mean difference {diff[m].mean():.3f} from OpenCV"
        assert (diff[m] > 1.0).mean() < 2e-4, f"ROI {m}: {(diff[m] > 1.0).mean():.2e} of values off by > 1"


def test_the_cuda_kernel_normalizes_and_letterboxes(host_kernel: ctypes.CDLL) -> None:
    frame = np.full((40, 60, 3), 255, dtype=np.uint8)
    affine = crop_affine(np.array([[30.0, 20.0, 120.0, 120.0, 0.0]], np.float32), out_width=32, out_height=32)
    out = run_kernel(host_kernel, [frame], [0], affine, size=32, border=BORDER_CONSTANT, scale=2 / 255, offset=-1.0)
    assert out[0, :, 0, 0] == pytest.approx(-1.0)
    assert out[0, :, 16, 16] == pytest.approx(1.0)


def test_the_cuda_kernel_samples_nv12_like_its_reference(host_kernel: ctypes.CDLL) -> None:
    rgb = _rgb("messi5.jpg")[:340, :548]
    height, width = rgb.shape[:2]
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
    u = i420[height : height + height // 4].reshape(height // 2, width // 2)
    v = i420[height + height // 4 :].reshape(height // 2, width // 2)
    nv12 = Nv12(y=np.ascontiguousarray(i420[:height]), uv=np.ascontiguousarray(np.stack([u, v], axis=-1)))
    assert nv12.format == FORMAT_NV12_BT601
    padded, _ = pad_roi(_rois(width, height)[:3], tensor_width=256, tensor_height=256)
    affine = crop_affine(padded.astype(np.float32), out_width=256, out_height=256)
    got = run_kernel(host_kernel, [nv12], [0, 0, 0], affine, size=256, border=BORDER_REPLICATE)
    reference = crop_rois([nv12], [0, 0, 0], affine, out_w=256, out_h=256, border=BORDER_REPLICATE)
    np.testing.assert_allclose(got, reference, atol=2e-3)


def _cuda_include() -> Path | None:
    try:
        import nvidia  # type: ignore[import-not-found]
    except ImportError:
        return None
    found = [Path(base) / "cuda_runtime" / "include" for base in nvidia.__path__]
    return next((p for p in found if (p / "cudaEGL.h").is_file()), None)


DEEPSTREAM_INCLUDES = Path("/opt/nvidia/deepstream/deepstream/sources/includes")


def test_the_jetson_structs_match_the_c_probe(tmp_path: Path) -> None:
    """tools/jetson_structs.c compiled against CUDA's cudaEGL.h (and DeepStream's nvbufsurface.h where it is
    installed) prints the layouts pipeline/jetson_surface.py declares with ctypes."""
    from blazestream.pipeline import jetson_surface as js

    include = _cuda_include()
    if include is None:
        pytest.skip("CUDA's headers (nvidia-cuda-runtime-cu12) are not installed: `make gpu-check` installs them")
    compiler = shutil.which("gcc") or shutil.which("cc")
    assert compiler is not None
    flags = ["-I", str(include)] + (["-I", str(DEEPSTREAM_INCLUDES)] if DEEPSTREAM_INCLUDES.is_dir() else [])
    probe = tmp_path / "jetson_structs"
    subprocess.run(
        [compiler, "-Wall", "-Werror", *flags, "-o", str(probe), str(ROOT / "tools" / "jetson_structs.c")],
        check=True,
        capture_output=True,
        text=True,
    )
    lines = subprocess.run([str(probe)], check=True, capture_output=True, text=True).stdout.split("\n")
    printed = {name: int(value) for name, value in (line.split() for line in lines if line)}
    ours = {
        "CUeglFrame": ctypes.sizeof(js.CUeglFrame),
        "CUeglFrame.pitch": js.CUeglFrame.pitch.offset,
        "CUeglFrame.frameType": js.CUeglFrame.frameType.offset,
        "CUeglFrame.cuFormat": js.CUeglFrame.cuFormat.offset,
        "NvBufSurfacePlaneParams": ctypes.sizeof(js.NvBufSurfacePlaneParams),
        "NvBufSurfaceMappedAddr": ctypes.sizeof(js.NvBufSurfaceMappedAddr),
        "NvBufSurfaceMappedAddr.eglImage": js.NvBufSurfaceMappedAddr.eglImage.offset,
        "NvBufSurfaceParams": ctypes.sizeof(js.NvBufSurfaceParams),
        "NvBufSurfaceParams.mappedAddr": js.NvBufSurfaceParams.mappedAddr.offset,
        "NvBufSurfaceParams.paramex": js.NvBufSurfaceParams.paramex.offset,
        "NvBufSurface": ctypes.sizeof(js.NvBufSurface),
        "NvBufSurface.surfaceList": js.NvBufSurface.surfaceList.offset,
    }
    assert "CUeglFrame" in printed
    assert {name: ours[name] for name in printed} == printed
