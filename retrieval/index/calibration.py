"""A library's calibration: what any raw score of a query means in this library.

An absolute score threshold means different things for different queries, libraries and
embedders; where a score stands among the query's scores over the whole library does not.
So at index time, once per change of the library, the index keeps:

- the sums of the shot vectors and of their outer products (``n``, ``s1``, ``s2``, float64):
  a query ``q``'s mean score over every shot is ``q . mu`` and its variance ``q' Sigma q``,
  exact, in O(dim^2) per query whatever the library's size, so a search pays nothing for them.
  A commit adds the new files' rows and subtracts the dropped or changed files' (incremental);
- the probe sentences' query vectors (:mod:`.probes`, embedded once per embedder and kept in
  the user cache) and each probe's best embedding score in the library, found again at each
  commit by one top-1 search of the new vectors per probe: where an unrelated sentence's best
  hit stands (median and spread of their z-scores), the yardstick of the card bar.

:meth:`LibraryCalibration.for_queries` turns them into one
:class:`retrieval.types.QueryCalibration` per query. The probes' best hits are embedding scores
only (the keyword bonus of a search is left out: the index room does not rank), so a real
query's best hit, keywords included, stands a little higher than a probe's with no footage.

Stored as ``calibration-<id>.npz`` in the index folder, written before the commit and named by
the meta row ``calibration`` that the commit swaps in with the vectors, so vectors and their
calibration change together (a compaction keeps the same live rows, so the same sums). The file
also records the embedder that made the vectors and the vectors it was computed for: one file
per embedder's vector set.
"""
from __future__ import annotations

import hashlib
import logging
import os
import uuid
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from retrieval.embed.base import default_cache_dir, save_array_atomic
from retrieval.types import MIN_SD, QueryCalibration
from .probes import QUERIES

logger = logging.getLogger(__name__)

PREFIX = "calibration-"
FORMAT = 1  # the members of a calibration file; another number is computed again
PROBE_KEY = hashlib.sha1("\n".join(QUERIES).encode()).hexdigest()[:16]
MAD_SD = 1.4826  # a normal distribution's sd per median absolute deviation
CHUNK = 4096  # rows summed at once (float64 copies of a chunk, not of the library)

