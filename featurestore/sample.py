"""A seeded sample of a feature table's present vectors, read without scanning every vector.

Pictures of a feature space (the explorer's map) need a few thousand points,
not the whole table: a 200k-row CLAP table is 400 MB of vectors. Only the
`segment_id` and `present` columns are scanned; the sampled rows' vectors are
then fetched by row position (Lance `take`), so the cost grows with the sample,
not with the table.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc



@dataclass(frozen=True)
class VectorSample:
    segment_ids: np.ndarray  # [n] object
    matrix: np.ndarray  # [n, dim] in the table's stored dtype, rows aligned with segment_ids
    eligible: int  # present vectors that passed the filter, of which these are a sample


def sample_vectors(dataset, size: int, seed: int = 0, candidates: Collection[str] | None = None) -> VectorSample:
    """Up to `size` present vectors of a feature table's Lance dataset (`Store.dataset`), among `candidates`
    when given, chosen uniformly with `seed`."""
    keys = dataset.to_table(columns=["segment_id", "present"])
    eligible = pc.fill_null(keys.column("present"), False)
    if candidates is not None:
        wanted = pa.array(list(candidates), pa.string())
        eligible = pc.and_(eligible, pc.is_in(keys.column("segment_id"), value_set=wanted))
    positions = np.flatnonzero(eligible.to_numpy(zero_copy_only=False))
    total = len(positions)
    if len(positions) > size:
        chosen = np.random.default_rng(seed).choice(len(positions), size, replace=False)
        positions = np.sort(positions[chosen])
    if len(positions) == 0:
        return VectorSample(np.empty(0, dtype=object), np.empty((0, 0), dtype=np.float32), 0)
    rows = dataset.take(positions, columns=["segment_id", "vector"])
    rows = rows.filter(pc.is_valid(rows.column("vector")))  # present=true with a null vector is not drawable
    ids = np.asarray(rows.column("segment_id").to_pylist(), dtype=object)
    vectors = rows.column("vector").combine_chunks()
    # The stored dtype is kept (float16 piano rolls stay half the size); callers convert in slices.
    matrix = vectors.flatten().to_numpy(zero_copy_only=False).reshape(len(vectors), vectors.type.list_size)
    return VectorSample(ids, matrix, total)

