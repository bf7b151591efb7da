"""TFLite's sparse tensor format, decoded to dense numpy arrays (the DENSIFY operator, folded at conversion).

TFLite stores a sparse constant as a TACO-like tree. The dense shape has ``n`` dimensions; ``block_map``
names the ``k`` of them that are split into dense blocks, which gives ``n + k`` "expanded" dimensions
(dimension ``i`` becomes ``shape[i] // block`` and block dimension ``n + j`` has the block size).
``traversal_order`` lists the expanded dimensions from the outermost storage level to the innermost, and
``dim_metadata[level]`` describes the dimension stored at that level:

* DENSE: every coordinate ``0 .. dense_size - 1`` is present; the child position is
  ``parent * dense_size + coordinate``.
* SPARSE_CSR: the children of parent position ``p`` are ``array_segments[p] .. array_segments[p + 1]``;
  ``array_indices`` holds their coordinates and the child position is the index into that range.

The positions reached at the innermost level index the buffer of stored values. This module walks the tree
one level at a time for all paths together (numpy ``repeat``/``cumsum``), so a tensor costs a handful of
vectorised operations per level instead of one Python call per element, then scatters the values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

DENSE = 0
SPARSE_CSR = 1

# tflite.SparseIndexVector union tags → the numpy dtype of the vector's values.
_INDEX_VECTOR_DTYPES: dict[int, type[np.integer[Any]]] = {1: np.int32, 2: np.uint16, 3: np.uint8}


@dataclass(frozen=True)
class DimMetadata:
    """One storage level: DENSE with ``dense_size``, or SPARSE_CSR with its segments and indices."""

    format: int
    dense_size: int = 0
    array_segments: npt.NDArray[np.int64] | None = None
    array_indices: npt.NDArray[np.int64] | None = None


@dataclass(frozen=True)
class SparsityParams:
    """The sparsity description of one tensor, independent of the flatbuffer it was read from."""

    traversal_order: tuple[int, ...]
    block_map: tuple[int, ...]
    dim_metadata: tuple[DimMetadata, ...]


def _index_vector(table: Any, union_type: int, what: str) -> npt.NDArray[np.int64]:
    """Reads a SparseIndexVector union (Int32Vector / Uint16Vector / Uint8Vector) as int64."""
    import tflite

    classes = {1: tflite.Int32Vector, 2: tflite.Uint16Vector, 3: tflite.Uint8Vector}
    if table is None or union_type not in classes:
        raise ValueError(f"sparse tensor: {what} has unsupported vector type {union_type}")
    vector = classes[union_type]()
    vector.Init(table.Bytes, table.Pos)
    if vector.ValuesLength() == 0:
        return np.zeros(0, dtype=np.int64)
    values = np.asarray(vector.ValuesAsNumpy(), dtype=_INDEX_VECTOR_DTYPES[union_type])
    return values.astype(np.int64)


def read_sparsity(sparsity: Any) -> SparsityParams:
    """Converts a ``tflite.SparsityParameters`` table into :class:`SparsityParams`."""
    traversal = tuple(int(v) for v in sparsity.TraversalOrderAsNumpy()) if sparsity.TraversalOrderLength() else ()
    block_map = tuple(int(v) for v in sparsity.BlockMapAsNumpy()) if sparsity.BlockMapLength() else ()
    levels: list[DimMetadata] = []
    for level in range(sparsity.DimMetadataLength()):
        meta = sparsity.DimMetadata(level)
        if meta.Format() == DENSE:
            levels.append(DimMetadata(DENSE, dense_size=int(meta.DenseSize())))
        elif meta.Format() == SPARSE_CSR:
            segments = _index_vector(meta.ArraySegments(), meta.ArraySegmentsType(), "array_segments")
            indices = _index_vector(meta.ArrayIndices(), meta.ArrayIndicesType(), "array_indices")
            levels.append(DimMetadata(SPARSE_CSR, array_segments=segments, array_indices=indices))
        else:
            raise ValueError(f"sparse tensor: unknown dimension format {meta.Format()} at level {level}")
    return SparsityParams(traversal, block_map, tuple(levels))


def densify(values: npt.NDArray[Any], dense_shape: Sequence[int], params: SparsityParams) -> npt.NDArray[Any]:
    """Expands the stored ``values`` of a sparse tensor into a dense array of ``dense_shape``.

    Implicit entries are zero, as in TFLite's ``FormatConverter``.
    """
    shape = tuple(int(d) for d in dense_shape)
    n, k = len(shape), len(params.block_map)
    order = params.traversal_order or tuple(range(n + k))
    if sorted(order) != list(range(n + k)) or len(params.dim_metadata) != n + k:
        raise ValueError(
            f"sparse tensor: traversal_order {order} and {len(params.dim_metadata)} dim_metadata levels "
            f"do not describe {n} dimensions with {k} blocked ones"
        )
    level_of = {dim: level for level, dim in enumerate(order)}
    block_sizes: list[int] = []
    for j in range(k):
        meta = params.dim_metadata[level_of[n + j]]
        if meta.format != DENSE or meta.dense_size <= 0:
            raise ValueError(f"sparse tensor: block dimension {j} must be DENSE with a positive size")
        block_sizes.append(meta.dense_size)

    flat = np.asarray(values).reshape(-1)
    positions = np.zeros(1, dtype=np.int64)  # position of each path at the current level
    coords: list[npt.NDArray[np.int64]] = []  # coordinate of each path per level visited so far
    for level, meta in enumerate(params.dim_metadata):
        if meta.format == DENSE:
            size = meta.dense_size
            parent = np.repeat(np.arange(positions.size), size)
            coordinate = np.tile(np.arange(size, dtype=np.int64), positions.size)
            positions = positions[parent] * size + coordinate
        elif meta.array_segments is not None and meta.array_indices is not None:
            segments, indices = meta.array_segments, meta.array_indices
            if positions.size and int(positions.max()) + 1 >= segments.size:
                raise ValueError(f"sparse tensor: array_segments at level {level} is too short")
            starts, ends = segments[positions], segments[positions + 1]
            counts = ends - starts
            parent = np.repeat(np.arange(positions.size), counts)
            first_of_parent = np.repeat(np.cumsum(counts) - counts, counts)
            positions = starts[parent] + (np.arange(int(counts.sum()), dtype=np.int64) - first_of_parent)
            coordinate = indices[positions]
        else:
            raise ValueError(f"sparse tensor: SPARSE_CSR level {level} has no segments or indices")
        coords = [c[parent] for c in coords]
        coords.append(coordinate)

    if positions.size and int(positions.max()) >= flat.size:
        raise ValueError(f"sparse tensor: {flat.size} stored values, but the index tree reaches {positions.max()}")
    dense_coords = []
    for dim in range(n):
        coordinate = coords[level_of[dim]]
        if dim in params.block_map:
            j = params.block_map.index(dim)
            coordinate = coordinate * block_sizes[j] + coords[level_of[n + j]]
        dense_coords.append(coordinate)
    dense = np.zeros(shape, dtype=flat.dtype)
    dense[tuple(dense_coords)] = flat[positions]
    return dense
