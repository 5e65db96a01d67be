"""Vectors for millions of shots: IVF-PQ codes in memory, exact rows on disk, appended per commit.

At ten million 384-d shots the float32 vectors are 15 GB, so neither the exact index nor HNSW
(both keep them in memory, see :mod:`retrieval.index.vectors`) fits a machine shared by several
people. This index keeps in memory only an IVF coarse quantizer (the cell centres, searched
exactly: at 4096 cells one query costs a fraction of a millisecond, and assigning 100k new
rows in BLAS batches was twice as fast as an HNSW graph over the centres, see
``bench/large_append.py``) and ``code_bytes(dim)`` bytes of product-quantised code per row
(48 at 384-d); the rows themselves go to an append-only float16 file on disk, read back with
``pread`` for the candidates of a query only, which are re-scored exactly (fp16 rounding aside).
``bench/search_scale.py --sizes 10000000`` measures it against exact search.

It is trained once, on a sample (``create``); after that every ``append`` writes only what is
new: one segment file of FAISS's standalone codes (cell number and PQ code of each new row, no
copy of the centres), the new rows at the end of ``rows.f16``, and a small manifest (written
last, atomically, under a name the caller may choose: the footage index names a new one per
commit in its SQLite transaction, so a crash mid-append leaves the previous manifest, whose row
count tells where ``rows.f16`` really ends). Nothing is rewritten at a commit. Row ids are the
positions rows were appended at and never change; removed rows are tombstones skipped by the
search until the owner compacts (writes a new folder). Layout of the folder:
``trained.faiss``, ``seg-<first row>.codes``, ``rows.f16``, ``manifest*.json``.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
import uuid
from pathlib import Path

import numpy as np

from .vectors import as_rows

PQ_M = 48  # code bytes per row at 384-d (8 dimensions per sub-quantizer); see code_bytes
TRAIN_PER_CELL = 40  # k-means training points per cell (FAISS warns below 39)...
TRAIN_MAX = 65_536  # ...up to this many, which caps the cells at 1638 (155 s to train at 10M)
KMEANS_ITERATIONS = 10
PQ_TRAIN_PER_CODE = 64  # PQ k-means points per code word (16k rows: FAISS's 256 took minutes)
ADD_BATCH = 65_536  # rows encoded at once (FAISS's temporaries scale with the batch)
NPROBE = 48  # cells probed per query; bench/search_scale.py measures recall and latency
RERANK = 8  # candidates re-scored exactly from disk, per result asked for (at 10M, 4 gave
#             recall@50 0.87, 8 gave 0.94 at any nprobe: PQ ranking, not probing, bound it)...
RERANK_MIN = 256  # ...and at least this many (all of a small library: exact results)
MANIFEST = "manifest.json"
ROWS = "rows.f16"
TRAINED = "trained.faiss"
FORMAT = 2  # 1: segments were whole FAISS indexes (each with a copy of the centres)


def large_cells(n: int) -> int:
    """Cells for about ``n`` rows: the power of two nearest sqrt(n), at least 64."""
    return max(64, 2 ** round(math.log2(max(1.0, math.sqrt(n)))))


def cells_for(n: int) -> int:
    """Cells :meth:`LargeVectorIndex.create` trains for ``n`` rows from a sample of up to
    ``TRAIN_MAX`` of them: the :func:`large_cells` of ``n``, fewer where the sample has not
    ``TRAIN_PER_CELL`` rows a cell (at 10M: 1638 cells, not 4096)."""
    return min(large_cells(n), max(1, min(n, TRAIN_MAX) // TRAIN_PER_CELL))


def code_bytes(dim: int) -> int:
    """PQ sub-quantizers (one byte each) for ``dim``: about one per 8 dimensions, dividing it."""
    return max(m for m in range(1, max(1, dim // 8) + 1) if dim % m == 0)


def _write(path: Path, data: bytes) -> None:
    """Write ``path`` atomically and durably (temp file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class LargeVectorIndex:
    """Row ``i`` is the ``i``-th row appended; search returns (scores, ids), best first, as
    :class:`retrieval.index.vectors.VectorIndex` does."""

    def __init__(self, folder: Path, index, manifest: dict) -> None:
        self.folder = Path(folder)
        self._index = index
        self._manifest = manifest
        self.dim = int(manifest["dim"])
        self._removed = np.array(sorted(manifest["removed"]), np.int64)
        self._fd: int | None = None
        self.nprobe = int(manifest.get("nprobe", NPROBE))
        self.rerank = RERANK
        self.timings: dict[str, float] = {}  # seconds of the last append, by step

    # -- building --------------------------------------------------------------------------
    @classmethod
    def create(cls, folder: Path, sample: np.ndarray, *, expected_rows: int | None = None,
               nlist: int | None = None, pq_m: int | None = None,
               seed: int = 0) -> "LargeVectorIndex":
        """Train an empty index in ``folder`` on ``sample`` (rows like those to come; at least
        ``TRAIN_PER_CELL`` per cell is best). ``expected_rows`` sizes the cells; a sample too
        small for them gets fewer cells (and, under 256 rows, shorter codes) rather than none."""
        import faiss

        sample = as_rows(sample, np.shape(sample)[-1], "sample")
        dim = sample.shape[1]
        if nlist is None:  # as many as the sample trains with TRAIN_PER_CELL rows a cell
            nlist = min(large_cells(expected_rows or len(sample)),
                        max(1, len(sample) // TRAIN_PER_CELL))
        nlist = int(nlist)
        if len(sample) < nlist or not len(sample):
            raise ValueError(f"training {nlist} cells needs at least {nlist} sample rows, "
                             f"got {len(sample)}")
        pq_m = int(pq_m or code_bytes(dim))
        if dim % pq_m:
            raise ValueError(f"the width {dim} is not a multiple of {pq_m} code bytes")
        rng = np.random.default_rng(seed)
        keep = min(TRAIN_PER_CELL * nlist, max(TRAIN_MAX, nlist))
        if len(sample) > keep:
            sample = sample[np.sort(rng.choice(len(sample), keep, replace=False))]
        nbits = max(1, min(8, int(math.log2(len(sample)))))  # k-means needs a row per code word
        index = faiss.index_factory(dim, f"IVF{nlist},PQ{pq_m}x{nbits}",
                                    faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.cp.niter = KMEANS_ITERATIONS
        index.cp.min_points_per_centroid = 1  # TRAIN_MAX caps it at 16 a cell for 4096
        index.do_polysemous_training = False  # FAISS's default; it took 80 s on 3000 rows
        index.pq.cp.min_points_per_centroid = 1  # a small library still trains
        index.pq.cp.max_points_per_centroid = PQ_TRAIN_PER_CODE
        index.pq.cp.seed = seed
        index.train(sample)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{TRAINED}.{os.getpid()}.tmp"
        faiss.write_index(index, str(tmp))
        os.replace(tmp, folder / TRAINED)
        (folder / ROWS).write_bytes(b"")
        manifest = {"format": FORMAT, "dim": dim, "nlist": nlist, "pq_m": pq_m, "nbits": nbits,
                    "rows": 0, "segments": [], "removed": [], "nprobe": NPROBE}
        out = cls(folder, index, manifest)
        out.commit()
        return out

    @classmethod
    def open(cls, folder: Path, manifest: str = MANIFEST) -> "LargeVectorIndex":
        """Load the trained index and the codes of every segment ``manifest`` lists (the rows
        stay on disk); a ValueError if the folder is not one this montage reads."""
        import faiss

        folder = Path(folder)
        data = json.loads((folder / manifest).read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"{folder} holds large-index format {data.get('format')}, "
                             f"this montage reads {FORMAT}")
        index = faiss.read_index(str(folder / TRAINED))
        size = index.sa_code_size()
        for name, start, n in data["segments"]:
            codes = np.fromfile(folder / name, np.uint8)
            if codes.size != n * size:
                raise ValueError(f"{folder / name} holds {codes.size} bytes, not {n} rows")
            index.add_sa_codes(codes.reshape(n, size), np.arange(start, start + n, dtype=np.int64))
        if (folder / ROWS).stat().st_size < data["rows"] * 2 * int(data["dim"]):
            raise ValueError(f"{folder / ROWS} is shorter than its {data['rows']} rows")
        return cls(folder, index, data)

    def append(self, vectors: np.ndarray, *, commit: bool = True) -> range:
        """Add rows (ids continue from the last); writes only the new rows' codes and data.
        ``commit=False`` leaves the manifest to the caller's :meth:`commit`."""
        t0 = time.perf_counter()
        v = as_rows(vectors, self.dim, "vectors")
        start = int(self._manifest["rows"])
        if not len(v):
            return range(start, start)
        codes = np.concatenate([self._index.sa_encode(v[a : a + ADD_BATCH])
                                for a in range(0, len(v), ADD_BATCH)])
        t1 = time.perf_counter()
        name = f"seg-{start:012d}.codes"  # a crashed append's leftover of this name is stale
        _write(self.folder / name, codes.tobytes())
        t2 = time.perf_counter()
        row_bytes = 2 * self.dim
        with open(self.folder / ROWS, "r+b") as fh:
            fh.truncate(start * row_bytes)  # drop what a crashed append may have left
            fh.seek(start * row_bytes)
            fh.write(v.astype(np.float16).tobytes())
            fh.flush()
            os.fsync(fh.fileno())  # before any manifest names these rows
        t3 = time.perf_counter()
        self._index.add_sa_codes(codes, np.arange(start, start + len(v), dtype=np.int64))
        self._manifest = {**self._manifest, "rows": start + len(v),
                          "segments": [*self._manifest["segments"], [name, start, len(v)]]}
        if commit:
            self.commit()
        self.timings = {"encode_s": t1 - t0, "codes_write_s": t2 - t1, "rows_write_s": t3 - t2,
                        "add_s": time.perf_counter() - t3}
        return range(start, start + len(v))

    def remove(self, ids, *, commit: bool = True) -> None:
        """Tombstone rows (a dropped or re-indexed file's shots); searches skip them."""
        removed = sorted(set(self._manifest["removed"]) | {int(i) for i in ids})
        self._manifest = {**self._manifest, "removed": removed}
        self._removed = np.array(removed, np.int64)
        if commit:
            self.commit()

    def commit(self, name: str = MANIFEST) -> str:
        """Write the manifest (rows, segments, tombstones) as ``name``, atomically."""
        _write(self.folder / name, json.dumps(self._manifest).encode())
        return name

    # -- reading ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._manifest["rows"]) - len(self._removed)

    @property
    def kind(self) -> str:
        return "ivfpq"

    @property
    def appended(self) -> int:
        """Rows ever appended (live and tombstoned): the next row's id."""
        return int(self._manifest["rows"])

    @property
    def removed_share(self) -> float:
        return len(self._removed) / max(1, self.appended)

    def live_ids(self) -> np.ndarray:
        """The ids not tombstoned, ascending."""
        return np.setdiff1d(np.arange(self.appended, dtype=np.int64), self._removed)

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
        wide = min(len(self), max(k * self.rerank, RERANK_MIN))
        params = faiss.SearchParametersIVF(nprobe=self.nprobe)
        if len(self._removed):
            params.sel = faiss.IDSelectorNot(faiss.IDSelectorBatch(self._removed))
        _, candidates = self._index.search(q, wide, params=params)
        scores = np.full((len(q), k), -np.inf, np.float32)
        ids = np.full((len(q), k), -1, np.int64)
        for n, row in enumerate(candidates):
            found = np.sort(row[row >= 0])  # read the file front to back
            if not len(found):
                continue
            exact = self.rows(found) @ q[n]
            best = np.argsort(-exact, kind="stable")[:k]
            scores[n, : len(best)] = exact[best]
            ids[n, : len(best)] = found[best]
        return scores, ids

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


# -- in the footage index (retrieval.index.build): stable rows, appended per commit -----------------
LARGE_MIN = 200_000  # shots above which `montage index --vectors auto` keeps a large index...
LARGE_KEEP = LARGE_MIN // 2  # ...and at or above which a large index stays large (no flapping)
COMPACT_SHARE = 0.25  # tombstones past this share of the rows: the rows are written anew
VECTOR_MODES = ("auto", "exact", "large")
FOLDER_PREFIX = "large-"


def choose_kind(mode: str, shots: int, current: str | None) -> str:
    """"large" or "exact" for a commit of ``shots`` shots (``current``: the index's kind now)."""
    if mode not in VECTOR_MODES:
        raise ValueError(f"unknown vector index mode {mode!r}: {', '.join(VECTOR_MODES)}")
    if mode != "auto":
        return mode
    if current == "ivfpq":
        return "large" if shots >= LARGE_KEEP else "exact"
    return "large" if shots > LARGE_MIN else "exact"


def converts(mode: str, meta: dict) -> bool:
    """Whether ``--vectors mode`` asks for another kind than the index ``meta`` has."""
    return mode != "auto" and (mode == "large") != (meta.get("vector_index") == "ivfpq")


def check_vector_mode(mode: str) -> None:
    """One LibraryError for a ``--vectors`` value that is not one of ``VECTOR_MODES``."""
    from planner.errors import LibraryError

    if mode not in VECTOR_MODES:
        raise LibraryError(f"unknown vector index {mode!r}",
                           hint="use --vectors " + ", ".join(VECTOR_MODES))


def open_committed(index_folder: Path, name: str) -> LargeVectorIndex:
    """The large index the footage index's meta names (``large-<id>/manifest-<id>.json``)."""
    rel = Path(name)
    return LargeVectorIndex.open(Path(index_folder) / rel.parent, rel.name)


def new_manifest_name(large: LargeVectorIndex) -> str:
    """Write ``large``'s manifest under a new name; the path the footage index's meta keeps."""
    name = large.commit(f"manifest-{uuid.uuid4().hex[:12]}.json")
    return f"{large.folder.name}/{name}"


def build(index_folder: Path, vectors: np.ndarray, chunk: int = 100_000) -> LargeVectorIndex:
    """A new large index in a new folder of ``index_folder``, trained on and holding ``vectors``
    (row ``i`` is ``vectors[i]``); its manifest is left to :func:`new_manifest_name`."""
    folder = Path(index_folder) / f"{FOLDER_PREFIX}{uuid.uuid4().hex[:12]}"
    large = LargeVectorIndex.create(folder, vectors, expected_rows=len(vectors))
    for a in range(0, len(vectors), chunk):
        large.append(vectors[a : a + chunk], commit=False)
    return large


def outgrown(large: LargeVectorIndex) -> bool:
    """Whether ``large`` holds so many more rows than it was trained for that its cells are
    too few (4x fewer than :func:`cells_for` its rows: each probe scans 4x the codes)."""
    return cells_for(len(large)) >= 4 * int(large._manifest["nlist"])


def compact(index_folder: Path, large: LargeVectorIndex, *, retrain: bool = False,
            chunk: int = 100_000, seed: int = 0) -> tuple[LargeVectorIndex, np.ndarray]:
    """The live rows of ``large`` in a new folder, renumbered 0..n-1 in their order, with the
    same training or (``retrain``) cells trained anew for their number on a sample of them;
    returns it and the old ids of its rows."""
    import faiss

    folder = Path(index_folder) / f"{FOLDER_PREFIX}{uuid.uuid4().hex[:12]}"
    live = large.live_ids()
    stored = np.memmap(large.folder / ROWS, np.float16, "r", shape=(large.appended, large.dim))
    if retrain:
        take = np.random.default_rng(seed).choice(len(live), min(len(live), TRAIN_MAX), False)
        sample = np.asarray(stored[live[np.sort(take)]], np.float32)
        out = LargeVectorIndex.create(folder, sample, expected_rows=len(live), seed=seed)
    else:
        folder.mkdir()
        shutil.copyfile(large.folder / TRAINED, folder / TRAINED)
        (folder / ROWS).write_bytes(b"")
        manifest = {**large._manifest, "rows": 0, "segments": [], "removed": []}
        out = LargeVectorIndex(folder, faiss.read_index(str(folder / TRAINED)), manifest)
    for a in range(0, len(live), chunk):
        out.append(np.asarray(stored[live[a : a + chunk]], np.float32), commit=False)
    del stored
    return out, live


def commit_changes(con, index_folder: Path, large: LargeVectorIndex, meta: dict, *,
                   drop: set[str], files: dict[str, dict], entries: list,
                   compact_now: bool = False, calibrate=None) -> LargeVectorIndex:
    """One commit of the footage index onto a large index, in place: the shots of ``drop``
    become tombstones, ``entries`` (objects with ``shots``, ``terms``, ``vectors``,
    ``moments``, like :class:`retrieval.index.build._Entry`) are appended at new rows, then one
    SQLite transaction (``files``, the new shots, ``meta`` naming a new manifest) makes them
    the index. A kill before it leaves the previous manifest and state; the next append
    overwrites what this one wrote past them. With ``compact_now`` and tombstones past
    ``COMPACT_SHARE`` (or rows past what its cells were trained for: :func:`outgrown`, then
    with new cells), the live rows are then written to a new folder and the shots
    renumbered. ``calibrate(large, removed rows, vectors name) -> meta entries``, when given,
    runs with the new rows in and the removed ones tombstoned, before the transaction (the
    index's calibration, :mod:`retrieval.index.calibration`). Returns the large index now in
    use."""
    from . import store

    gone = store.rows_of_paths(con, drop)
    stacked = [e.vectors for e in entries if len(e.shots)]
    rows = large.append(np.concatenate(stacked), commit=False) if stacked else range(0)
    large.remove(gone, commit=False)
    shots, moments = [], []
    row = iter(rows)
    for e in entries:
        for n, (shot, terms) in enumerate(zip(e.shots, e.terms)):
            r = next(row)
            shots.append((r, shot, terms))
            if e.moments and n in e.moments:
                moments.append((r, e.moments[n]))
    meta = {**meta, "vectors": new_manifest_name(large), "rows": len(large),
            "vector_index": large.kind}
    if calibrate is not None:
        meta.update(calibrate(large, gone, meta["vectors"]))
    store.apply_changes(con, meta, drop, files, shots, moments)
    remove_stale(index_folder, meta["vectors"])
    if compact_now and (large.removed_share > COMPACT_SHARE or outgrown(large)):
        fresh, live = compact(index_folder, large, retrain=outgrown(large))
        meta = {**meta, "vectors": new_manifest_name(fresh), "rows": len(fresh)}
        store.renumber_rows(con, live, meta)
        large.close()
        large = fresh
        remove_stale(index_folder, meta["vectors"])
    return large


def remove_stale(index_folder: Path, keep: str) -> None:
    """Delete large folders, manifests and exact vector files the meta no longer names."""
    index_folder = Path(index_folder)
    kept = Path(keep)
    for stale in index_folder.glob("vectors-*.faiss"):
        if stale.name != keep:
            stale.unlink(missing_ok=True)
    for folder in index_folder.glob(f"{FOLDER_PREFIX}*"):
        if folder.name != kept.parent.name:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            for manifest in folder.glob("manifest-*.json"):
                if manifest.name != kept.name:
                    manifest.unlink(missing_ok=True)


__all__ = ["COMPACT_SHARE", "LARGE_MIN", "LargeVectorIndex", "VECTOR_MODES", "build",
           "check_vector_mode", "choose_kind", "code_bytes", "commit_changes", "converts",
           "outgrown", "compact", "large_cells", "new_manifest_name",
           "open_committed", "remove_stale"]
