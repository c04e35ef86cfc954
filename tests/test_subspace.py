"""The subspace bound answers exactly what one full product answers, and steps aside when it cannot save work."""

from __future__ import annotations

import numpy as np
import pytest

from featurestore.resident import ResidentVectors, nearest, unit_rows
from featurestore.subspace import MIN_ROWS, SubspaceBound

DIM = 128


def low_rank_rows(n: int, rank: int, noise: float, seed: int) -> np.ndarray:
    """Clustered rows on a `rank`-dimensional latent plus isotropic noise, scaled to unit length."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((16, rank))
    latent = centres[rng.integers(16, size=n)] + 0.5 * rng.standard_normal((n, rank))
    rows = latent @ rng.standard_normal((rank, DIM)) + noise * rng.standard_normal((n, DIM))
    return unit_rows(rows.astype(np.float32))


def brute_force(resident: ResidentVectors, query: np.ndarray, k: int):
    return nearest(resident.ids, 1.0 - resident.unit @ unit_rows(query)[0], k)


def resident_of(rows: np.ndarray) -> ResidentVectors:
    return ResidentVectors(np.array([f"s{i:06d}" for i in range(len(rows))], dtype=object), rows,
                           np.arange(len(rows), dtype=np.uint64) * 3)


@pytest.mark.parametrize("k", [1, 10, 50])
def test_answers_equal_one_full_product_and_most_rows_are_ruled_out(k):
    rows = low_rank_rows(6000, rank=8, noise=0.05, seed=0)
    resident = resident_of(rows)
    assert resident.bound is not None
    rng = np.random.default_rng(1)
    pruned = 0
    for i in rng.choice(len(rows), 40, replace=False):
        query = rows[i] + 0.1 * rng.standard_normal(DIM).astype(np.float32)
        expected_ids, expected_distances = brute_force(resident, query, k)
        (found,) = resident.nearest(query[None], k)
        assert [s for s, _ in found] == list(expected_ids)
        np.testing.assert_allclose([d for _, d in found], expected_distances, atol=1e-5)
        survivors = resident.bound.best_rows(resident.unit, unit_rows(query)[0], k)
        pruned += survivors is not None and len(survivors[0]) < 0.05 * len(rows)
    assert pruned >= 35  # the point of it: on a steep spectrum almost every row is ruled out


def test_isotropic_rows_fall_back_to_the_full_product():
    rows = unit_rows(np.random.default_rng(2).standard_normal((5000, DIM)).astype(np.float32))
    resident = resident_of(rows)
    query = unit_rows(np.random.default_rng(3).standard_normal(DIM).astype(np.float32))[0]
    assert resident.bound is None  # it would rule out too few rows: every query runs the one full product
    (found,) = resident.nearest(query[None], 10)
    assert [s for s, _ in found] == list(brute_force(resident, query, 10)[0])
    # Rows it does serve, and a query outside their subspace (where the bound says nothing): it falls back alone.
    served = resident_of(low_rank_rows(6000, rank=8, noise=0.05, seed=0))
    basis = served.bound.basis
    query = unit_rows(query - basis @ (basis.T @ query))[0]
    assert served.bound.best_rows(served.unit, query, 10) is None
    (found,) = served.nearest(query[None], 10)
    assert [s for s, _ in found] == list(brute_force(served, query, 10)[0])


def test_ties_and_duplicate_rows_break_by_segment_id_as_the_full_product_does():
    rows = low_rank_rows(MIN_ROWS + 100, rank=4, noise=0.01, seed=4)
    rows[1000:1020] = rows[7]  # twenty exact duplicates of row 7: equal distances to any query
    resident = resident_of(rows)
    (found,) = resident.nearest(rows[7][None], 15)
    assert [s for s, _ in found] == list(brute_force(resident, rows[7], 15)[0])


def test_a_subset_takes_its_parents_subspace_and_stays_exact():
    rows = low_rank_rows(12000, rank=8, noise=0.05, seed=5)
    table = resident_of(rows)
    assert table.bound is not None
    part = table.subset(table.addrs[::2])
    assert part.bound is not None and part.bound.basis is table.bound.basis  # no second decomposition
    assert len(part.bound.coarse) == len(part.ids) == 6000
    query = rows[3] + 0.2 * np.random.default_rng(6).standard_normal(DIM).astype(np.float32)
    (found,) = part.nearest(query[None], 10)
    assert [s for s, _ in found] == list(brute_force(part, query, 10)[0])
    small = table.subset(table.addrs[:100])
    assert small.bound is None and len(small.nearest(query[None], 10)[0]) == 10


def test_too_few_rows_build_no_bound_and_zero_rows_stay_at_distance_one():
    assert SubspaceBound.build(low_rank_rows(MIN_ROWS - 1, rank=4, noise=0.1, seed=7)) is None
    rows = low_rank_rows(MIN_ROWS, rank=4, noise=0.1, seed=8)
    rows[:50] = 0.0  # no direction: distance 1 to everything, as lancedb reports
    resident = resident_of(rows)
    (found,) = resident.nearest(rows[60][None], 10)
    assert [s for s, _ in found] == list(brute_force(resident, rows[60], 10)[0])
