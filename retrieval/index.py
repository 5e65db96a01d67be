"""Build and open the footage index kept beside the library, in ``<root>/.montage/``.

``index.json`` lists every media file (size, mtime, content hash, its shots and their vector
rows) and names the vectors file. Re-indexing reuses the vectors of unchanged files, so only new
or edited footage is decoded and embedded; a crash mid-write leaves the previous index usable
because the vectors go to a new file and the manifest is replaced last, atomically.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from planner.errors import LibraryError, MediaError

from .detect import DEFAULT_MIN_SHOT, DEFAULT_THRESHOLD, detect_shots
from .embed import Embedder, canonical_name, make_embedder, normalise
from .library import INDEX_DIR, MediaFile, check_root, find_media, footage_text, footage_words, sidecar_path
from .media import probe, read_frames, read_still
from .search import rank_hits
from .types import Hit, LibraryShot, shot_from_dict
from .vectors import VectorIndex

logger = logging.getLogger(__name__)

INDEX_VERSION = 1
MANIFEST = "index.json"
# Where in a shot its frames are embedded (fractions of its span): three for a long shot, two
# for a short one, the middle for a flash.
KEYFRAMES = (0.25, 0.5, 0.75)
SHORT_KEYFRAMES = (1 / 3, 2 / 3)
SHORT_SHOT = 1.5  # seconds
MAX_VISUAL_LABELS = 5
_HASH_CHUNK = 1 << 20


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


def index_dir(root: Path) -> Path:
    return Path(root) / INDEX_DIR


def build_index(root: Path, embedder: str | Embedder = "proxy", *, progress: bool = True,
                threshold: float = DEFAULT_THRESHOLD, min_shot: float = DEFAULT_MIN_SHOT,
                **embedder_options) -> IndexReport:
    """Index (or update the index of) the footage under ``root``; see the module docstring.

    ``embedder`` is a name for :func:`make_embedder` (``embedder_options`` go to it) or a built
    embedder. A corrupt file is skipped with a WARNING and listed in the report.
    """
    started = time.perf_counter()
    root = check_root(root)
    media = find_media(root)
    emb = make_embedder(embedder, **embedder_options) if isinstance(embedder, str) else embedder
    settings = {"threshold": threshold, "min_shot": min_shot,
                "keyframes": [list(KEYFRAMES), list(SHORT_KEYFRAMES), SHORT_SHOT]}
    old = _usable_previous(root, emb.name, settings)
    old_files: dict = old["files"] if old else {}
    old_skipped: dict = old["skipped"] if old else {}

    records: dict[str, dict] = {}  # path -> manifest record, for reused files
    skipped: dict[str, dict] = {}
    to_index: list[tuple[MediaFile, dict | None]] = []
    touched = False  # manifest metadata changed without new vectors
    for m in media:
        side = _sidecar_sig(root, m.path)
        prev = old_files.get(m.path) or old_skipped.get(m.path)
        same = _unchanged(root, m, side, prev)
        if same is None:
            to_index.append((m, side))
            continue
        touched |= same
        rec = {**prev, "size": m.size, "mtime_ns": m.mtime_ns}
        if m.path in old_skipped:
            skipped[m.path] = rec
            logger.warning("skipped %s (unchanged since it failed): %s", m.path, rec["reason"])
        else:
            records[m.path] = rec
    present = {m.path for m in media}
    dropped = [p for p in list(old_files) + list(old_skipped) if p not in present]
    for p in dropped:
        logger.info("dropped from the index (file gone): %s", p)

    vectors_there = bool(old) and (index_dir(root) / str(old.get("vectors"))).is_file()
    if old and not to_index and not dropped and not touched and vectors_there:
        return _report(media, 0, records, skipped, started, emb.name)

    old_vectors = _old_vectors(root, old) if old and records else None
    if old and records and old_vectors is None:
        return _build_fresh(root, emb, progress, threshold, min_shot)

    fresh: dict[str, tuple[list[LibraryShot], np.ndarray]] = {}
    _index_files(root, to_index, emb, settings, records, skipped, fresh, progress)

    if not to_index and not dropped and old and vectors_there:
        _write(root, emb, settings, records, skipped, old["vectors"], None)
    else:
        _write(root, emb, settings, records, skipped, None, (old_vectors, fresh))
    return _report(media, len(fresh), records, skipped, started, emb.name)


def _build_fresh(root, emb, progress, threshold, min_shot) -> IndexReport:
    """Re-index everything (the previous vectors are unreadable)."""
    logger.warning("the previous vectors in %s are unreadable; re-indexing everything", index_dir(root))
    _remove_manifest(root)
    return build_index(root, emb, progress=progress, threshold=threshold, min_shot=min_shot)


def _index_files(root, to_index, emb, settings, records, skipped, fresh, progress) -> None:
    from tqdm import tqdm

    bar = tqdm(total=len(to_index), desc="indexing", unit="file", file=sys.stderr,
               disable=not progress or not to_index, dynamic_ncols=True)
    try:
        for m, side in to_index:
            bar.set_postfix_str(m.path[-40:], refresh=False)
            base = {"kind": m.kind, "size": m.size, "mtime_ns": m.mtime_ns, "sha1": "",
                    "sidecar": side}
            try:
                base["sha1"] = _content_hash(root / m.path, m.size)
                shots, vectors = _index_file(root, m, emb, settings)
            except (MediaError, OSError) as exc:
                reason = exc.message if isinstance(exc, MediaError) else str(exc)
                logger.warning("skipped %s: %s", m.path, reason)
                skipped[m.path] = {**base, "reason": reason}
            else:
                records[m.path] = {**base, "shots": [asdict(s) for s in shots]}
                fresh[m.path] = (shots, vectors)
            bar.update(1)
    finally:
        bar.close()


def _index_file(root: Path, m: MediaFile, emb: Embedder, settings: dict):
    """The shots of one file and one vector per shot (keyframe vectors averaged)."""
    path = root / m.path
    text = footage_text(root, m.path)
    words = footage_words(text)
    if m.kind == "still":
        frames = [read_still(path)]
        height, width = frames[0].shape[:2]
        spans, fps, groups = [(0.0, 0.0)], 0.0, [[0]]
    else:
        info = probe(path)
        width, height, fps = info.width, info.height, info.fps
        spans = detect_shots(path, threshold=settings["threshold"], min_shot=settings["min_shot"])
        times, groups = [], []
        for a, b in spans:
            picks = [a + f * (b - a) for f in _keyframes(b - a)]
            groups.append(list(range(len(times), len(times) + len(picks))))
            times += picks
        frames = read_frames(path, times)
    analysis = emb.analyse(frames, [text] * len(frames))
    shots, vectors = [], []
    for n, ((a, b), rows) in enumerate(zip(spans, groups)):
        vectors.append(analysis.vectors[rows].mean(axis=0))
        labels = _merge_labels([analysis.labels[r] for r in rows], words)
        shots.append(LibraryShot(id=f"{m.path}#{n}", path=m.path, kind=m.kind, start=round(a, 4),
                                 end=round(b, 4), width=int(width), height=int(height),
                                 fps=float(fps), labels=labels))
    return shots, normalise(np.stack(vectors))


def _keyframes(duration: float) -> tuple[float, ...]:
    if duration >= SHORT_SHOT:
        return KEYFRAMES
    return SHORT_KEYFRAMES if duration >= 0.2 else (0.5,)


def _merge_labels(per_frame: list[tuple[str, ...]], words: list[str]) -> tuple[str, ...]:
    """The labels most keyframes agree on (best rank first), then the footage's own words."""
    score: dict[str, float] = {}
    for labels in per_frame:
        for rank, label in enumerate(labels):
            score[label] = score.get(label, 0.0) + 1.0 / (rank + 1)
    visual = sorted(score, key=lambda k: -score[k])[:MAX_VISUAL_LABELS]
    return tuple(visual + [w for w in words if w not in visual])


