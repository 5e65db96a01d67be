"""Build (or update) the footage index: shots, features, embeddings, FAISS and SQLite.

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
import os
import sqlite3
import sys
import time
import uuid
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from planner.errors import LibraryError

from retrieval.analysis.analyse import FileAnalysis, Settings
from retrieval.analysis.people import PeopleFacts
from retrieval.embed.base import Embedder, analyse_with, normalise
from retrieval.embed.keywords import LabelLemmas
from retrieval.embed.labels import merge_labels, people_hints, people_words
from retrieval.embed.registry import make_embedder
from retrieval.embed.warm import WarmModels
from retrieval.media.cuts import DEFAULT_MIN_SHOT, DEFAULT_THRESHOLD
from retrieval.media.library import MediaFile, check_root, find_media, footage_words
from retrieval.types import LibraryShot, shot_from_dict
from . import store
from .changes import Plan, content_hash, plan_changes, text_sig
from .largevectors import check_vector_mode, converts
from .location import index_dir_for_writing
from .lock import index_lock

logger = logging.getLogger(__name__)

INDEX_VERSION = 2  # 1: index.json + FAISS (montage 0.1); 2: SQLite + FAISS, shot features
EMBED_BATCH = 32  # keyframes per embedder call
# shots at least this long keep their keyframe vectors (moments): in a shorter one any trim
# covers most of it, so knowing where the query is met would not move the trim much
MOMENT_MIN_SECONDS = 3.0
CHECKPOINT_S = 60.0  # commit finished work at least this often (and at the end, and on Ctrl-C)

__all__ = ["INDEX_VERSION", "IndexReport", "build_index"]


@dataclass(frozen=True)
class IndexReport:
    """What one indexing run did."""

    files_total: int
    files_indexed: int  # decoded and embedded this run
    files_reused: int  # unchanged since the last run: vectors kept
    files_skipped: tuple[tuple[str, str], ...]  # (path, reason) of unreadable files
    shots: int
    seconds: float
    embedder: str = ""
    footage_seconds: float = 0.0  # video analysed this run (stills not counted)
    location: str = ""  # the index folder


@dataclass
class _Entry:
    """One file's part of the index while building: its record, shots, terms and vectors."""

    record: dict
    shots: list[LibraryShot]
    terms: list[list[str]]
    vectors: np.ndarray
    moments: dict[int, store.Moments] | None = None  # shot number -> keyframe times, vectors
    stored: int = 0  # a large index's unchanged file: shots left in the store, not loaded


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
    with index_lock(folder, "montage index"), closing(_connect_or_reset(folder)) as con:
        old_meta = _usable_meta(folder, con, emb.name, settings.as_dict())
        old_files = store.read_files(con) if old_meta else {}
        plan = plan_changes(root, media, old_files)
        if old_meta and not plan.to_index and not plan.dropped and \
                not converts(vectors, old_meta):
            if plan.touched:
                store.touch_files(con, plan.touched)
            return _readable(root, _report(media, {}, plan.kept_paths, plan.skipped, started,
                                           emb.name, folder))
        kept = _load_kept(folder, con, old_meta, plan) if old_meta else {}
        if old_meta and len(kept) < len(plan.kept_paths):  # old vectors unreadable
            plan.to_index += [m for m in media if m.path in plan.kept_paths and m.path not in kept]
            plan.to_index.sort(key=lambda m: m.path)
        run = _Run(root, folder, con, emb, settings, kept, plan, checkpoint_s, vectors)
        run.go(progress, workers, on_file)
    return _readable(root, _report(media, run.fresh, set(kept) | set(run.fresh), run.skipped,
                                   started, emb.name, folder))


def _readable(root: Path, report: IndexReport, shown: int = 3) -> IndexReport:
    """The report, or one LibraryError when not one file could be read: a film of title cards
    from a library of corrupt files would hide the real problem. Some unreadable files are fine
    (they are skipped, with a warning each, and listed in the report)."""
    if report.files_total == 0 or len(report.files_skipped) < report.files_total:
        return report
    why = []
    for path, reason in report.files_skipped[:shown]:
        short = reason.split(": ", 1)[1] if reason.startswith("cannot read ") and ": " in reason \
            else reason
        why.append(f"{path} ({short})")
    more = report.files_total - shown
    listed = "; ".join(why) + (f"; and {more} more" if more > 0 else "")
    n = report.files_total
    raise LibraryError(
        f"none of the {n} media file{'s' if n != 1 else ''} in {root} could be read: {listed}",
        hint="the files are corrupt, truncated or empty: copy them again from the camera or "
             "their source, or point --library at the folder of good copies")


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


