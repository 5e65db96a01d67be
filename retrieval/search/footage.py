"""Open a built index and search it: FAISS for the embedding, SQLite for keywords and shots.

Opening checks everything a search relies on (format, vectors, row count) and fails with a
:class:`LibraryError` that says what to run; the query embedder is built lazily from the name
the index recorded, and asking for another one is an error naming both.
"""
from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np

from planner.errors import LibraryError

from retrieval.embed.base import Embedder
from retrieval.embed.registry import canonical_name, make_embedder
from retrieval.index import calibration, store
from retrieval.index.location import index_dirs_for_reading
from retrieval.media.library import check_root
from retrieval.types import Hit, LibraryShot, QueryCalibration
from .ranking import DEFAULT_MODE, rank

FORMAT = 2


class FootageIndex:
    """An opened index: vectors loaded once, shot metadata read from SQLite as needed."""

    def __init__(self, root: Path, folder: Path, meta: dict, vectors) -> None:
        self.root = Path(root)
        self.folder = Path(folder)
        self.meta = meta
        self.embedder_name: str = meta["embedder"]
        self.vectors = vectors
        self._embedder: Embedder | None = None
        self._shots: tuple[LibraryShot, ...] | None = None
        self._n = int(meta["rows"])
        self._calibration: calibration.SearchCalibration | None = None

    def __len__(self) -> int:
        return self._n

    def _connect(self) -> sqlite3.Connection:
        return store.connect(self.folder, readonly=True)

    @property
    def shots(self) -> tuple[LibraryShot, ...]:
        """Every shot in vector-row order (loads them all: for small libraries and tests)."""
        if self._shots is None:
            with closing(self._connect()) as con:
                self._shots = tuple(store.all_shots(con))
        return self._shots

    @property
    def skipped(self) -> tuple[tuple[str, str], ...]:
        """(path, "why: what was wrong") of the library's files this index did not take."""
        from retrieval.index.skips import skipped_in

        return skipped_in(self.folder)

    def embedder(self, embedder: str | Embedder | None = None) -> Embedder:
        """The embedder for queries: the index's own, or the one asked for if it matches."""
        if embedder is not None:
            asked = canonical_name(embedder) if isinstance(embedder, str) else embedder.name
            if asked != self.embedder_name:
                raise LibraryError(
                    f"the index of {self.root} was built with embedder {self.embedder_name}, "
                    f"not {asked}",
                    hint=f"search with {self.embedder_name}, or re-index: "
                         f"montage index {self.root} --embedder {asked}",
                )
            if not isinstance(embedder, str):
                return embedder
        if self._embedder is None:
            self._embedder = make_embedder(self.embedder_name)
        return self._embedder

    def calibration(self) -> calibration.SearchCalibration:
        """The library's calibration, stored with the index at index time
        (:mod:`retrieval.index.calibration`), read once."""
        if self._calibration is None:
            found = calibration.load_for_search(self.folder, self.meta)
            if found is None:
                raise LibraryError(
                    f"the index of {self.root} has no calibration of its scores (it was made by "
                    f"an older montage, or its last update was interrupted)",
                    hint=f"run `montage index {self.root}`: it adds one without analysing the "
                         f"footage again")
            self._calibration = found
        return self._calibration

    def search(self, queries: list[str], top: int = 5, embedder: str | Embedder | None = None,
               mode: str = DEFAULT_MODE) -> list[list[Hit]]:
        """The ``top`` best shots for each query (one batched query-embedding call).

        ``mode``: how keywords and the embedding combine (see :mod:`retrieval.search.candidates`).
        """
        return self._search(list(queries), top, embedder, mode)[0]

    def search_calibrated(self, queries: list[str], top: int = 5,
                          embedder: str | Embedder | None = None,
                          ) -> tuple[list[list[Hit]], list[QueryCalibration | None]]:
        """:meth:`search` in the default mode, and each query's calibration (from the sums the
        index keeps: no pass over the library). In an empty library nothing stands out: every
        score is 0 sd (``QueryCalibration(0, 0, 0, 0)``)."""
        hits, vectors = self._search(list(queries), top, embedder, DEFAULT_MODE)
        if not self._n:
            return hits, [QueryCalibration(0.0, 0.0, 0.0, 0.0, 0) for _ in hits]
        if vectors is None:
            return hits, [None] * len(hits)
        return hits, list(self.calibration().for_queries(vectors))

    def _search(self, queries: list[str], top: int, embedder: str | Embedder | None,
                mode: str) -> tuple[list[list[Hit]], np.ndarray | None]:
        if not queries or top <= 0 or not self._n:
            return [[] for _ in queries], None
        emb = self.embedder(embedder)
        query_vectors = None if mode == "keywords" else emb.embed_queries(queries)
        with closing(self._connect()) as con:
            ranked = [rank(self.vectors, lambda t, lim: store.postings(con, t, lim), self._n, q,
                           None if query_vectors is None else query_vectors[i], top, mode,
                           first_rows=lambda n: store.first_rows(con, n))
                      for i, q in enumerate(queries)]
            wanted = {r for hits in ranked for r, _ in hits}
            shots = store.shots_by_rows(con, wanted)
            moments = store.moments_by_rows(con, wanted) if query_vectors is not None else {}
        return [[Hit(shot=shots[r], score=s,
                     moment=best_moment(moments.get(r), query_vectors[i]) if moments else None)
                 for r, s in hits if r in shots]  # a large index's rows have gaps
                for i, hits in enumerate(ranked)], query_vectors


