"""One indexing run: analyses in, embedded entries out, checkpoints committed.

The analyses come from the worker processes (which decode) or, for a file whose keyframes the
index already keeps (:mod:`retrieval.index.keyframes`: the same content, the same shot
settings, another embedder), from the store: those files are only embedded, first, while no
worker is needed. What the workers analyse is stored for the next embedder. Used by
:mod:`retrieval.index.build` and the Ray engine.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from itertools import chain
import os
import sys
import time
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from retrieval.analysis.analyse import FileAnalysis
from retrieval.analysis.people import PeopleFacts
from retrieval.embed.base import analyse_with, normalise
from retrieval.embed.keywords import LabelLemmas
from retrieval.embed.labels import merge_labels, people_hints, people_words
from retrieval.embed.warm import WarmModels
from retrieval.media.library import (MediaFile, footage_words, readers_signature, skip_level,
                                     split_reason)
from retrieval.types import LibraryShot, shot_from_dict
from . import calibration, store
from .changes import Plan, content_hash, text_sig
from .keyframes import KeyframeStore

logger = logging.getLogger(__name__)

INDEX_VERSION = 2  # 1: index.json + FAISS (montage 0.1); 2: SQLite + FAISS, shot features
EMBED_BATCH = 32  # keyframes per embedder call
# shots at least this long keep their keyframe vectors (moments): in a shorter one any trim
# covers most of it, so knowing where the query is met would not move the trim much
MOMENT_MIN_SECONDS = 3.0


@dataclass
class _Entry:
    """One file's part of the index while building: its record, shots, terms and vectors."""

    record: dict
    shots: list[LibraryShot]
    terms: list[list[str]]
    vectors: np.ndarray
    moments: dict[int, store.Moments] | None = None  # shot number -> keyframe times, vectors
    stored: int = 0  # a large index's unchanged file: shots left in the store, not loaded


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
        # (a Ray worker's run only embeds, and has no index folder)
        self.keyframes = KeyframeStore(folder, settings.as_dict()) if folder is not None else None
        self._sha: dict[str, str] = {}  # path -> content hash, computed once
        self.reembedded = 0  # files embedded from stored keyframes, without decoding
        self._probes: np.ndarray | None = None  # the calibration's probe vectors, once a run

    def content(self, m: MediaFile) -> str:
        if m.path not in self._sha:
            try:
                self._sha[m.path] = content_hash(self.root / m.path, m.size)
            except OSError:
                self._sha[m.path] = ""
        return self._sha[m.path]

    def _from_store(self, stored: list[MediaFile], local) -> Iterator[FileAnalysis]:
        """The stored analyses of ``stored`` (a damaged one is analysed again here, after
        ``local()``)."""
        from retrieval.analysis.analyse import analyse_file

        for m in stored:
            a = self.keyframes.load(m.path, self.content(m), m.size)
            if a is None:
                local()
                a = analyse_file(str(self.root), m.path, m.kind, self.settings)
                self.keyframes.save(a, self.content(m), m.size)
            else:
                self.reembedded += 1
            yield a

    def go(self, progress: bool, workers: int | None, on_file) -> None:
        from tqdm import tqdm

        from retrieval.analysis.workers import analyse_all, default_workers

        todo = self.plan.to_index
        stored = [m for m in todo if self.keyframes.has(self.content(m), m.size)]
        from_store = {m.path for m in stored}
        decode = [m for m in todo if m.path not in from_store]
        n_workers = (default_workers(len(decode)) if workers is None else workers) if decode else 0
        previous_threads = None
        if todo:
            from retrieval.embed.base import set_torch_threads

            if n_workers == 0 and decode:
                from retrieval.analysis.analyse import check_models

                check_models()  # a missing model fails here, before the first file
            cores = os.cpu_count() or 1
            previous_threads = set_torch_threads(max(1, cores - n_workers))
        bar = tqdm(total=len(todo), desc="indexing" if decode else "re-embedding", unit="file",
                   file=sys.stderr, disable=not progress or not todo, dynamic_ncols=True)
        waiting: list[FileAnalysis] = []
        done = 0
        # models load beside the workers (one frame analysed as the run will), the workers' are
        # checked there (a missing one fails at the first batch, not per file); not beside
        # in-process analysis, which shares the people models (LiteRT is not thread-safe)
        one = partial(self._analyse, texts=[""], hints=[(("a person", 1.0),)],
                      facts=[PeopleFacts()])
        warm = (WarmModels(one, nlp=not self._lemmas.kept, check=True)
                if decode and n_workers > 0 else None)

        def finished(path: str) -> None:
            nonlocal done
            done += 1
            bar.update(1)
            if on_file:
                on_file(path, done, len(todo))

        try:
            local = warm.wait if warm else (lambda: None)
            jobs = chain(self._from_store(stored, local),
                         analyse_all(self.root, [(m.path, m.kind) for m in decode], self.settings,
                                     n_workers, before_local=local))
            for analysis in jobs:
                bar.set_postfix_str(analysis.path[-40:], refresh=False)
                if not analysis.error and analysis.path not in from_store:
                    m = self._media[analysis.path]  # decoded now: kept for the next embedder
                    self.keyframes.save(analysis, self.content(m), m.size)
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
            self.keyframes.flush()
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
        self.keyframes.flush()
        self.commit()

    def _skip(self, a: FileAnalysis) -> None:
        logger.log(skip_level(split_reason(a.reason)[0]), "skipped %s: %s", a.path, a.reason)
        # stored relative to the root, as every path in the index (the library may move)
        reason = a.reason.replace(f"{self.root}{os.sep}", "")
        self.skipped[a.path] = {**self._file_record(self._media[a.path]), "reason": reason}

    def _file_record(self, m: MediaFile) -> dict:
        return {"kind": m.kind, "size": m.size, "mtime_ns": m.mtime_ns, "sha1": self.content(m),
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
            record = {**self._file_record(self._media[a.path]), "seconds": round(a.seconds, 3),
                      "kind": a.kind}  # a file whose content decided: what it was found to be
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

        old = store.read_meta(self.con)
        previous, self._probes = calibration.prepare(self.folder, old, self.emb, self._probes)
        started = time.monotonic()  # (the probes, embedded once a run at most, not counted)
        committed = set(self._appended)  # fresh files an earlier commit of this run wrote
        entries: dict[str, _Entry] = {**self.kept, **self.fresh}
        shots = sum(len(e.shots) or e.stored for e in entries.values())
        kind = choose_kind(self.vectors_mode, shots, old.get("vector_index"))
        same = (old.get("version"), old.get("embedder"), old.get("settings"), old.get("dim")) == (
            INDEX_VERSION, self.emb.name, self.settings.as_dict(), int(self.emb.dim))
        if kind == "large" and same and old.get("vector_index") == "ivfpq" and \
                (self.folder / str(old.get("vectors"))).is_file():
            self._append(old, final, previous)
            self._committed_at = time.monotonic()
            self._commit_cost = self._committed_at - started
            if final:
                self._tidy_keyframes()
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
        was = set(store.shot_counts(self.con))
        same_rows = was & (set(self.kept) | committed)  # in the old state, unchanged
        meta = {"version": INDEX_VERSION, "embedder": self.emb.name, "dim": dim,
                "settings": self.settings.as_dict(), "vectors": name, "rows": row,
                "vector_index": vectors.kind, "complete": final, "readers": readers_signature(),
                "calibration": calibration.commit(
                    self.folder, previous, self._probes, self.emb.name, dim,
                    search=vectors.search, vectors=name,
                    added=_stored(vectors, _stack([entries[p].vectors for p in paths
                                                   if p not in same_rows], dim)),
                    removed=lambda: calibration.old_rows(self.folder, self.con, old,
                                                         was - same_rows, dim),
                    every_row=lambda: [_stored(vectors, stacked)])}
        store.replace_all(self.con, meta, files, rows, moments)
        remove_stale(self.folder, name)
        calibration.remove_stale(self.folder, meta["calibration"])
        (self.folder / store.LEGACY_MANIFEST).unlink(missing_ok=True)
        self._committed_at = time.monotonic()
        self._commit_cost = self._committed_at - started
        if final:
            self._tidy_keyframes()

    def _tidy_keyframes(self) -> None:
        """Keep the stored keyframes of the library's files as they are now, no others."""
        records = [e.record for e in {**self.kept, **self.fresh}.values()]
        self.keyframes.keep_only({self.keyframes.key(r["sha1"], r["size"])
                                  for r in records if r.get("sha1")})

    def _append(self, old: dict, final: bool, previous) -> None:
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
        meta = {**old, "complete": final, "readers": readers_signature()}
        added = _stored(self._large, _stack([self.fresh[p].vectors for p in new],
                                            int(self.emb.dim)))

        def calibrate(large, gone: list[int], vectors: str) -> dict:
            return {"calibration": calibration.commit(
                self.folder, previous, self._probes, self.emb.name, int(self.emb.dim),
                added=added, search=large.search,
                removed=lambda: large.rows(gone), vectors=vectors,
                every_row=lambda: (large.rows(large.live_ids()[a : a + calibration.CHUNK])
                                   for a in range(0, len(large), calibration.CHUNK)))}
        try:
            self._large = commit_changes(self.con, self.folder, self._large, meta, drop=drop,
                                         files=files, entries=[self.fresh[p] for p in new],
                                         compact_now=final, calibrate=calibrate)
        except BaseException:
            self._large = None
            raise
        calibration.remove_stale(self.folder, store.read_meta(self.con).get("calibration"))
        self._appended |= set(new)


def _stack(parts: list[np.ndarray], dim: int) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)


def _stored(vectors, rows: np.ndarray) -> np.ndarray:
    """``rows`` as ``vectors`` keeps them: a large index stores float16, so the calibration
    adds what a later removal will subtract."""
    return rows.astype(np.float16).astype(np.float32) if vectors.kind == "ivfpq" else rows


def _file_row(rec: dict) -> dict:
    """A file record as the files table stores it (a skipped file's may lack fields)."""
    return {k: rec.get(k, d) for k, d in (("kind", ""), ("size", 0), ("mtime_ns", 0),
            ("sha1", ""), ("text_sig", ""), ("seconds", 0.0), ("reason", "?"))}
