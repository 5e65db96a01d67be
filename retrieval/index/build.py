"""Build (or update) the footage index: shots, features, embeddings, FAISS and SQLite.

One set of vectors per embedder (:mod:`retrieval.index.sets`): indexing with another embedder
keeps the current set aside and embeds the keyframes the index stored
(:mod:`retrieval.index.keyframes`) without decoding a video; indexing with the first one again
brings its set back.

Incremental: a file is analysed again only when its size, content hash or own words (name,
sidecar, folder tags) changed; deleted files are dropped. Parallel: worker processes decode
and analyse while this process embeds keyframes in batches. Crash-safe: the vectors go to a
new FAISS file and one SQLite transaction swaps the state in, so an interruption leaves the
previous index, and finished work is committed every ``checkpoint_s`` seconds and on Ctrl-C,
so the next run resumes where this one stopped. The index lives beside the library or, for a
read-only library, in the user cache (:mod:`retrieval.index.location`).
"""
from __future__ import annotations

import json
import logging
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from planner.errors import LibraryError

from retrieval.analysis.analyse import Settings
from retrieval.embed.base import Embedder
from retrieval.embed.registry import make_embedder
from retrieval.media.cuts import DEFAULT_MIN_SHOT, DEFAULT_THRESHOLD
from retrieval.media.library import check_root, find_media, group_skips, readers_signature
from . import calibration, store
from .changes import plan_changes
from .largevectors import check_vector_mode, converts
from .location import index_dir_for_writing
from .lock import index_lock
from .skips import readable as _readable
from .run import INDEX_VERSION, _Entry, _file_row, _load_kept, _Run  # noqa: F401 (engines)
from .sets import embedder_dir, switch

logger = logging.getLogger(__name__)

CHECKPOINT_S = 60.0  # commit finished work at least this often (and at the end, and on Ctrl-C)

__all__ = ["INDEX_VERSION", "IndexReport", "build_index"]


@dataclass(frozen=True)
class IndexReport:
    """What one indexing run did."""

    files_total: int
    files_indexed: int  # decoded and embedded this run
    files_reused: int  # unchanged since the last run: vectors kept
    files_skipped: tuple[tuple[str, str], ...]  # (path, "why: detail") of the files not indexed
    shots: int
    seconds: float
    embedder: str = ""
    footage_seconds: float = 0.0  # video analysed this run (stills not counted)
    location: str = ""  # the index folder
    files_reembedded: int = 0  # of files_indexed: embedded from stored keyframes, not decoded
    parked: str = ""  # the embedder whose vectors this run set aside (kept for a switch back)

    def skipped_by_reason(self) -> dict[str, list[tuple[str, str]]]:
        """The skipped files grouped by why (not media, audio only, ...): why -> [(path,
        what was wrong)]."""
        return group_skips(self.files_skipped)


def writable_index_folder(root: Path) -> Path:
    """Where ``root``'s index is written (beside it, or in the cache for a read-only library)."""
    try:
        return index_dir_for_writing(root)
    except OSError as exc:
        raise LibraryError(f"cannot create an index folder for {root}: {exc}",
                           hint="set MONTAGE_CACHE_DIR to a writable folder") from exc


def build_index(root: Path, embedder: str | Embedder = "proxy", *, progress: bool = True,
                threshold: float = DEFAULT_THRESHOLD, min_shot: float = DEFAULT_MIN_SHOT,
                workers: int | None = None, checkpoint_s: float = CHECKPOINT_S,
                on_file: Callable[[str, int, int], None] | None = None, vectors: str = "auto",
                **embedder_options) -> IndexReport:
    """Index (or update the index of) the footage under ``root``; see the module docstring.

    ``embedder``: a name for :func:`make_embedder` (``embedder_options`` go to it) or a built
    embedder. ``workers``: analysis processes (None: one per core, none for a single file;
    0: none).
    ``on_file(path, done, total)`` is called as each file is finished. A corrupt file is
    skipped with one WARNING and listed in the report. ``vectors``: "exact" (rewritten at each
    commit), "large" (:mod:`retrieval.index.largevectors`: stable rows, appended) or "auto" (large
    above ``LARGE_MIN`` shots).
    """
    check_vector_mode(vectors)
    started = time.perf_counter()
    root = check_root(root)
    media = find_media(root)
    emb = make_embedder(embedder, **embedder_options) if isinstance(embedder, str) else embedder
    settings = Settings(threshold, min_shot)
    folder = writable_index_folder(root)
    with index_lock(folder, "montage index"):
        parked = switch_set(folder, emb.name)
        report = _build(root, folder, media, emb, settings, started, vectors, checkpoint_s,
                        progress, workers, on_file)
    return _readable(root, replace(report, parked=parked or ""))


