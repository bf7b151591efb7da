"""ONNX Runtime engine: the CPU backend (and the reference the TensorRT engines are compared with)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from blazestream.cpu_split import measure
from blazestream.engines.base import EngineFacts, chosen_outputs, require_model_file
from blazestream.errors import BlazestreamError

GraphOptimization = Literal["disable", "basic", "extended", "all"]


def available_cores() -> int:
    """Cores this process may run on (cgroup/affinity aware where the OS says)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class OrtSettings:
    """Threading and graph options exposed to users (config `engine.onnxruntime`)."""

    intra_op_threads: int = 0
    """Threads inside one operator for batches too small to split; 0: one per core."""
    parallel_runs: int = 0
    """Batches of at least this many items are split into as many single-threaded runs at once; 0: one per
    core, 1: never split. On CPUs this beats intra-op threading: no synchronisation inside operators."""
    inter_op_threads: int = 1
    graph_optimization: GraphOptimization = "all"
    providers: Sequence[str] = ("CPUExecutionProvider",)
    spin_wait: bool = False
    """Busy-wait between ops; off by default so idle cameras do not burn CPU."""


class OnnxRuntimeEngine(EngineFacts):
    """One ONNX model in ONNX Runtime; outputs limited to `outputs` when given."""

    def __init__(self, path: Path, settings: OrtSettings | None = None, *, outputs: Sequence[str] | None = None):
        self._settings = settings or OrtSettings()
        require_model_file(path)
        cores = available_cores()
        self._runs = self._settings.parallel_runs or cores
        threads = self._settings.intra_op_threads or cores
        if self._runs > 1 and threads > 1:
            # Both at once: building a session releases the GIL, and start-up waits for both.
            with ThreadPoolExecutor(2, thread_name_prefix="ort-load") as loader:
                single = loader.submit(self._new_session, path, 1)
                self._session = self._new_session(path, threads)
                self._single = single.result()
        else:
            self._session = self._single = self._new_session(path, threads)
        self._pool = ThreadPoolExecutor(self._runs, thread_name_prefix=f"ort-{path.stem}") if self._runs > 1 else None
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise BlazestreamError(f"{path}: expected a model with one input, found {len(inputs)}")
        self._input = inputs[0].name
        shape = inputs[0].shape
        self._input_shape = (int(shape[1]), int(shape[2]), int(shape[3]))
        self._outputs = chosen_outputs(path, [o.name for o in self._session.get_outputs()], outputs)
        self._name = path.stem

    def _new_session(self, path: Path, threads: int) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = self._settings.inter_op_threads
        options.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self._settings.graph_optimization]
        spin = "1" if self._settings.spin_wait else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        options.add_session_config_entry("session.inter_op.allow_spinning", spin)
        # Partially quantized (QDQ) models: this transformer would quantize their fp32 convolutions too.
        return ort.InferenceSession(
            str(path), options, providers=list(self._settings.providers), disabled_optimizers=["WeightBiasQuantization"]
        )

    def infer(self, batch: Any) -> Mapping[str, Any]:
        data = np.ascontiguousarray(batch, np.float32)
        if self._pool is None or len(data) < self._runs:
            with measure("models"):
                arrays = self._session.run(list(self._outputs), {self._input: data})
            return dict(zip(self._outputs, arrays, strict=True))
        chunks = np.array_split(data, self._runs)

        def run(chunk: Any) -> Any:
            with measure("models"):
                return self._single.run(list(self._outputs), {self._input: chunk})

        parts = list(self._pool.map(run, chunks))
        return {name: np.concatenate([p[i] for p in parts]) for i, name in enumerate(self._outputs)}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