def _load_kept(folder: Path, con, meta: dict, plan: Plan, full: bool = False) -> dict[str, _Entry]:
    """The stored shots and vectors of the unchanged files ({} if the vectors are unreadable);
    of a large index, unless ``full``, only their records (shots and vectors stay stored)."""
    from .largevectors import open_committed
    from .vectors import VectorIndex

    files = store.read_files(con)
    large = meta.get("vector_index") == "ivfpq"
    if large and not full:
        counts = store.shot_counts(con)
        return {p: _Entry({**files[p], "mtime_ns": plan.touched.get(p, files[p]["mtime_ns"])},
                          [], [], None, stored=counts.get(p, 0)) for p in sorted(plan.kept_paths)}
    try:
        vectors = (open_committed(folder, meta["vectors"]) if large
                   else VectorIndex.load(folder / meta["vectors"]))
    except (RuntimeError, OSError, ValueError) as exc:
        logger.warning("the vectors in %s are unreadable (%s); re-indexing everything", folder, exc)
        return {}
    if len(vectors) != meta.get("rows"):
        logger.warning("the vectors in %s do not match its shots; re-indexing everything", folder)
        return {}
    if not large:
        vectors = vectors.vectors()
    kept: dict[str, _Entry] = {}
    for path in sorted(plan.kept_paths):
        stored = store.shots_of(con, path)
        rows = [r for r, _, _ in stored]
        record = {**files[path], "mtime_ns": plan.touched.get(path, files[path]["mtime_ns"])}
        found = store.moments_by_rows(con, rows)
        kept[path] = _Entry(record, [shot_from_dict(d) for _, d, _ in stored],
                            [t for _, _, t in stored],
                            vectors.rows(rows) if large else vectors[rows],
                            {n: found[r] for n, r in enumerate(rows) if r in found})
    return kept


