"""What a recut really changed: each shot as rendered, compared with the last cut.

The text alignment (``planner.align``) says which sentences are new, edited, moved or
unchanged; it cannot say whether an unchanged sentence kept its picture. Each cut therefore
keeps, in ``history/NNNN/rendered.json``, a fingerprint of what every shot shows (its clip, in
point and length, the media file's size and time, a card's words), and the history's summary
counts an unchanged sentence as *unchanged* only when its fingerprint is the last cut's;
otherwise it was *re-chosen* (same words, other footage or trim).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from planner.align import Alignment

from montage.optimize import EditDecisionList
from montage.project import RENDERED


def fingerprints(edl: EditDecisionList, base: Path | None = None) -> dict[str, str]:
    """shot id -> a hash of what the shot shows, as the renderer will read it."""
    out = {}
    for d in edl.decisions:
        media = None
        if d.kind != "card" and d.media:
            path = Path(d.media)
            if not path.is_absolute() and base is not None:
                path = base / path
            try:  # the file by name and version (a project copied with its files stays the same)
                st = path.stat()
                media = [path.name, st.st_size, st.st_mtime_ns]
            except OSError:
                media = [path.name, None, None]
        fields = [d.kind, d.library_shot, media, d.source_in, d.frames, str(edl.rate),
                  edl.width, edl.height, d.text if d.kind == "card" else ""]
        out[d.shot_id] = hashlib.sha1(json.dumps(fields).encode()).hexdigest()[:16]
    return out


def rendered_json(shots: dict[str, str], changes: dict[str, tuple[str, str]]) -> str:
    """The text of ``rendered.json``: each shot's fingerprint, and its change since the last
    cut (status, the id of the sentence an edited one replaced), which the studio follows."""
    return json.dumps({"format": 1, "shots": shots,
                       "changes": {k: list(v) for k, v in changes.items()}}, indent=1)


def read_rendered(folder: Path, edl: EditDecisionList | None) -> dict[str, str]:
    """A cut's fingerprints: as it kept them, else (a cut made before they were kept) from its
    edit as the files are now."""
    shots = _read(folder).get("shots")
    if isinstance(shots, dict):
        return {str(k): str(v) for k, v in shots.items()}
    return fingerprints(edl, folder) if edl is not None else {}


def read_changes(folder: Path) -> dict[str, tuple[str, str]]:
    """Each shot's change since the cut before (empty for a cut that did not keep them)."""
    changes = _read(folder).get("changes")
    if not isinstance(changes, dict):
        return {}
    return {str(k): (str(v[0]), str(v[1])) for k, v in changes.items()
            if isinstance(v, list) and len(v) == 2}


def _read(folder: Path) -> dict:
    try:
        data = json.loads((folder / RENDERED).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def shot_changes(alignment: Alignment | None, before: dict[str, str],
                 after: dict[str, str]) -> dict[str, tuple[str, str]]:
    """shot id -> (status, previous id) for the shots of the new cut: an unchanged sentence
    whose picture changed is "re-chosen"; a project's first cut is all "inserted"."""
    if alignment is None:
        return {sid: ("inserted", "") for sid in after}
    out = {}
    for change in alignment.changes:
        if change.status == "deleted":
            continue
        status = change.status
        if status == "unchanged" and before.get(change.shot_id) != after.get(change.shot_id):
            status = "re-chosen"
        out[change.shot_id] = (status, change.previous)
    return out


def summary(alignment: Alignment | None, before: dict[str, str],
            after: dict[str, str]) -> tuple[str, int]:
    """The history's line for a cut, and how many shots show exactly what they showed before.

    ``alignment`` is None for a project's first cut."""
    if alignment is None:
        return f"{len(after)} new", 0
    same = sum(1 for sid, fp in after.items() if before.get(sid) == fp)
    counts: dict[str, int] = {}
    for status, _ in shot_changes(alignment, before, after).values():
        counts[status] = counts.get(status, 0) + 1
    counts["deleted"] = alignment.count("deleted")
    order = ("unchanged", "re-chosen", "moved", "edited", "inserted", "deleted")
    parts = [f"{counts[s]} {s}" for s in order if counts.get(s)]
    return ", ".join(parts) or "no shots", same