# -- change detection -------------------------------------------------------------------------
def _sidecar_sig(root: Path, rel: str) -> list[int] | None:
    side = sidecar_path(root, rel)
    if side is None:
        return None
    st = side.stat()
    return [st.st_size, st.st_mtime_ns]


def _unchanged(root: Path, m: MediaFile, side, prev: dict | None) -> bool | None:
    """None: (re-)index it. False: unchanged. True: unchanged content, new mtime to record."""
    if prev is None or prev.get("size") != m.size or prev.get("sidecar") != side:
        return None
    if prev.get("mtime_ns") == m.mtime_ns:
        return False
    # Touched or copied: the content hash decides (git-style), so an unchanged file is reused.
    return True if prev.get("sha1") == _content_hash(root / m.path, m.size) else None


def _content_hash(path: Path, size: int) -> str:
    """sha1 of the size plus the first and last MiB (the whole file when small)."""
    h = hashlib.sha1(str(size).encode())
    with open(path, "rb") as fh:
        h.update(fh.read(_HASH_CHUNK))
        if size > 2 * _HASH_CHUNK:
            fh.seek(size - _HASH_CHUNK)
        h.update(fh.read(_HASH_CHUNK))
    return h.hexdigest()


# -- reading and writing the index ------------------------------------------------------------
def _read_manifest(root: Path) -> dict | None:
    path = index_dir(root) / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data
    except (OSError, ValueError) as exc:
        raise LibraryError(
            f"the footage index {path} is unreadable: {exc}",
            hint=f"run `montage index {root}` to rebuild it",
        ) from exc


