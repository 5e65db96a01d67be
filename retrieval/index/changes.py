"""What changed in a library since its last index: new, edited, touched and deleted files.

A file is analysed again when its size, its content hash (after a new mtime) or its own words
(name, sidecar note, folder tags) changed; a file whose content is the same under a new mtime
is only re-stamped. A skipped file is remembered the same way (a document is probed once); one
whose codec no reader knew is tried again when the readers installed have changed since. The hash reads the first and last MiB, so a check costs little.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from retrieval.media.library import UNSUPPORTED, MediaFile, footage_text, skip_level, split_reason

logger = logging.getLogger(__name__)

_HASH_CHUNK = 1 << 20


@dataclass
class Plan:
    """What an indexing run has to do, file by file."""

    to_index: list[MediaFile]
    kept_paths: set[str]  # unchanged, indexed
    skipped: dict[str, dict]  # unchanged, skipped before (and not retried)
    touched: dict[str, int]  # unchanged content, new mtime
    dropped: list[str]
    texts: dict[str, str]  # path -> footage text, for every present file


def plan_changes(root: Path, media: list[MediaFile], old: dict[str, dict],
                 retry_unsupported: bool = False) -> Plan:
    """Compare the files on disk with ``old`` (path -> stored file record);
    ``retry_unsupported``: the readers changed since, so files skipped for a codec no reader
    knew are tried again."""
    plan = Plan([], set(), {}, {}, [], {})
    for m in media:
        text = footage_text(root, m.path)
        plan.texts[m.path] = text
        prev = old.get(m.path)
        sig = text_sig(text)
        if prev is None or prev["size"] != m.size or prev["text_sig"] != sig or (
                prev["mtime_ns"] != m.mtime_ns and prev["sha1"] != content_hash(root / m.path, m.size)):
            plan.to_index.append(m)
            continue
        if prev["mtime_ns"] != m.mtime_ns:
            plan.touched[m.path] = m.mtime_ns
        why = split_reason(prev["reason"])[0] if prev["reason"] else ""
        if why == UNSUPPORTED and retry_unsupported:
            plan.to_index.append(m)
            continue
        if prev["reason"]:
            plan.skipped[m.path] = {**prev, "mtime_ns": m.mtime_ns}
            logger.log(skip_level(why), "skipped %s (unchanged since it was looked at): %s",
                       m.path, prev["reason"])
        else:
            plan.kept_paths.add(m.path)
    present = {m.path for m in media}
    plan.dropped = sorted(p for p in old if p not in present)
    for p in plan.dropped:
        logger.info("dropped from the index (file gone): %s", p)
    return plan


def text_sig(text: str) -> str:
    """A short fingerprint of a file's own words (name, sidecar, tags)."""
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def content_hash(path: Path, size: int) -> str:
    """sha1 of the size plus the first and last MiB (the whole file when small)."""
    h = hashlib.sha1(str(size).encode())
    with open(path, "rb") as fh:
        h.update(fh.read(_HASH_CHUNK))
        if size > 2 * _HASH_CHUNK:
            fh.seek(size - _HASH_CHUNK)
        h.update(fh.read(_HASH_CHUNK))
    return h.hexdigest()