Search = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class LibraryCalibration:
    """Sums of a library's shot vectors and its probe sentences' best scores (see module)."""

    embedder: str
    n: int
    s1: np.ndarray  # (dim,) float64: sum of the shot vectors
    s2: np.ndarray  # (dim, dim) float64: sum of their outer products
    probes: np.ndarray  # (P, dim) float32: the probe queries' vectors
    probe_top: np.ndarray  # (P,) float32: each probe's best embedding score in the library
    probe_key: str = PROBE_KEY
    vectors: str = ""  # the vectors file or manifest it was computed for

    @cached_property
    def _moments(self) -> tuple[np.ndarray, np.ndarray]:
        n = max(self.n, 1)
        mu = self.s1 / n
        return mu, self.s2 / n - np.outer(mu, mu)

    def stats(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each query's mean and sd of its embedding scores over every shot of the library."""
        q = np.atleast_2d(np.asarray(queries, np.float64))
        mu, cov = self._moments
        var = np.einsum("ij,ij->i", q @ cov, q)
        return q @ mu, np.sqrt(np.maximum(var, 0.0))

    @cached_property
    def unrelated(self) -> tuple[float, float]:
        """(median, spread) of the z-scores of the probes' best hits, in sd: where the best hit
        of a sentence with no footage in this library stands; spread = 1.4826 * MAD."""
        if self.n < 2 or not len(self.probes):
            return 0.0, 0.0
        mean, sd = self.stats(self.probes)
        ok = sd >= MIN_SD
        if not ok.any():
            return 0.0, 0.0
        z = (self.probe_top[ok].astype(np.float64) - mean[ok]) / sd[ok]
        median = float(np.median(z))
        return median, float(MAD_SD * np.median(np.abs(z - median)))

    def for_queries(self, queries: np.ndarray) -> list[QueryCalibration]:
        return self.for_search().for_queries(queries)

    def for_search(self) -> "SearchCalibration":
        mu, cov = self._moments
        middle, spread = self.unrelated
        return SearchCalibration(n=self.n, mean=mu.astype(np.float32),
                                 cov=cov.astype(np.float32), unrelated=middle,
                                 unrelated_sd=spread)

    def updated(self, added: np.ndarray | None, removed: np.ndarray | None) -> "LibraryCalibration":
        """The sums with ``added`` rows in and ``removed`` rows out (probe tops unchanged:
        :meth:`with_probe_tops` finds them in the new vectors)."""
        n, s1, s2 = self.n, self.s1.copy(), self.s2.copy()
        for rows, sign in ((added, 1), (removed, -1)):
            for a in range(0, 0 if rows is None else len(rows), CHUNK):
                part = np.asarray(rows[a : a + CHUNK], np.float64)
                n += sign * len(part)
                s1 += sign * part.sum(axis=0)
                s2 += sign * (part.T @ part)
        return replace(self, n=n, s1=s1, s2=s2)

    def with_probe_tops(self, search: Search, vectors: str) -> "LibraryCalibration":
        """The probes' best scores in the library searched by ``search`` (the new vectors)."""
        top = np.full(len(self.probes), -np.inf, np.float32)
        if self.n > 0 and len(self.probes):
            scores, _ = search(np.ascontiguousarray(self.probes, np.float32), 1)
            top = np.asarray(scores, np.float32)[:, 0]
        return replace(self, probe_top=top, vectors=vectors)


@dataclass(frozen=True)
class SearchCalibration:
    """What a search reads of the calibration (written beside the sums, so it reads neither
    them nor the probes): the mean shot vector, the covariance in float32 (a query's variance
    is ``q' cov q``: a few ms for a film's queries) and where unrelated sentences' best hits
    stand."""

    n: int
    mean: np.ndarray  # (dim,) float32
    cov: np.ndarray  # (dim, dim) float32
    unrelated: float
    unrelated_sd: float

    def for_queries(self, queries: np.ndarray) -> list[QueryCalibration]:
        q = np.atleast_2d(np.asarray(queries, np.float32))
        var = np.einsum("ij,ij->i", (q @ self.cov).astype(np.float64), q.astype(np.float64))
        return [QueryCalibration(mean=round(float(m), 6), sd=round(float(s), 6),
                                 unrelated=round(self.unrelated, 4),
                                 unrelated_sd=round(self.unrelated_sd, 4), shots=self.n)
                for m, s in zip(q.astype(np.float64) @ self.mean.astype(np.float64),
                                np.sqrt(np.maximum(var, 0.0)))]


def sums(rows: np.ndarray | None, dim: int) -> tuple[int, np.ndarray, np.ndarray]:
    """(count, sum, sum of outer products) of ``rows``, in float64, a chunk at a time."""
    s1, s2 = np.zeros(dim), np.zeros((dim, dim))
    if rows is None or not len(rows):
        return 0, s1, s2
    for a in range(0, len(rows), CHUNK):
        part = np.asarray(rows[a : a + CHUNK], np.float64)
        s1 += part.sum(axis=0)
        s2 += part.T @ part
    return len(rows), s1, s2


def from_vectors(embedder: str, chunks: Iterable[np.ndarray], dim: int,
                 probes: np.ndarray) -> LibraryCalibration:
    """A calibration from every row of a library (``chunks`` of rows), probe tops not yet
    searched (see :meth:`LibraryCalibration.with_probe_tops`)."""
    n, s1, s2 = 0, np.zeros(dim), np.zeros((dim, dim))
    for chunk in chunks:
        k, c1, c2 = sums(chunk, dim)
        n, s1, s2 = n + k, s1 + c1, s2 + c2
    return LibraryCalibration(embedder=embedder, n=n, s1=s1, s2=s2,
                              probes=np.asarray(probes, np.float32),
                              probe_top=np.full(len(probes), -np.inf, np.float32))


def probe_vectors(embedder) -> np.ndarray:
    """The probe queries embedded by ``embedder`` (anything with ``name``, ``dim`` and
    ``embed_queries``), kept in the user cache: a cached copy is used when the embedder still
    embeds its first two probes the same way (so a changed embedder is not served stale
    vectors), else all are embedded again (seconds for proxy-v4's spaCy and WordNet)."""
    key = hashlib.sha1(f"{embedder.name}|{embedder.dim}|{PROBE_KEY}".encode()).hexdigest()[:16]
    path = default_cache_dir() / f"probes-{key}.npy"
    try:
        cached = np.load(path) if path.is_file() else None
    except (OSError, ValueError):
        cached = None
    if cached is not None and cached.shape == (len(QUERIES), int(embedder.dim)):
        check = np.asarray(embedder.embed_queries(list(QUERIES[:2])), np.float32)
        if np.allclose(check, cached[:2], atol=1e-4):
            return cached
    vectors = np.asarray(embedder.embed_queries(list(QUERIES)), np.float32)
    try:
        save_array_atomic(path, vectors)
    except OSError as exc:  # a read-only cache: embedded again next time
        logger.info("probe vectors not cached in %s: %s", path, exc)
    return vectors


def save(folder: Path, cal: LibraryCalibration) -> str:
    """Write ``cal`` under a new name in ``folder`` (atomically, as the exact vectors are:
    a temporary file renamed); returns the name."""
    name = f"{PREFIX}{uuid.uuid4().hex[:12]}.npz"
    tmp = Path(folder) / f".{name}.{os.getpid()}.tmp"
    light = cal.for_search()
    with open(tmp, "wb") as fh:
        np.savez(fh, n=np.int64(cal.n), s1=cal.s1, s2=cal.s2, probes=cal.probes,
                 probe_top=cal.probe_top, embedder=np.str_(cal.embedder),
                 probe_key=np.str_(cal.probe_key), vectors=np.str_(cal.vectors),
                 mean=light.mean, cov=light.cov, format=np.int64(FORMAT),
                 unrelated=np.array([light.unrelated, light.unrelated_sd]))
    os.replace(tmp, Path(folder) / name)
    return name


def load(folder: Path, meta: dict) -> LibraryCalibration | None:
    """The calibration the index's ``meta`` names, or None when it has none (an index of an
    older montage, an interrupted commit) or the file does not fit it (another embedder, a
    row count or width that differs): the next indexing run computes it again."""
    name = meta.get("calibration") if meta else None
    if not name:
        return None
    try:
        with np.load(Path(folder) / str(name)) as data:
            _check_format(data)
            cal = LibraryCalibration(
                embedder=str(data["embedder"]), n=int(data["n"]), s1=data["s1"], s2=data["s2"],
                probes=data["probes"], probe_top=data["probe_top"],
                probe_key=str(data["probe_key"]), vectors=str(data["vectors"]))
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("the calibration %s of the index in %s is unreadable (%s)", name,
                       folder, exc)
        return None
    if cal.embedder != meta.get("embedder") or cal.n != meta.get("rows") or \
            cal.s1.shape != (int(meta.get("dim", -1)),):
        return None
    return cal


def load_for_search(folder: Path, meta: dict) -> SearchCalibration | None:
    """The search's part of the calibration ``meta`` names (None as for :func:`load`)."""
    name = meta.get("calibration") if meta else None
    if not name:
        return None
    path = Path(folder) / str(name)
    try:
        light, embedder = _read_search(str(path), path.stat().st_mtime_ns)
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("the calibration %s of the index in %s is unreadable (%s)", name,
                       folder, exc)
        return None
    if embedder != meta.get("embedder") or light.n != meta.get("rows") or \
            light.mean.shape != (int(meta.get("dim", -1)),):
        return None
    return light


@lru_cache(maxsize=4)
def _read_search(path: str, mtime_ns: int) -> tuple[SearchCalibration, str]:
    """Read once per file version: a process that cuts again (watch mode, the studio) opens
    the index anew each time but reads its calibration once."""
    with np.load(path) as data:
        _check_format(data)
        light = SearchCalibration(n=int(data["n"]), mean=data["mean"], cov=data["cov"],
                                  unrelated=float(data["unrelated"][0]),
                                  unrelated_sd=float(data["unrelated"][1]))
        return light, str(data["embedder"])


def _check_format(data) -> None:
    if "format" not in data.files or int(data["format"]) != FORMAT:
        raise ValueError(f"not calibration format {FORMAT}")


def usable(folder: Path, meta: dict) -> bool:
    """Whether the calibration ``meta`` names is there in this format (its directory only is
    read: what an unchanged library's build checks)."""
    name = meta.get("calibration") if meta else None
    try:
        with np.load(Path(folder) / str(name)) as data:
            _check_format(data)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return bool(name)


def remove_stale(folder: Path, keep: str | None) -> None:
    """Delete calibration files (and leftovers of interrupted writes) the meta does not name."""
    for path in Path(folder).glob(f"*{PREFIX}*"):
        if path.name != keep:
            path.unlink(missing_ok=True)




def prepare(folder: Path, old: dict, embedder, probes: np.ndarray | None = None,
            ) -> tuple[LibraryCalibration | None, np.ndarray]:
    """Before a commit: the committed state's calibration when the new state can update it
    (the same embedder and width; None otherwise), and the probe vectors (its own, else
    ``probes`` when given, else embedded now: seconds, once per run at most, so a caller times
    its commits without them)."""
    dim = int(embedder.dim)
    previous = load(folder, old)
    if previous is not None and (previous.embedder != embedder.name or
                                 previous.s1.shape != (dim,)):
        previous = None
    if previous is not None and previous.probe_key == PROBE_KEY:
        return previous, previous.probes
    if probes is None or probes.shape != (len(QUERIES), dim):
        probes = probe_vectors(embedder if hasattr(embedder, "embed_queries")
                               else _embedder(embedder.name))
    return previous, probes


def commit(folder: Path, previous: LibraryCalibration | None, probes: np.ndarray, embedder: str,
           dim: int, *, added: np.ndarray | None, removed: Callable[[], np.ndarray | None],
           every_row: Callable[[], Iterable[np.ndarray]], search: Search, vectors: str) -> str:
    """Write the calibration of the state a commit is about to swap in; returns its file name
    for the meta. ``previous`` (:func:`prepare`) is updated with the ``added`` rows and the
    ``removed()`` ones (None: unreadable); without it, or them, it is computed from
    ``every_row()``. ``search`` searches the new vectors (for the probes' best scores)."""
    gone = removed() if previous is not None else None
    if previous is not None and gone is not None:
        cal = replace(previous.updated(added, gone), probes=probes)
    else:
        cal = from_vectors(embedder, every_row(), dim, probes)
    return save(folder, cal.with_probe_tops(search, vectors))


def _embedder(name: str):
    """The query side of embedder ``name`` (a driver that embeds no frames has none built)."""
    from retrieval.embed.registry import make_embedder

    return make_embedder(name)


def ensure(folder: Path, con, meta: dict, embedder) -> None:
    """Give an index that has none (made by an older montage, or whose calibration write was
    interrupted) its calibration, from every stored row; nothing when it has one."""
    from . import store

    if not meta or not meta.get("rows") or usable(folder, meta):
        return  # (whether it fits the index's rows is checked where it is read)
    logger.info("calibrating the index in %s (%d shots)", folder, meta["rows"])
    if meta.get("vector_index") == "ivfpq":
        from .largevectors import open_committed

        vectors = open_committed(folder, meta["vectors"])
        live = vectors.live_ids()
        every = (vectors.rows(live[a : a + CHUNK]) for a in range(0, len(live), CHUNK))
    else:
        from .vectors import VectorIndex

        vectors = VectorIndex.load(Path(folder) / meta["vectors"])
        every = iter([vectors.vectors()])
    _, probes = prepare(folder, {}, embedder)
    name = commit(folder, None, probes, embedder.name, int(embedder.dim), added=None,
                  removed=lambda: None, every_row=lambda: every, search=vectors.search,
                  vectors=meta["vectors"])
    store.set_meta(con, {"calibration": name})
    remove_stale(folder, name)




def old_rows(folder: Path, con, old: dict, paths: set[str], dim: int) -> np.ndarray | None:
    """The vectors the committed state ``old`` holds for ``paths``: what a commit that drops or
    re-indexes them subtracts (None: unreadable, so the calibration is computed afresh)."""
    from . import store

    rows = store.rows_of_paths(con, paths) if paths else []
    if not rows:
        return np.zeros((0, dim), np.float32)
    try:
        if old.get("vector_index") == "ivfpq":
            from .largevectors import open_committed

            return open_committed(folder, old["vectors"]).rows(rows)
        from .vectors import VectorIndex

        return VectorIndex.load(Path(folder) / old["vectors"]).rows(np.array(rows))
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        logger.warning("the old vectors in %s are unreadable (%s); calibrating anew", folder, exc)
        return None


__all__ = ["LibraryCalibration", "PROBE_KEY", "SearchCalibration", "commit", "ensure",
           "from_vectors", "load", "load_for_search", "old_rows", "prepare", "probe_vectors",
           "remove_stale", "save", "sums"]