def switch_set(folder: Path, name: str) -> str | None:
    """Make ``name``'s vectors the current set (under the index lock); the embedder whose set
    was set aside, said in the log."""
    parked = switch(folder, name)
    if parked:
        logger.info("the index held %s's vectors: they are kept in %s for a switch back, and "
                    "rebuilding it for %s embeds its stored keyframes (no decoding)", parked,
                    embedder_dir(folder, parked), name)
    return parked


def _build(root, folder, media, emb, settings, started, vectors, checkpoint_s, progress,
           workers, on_file) -> IndexReport:
    with closing(_connect_or_reset(folder)) as con:
        old_meta = _usable_meta(folder, con, emb.name, settings.as_dict())
        old_files = store.read_files(con) if old_meta else {}
        plan = plan_changes(root, media, old_files,
                            retry_unsupported=old_meta.get("readers") != readers_signature()
                            if old_meta else False)
        if old_meta and not plan.to_index and not plan.dropped and \
                not converts(vectors, old_meta):
            if plan.touched:
                store.touch_files(con, plan.touched)
            calibration.ensure(folder, con, old_meta, emb)
            return _report(media, {}, plan.kept_paths, plan.skipped, started, emb.name, folder)
        kept = _load_kept(folder, con, old_meta, plan) if old_meta else {}
        if old_meta and len(kept) < len(plan.kept_paths):  # old vectors unreadable
            plan.to_index += [m for m in media if m.path in plan.kept_paths and m.path not in kept]
            plan.to_index.sort(key=lambda m: m.path)
        run = _Run(root, folder, con, emb, settings, kept, plan, checkpoint_s, vectors)
        run.go(progress, workers, on_file)
    return replace(_report(media, run.fresh, set(kept) | set(run.fresh), run.skipped, started,
                           emb.name, folder), files_reembedded=run.reembedded)


def _connect_or_reset(folder: Path):
    """The index database of ``folder``; an unreadable one is logged, removed and started anew."""
    try:
        con = store.connect(folder)
        store.read_files(con)
        return con
    except sqlite3.DatabaseError as exc:
        logger.warning("the index database in %s is unreadable (%s); rebuilding it", folder, exc)
    for name in (store.DB_NAME, store.DB_NAME + "-journal"):
        (folder / name).unlink(missing_ok=True)
    return store.connect(folder)


def _usable_meta(folder: Path, con, name: str, settings: dict) -> dict | None:
    """The previous index's meta if its vectors can be reused with this embedder and settings."""
    legacy = folder / store.LEGACY_MANIFEST
    if legacy.is_file():
        try:
            version = json.loads(legacy.read_text(encoding="utf-8")).get("version")
        except (OSError, ValueError, AttributeError):
            version = "unreadable"
        logger.warning("index format %s in %s is older than format %d; rebuilding", version,
                       legacy, INDEX_VERSION)
    meta = store.read_meta(con)
    if not meta:
        return None
    if meta.get("version") != INDEX_VERSION:
        logger.warning("index format %s is not the current %d; rebuilding", meta.get("version"),
                       INDEX_VERSION)
    elif meta.get("embedder") != name:
        logger.warning("index was built with embedder %s; rebuilding it with %s",
                       meta.get("embedder"), name)
    elif meta.get("settings") != settings:
        logger.warning("index was built with other shot settings; rebuilding")
    elif not (folder / str(meta.get("vectors"))).is_file():
        logger.warning("the vectors file of %s is missing; re-indexing everything", folder)
    else:
        return meta
    return None


def _report(media, fresh, indexed_paths, skipped, started, name, folder) -> IndexReport:
    shots = 0
    if fresh or indexed_paths:
        with closing(store.connect(folder, readonly=True)) as con:
            shots = store.count_shots(con)
    return IndexReport(
        files_total=len(media), files_indexed=len(fresh),
        files_reused=len(media) - len(fresh) - len(skipped),
        files_skipped=tuple((p, skipped[p]["reason"]) for p in sorted(skipped)),
        shots=shots, seconds=round(time.perf_counter() - started, 3), embedder=name,
        footage_seconds=round(sum(e.record.get("seconds", 0.0) for e in fresh.values()), 3),
        location=str(folder),
    )

