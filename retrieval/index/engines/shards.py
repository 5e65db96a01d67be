"""One analysed, embedded file as a shard on disk, keyed by its content hash.

A distributed run writes each finished file to ``INDEX/shards/<sha1>-<sig>.npz`` as soon as its
result comes back, before anything is merged: an interrupted or partly failed run leaves the
finished files there, and the next run takes them instead of analysing the files again.
``<sha1>`` is the file's content hash (:func:`retrieval.index.changes.content_hash`); ``<sig>`` covers
what else decides the result (the path, the file's own words, the embedder and the shot
settings), so a shard is only reused for the same file, read the same way. The shard holds
plain data (JSON and arrays, no pickle), written atomically.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from retrieval.types import LibraryShot, shot_from_dict

logger = logging.getLogger(__name__)

SHARD_DIR = "shards"
SHARD_VERSION = 1


@dataclass(frozen=True)
class Shard:
    """What one file adds to the index: its file record, shots, keyword terms, vectors and
    moments (shot number -> keyframe times, unit vectors)."""

    record: dict
    shots: tuple[LibraryShot, ...]
    terms: tuple[tuple[str, ...], ...]
    vectors: np.ndarray  # (shots, dim) float32, unit rows
    moments: dict[int, tuple[tuple[float, ...], np.ndarray]]


def shard_sig(path: str, text_sig: str, embedder: str, settings: dict) -> str:
    """What besides the content decides a file's shard (see the module docstring)."""
    key = json.dumps([SHARD_VERSION, path, text_sig, embedder, settings], sort_keys=True)
    return hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def shard_dir(index_folder: Path) -> Path:
    return Path(index_folder) / SHARD_DIR


def shard_path(index_folder: Path, sha1: str, sig: str) -> Path:
    return shard_dir(index_folder) / f"{sha1}-{sig}.npz"


def sigs_on_disk(index_folder: Path) -> set[str]:
    """The ``sig`` part of every shard present (one directory listing for a whole run)."""
    folder = shard_dir(index_folder)
    if not folder.is_dir():
        return set()
    return {p.stem.rsplit("-", 1)[-1] for p in folder.glob("*.npz")}


def write_shard(index_folder: Path, sig: str, shard: Shard) -> Path:
    """Write ``shard`` under its content hash and ``sig`` (temp file, then rename)."""
    path = shard_path(index_folder, shard.record["sha1"], sig)
    path.parent.mkdir(parents=True, exist_ok=True)
    numbers = sorted(shard.moments)
    meta = {"version": SHARD_VERSION, "record": shard.record,
            "shots": [asdict(s) for s in shard.shots], "terms": [list(t) for t in shard.terms],
            "moments": [[n, list(shard.moments[n][0])] for n in numbers]}
    dim = shard.vectors.shape[1]
    moment_vectors = (np.concatenate([shard.moments[n][1] for n in numbers]) if numbers
                      else np.zeros((0, dim), np.float32))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, meta=np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8),
                 vectors=np.asarray(shard.vectors, np.float32),
                 moment_vectors=np.asarray(moment_vectors, np.float32))
    os.replace(tmp, path)
    return path


def read_shard(path: Path) -> Shard | None:
    """The shard at ``path``; None (with a warning) when it is damaged, so its file is redone."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode("utf-8"))
            vectors = np.array(data["vectors"], np.float32)
            moment_vectors = np.array(data["moment_vectors"], np.float32)
        if meta.get("version") != SHARD_VERSION:
            return None
        shots = tuple(shot_from_dict(d) for d in meta["shots"])
        if len(shots) != len(vectors):
            raise ValueError(f"{len(shots)} shots but {len(vectors)} vectors")
        moments, at = {}, 0
        for n, times in meta["moments"]:
            moments[int(n)] = (tuple(times), moment_vectors[at : at + len(times)])
            at += len(times)
        return Shard(meta["record"], shots, tuple(tuple(t) for t in meta["terms"]), vectors,
                     moments)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("shard %s is unreadable (%s); its file is analysed again", path, exc)
        return None


def remove_shards(index_folder: Path) -> None:
    """Drop every shard once the index holds their files (they would only take disk space)."""
    folder = shard_dir(index_folder)
    if not folder.is_dir():
        return
    for p in folder.iterdir():
        p.unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass


__all__ = ["Shard", "read_shard", "remove_shards", "shard_path", "shard_sig", "sigs_on_disk",
           "write_shard"]
