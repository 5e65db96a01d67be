"""Find the media files of a footage library, and the words the footage carries itself.

Editors name folders and files for what is in them ("beach/sunsetWaves_03.mp4"), and sometimes
write a sidecar note; those words are cheap, reliable evidence next to what a model sees.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from planner.errors import LibraryError

VIDEO_EXTENSIONS = ("avi", "mkv", "mov", "mp4", "webm")
STILL_EXTENSIONS = ("jpeg", "jpg", "png", "webp")
INDEX_DIR = ".montage"

_SPLIT = re.compile(r"[\s_\-.,;:/\\()\[\]{}+&'\"!?#@]+")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_STOPWORDS = frozenset(
    "a an and are as at be by for from has have in into is it its of on or that the this to "
    "was were with while his her their our your my we they he she you i img dsc dji mvi vid "
    "clip shot take final copy".split()
)
MAX_TEXT_WORDS = 24
# folder words that say what kind of file it is, not what it shows
_MEDIUM_WORDS = frozenset(
    "still stills video videos footage clips media photo photos image images picture pictures "
    "raw export exports render renders misc untitled".split()
)
_HEX_ID = re.compile(r"[0-9a-f]{6,}")


@dataclass(frozen=True)
class MediaFile:
    """One media file of the library; ``path`` is relative to the root, POSIX separators."""

    path: str
    kind: str  # "video" | "still"
    size: int
    mtime_ns: int


def media_kind(name: str) -> str | None:
    """ "video", "still" or None, from the file extension (case-insensitive)."""
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext in VIDEO_EXTENSIONS:
        return "video"
    if ext in STILL_EXTENSIONS:
        return "still"
    return None


def check_root(root: Path) -> Path:
    """The library root, or a LibraryError saying it is missing."""
    root = Path(root).expanduser()
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise LibraryError(
            f"library folder {what}: {root}",
            hint="pass the folder that holds your footage (videos and stills)",
        )
    return root


def find_media(root: Path) -> list[MediaFile]:
    """Every video and still under ``root``, hidden files and folders skipped, sorted by path."""
    root = check_root(root)
    found: list[MediaFile] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith("."):
                continue
            kind = media_kind(name)
            if kind is None:
                continue
            full = Path(folder) / name
            try:
                st = full.stat()
            except OSError:
                continue  # vanished or unreadable between listing and stat
            rel = full.relative_to(root).as_posix()
            found.append(MediaFile(rel, kind, st.st_size, st.st_mtime_ns))
    if not found:
        accepted = ", ".join(f".{e}" for e in VIDEO_EXTENSIONS + STILL_EXTENSIONS)
        raise LibraryError(
            f"no media files found in {root}",
            hint=f"accepted extensions (any case): {accepted}; hidden files and folders are skipped",
        )
    found.sort(key=lambda m: m.path)
    return found


def split_words(text: str) -> list[str]:
    """Lower-case words of a name or note: split on punctuation and camelCase, numbers dropped."""
    words: list[str] = []
    for chunk in _SPLIT.split(text):
        if _is_id(chunk):
            continue
        for word in _CAMEL.findall(chunk):
            w = word.lower()
            if w.isalpha() and len(w) > 1:
                words.append(w)
    return words


def _is_id(chunk: str) -> bool:
    """A camera's or a tool's id ("eb841e82", "C0012", "2024a7"), not a word: a hex string
    with a digit in it, or more digits than letters."""
    digits = sum(c.isdigit() for c in chunk)
    if not digits:
        return False
    return bool(_HEX_ID.fullmatch(chunk.lower())) or digits >= sum(c.isalpha() for c in chunk)


def name_words(rel_path: str) -> list[str]:
    """Words of the folder names and the file name (extension dropped), in path order, unique."""
    parts = rel_path.split("/")
    stem = parts[-1].rsplit(".", 1)[0] if "." in parts[-1] else parts[-1]
    words: list[str] = []
    for part in [*parts[:-1], stem]:
        words += split_words(part)
    return _unique(w for w in words if w not in _STOPWORDS and w not in _MEDIUM_WORDS)


def sidecar_path(root: Path, rel_path: str) -> Path | None:
    """The note beside a media file (see :mod:`retrieval.media.tags`); None if there is none."""
    from .tags import sidecar_path as _sidecar

    return _sidecar(root, rel_path)


def footage_text(root: Path, rel_path: str) -> str:
    """The footage's own description: its name words, then its sidecar note and folder tags."""
    from .tags import tag_text

    text = " ".join(name_words(rel_path))
    note = tag_text(root, rel_path)
    if note:
        text = f"{text}. {note}" if text else note
    return text


def footage_words(text: str) -> list[str]:
    """Content words of a footage text, for labels and keyword matching (bounded length)."""
    return _unique(w for w in split_words(text) if w not in _STOPWORDS)[:MAX_TEXT_WORDS]


def _unique(words) -> list[str]:
    seen: dict[str, None] = {}
    for w in words:
        seen.setdefault(w, None)
    return list(seen)
