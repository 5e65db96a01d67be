"""Where a library's index lives: beside the footage, or in the user cache when it is read-only.

A writable library keeps its index in ``LIBRARY/.montage/``. A library on a read-only disk
(a mounted archive, a colleague's share) gets one in ``CACHE/indexes/<name>-<hash of its
absolute path>/``, where CACHE is ``$MONTAGE_CACHE_DIR`` or ``$XDG_CACHE_HOME/montage`` or
``~/.cache/montage``. Writability is tested by creating a file, because permission bits lie
for root; ``MONTAGE_LIBRARY_READONLY=1`` makes every library count as read-only (what the
tests use when they run as root, where a chmod'ed folder stays writable).
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path

from retrieval.embed.base import default_cache_dir
from retrieval.media.library import INDEX_DIR

logger = logging.getLogger(__name__)

READONLY_ENV = "MONTAGE_LIBRARY_READONLY"


def forced_readonly() -> bool:
    return os.environ.get(READONLY_ENV, "").strip().lower() in ("1", "true", "yes")


def is_writable(folder: Path) -> bool:
    """True if a file can be created in ``folder`` (which must exist)."""
    if forced_readonly():
        return False
    try:
        fd, name = tempfile.mkstemp(prefix=".montage-probe-", dir=folder)
    except OSError:
        return False
    os.close(fd)
    try:
        os.unlink(name)
    except OSError:
        pass
    return True


def local_index_dir(root: Path) -> Path:
    return Path(root) / INDEX_DIR


def cache_index_dir(root: Path) -> Path:
    """The user-cache index folder of a library, keyed by its absolute path."""
    absolute = str(Path(root).resolve())
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(absolute).name)[:40] or "root"
    key = hashlib.sha1(absolute.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return default_cache_dir() / "indexes" / f"{slug}-{key}"


def index_dir_for_writing(root: Path) -> Path:
    """The folder a new or updated index of ``root`` goes to (created if needed)."""
    local = local_index_dir(root)
    if is_writable(root) and (not local.exists() or is_writable(local)):
        local.mkdir(exist_ok=True)
        return local
    cached = cache_index_dir(root)
    cached.mkdir(parents=True, exist_ok=True)
    logger.info("library %s is read-only; its index lives in %s", root, cached)
    return cached


def index_dirs_for_reading(root: Path) -> list[Path]:
    """Where to look for the index of ``root``, best first: where it would be written first."""
    local, cached = local_index_dir(root), cache_index_dir(root)
    writable = is_writable(root) and (not local.exists() or is_writable(local))
    return [local, cached] if writable else [cached, local]
