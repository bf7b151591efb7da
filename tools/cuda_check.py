"""Compile the CUDA kernels for every target architecture without a CUDA toolkit: `make gpu-check`.

NVRTC (the compiler CuPy's RawModule uses at run time) turns each `.cu` into PTX, any warning failing the
check, then ptxas assembles the PTX for the real architecture with warnings as errors. Both come from
NVIDIA's PyPI wheels (nvidia-cuda-nvrtc-cu12, nvidia-cuda-nvcc-cu12: ptxas only), installed by the
Makefile into the project's venv at the CUDA version of the DeepStream image (CUDA 12.6). No GPU needed.

    python tools/cuda_check.py OUT_DIR ARCH... -- KERNEL.cu...
"""

from __future__ import annotations

import ctypes
import subprocess
import sys
from pathlib import Path

NVRTC_SUCCESS = 0


def _wheel_dir(package: str) -> Path:
    """site-packages/nvidia/<package> of this interpreter (the wheels are namespace packages)."""
    import nvidia  # type: ignore[import-not-found]

    for base in nvidia.__path__:
        candidate = Path(base) / package
        if candidate.is_dir():
            return candidate
    raise SystemExit(f"nvidia/{package} is not installed in {sys.prefix}: run `make gpu-check` (it installs it)")


def _nvrtc() -> ctypes.CDLL:
    lib = _wheel_dir("cuda_nvrtc") / "lib"
    library = next(iter(sorted(lib.glob("libnvrtc.so.*"))), None)
    if library is None:
        raise SystemExit(f"no libnvrtc.so in {lib}")
    nvrtc = ctypes.CDLL(str(library))
    nvrtc.nvrtcGetErrorString.restype = ctypes.c_char_p
    return nvrtc


def _check(nvrtc: ctypes.CDLL, result: int, what: str) -> None:
    if result != NVRTC_SUCCESS:
        raise RuntimeError(f"{what}: {nvrtc.nvrtcGetErrorString(result).decode()}")


def compile_ptx(nvrtc: ctypes.CDLL, source: Path, arch: int) -> tuple[bytes, str]:
    """(PTX, compiler log) of one kernel file for compute_<arch>; RuntimeError with the log if it fails."""
    program = ctypes.c_void_p()
    _check(
        nvrtc,
        nvrtc.nvrtcCreateProgram(
            ctypes.byref(program), source.read_bytes(), source.name.encode(), 0, None, None
        ),
        "nvrtcCreateProgram",
    )
    try:
        options = [f"--gpu-architecture=compute_{arch}".encode(), b"--std=c++17"]
        array = (ctypes.c_char_p * len(options))(*options)
        result = nvrtc.nvrtcCompileProgram(program, len(options), array)
        size = ctypes.c_size_t()
        _check(nvrtc, nvrtc.nvrtcGetProgramLogSize(program, ctypes.byref(size)), "nvrtcGetProgramLogSize")
        log = ctypes.create_string_buffer(size.value)
        _check(nvrtc, nvrtc.nvrtcGetProgramLog(program, log), "nvrtcGetProgramLog")
        text = log.value.decode(errors="replace").strip()
        if result != NVRTC_SUCCESS:
            raise RuntimeError(f"{source} (compute_{arch}) does not compile:\n{text}")
        _check(nvrtc, nvrtc.nvrtcGetPTXSize(program, ctypes.byref(size)), "nvrtcGetPTXSize")
        ptx = ctypes.create_string_buffer(size.value)
        _check(nvrtc, nvrtc.nvrtcGetPTX(program, ptx), "nvrtcGetPTX")
        return ptx.raw.rstrip(b"\0"), text
    finally:
        nvrtc.nvrtcDestroyProgram(ctypes.byref(program))


def main(argv: list[str]) -> int:
    if "--" not in argv or len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    split = argv.index("--")
    out_dir, archs, kernels = Path(argv[0]), [int(a) for a in argv[1:split]], [Path(k) for k in argv[split + 1 :]]
    out_dir.mkdir(parents=True, exist_ok=True)
    nvrtc = _nvrtc()
    ptxas = _wheel_dir("cuda_nvcc") / "bin" / "ptxas"
    failed = 0
    for kernel in kernels:
        for arch in archs:
            try:
                ptx, log = compile_ptx(nvrtc, kernel, arch)
            except RuntimeError as exc:
                print(exc, file=sys.stderr)
                failed += 1
                continue
            if log:  # NVRTC has no -Werror: any warning fails the check
                print(f"{kernel} (compute_{arch}): warnings are errors here:\n{log}", file=sys.stderr)
                failed += 1
                continue
            ptx_file = out_dir / f"{kernel.stem}.compute_{arch}.ptx"
            cubin = out_dir / f"{kernel.stem}.sm_{arch}.cubin"
            ptx_file.write_bytes(ptx)
            done = subprocess.run(
                [str(ptxas), f"-arch=sm_{arch}", "--warning-as-error", "-o", str(cubin), str(ptx_file)],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                print(f"{kernel} (sm_{arch}): ptxas failed:\n{done.stderr}", file=sys.stderr)
                failed += 1
                continue
            print(f"{kernel} -> {cubin}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
