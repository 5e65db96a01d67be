"""Nearest-neighbour search over shot vectors: the one module that imports FAISS.

Rows are L2-normalised float32, so inner products are cosines. Up to ``EXACT_MAX`` rows the
index is exact (``IndexFlatIP``: tens of thousands of shots are searched in a few
milliseconds); above it, an HNSW graph (``IndexHNSWFlat``). ``bench/search_scale.py`` measures
both against exact search, and an IVF index (``IndexIVFFlat``, kept here as an option): on
clustered synthetic vectors IVF needed an eighth of its cells scanned for recall@50 >= 0.95,
HNSW reached it at a fraction of a millisecond. Both keep the vectors themselves, so
reconstructing them for an incremental re-index is exact.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

EXACT_MAX = 50_000  # rows; above this an HNSW index is built
HNSW_M = 32  # graph degree
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 256  # candidates explored per query; bench/search_scale.py measures its recall
TRAIN_PER_CELL = 40  # k-means training points per IVF cell (FAISS warns below 39)
KMEANS_ITERATIONS = 10
NPROBE_SHARE = 1 / 32  # cells scanned per query; bench/search_scale.py measures its recall


def ivf_cells(n: int) -> int:
    """IVF cell count for ``n`` rows: about 2 * sqrt(n), a power of two, at least 64."""
    return max(64, 2 ** round(math.log2(max(1.0, 2.0 * math.sqrt(n)))))


def as_rows(vectors: np.ndarray, dim: int, what: str) -> np.ndarray:
    """Contiguous float32 (n, dim) rows (one vector becomes one row); ValueError naming ``what``."""
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    if v.ndim == 1:
        v = v[None, :]
    if v.ndim != 2 or v.shape[1] != dim:
        raise ValueError(f"{what} must have shape (n, {dim}), got {tuple(np.shape(vectors))}")
    return v


class VectorIndex:
    """Row ``i`` is the vector of shot ``i``; search returns (scores, ids), best first.

    ``kind`` is "flat" (exact), "hnsw" or "ivf" (approximate), or "auto" (hnsw above EXACT_MAX
    rows).
    """

    def __init__(self, dim: int, vectors: np.ndarray | None = None, *, kind: str = "auto",
                 nlist: int | None = None, nprobe: int | None = None, seed: int = 0) -> None:
        import faiss

        self.dim = int(dim)
        n = 0 if vectors is None else len(vectors)
        if kind == "auto":
            kind = "hnsw" if n > EXACT_MAX else "flat"
        if kind not in ("flat", "hnsw", "ivf"):
            raise ValueError(f"unknown vector index kind {kind!r}: flat, hnsw, ivf or auto")
        if kind in ("flat", "hnsw"):
            if kind == "flat":
                self._index = faiss.IndexFlatIP(self.dim)
            else:
                self._index = faiss.IndexHNSWFlat(self.dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
                self._index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
                self._index.hnsw.efSearch = HNSW_EF_SEARCH
            if n:
                self.add(vectors)
            return
        rows = as_rows(vectors, self.dim, "vectors") if n else np.zeros((0, self.dim), np.float32)
        nlist = int(nlist or ivf_cells(n))
        if n < nlist:
            raise ValueError(f"an IVF index of {nlist} cells needs at least {nlist} rows, got {n}")
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = KMEANS_ITERATIONS
        index.cp.seed = seed
        rng = np.random.default_rng(seed)
        sample = rows if n <= TRAIN_PER_CELL * nlist else rows[
            np.sort(rng.choice(n, TRAIN_PER_CELL * nlist, replace=False))]
        index.train(sample)
        index.add(rows)
        index.nprobe = int(nprobe or max(1, round(nlist * NPROBE_SHARE)))
        index.make_direct_map()  # so vectors() can reconstruct rows
        self._index = index

    @property
    def kind(self) -> str:
        if hasattr(self._index, "nprobe"):
            return "ivf"
        return "hnsw" if hasattr(self._index, "hnsw") else "flat"

    @property
    def ef_search(self) -> int | None:
        return int(self._index.hnsw.efSearch) if self.kind == "hnsw" else None

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        if self.kind != "hnsw":
            raise ValueError("ef_search applies to HNSW indexes only")
        self._index.hnsw.efSearch = int(value)

    @property
    def nprobe(self) -> int | None:
        return int(self._index.nprobe) if self.kind == "ivf" else None

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if self.kind != "ivf":
            raise ValueError("nprobe applies to IVF indexes only")
        self._index.nprobe = int(value)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, vectors: np.ndarray) -> None:
        self._index.add(as_rows(vectors, self.dim, "vectors"))

    def vectors(self) -> np.ndarray:
        """All stored rows, (n, dim) float32 (exact copies: both kinds keep them as given)."""
        if len(self) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._index.reconstruct_n(0, len(self))

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of the given row ids, (len(ids), dim)."""
        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids):
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self._index.reconstruct(int(i)) for i in ids])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, ids), each (n_queries, min(k, len)); cosine scores for unit rows.

        An approximate index may return fewer than ``k`` real hits; missing ones have id -1.
        """
        q = as_rows(queries, self.dim, "queries")
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
        if hasattr(index, "nprobe"):
            index.make_direct_map()
        elif hasattr(index, "hnsw"):
            index.hnsw.efSearch = max(int(index.hnsw.efSearch), HNSW_EF_SEARCH)
        out = cls.__new__(cls)
        out.dim = int(index.d)
        out._index = index
        return out
