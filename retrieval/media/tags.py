"""Tags and descriptions written for footage: ``clip.mp4.txt`` sidecars and folder tag files.

A folder may hold ``tags.csv`` (``file,tags`` rows; a header row is optional; every column after
the file name is taken as text) or ``tags.json`` (``{"clip.mp4": "a description"}``,
``{"clip.mp4": ["tag", "tag"]}`` or ``[{"file": ..., "tags": [...], "description": ...}]``).
A malformed tag file is reported once and ignored, never fatal.
"""
from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

TAG_FILES = ("tags.csv", "tags.json")
_HEADER_NAMES = {"file", "filename", "file_name", "name", "path"}
_cache: dict[tuple[str, int, int], dict[str, str]] = {}


def sidecar_path(root: Path, rel_path: str) -> Path | None:
    """The note beside a media file: ``clip.mp4.txt`` or else ``clip.txt``; None if neither."""
    full = Path(root) / rel_path
    for candidate in (full.with_name(full.name + ".txt"), full.with_suffix(".txt")):
        if candidate.is_file():
            return candidate
    return None


def sidecar_text(root: Path, rel_path: str) -> str:
    side = sidecar_path(root, rel_path)
    if side is None:
        return ""
    try:
        return side.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def folder_tags(folder: Path) -> dict[str, str]:
    """File name -> text from the folder's tags.csv and tags.json (both, if both exist)."""
    out: dict[str, str] = {}
    for name in TAG_FILES:
        path = Path(folder) / name
        try:
            st = path.stat()
        except OSError:
            continue
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key not in _cache:
            _cache[key] = _read(path)
        for file, text in _cache[key].items():
            out[file] = f"{out[file]}, {text}" if file in out else text
    return out


def _read(path: Path) -> dict[str, str]:
    try:
        raw = path.read_text(encoding="utf-8-sig", errors="replace")
        return _parse_csv(raw) if path.suffix == ".csv" else _parse_json(raw)
    except (OSError, ValueError, csv.Error) as exc:
        logger.warning("ignored tag file %s: %s", path, exc)
        return {}


def _parse_csv(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for n, row in enumerate(csv.reader(io.StringIO(raw))):
        cells = [c.strip() for c in row]
        if not cells or not cells[0] or cells[0].startswith("#"):
            continue
        if n == 0 and cells[0].lower() in _HEADER_NAMES:
            continue
        text = ", ".join(c for c in cells[1:] if c)
        if text:
            out[cells[0]] = f"{out[cells[0]]}, {text}" if cells[0] in out else text
    return out


def _text(value) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v).strip() for v in value if str(v).strip())
    raise ValueError(f"expected text or a list of tags, got {type(value).__name__}")


def _parse_json(raw: str) -> dict[str, str]:
    data = json.loads(raw)
    out: dict[str, str] = {}
    if isinstance(data, dict):
        for file, value in data.items():
            out[str(file)] = _text(value)
    elif isinstance(data, list):
        for entry in data:
            if not isinstance(entry, dict) or "file" not in entry:
                raise ValueError('each entry needs a "file" key')
            parts = [_text(entry[k]) for k in ("tags", "description") if k in entry]
            out[str(entry["file"])] = ", ".join(p for p in parts if p)
    else:
        raise ValueError("expected an object or a list")
    return {k: v for k, v in out.items() if v}


def tag_text(root: Path, rel_path: str) -> str:
    """The sidecar note and folder tags written for one media file ("" if none)."""
    full = Path(root) / rel_path
    parts = [sidecar_text(root, rel_path), folder_tags(full.parent).get(full.name, "")]
    return ". ".join(p for p in parts if p)
