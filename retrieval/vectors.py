"""Nearest-neighbour search over shot vectors: the one module that imports FAISS.

An exact inner-product index over L2-normalised float32 rows, so scores are cosines. Exact
search is instant for libraries of thousands of shots; an IVF/HNSW index can replace it here
without touching callers.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def _as_rows(vectors: np.ndarray, dim: int, what: str) -> np.ndarray:
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    if v.ndim == 1:
        v = v[None, :]
    if v.ndim != 2 or v.shape[1] != dim:
        raise ValueError(f"{what} must have shape (n, {dim}), got {tuple(np.shape(vectors))}")
    return v


class VectorIndex:
    """Row ``i`` is the vector of shot ``i``; search returns (scores, ids), best first."""

    def __init__(self, dim: int, vectors: np.ndarray | None = None) -> None:
        import faiss

        self.dim = int(dim)
        self._index = faiss.IndexFlatIP(self.dim)
        if vectors is not None and len(vectors):
            self.add(vectors)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, vectors: np.ndarray) -> None:
        self._index.add(_as_rows(vectors, self.dim, "vectors"))

    def vectors(self) -> np.ndarray:
        """All stored rows, (n, dim) float32 (exact copies: a flat index keeps them as given)."""
        if len(self) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._index.reconstruct_n(0, len(self))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, ids), each (n_queries, min(k, len)); cosine scores for unit rows."""
        q = _as_rows(queries, self.dim, "queries")
        k = min(int(k), len(self))
        if k <= 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        scores, ids = self._index.search(q, k)
        return scores, ids

    def save(self, path: Path) -> None:
        """Write to ``path`` atomically (temp file, then rename)."""
        import faiss

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        faiss.write_index(self._index, str(tmp))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> "VectorIndex":
        import faiss

        index = faiss.read_index(str(path))
        out = cls.__new__(cls)
        out.dim = int(index.d)
        out._index = index
        return out