def _usable_previous(root: Path, name: str, settings: dict) -> dict | None:
    """The previous manifest if its vectors can be reused with this embedder and settings."""
    try:
        old = _read_manifest(root)
    except LibraryError as exc:
        logger.warning("%s; rebuilding it", exc.message)
        return None
    if old is None:
        return None
    if old.get("version") != INDEX_VERSION:
        logger.warning("index format %s is not the current %s; rebuilding",
                       old.get("version"), INDEX_VERSION)
        return None
    if old.get("embedder") != name:
        logger.warning("index was built with embedder %s; rebuilding it with %s",
                       old.get("embedder"), name)
        return None
    if old.get("settings") != settings:
        logger.warning("index was built with other shot settings; rebuilding")
        return None
    return old


def _old_vectors(root: Path, old: dict) -> np.ndarray | None:
    try:
        vectors = VectorIndex.load(index_dir(root) / old["vectors"]).vectors()
    except (KeyError, RuntimeError, OSError):
        return None
    return vectors if len(vectors) == old.get("rows") else None


def _write(root, emb, settings, records, skipped, vectors_name, vector_parts) -> None:
    """Write the vectors (unless reused) then replace the manifest; old vectors removed last."""
    folder = index_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[np.ndarray] = []
    row = 0
    for path in sorted(records):
        rec = records[path]
        n = len(rec["shots"])
        if vector_parts is not None:
            old_vectors, fresh = vector_parts
            rows.append(fresh[path][1] if path in fresh
                        else old_vectors[rec["first_row"] : rec["first_row"] + n])
        rec["first_row"] = row
        row += n
    if vector_parts is not None:
        vectors_name = f"vectors-{uuid.uuid4().hex[:12]}.faiss"
        stacked = np.concatenate(rows) if rows else np.zeros((0, emb.dim), np.float32)
        VectorIndex(emb.dim, stacked).save(folder / vectors_name)
    manifest = {
        "version": INDEX_VERSION, "embedder": emb.name, "dim": int(emb.dim),
        "settings": settings, "vectors": vectors_name, "rows": row,
        "files": {p: records[p] for p in sorted(records)},
        "skipped": {p: skipped[p] for p in sorted(skipped)},
    }
    tmp = folder / f".{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)
    for stale in folder.glob("vectors-*.faiss"):
        if stale.name != vectors_name:
            stale.unlink(missing_ok=True)


def _remove_manifest(root: Path) -> None:
    (index_dir(root) / MANIFEST).unlink(missing_ok=True)


def _report(media, indexed, records, skipped, started, name) -> IndexReport:
    return IndexReport(
        files_total=len(media), files_indexed=indexed,
        files_reused=len(media) - indexed - len(skipped),
        files_skipped=tuple((p, skipped[p]["reason"]) for p in sorted(skipped)),
        shots=sum(len(r["shots"]) for r in records.values()),
        seconds=round(time.perf_counter() - started, 3), embedder=name,
    )


# -- searching --------------------------------------------------------------------------------
class FootageIndex:
    """An opened index: the library's shots (row order) and their vectors, loaded once."""

    def __init__(self, root: Path, embedder_name: str, shots: tuple[LibraryShot, ...],
                 vectors: VectorIndex) -> None:
        self.root = Path(root)
        self.embedder_name = embedder_name
        self.shots = shots
        self.vectors = vectors
        self._embedder: Embedder | None = None

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

    def search(self, queries: list[str], top: int = 5,
               embedder: str | Embedder | None = None) -> list[list[Hit]]:
        """The ``top`` best shots for each query (one batched query-embedding call)."""
        emb = self.embedder(embedder)
        if not queries:
            return []
        query_vectors = emb.embed_queries(list(queries))
        return rank_hits(self.shots, self.vectors, list(queries), query_vectors, top)


def open_index(root: Path) -> FootageIndex:
    """Load the index of ``root``; a LibraryError says to run ``montage index`` if there is none."""
    root = check_root(root)
    manifest = _read_manifest(root)
    rebuild = f"run `montage index {root}`"
    if manifest is None:
        raise LibraryError(f"the footage library {root} has no index yet", hint=rebuild)
    if manifest.get("version") != INDEX_VERSION:
        raise LibraryError(
            f"the index of {root} has format {manifest.get('version')}, this montage reads "
            f"{INDEX_VERSION}", hint=rebuild + " to rebuild it")
    try:
        shots = tuple(
            shot_from_dict(s)
            for p in sorted(manifest["files"]) for s in manifest["files"][p]["shots"]
        )
        vectors = VectorIndex.load(index_dir(root) / manifest["vectors"])
    except (KeyError, TypeError, RuntimeError, OSError) as exc:
        raise LibraryError(f"the index of {root} is damaged ({exc})", hint=rebuild) from exc
    if len(vectors) != len(shots):
        raise LibraryError(
            f"the index of {root} is damaged: {len(shots)} shots but {len(vectors)} vectors",
            hint=rebuild)
    return FootageIndex(root, manifest["embedder"], shots, vectors)
