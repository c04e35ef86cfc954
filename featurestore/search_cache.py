"""Process-wide cache of what searches derive from one table snapshot: row maps, resolved filters, index facts.

A one-shot `neighbors()` call (the explorer's `inspect`, a script's loop) opens
a fresh search session. Without this cache every call re-read the feature
table's segment ids and row addresses (tens of ms at 200k rows on a quiet
machine, ~330 ms under load), re-resolved its filter on `segments` and re-read
the index statistics. Entries are keyed by the exact snapshot they were read
from: store, table, Lance version and the table's data and deletion files (a
table dropped and re-created restarts its version numbers, but its files are
new). So a new version after an encode, a relabel, a compaction or a delete
never reuses an entry made for an older one; old entries simply age out. The
opened Lance datasets are kept too, so later sessions on the same snapshot find
the index pages Lance already loaded.

Memory: least recently used entries are dropped beyond `CACHE_BUDGET_BYTES`
(128 MiB; a 200k-row table's map takes ~4.5 MB), and an entry larger than the
whole budget is not kept at all.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from featurestore.lru import ByteLRU

CACHE_BUDGET_BYTES = 128 * 2**20
# A cached Lance dataset counts as this much: its session's index cache held 15 MB after queries on the
# benchmark's 200k x 512 IVF_PQ table.
DATASET_BYTES = 24 * 2**20


def snapshot_key(store_uri: str, table: str, dataset) -> tuple:
    """What identifies the rows of `dataset` (a Lance dataset opened at one version) in this process."""
    files = tuple(
        (fragment.fragment_id, tuple(f.path for f in fragment.metadata.files), str(fragment.metadata.deletion_file))
        for fragment in dataset.get_fragments()
    )
    return store_uri, table, int(dataset.version), files


def nbytes(value) -> int:
    """Approximate bytes held by a cached value (arrays, tuples of them, objects with `nbytes`, datasets)."""
    if hasattr(value, "session") and hasattr(value, "version"):  # a Lance dataset: its caches grow with use
        return DATASET_BYTES
    if isinstance(value, (np.ndarray, pa.Array, pa.ChunkedArray, bytes)):
        return int(value.nbytes) if not isinstance(value, bytes) else len(value)
    if isinstance(value, tuple):
        return sum(nbytes(v) for v in value)
    return int(getattr(value, "nbytes", 256))


class SnapshotCache(ByteLRU[object]):
    """The byte-bounded LRU shared by every search session in the process, values sized by `nbytes`."""

    def __init__(self, budget_bytes: int = CACHE_BUDGET_BYTES):
        super().__init__(budget_bytes, nbytes)


SNAPSHOTS = SnapshotCache()
