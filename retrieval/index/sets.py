"""One vector set per embedder in an index folder: the current one on top, the others parked.

A set is an index as :mod:`retrieval.index.store` and the vector stores write it (the SQLite
database, whose meta names its embedder, and its vectors file or folder). The set being built
lives at the top of the index folder, where every reader finds it; indexing with another
embedder first parks it in ``embedders/<key>/`` (two renames) and brings that embedder's set
back if it has one, so switching back costs nothing and vectors of different embedders never
share a set. ``embedders/<key>/`` is also the place for anything else that belongs to one
embedder's vectors in this library (see :func:`embedder_dir`); it stays put when the set moves.
Every move happens under the index lock, before the database is opened.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path

from . import store

logger = logging.getLogger(__name__)

EMBEDDERS = "embedders"
INFO = "embedder.json"


def set_key(name: str) -> str:
    """A folder name for the embedder ``name`` (readable, and unique by its hash)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:48] or "embedder"
    return f"{slug}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def embedder_dir(index_folder: Path, name: str) -> Path:
    """The folder of everything one embedder's vectors own in this index: its parked set while
    another is current, and per-embedder data (for example a score calibration measured on
    this library with that embedder), which stays here whichever set is current."""
    return Path(index_folder) / EMBEDDERS / set_key(name)


def _items(meta: dict) -> list[str]:
    """The entries of a set in its folder: the vectors (a file, or a large index's folder) and
    the library's calibration of them (:mod:`.calibration`), then the database (moved last, so a
    set without its database is never taken for whole)."""
    vectors, cal = str(meta.get("vectors") or ""), str(meta.get("calibration") or "")
    return ([Path(vectors).parts[0]] if vectors else []) + ([cal] if cal else []) + [store.DB_NAME]


def _move(src: Path, dst: Path, meta: dict) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for item in _items(meta):
        if (src / item).exists():
            os.replace(src / item, dst / item)
    (src / (store.DB_NAME + "-journal")).unlink(missing_ok=True)  # rolled back when read


def _whole(folder: Path, meta: dict, name: str | None = None) -> bool:
    return bool(meta) and (name is None or meta.get("embedder") == name) and \
        bool(meta.get("vectors")) and (folder / str(meta["vectors"])).exists()


def park(index_folder: Path) -> str | None:
    """Move the current set into its embedder's folder (replacing an older parked set of the
    same embedder); the embedder parked, or None when there was no whole set to park."""
    folder = Path(index_folder)
    meta = store.probe_meta(folder)  # also rolls back a commit a kill cut short
    if not _whole(folder, meta):
        return None
    name = str(meta["embedder"])
    dest = embedder_dir(folder, name)
    old = store.probe_meta(dest)
    for item in _items(old) if old else [store.DB_NAME]:
        target = dest / item
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    _move(folder, dest, meta)
    info = {"embedder": name, "dim": meta.get("dim"), "rows": meta.get("rows"),
            "parked_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (dest / INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return name


def restore(index_folder: Path, name: str) -> bool:
    """Bring the parked set of ``name`` back on top (the top must be free); whether there was
    a whole one."""
    folder = Path(index_folder)
    src = embedder_dir(folder, name)
    meta = store.probe_meta(src)
    if not _whole(src, meta, name):
        return False
    _move(src, folder, meta)
    return True


def switch(index_folder: Path, name: str) -> str | None:
    """Make ``name``'s set the current one before a build with that embedder: park the
    current set of another embedder and restore ``name``'s if it was parked. Returns the
    embedder parked (None when the current set was already ``name``'s, or there was none)."""
    folder = Path(index_folder)
    current = store.probe_meta(folder)
    if current.get("embedder") == name:
        return None
    parked = park(folder)
    if restore(folder, name):
        logger.info("switched the index of %s to the vectors kept for %s", folder, name)
    return parked


def set_folder(index_folder: Path, name: str) -> Path | None:
    """The folder holding ``name``'s set (the index folder itself when it is current), or None."""
    folder = Path(index_folder)
    if store.probe_meta(folder).get("embedder") == name:
        return folder
    parked = embedder_dir(folder, name)
    return parked if _whole(parked, store.probe_meta(parked), name) else None


def sets(index_folder: Path) -> list[tuple[str, bool]]:
    """(embedder, current) of every set kept in the index folder, the current one first."""
    folder = Path(index_folder)
    out = []
    top = store.probe_meta(folder).get("embedder")
    if top:
        out.append((str(top), True))
    root = folder / EMBEDDERS
    for sub in sorted(root.iterdir()) if root.is_dir() else ():
        meta = store.probe_meta(sub)
        if meta.get("embedder") and _whole(sub, meta):
            out.append((str(meta["embedder"]), False))
    return out


__all__ = ["EMBEDDERS", "embedder_dir", "park", "restore", "set_folder", "set_key", "sets",
           "switch"]
