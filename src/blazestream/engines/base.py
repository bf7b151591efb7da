"""The Engine protocol: what the pose pipeline needs from a model runtime, and nothing more."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from blazestream.errors import BlazestreamError

Array = Any


@runtime_checkable
class Engine(Protocol):
    """A loaded model with one NCHW float32 input and named outputs, run on a batch at once.

    The batch dimension is dynamic; `max_batch` (None: unbounded) is the largest batch one call
    accepts, and callers split larger batches. Outputs come back in the engine's array library
    (NumPy for ONNX Runtime, CuPy for TensorRT), so the pose core decodes them where they are.
    """

    @property
    def name(self) -> str: ...

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one batch item."""
        ...

    @property
    def output_names(self) -> tuple[str, ...]: ...

    @property
    def max_batch(self) -> int | None: ...

    def infer(self, batch: Array) -> Mapping[str, Array]:
        """Run (N, C, H, W) float32 and return every output by name, batch first."""
        ...

    def close(self) -> None: ...


class EngineFacts:
    """The Engine protocol's descriptive properties, read from what each engine sets when it loads.

    One batch call is unbounded unless an engine overrides `max_batch` (TensorRT's profile does).
    """

    _name: str
    _input_shape: tuple[int, int, int]
    _outputs: tuple[str, ...]

    @property
    def name(self) -> str:
        return self._name

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self._input_shape

    @property
    def output_names(self) -> tuple[str, ...]:
        return self._outputs

    @property
    def max_batch(self) -> int | None:
        return None


def infer_in_chunks(engine: Engine, batch: Array, concat: Any) -> dict[str, Array]:
    """Run a batch of any size through an engine whose calls are capped at `max_batch`."""
    limit = engine.max_batch
    if limit is None or batch.shape[0] <= limit:
        return dict(engine.infer(batch))
    parts = [engine.infer(batch[i : i + limit]) for i in range(0, batch.shape[0], limit)]
    return {name: concat([p[name] for p in parts], axis=0) for name in parts[0]}


def require_model_file(path: Path) -> None:
    """A model file that is missing says how to get it."""
    if not path.is_file():
        raise BlazestreamError(f"model file {path} does not exist: run `blazestream models` to create it")


def chosen_outputs(model: object, available: Sequence[str], wanted: Sequence[str] | None) -> tuple[str, ...]:
    """The outputs a caller asked for (all when None), each checked against what the model has."""
    names = list(wanted) if wanted is not None else list(available)
    missing = [n for n in names if n not in available]
    if missing:
        raise BlazestreamError(f"{model}: no output named {missing}; the model has {list(available)}")
    return tuple(names)
