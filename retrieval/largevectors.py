"""Vectors for millions of shots: IVF-PQ codes in memory, exact rows on disk, appended per commit.

At ten million 384-d shots the float32 vectors are 15 GB, so neither the exact index nor HNSW
(both keep them in memory, see :mod:`retrieval.vectors`) fits a machine shared by several
people. This index keeps in memory only an IVF coarse quantizer (an HNSW graph over the cell
centres, so adding and probing are cheap) and ``PQ_M`` bytes of product-quantised code per row;
the rows themselves go to an append-only float16 file on disk, read back with ``pread`` for the
``RERANK`` x k candidates of a query only, which are re-scored exactly (fp16 rounding aside).
``bench/search_scale.py --sizes 10000000`` measures it against exact search.

It is trained once, on a sample (``create``); after that every ``append`` writes only what is
new: one segment file of codes, the new rows at the end of ``rows.f16``, and the small manifest
(written last, atomically: a crash mid-append leaves the previous state, whose row count tells
where ``rows.f16`` really ends). Nothing is rewritten at a commit. Removed rows are tombstones
skipped by the search. Layout of the folder: ``trained.faiss``, ``seg-NNNNNN.faiss``,
``rows.f16``, ``manifest.json``.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from .vectors import as_rows

PQ_M = 48  # code bytes per row (8 dimensions per sub-quantizer at 384-d)
TRAIN_PER_CELL = 40  # k-means training points per cell (FAISS warns below 39)...
TRAIN_MAX = 65_536  # ...up to this many (k-means costs sample x cells: 4096 cells train in
#                      minutes on 2 cores with this, an hour with 40 per cell)
ADD_BATCH = 65_536  # rows encoded at once (FAISS's temporaries scale with the batch)
NPROBE = 48  # cells probed per query; bench/search_scale.py measures recall and latency
RERANK = 4  # candidates re-scored exactly from disk, per result asked for
HNSW_QUANTIZER_M = 32
MANIFEST = "manifest.json"
ROWS = "rows.f16"
TRAINED = "trained.faiss"
FORMAT = 1


def large_cells(n: int) -> int:
    """Cells for about ``n`` rows: the power of two nearest sqrt(n), at least 64."""
    return max(64, 2 ** round(math.log2(max(1.0, math.sqrt(n)))))


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


class LargeVectorIndex:
    """Row ``i`` is the ``i``-th row appended; search returns (scores, ids), best first, as
    :class:`retrieval.vectors.VectorIndex` does."""

    def __init__(self, folder: Path, index, manifest: dict) -> None:
        self.folder = Path(folder)
        self._index = index
        self._manifest = manifest
        self.dim = int(manifest["dim"])
        self._removed = np.array(sorted(manifest["removed"]), np.int64)
        self._fd: int | None = None
        self.nprobe = int(manifest.get("nprobe", NPROBE))
        self.rerank = RERANK

    # -- building --------------------------------------------------------------------------
    @classmethod
    def create(cls, folder: Path, sample: np.ndarray, *, expected_rows: int | None = None,
               nlist: int | None = None, pq_m: int = PQ_M, seed: int = 0) -> "LargeVectorIndex":
        """Train an empty index in ``folder`` on ``sample`` (rows like those to come; at least
        ``TRAIN_PER_CELL`` per cell is best). ``expected_rows`` sizes the cells."""
        import faiss

        sample = as_rows(sample, np.shape(sample)[-1], "sample")
        dim = sample.shape[1]
        nlist = int(nlist or large_cells(expected_rows or len(sample) * 100))
        if len(sample) < nlist:
            raise ValueError(f"training {nlist} cells needs at least {nlist} sample rows, "
                             f"got {len(sample)}")
        if dim % pq_m:
            raise ValueError(f"the width {dim} is not a multiple of {pq_m} code bytes")
        rng = np.random.default_rng(seed)
        keep = min(TRAIN_PER_CELL * nlist, max(TRAIN_MAX, nlist))
        if len(sample) > keep:
            sample = sample[np.sort(rng.choice(len(sample), keep, replace=False))]
        index = faiss.index_factory(dim, f"IVF{nlist}_HNSW{HNSW_QUANTIZER_M},PQ{pq_m}",
                                    faiss.METRIC_INNER_PRODUCT)
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))  # the IndexIVFPQ
        ivf.cp.seed = seed
        ivf.cp.niter = 10
        ivf.do_polysemous_training = False  # FAISS's default; it took 80 s on 3000 rows
        ivf.pq.cp.min_points_per_centroid = 8  # a sample sized for the cells is enough for PQ
        index.train(sample)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{TRAINED}.{os.getpid()}.tmp"
        faiss.write_index(index, str(tmp))
        os.replace(tmp, folder / TRAINED)
        (folder / ROWS).write_bytes(b"")
        manifest = {"format": FORMAT, "dim": dim, "nlist": nlist, "pq_m": pq_m, "rows": 0,
                    "segments": [], "removed": [], "nprobe": NPROBE}
        _write_json(folder / MANIFEST, manifest)
        return cls(folder, index, manifest)

    @classmethod
    def open(cls, folder: Path) -> "LargeVectorIndex":
        """Load the trained index and every listed segment's codes (rows stay on disk)."""
        import faiss

        folder = Path(folder)
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT:
            raise ValueError(f"{folder} holds large-index format {manifest.get('format')}, "
                             f"this montage reads {FORMAT}")
        index = faiss.read_index(str(folder / TRAINED))
        ivf = faiss.extract_index_ivf(index)
        for name, _, _ in manifest["segments"]:
            segment = faiss.read_index(str(folder / name))
            ivf.merge_from(faiss.extract_index_ivf(segment), 0)
        index.ntotal = ivf.ntotal
        return cls(folder, index, manifest)

    def append(self, vectors: np.ndarray) -> range:
        """Add rows (ids continue from the last); writes only the new rows' segment and data."""
        import faiss

        v = as_rows(vectors, self.dim, "vectors")
        start = int(self._manifest["rows"])
        ids = np.arange(start, start + len(v), dtype=np.int64)
        if not len(v):
            return range(start, start)
        segment = faiss.read_index(str(self.folder / TRAINED))
        for a in range(0, len(v), ADD_BATCH):
            segment.add_with_ids(v[a : a + ADD_BATCH], ids[a : a + ADD_BATCH])
        number = len(self._manifest["segments"]) + 1
        name = f"seg-{number:06d}.faiss"
        tmp = self.folder / f".{name}.{os.getpid()}.tmp"
        faiss.write_index(segment, str(tmp))
        os.replace(tmp, self.folder / name)
        row_bytes = 2 * self.dim
        with open(self.folder / ROWS, "r+b") as fh:
            fh.truncate(start * row_bytes)  # drop what a crashed append may have left
            fh.seek(start * row_bytes)
            fh.write(v.astype(np.float16).tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        self._manifest = {**self._manifest, "rows": start + len(v),
                          "segments": [*self._manifest["segments"], [name, start, len(v)]]}
        _write_json(self.folder / MANIFEST, self._manifest)
        faiss.extract_index_ivf(self._index).merge_from(faiss.extract_index_ivf(segment), 0)
        self._index.ntotal = faiss.extract_index_ivf(self._index).ntotal
        return range(start, start + len(v))

    def remove(self, ids) -> None:
        """Tombstone rows (a dropped or re-indexed file's shots); searches skip them."""
        removed = sorted(set(self._manifest["removed"]) | {int(i) for i in ids})
        self._manifest = {**self._manifest, "removed": removed}
        _write_json(self.folder / MANIFEST, self._manifest)
        self._removed = np.array(removed, np.int64)

    # -- reading ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._manifest["rows"]) - len(self._removed)

    @property
    def kind(self) -> str:
        return "ivfpq"

    def rows(self, ids) -> np.ndarray:
        """The stored rows (float16 on disk, returned as float32), in the order asked."""
        ids = np.asarray(ids, np.int64)
        if self._fd is None:
            self._fd = os.open(self.folder / ROWS, os.O_RDONLY)
        row_bytes = 2 * self.dim
        out = np.empty((len(ids), self.dim), np.float16)
        for n, i in enumerate(ids):
            out[n] = np.frombuffer(os.pread(self._fd, row_bytes, int(i) * row_bytes), np.float16)
        return out.astype(np.float32)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, ids) per query: IVF-PQ candidates, re-scored from the rows."""
        import faiss

        q = as_rows(queries, self.dim, "queries")
        k = min(int(k), len(self))
        if k <= 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        wide = min(len(self), k * self.rerank)
        params = faiss.SearchParametersIVF(nprobe=self.nprobe)
        if len(self._removed):
            params.sel = faiss.IDSelectorNot(faiss.IDSelectorBatch(self._removed))
        quantizer = faiss.downcast_index(faiss.extract_index_ivf(self._index).quantizer)
        if hasattr(quantizer, "hnsw"):
            quantizer.hnsw.efSearch = max(64, 2 * self.nprobe)
        _, candidates = self._index.search(q, wide, params=params)
        scores = np.full((len(q), k), -np.inf, np.float32)
        ids = np.full((len(q), k), -1, np.int64)
        for n, row in enumerate(candidates):
            found = row[row >= 0]
            if not len(found):
                continue
            order = np.argsort(found)  # read the file front to back
            exact = self.rows(found[order]) @ q[n]
            best = np.argsort(-exact)[:k]
            scores[n, : len(best)] = exact[best]
            ids[n, : len(best)] = found[order][best]
        return scores, ids

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


__all__ = ["LargeVectorIndex", "large_cells"]