# -- running ------------------------------------------------------------------------------------
class _Run:
    """One indexing run: analysis results in, embedded entries out, checkpoints committed."""

    def __init__(self, root, folder, con, emb, settings, kept, plan, checkpoint_s,
                 vectors: str = "auto"):
        self.root, self.folder, self.con, self.emb = root, folder, con, emb
        self.settings, self.kept, self.plan = settings, kept, plan
        self.checkpoint_s = checkpoint_s
        self.vectors_mode = vectors
        self._large = None  # the large index being appended to (opened at the first commit)
        self._appended: set[str] = set()  # fresh files already in the large index
        self.fresh: dict[str, _Entry] = {}
        self.skipped: dict[str, dict] = dict(plan.skipped)
        self.footage_seconds = 0.0
        self._committed_at = time.monotonic()
        self._commit_cost = 0.0  # seconds the last commit took (an HNSW build can take minutes)
        self._media = {m.path: m for m in plan.to_index}
        self._lemmas = LabelLemmas.open()  # kept label lemmas: spaCy loads only for new ones

    def go(self, progress: bool, workers: int | None, on_file) -> None:
        from tqdm import tqdm

        from retrieval.analysis.workers import analyse_all, default_workers

        todo = self.plan.to_index
        n_workers = default_workers(len(todo)) if workers is None else workers
        previous_threads = None
        if todo:
            from retrieval.embed.base import set_torch_threads

            if n_workers == 0:
                from retrieval.analysis.analyse import check_models

                check_models()  # a missing model fails here, before the first file
            cores = os.cpu_count() or 1
            previous_threads = set_torch_threads(max(1, cores - n_workers))
        bar = tqdm(total=len(todo), desc="indexing", unit="file", file=sys.stderr,
                   disable=not progress or not todo, dynamic_ncols=True)
        waiting: list[FileAnalysis] = []
        done = 0
        # models load beside the workers (one frame analysed as the run will), the workers' are
        # checked there (a missing one fails at the first batch, not per file); not beside
        # in-process analysis, which shares the people models (LiteRT is not thread-safe)
        one = partial(self._analyse, texts=[""], hints=[(("a person", 1.0),)],
                      facts=[PeopleFacts()])
        warm = (WarmModels(one, nlp=not self._lemmas.kept, check=True)
                if todo and n_workers > 0 else None)

        def finished(path: str) -> None:
            nonlocal done
            done += 1
            bar.update(1)
            if on_file:
                on_file(path, done, len(todo))

        try:
            jobs = analyse_all(self.root, [(m.path, m.kind) for m in todo], self.settings,
                               n_workers, before_local=warm.wait if warm else None)
            for analysis in jobs:
                bar.set_postfix_str(analysis.path[-40:], refresh=False)
                if analysis.error:
                    self._skip(analysis)
                    finished(analysis.path)
                    continue
                waiting.append(analysis)
                if sum(len(a.frames) for a in waiting) >= EMBED_BATCH:
                    if warm:
                        warm.join()
                    for path in self._embed(waiting):
                        finished(path)
                    waiting = []
                    due = max(self.checkpoint_s, 5 * self._commit_cost)  # commits: <= 1/6 of the time
                    if time.monotonic() - self._committed_at >= due:
                        self.commit(final=False)
            if warm and waiting:
                warm.join()
            for path in self._embed(waiting):
                finished(path)
            waiting = []
        except BaseException:
            bar.close()
            if self.fresh or self.skipped:
                logger.warning("indexing interrupted: keeping the %d files finished so far",
                               len(self.fresh))
                self.commit(final=False)
            raise
        finally:
            if previous_threads is not None:
                from retrieval.embed.base import set_torch_threads

                set_torch_threads(previous_threads)
        bar.close()
        self.commit()

    def _skip(self, a: FileAnalysis) -> None:
        logger.warning("skipped %s: %s", a.path, a.error)
        # stored relative to the root, as every path in the index (the library may move)
        reason = a.error.replace(f"{self.root}{os.sep}", "")
        self.skipped[a.path] = {**self._file_record(self._media[a.path]), "reason": reason}

    def _file_record(self, m: MediaFile) -> dict:
        try:
            sha = content_hash(self.root / m.path, m.size)
        except OSError:
            sha = ""
        return {"kind": m.kind, "size": m.size, "mtime_ns": m.mtime_ns, "sha1": sha,
                "text_sig": text_sig(self.plan.texts[m.path]), "seconds": 0.0, "reason": ""}

    def _analyse(self, frames: list[np.ndarray], texts: list[str], hints: list, facts: list):
        return analyse_with(self.emb, frames, texts, hints, facts)

    def _embed(self, batch: list[FileAnalysis]) -> list[str]:
        """Embed the keyframes of ``batch`` in one model call; returns the finished paths."""
        if not batch:
            return []
        frames, texts, hints, facts, owners = [], [], [], [], []
        for a in batch:
            text = self.plan.texts[a.path]
            for shot_n, rows in enumerate(a.groups):
                for r in rows:
                    frames.append(a.frames[r])
                    texts.append(text)
                    hints.append(people_hints(a.features[shot_n]))
                    facts.append(a.facts[r])
                    owners.append((a.path, shot_n, a.times[r]))
        analysis = self._analyse(frames, texts, hints, facts)
        finished = []
        for a in batch:
            idx = [i for i, o in enumerate(owners) if o[0] == a.path]
            words = footage_words(self.plan.texts[a.path])
            shots, terms, vectors, moments = [], [], [], {}
            for shot_n, ((start, end), feats) in enumerate(zip(a.spans, a.features)):
                rows = [i for i in idx if owners[i][1] == shot_n]
                vectors.append(analysis.vectors[rows].mean(axis=0))
                if a.kind == "video" and len(rows) > 1 and end - start >= MOMENT_MIN_SECONDS:
                    moments[shot_n] = (tuple(owners[i][2] for i in rows),
                                       normalise(analysis.vectors[rows]))
                labels = merge_labels([analysis.labels[r] for r in rows],
                                      people_words(feats) + [w for w in words])
                shot = LibraryShot(id=f"{a.path}#{shot_n}", path=a.path, kind=a.kind,
                                   start=round(start, 4), end=round(end, 4), width=int(a.width),
                                   height=int(a.height), fps=float(a.fps), labels=labels,
                                   features=feats)
                shots.append(shot)
                terms.append(self._lemmas.terms(labels))
            record = {**self._file_record(self._media[a.path]), "seconds": round(a.seconds, 3)}
            self.fresh[a.path] = _Entry(record, shots, terms, normalise(np.stack(vectors)),
                                        moments)
            self.skipped.pop(a.path, None)
            self.footage_seconds += a.seconds
            finished.append(a.path)
        self._lemmas.save()  # only when a label was new
        return finished

    def commit(self, final: bool = True) -> None:
        """Write the vectors, then swap the SQLite state in one transaction (a large index:
        append the new files' rows and change only their shots, see :mod:`.largevectors`)."""
        from .largevectors import build, choose_kind, new_manifest_name, remove_stale
        from .vectors import VectorIndex

        started = time.monotonic()
        old = store.read_meta(self.con)
        entries: dict[str, _Entry] = {**self.kept, **self.fresh}
        shots = sum(len(e.shots) or e.stored for e in entries.values())
        kind = choose_kind(self.vectors_mode, shots, old.get("vector_index"))
        same = (old.get("version"), old.get("embedder"), old.get("settings"), old.get("dim")) == (
            INDEX_VERSION, self.emb.name, self.settings.as_dict(), int(self.emb.dim))
        if kind == "large" and same and old.get("vector_index") == "ivfpq" and \
                (self.folder / str(old.get("vectors"))).is_file():
            self._append(old, final)
            self._committed_at = time.monotonic()
            self._commit_cost = self._committed_at - started
            return
        if any(e.vectors is None for e in self.kept.values()):  # leaving a large index
            self.kept = _load_kept(self.folder, self.con, old, self.plan, full=True)
            entries = {**self.kept, **self.fresh}
        paths = sorted(entries)
        dim = int(self.emb.dim)
        stacked = (np.concatenate([entries[p].vectors for p in paths]) if paths
                   else np.zeros((0, dim), np.float32))
        if kind == "large" and len(stacked):
            vectors = build(self.folder, stacked)
            name = new_manifest_name(vectors)
        else:
            vectors = VectorIndex(dim, stacked, kind="auto")
            name = f"vectors-{uuid.uuid4().hex[:12]}.faiss"
            vectors.save(self.folder / name)
        self._appended = set(self.fresh)
        rows, files, moments = [], {}, []
        row = 0
        for p in paths:
            e = entries[p]
            files[p] = {k: e.record[k] for k in ("kind", "size", "mtime_ns", "sha1", "text_sig",
                                                   "seconds", "reason")}
            for n, (shot, terms) in enumerate(zip(e.shots, e.terms)):
                rows.append((row, shot, terms))
                if e.moments and n in e.moments:
                    moments.append((row, e.moments[n]))
                row += 1
        for p, rec in self.skipped.items():
            files[p] = _file_row(rec)
        meta = {"version": INDEX_VERSION, "embedder": self.emb.name, "dim": dim,
                "settings": self.settings.as_dict(), "vectors": name, "rows": row,
                "vector_index": vectors.kind, "complete": final}
        store.replace_all(self.con, meta, files, rows, moments)
        remove_stale(self.folder, name)
        (self.folder / store.LEGACY_MANIFEST).unlink(missing_ok=True)
        self._committed_at = time.monotonic()
        self._commit_cost = self._committed_at - started

    def _append(self, old: dict, final: bool) -> None:
        """A commit onto the large index: new files appended, changed and dropped ones'
        shots tombstoned, the unchanged ones left where they are."""
        from .largevectors import commit_changes, open_committed

        if self._large is None:  # (again after a failed commit: its appends are not committed)
            self._large = open_committed(self.folder, old["vectors"])
        in_store = set(store.shot_counts(self.con))
        new = [p for p in sorted(self.fresh) if p not in self._appended]
        drop = {p for p in in_store if p not in self.kept and p not in self._appended}
        files = {p: self.fresh[p].record for p in new}
        files.update({p: self.kept[p].record for p in self.plan.touched if p in self.kept})
        files.update(self.skipped)
        files = {p: _file_row(r) for p, r in files.items()}
        drop |= {p for p in store.read_files(self.con) if p not in files and p not in self.kept
                 and p not in self._appended}  # dropped files and their records
        meta = {**old, "complete": final}
        try:
            self._large = commit_changes(self.con, self.folder, self._large, meta, drop=drop,
                                         files=files, entries=[self.fresh[p] for p in new],
                                         compact_now=final)
        except BaseException:
            self._large = None
            raise
        self._appended |= set(new)


def _file_row(rec: dict) -> dict:
    """A file record as the files table stores it (a skipped file's may lack fields)."""
    return {k: rec.get(k, d) for k, d in (("kind", ""), ("size", 0), ("mtime_ns", 0),
            ("sha1", ""), ("text_sig", ""), ("seconds", 0.0), ("reason", "?"))}


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

