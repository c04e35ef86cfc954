"""Exact nearest neighbours over vectors in RAM, with most of the work done in a low-rank subspace.

Split a unit row u and a unit query q into their parts in a subspace S (the top
principal directions of the rows, an orthonormal basis B of p columns) and the
rest: u·q = (uB)·(qB) + u_r·q_r, and |u_r·q_r| <= |u_r| |q_r| (Cauchy–Schwarz).
One product in S (p of the dim columns) bounds every row's score from above. The
k-th best full score among the rows S ranks first is a score the answer must
reach, so only the rows whose bound reaches it can be among the k nearest, and
only they are scored on their full vectors.

The answer is the exact one: nothing is approximated, no recall is traded. What
it saves depends on how much of the rows' energy S holds: on embeddings with a
steep spectrum most rows are ruled out; on isotropic vectors few are, and then
`best_rows` answers None and the caller runs the one full product instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

# Below this many rows the full product takes well under a millisecond: nothing to save.
MIN_ROWS = 4096
# S holds 1/8 of the dimensions: its product costs 1/8 of the full one.
RANK_DIVISOR = 8
# Rows S ranks first, scored in full to set the score the answer must reach (per neighbour asked for).
FIRST_PER_NEIGHBOUR = 8
# When more rows than this share survive the bound, gathering them costs about what the full product does.
MAX_SURVIVING_SHARE = 0.25
# float32 products of unit vectors differ from exact arithmetic by ~1e-6; the bound is widened well past it.
SLACK = 1e-4
SVD_SAMPLE = 4096


@dataclass(frozen=True)
class SubspaceBound:
    basis: np.ndarray  # [dim, p] orthonormal columns
    coarse: np.ndarray  # [n, p] the rows in the subspace
    residual: np.ndarray  # [n] length of each row's part outside it
    # Share of the rows scored in full, measured on a few of the rows as queries (1.0: none ruled out).
    full_share: float = 1.0

    @classmethod
    def build(cls, unit: np.ndarray, seed: int = 0) -> SubspaceBound | None:
        """For [n, dim] rows of length 1 (or 0); None when there are too few rows to save anything, or when the
        bound rules out too few of them (isotropic rows): then every query runs the one full product."""
        n, dim = unit.shape
        rank = dim // RANK_DIVISOR
        if n < MIN_ROWS or rank < 1:
            return None
        rows = unit if n <= SVD_SAMPLE else unit[np.random.default_rng(seed).choice(n, SVD_SAMPLE, replace=False)]
        # Uncentred: the directions that carry the most of the rows' dot products, which are the scores.
        _, _, vt = np.linalg.svd(rows.astype(np.float64), full_matrices=False)
        basis = np.ascontiguousarray(vt[:rank].T, dtype=np.float32)
        coarse = np.ascontiguousarray(unit @ basis)
        bound = cls(basis, coarse, _outside(unit, coarse))
        share = bound.measured_share(unit, seed)
        if share > MAX_SURVIVING_SHARE:  # typical queries would pay the subspace product, then the full one
            return None
        return replace(bound, full_share=share)

    def measured_share(self, unit: np.ndarray, seed: int = 0, queries: int = 8, limit: int = 10) -> float:
        """Mean share of rows scored in full for `queries` of the rows themselves as queries (a fallback to the
        full product counts 1.0): what a search cost model can expect of this bound."""
        picks = np.random.default_rng(seed + 1).choice(len(unit), min(queries, len(unit)), replace=False)
        shares = [1.0 if (found := self.best_rows(unit, unit[i], limit)) is None else len(found[0]) / len(unit)
                  for i in picks]
        return float(np.mean(shares))

    def work_per_row(self, dim: int) -> float:
        """Multiply-adds per row of one query, in units of the full product's `dim`."""
        return (self.basis.shape[1] + self.full_share * dim) / dim

    @property
    def nbytes(self) -> int:
        return int(self.basis.nbytes + self.coarse.nbytes + self.residual.nbytes)

    def take(self, positions: np.ndarray) -> SubspaceBound | None:
        """The bound of a subset of the rows (same subspace, nothing recomputed)."""
        if len(positions) < MIN_ROWS:
            return None
        return SubspaceBound(self.basis, self.coarse[positions], self.residual[positions], self.full_share)

    def best_rows(self, unit: np.ndarray, query: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(row positions, their full scores u·q): every row that can be among the `limit` best, and a few
        more; None when the bound rules out too few rows to beat one full product."""
        n = len(self.coarse)
        if limit >= n:
            return None
        in_space = self.basis.T @ query
        outside = float(np.sqrt(max(float(query @ query) - float(in_space @ in_space), 0.0)))
        approx = self.coarse @ in_space
        first = min(n, FIRST_PER_NEIGHBOUR * limit)
        top = np.argpartition(approx, n - first)[n - first:]
        full = unit[top] @ query
        must_reach = np.partition(full, len(full) - limit)[len(full) - limit]  # the limit-th best full score
        survivors = np.flatnonzero(approx + self.residual * outside >= must_reach - SLACK)
        if len(survivors) > MAX_SURVIVING_SHARE * n:
            return None
        return survivors, unit[survivors] @ query


def bound_nbytes(rows: int, dim: int) -> int:
    """What a bound over `rows` vectors of `dim` holds (its [rows, rank] product and residuals), 0 when none is
    built: for a memory budget that must count it before it exists."""
    rank = dim // RANK_DIVISOR
    return rows * 4 * (rank + 1) if rows >= MIN_ROWS and rank >= 1 else 0


def _outside(unit: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    total = np.einsum("ij,ij->i", unit, unit)
    inside = np.einsum("ij,ij->i", coarse, coarse)
    return np.sqrt(np.maximum(total - inside, 0.0)).astype(np.float32)
