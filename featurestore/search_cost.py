"""The search session's settings and its cost model: one exact product over candidates in RAM, or an index
query (featurestore/search.py chooses with it; benchmarks/bench_search.py fits its constants)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SearchSettings:
    """How queries run. Defaults reach recall@10 >= 0.95 on the benchmark (BENCHMARKS.md)."""

    # Fewer candidates than this are searched exactly: as fast as the index there (BENCHMARKS.md).
    exact_below: int = 2_000
    # Partitions probed by an unfiltered query; a filter keeping a fraction f of the rows probes nprobes / f
    # (capped at all), so about as many matching rows are ranked as without a filter.
    nprobes: int = 20
    # Re-rank 20x k candidates on full vectors: recall@10 0.997 vs 0.977 at 10 (BENCHMARKS.md sweep).
    refine_factor: int = 20
    # RAM a session may hold candidate vectors in (float32 rows + ids); beyond it exact search streams.
    resident_mb: int = 1024
    scan_batch: int = 8192
    # The cost model choosing, for a candidate set in RAM (or searched again, so worth reading into RAM),
    # between one exact product over it and the index. Fitted by benchmarks/bench_search.py's cost-model
    # runs on this machine (BENCHMARKS.md): only the ratios between them matter for the choice.
    exact_ns_per_value: float = 0.29  # resident product + partial sort, per candidate per dimension
    index_fixed_ms: float = 10.0  # per index query: planning, partition ranking, reading the results
    index_ns_per_code: float = 0.19  # IVF_PQ scan, per probed row per PQ sub-vector
    # A row-address mask sends Lance's PQ scan down a slower path, per allowed row in the probed partitions.
    index_ns_per_allowed_code: float = 1.2
    index_refine_us_per_row: float = 18.0  # re-ranking one row on its full vector read from disk
    # Reading vectors into RAM: a filter's scattered rows cost more each than one scan of the whole table.
    read_us_per_row_by_filter: float = 9.5
    read_us_per_row_scanned: float = 3.7


DEFAULT_SETTINGS = SearchSettings()


def exact_is_cheaper(s: SearchSettings, rows: int, dim: int, partitions: int, sub_vectors: int, candidates: int,
                     nprobes: int, limit: int, masked: bool) -> bool:
    """One product over `candidates` rows in RAM vs an index query over a table of `rows`: probing `nprobes`
    of `partitions` scans that share of the rows (and of a mask's allowed rows), then re-ranks `limit` x
    refine_factor rows on their full vectors."""
    exact_ms = candidates * dim * s.exact_ns_per_value * 1e-6
    share = min(1.0, nprobes / max(partitions, 1))
    codes = rows * share * sub_vectors * s.index_ns_per_code
    allowed = candidates * share * sub_vectors * s.index_ns_per_allowed_code if masked else 0.0
    index_ms = s.index_fixed_ms + (codes + allowed) * 1e-6 + limit * s.refine_factor * s.index_refine_us_per_row * 1e-3
    return exact_ms < index_ms