def best_moment(moments, query) -> float | None:
    """The time of the keyframe closest to the query (None without keyframe vectors)."""
    if moments is None:
        return None
    times, vectors = moments
    return float(times[int(np.argmax(vectors.astype(np.float32) @ np.asarray(query, np.float32)))])


def _set_of(root: Path, folder: Path, embedder: str | Embedder) -> Path:
    """The folder of the index's vectors made by ``embedder`` (the index keeps one set per
    embedder, see retrieval.index.sets); a LibraryError naming the sets it has otherwise."""
    from retrieval.index.sets import set_folder, sets

    name = canonical_name(embedder) if isinstance(embedder, str) else embedder.name
    found = set_folder(folder, name)
    if found is not None:
        return found
    have = ", ".join(f"{n}{' (current)' if current else ''}" for n, current in sets(folder))
    spec = embedder if isinstance(embedder, str) else name
    raise LibraryError(f"the index of {root} has no vectors made by {name} (it has: "
                       f"{have or 'none'})",
                       hint=f"montage index {root} --embedder {spec} adds them (from the stored "
                            f"keyframes: no video is decoded again)")


def search_embedder(root: Path, spec: str | None) -> tuple[str | None, str]:
    """The embedder a search of ``root`` uses for ``spec`` (None or "auto": the one ``auto``
    takes, if the index has its vectors, else the index's last built set), and a line to say
    when an installed embedder's vectors are missing from the index."""
    from retrieval.embed import AUTO, auto_embedder
    from retrieval.index.sets import set_folder

    if spec not in (None, AUTO):
        return spec, ""
    choice = auto_embedder()
    folder = find_index_folder(check_root(root))
    name = canonical_name(choice.spec)
    if set_folder(folder, name) is not None:
        return choice.spec, ""
    current = store.probe_meta(folder).get("embedder", "?")
    return None, (f"search: the index's {current} vectors; {name} is installed but the index "
                  f"has none of its vectors: `montage index {root}` adds them (no decoding)")


def find_index_folder(root: Path) -> Path:
    """The folder holding the index of ``root``; a LibraryError if there is none (or only an
    index of an older format, which this version does not read)."""
    rebuild = f"run `montage index {root}`"
    legacy = None
    for folder in index_dirs_for_reading(root):
        if store.is_index(folder):
            return folder
        if (folder / store.LEGACY_MANIFEST).is_file() and legacy is None:
            legacy = folder
    if legacy is not None:
        raise LibraryError(
            f"the index of {root} in {legacy} was built by an older montage (format 1); this "
            f"montage reads format {FORMAT}", hint=rebuild + " to rebuild it")
    raise LibraryError(f"the footage library {root} has no index yet", hint=rebuild)


def skipped_files(root: Path) -> tuple[tuple[str, str], ...]:
    """(path, "why: what was wrong") of the files of ``root`` its index did not take, read
    without loading the vectors; () while the library has no index."""
    from retrieval.index.skips import skipped_in

    try:
        return skipped_in(find_index_folder(check_root(root)))
    except LibraryError:
        return ()


def open_index(root: Path, embedder: str | Embedder | None = None) -> FootageIndex:
    """Load the index of ``root`` (its vectors of ``embedder``, a name or a built one; None: the
    set last built); a LibraryError says what to run if it is missing or stale."""
    from retrieval.index.vectors import VectorIndex

    root = check_root(root)
    folder = find_index_folder(root)
    if embedder is not None:
        folder = _set_of(root, folder, embedder)
    rebuild = f"run `montage index {root}`"
    try:
        with closing(store.connect(folder, readonly=True)) as con:
            meta = store.read_meta(con)
    except sqlite3.Error as exc:
        raise LibraryError(f"the index of {root} ({folder / store.DB_NAME}) is unreadable: {exc}",
                           hint=rebuild + " to rebuild it") from exc
    if not meta:
        raise LibraryError(f"the index of {root} in {folder} is empty or unfinished",
                           hint=rebuild)
    if meta.get("version") != FORMAT:
        raise LibraryError(
            f"the index of {root} has format {meta.get('version')}, this montage reads {FORMAT}",
            hint=rebuild + " to rebuild it")
    try:
        if meta.get("vector_index") == "ivfpq":  # stable rows, see retrieval.index.largevectors
            from retrieval.index.largevectors import open_committed

            vectors = open_committed(folder, meta["vectors"])
        else:
            vectors = VectorIndex.load(folder / meta["vectors"])
    except (KeyError, RuntimeError, OSError, ValueError) as exc:
        raise LibraryError(f"the index of {root} is damaged: its vectors file cannot be read "
                           f"({exc})", hint=rebuild) from exc
    if len(vectors) != meta.get("rows"):
        raise LibraryError(
            f"the index of {root} is damaged: {meta.get('rows')} shots but {len(vectors)} vectors",
            hint=rebuild)
    return FootageIndex(root, folder, meta, vectors)
