"""The numeric precisions each runtime offers, defined once (config, CLI, model builds and checks read them)."""

from __future__ import annotations

from typing import Literal, get_args

CpuPrecision = Literal["fp32", "bf16", "int8"]
"""ONNX Runtime on the CPU: fp32 is exact mode; bf16 and int8 are mixed-precision landmark models."""
CPU_PRECISIONS: tuple[CpuPrecision, ...] = get_args(CpuPrecision)

TensorRTPrecision = Literal["fp32", "fp16", "int8"]
"""TensorRT engines (`build-engines --precision`)."""
TENSORRT_PRECISIONS: tuple[TensorRTPrecision, ...] = get_args(TensorRTPrecision)
