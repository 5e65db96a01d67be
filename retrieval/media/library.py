"""Find the media files of a footage library, and the words the footage carries itself.

Editors name folders and files for what is in them ("beach/sunsetWaves_03.mp4"), and sometimes
write a sidecar note; those words are cheap, reliable evidence next to what a model sees.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from planner.errors import LibraryError, MediaError

# The fast path: files with these extensions are taken for what they say (a damaged one is
# still found out when it is decoded, and skipped with its reason); any other file is probed
# by its content (:func:`retrieval.media.decode.sniff`), once: the index remembers the answer.
VIDEO_EXTENSIONS = (
    "avi", "mkv", "mov", "mp4", "webm", "m4v", "3gp", "3g2", "mts", "m2ts", "m2t", "ts", "mpg",
    "mpeg", "vob", "mod", "tod", "wmv", "asf", "flv", "ogv", "mxf", "dv", "mj2")
# camera RAW, read with rawpy (LibRaw)
RAW_EXTENSIONS = ("dng", "cr2", "cr3", "crw", "nef", "nrw", "arw", "srf", "sr2", "orf", "rw2",
                  "raf", "pef", "srw", "3fr", "iiq", "erf", "kdc", "mrw", "x3f")
STILL_EXTENSIONS = ("jpeg", "jpg", "png", "webp", "tif", "tiff", "bmp", "avif", "heic", "heif",
                    *RAW_EXTENSIONS)
# a GIF is a still or, animated, a clip: its content decides (so is every unknown extension)
INDEX_DIR = ".montage"

# Why a file of the library was not indexed (the index summary groups skips by these).
NOT_MEDIA = "not media"  # no picture or sound stream: a document, an archive, a note
AUDIO_ONLY = "audio only"  # sound without a picture
UNREADABLE = "unreadable"  # a damaged, truncated or undecodable picture or video
ZERO_LENGTH = "zero length"  # an empty file (0 bytes) or a video without a single frame
UNSUPPORTED = "unsupported codec"  # a video whose codec this build cannot decode
SKIP_REASONS = (NOT_MEDIA, AUDIO_ONLY, UNREADABLE, ZERO_LENGTH, UNSUPPORTED)


class SkippedMedia(MediaError):
    """A file that is not indexed, with ``why`` (one of :data:`SKIP_REASONS`)."""

    def __init__(self, message: str, hint: str = "", why: str = UNREADABLE) -> None:
        super().__init__(message, hint)
        self.why = why


def skip_reason(why: str, detail: str) -> str:
    """The reason an index stores for a skipped file: "why: detail"."""
    return f"{why}: {detail}" if detail else why


def split_reason(reason: str) -> tuple[str, str]:
    """(why, detail) of a stored reason; a reason from before the groups counts as unreadable."""
    head, _, rest = reason.partition(": ")
    if head in SKIP_REASONS:
        return head, rest
    return UNREADABLE, reason


def group_skips(skipped) -> dict[str, list[tuple[str, str]]]:
    """(path, reason) pairs grouped by why, in :data:`SKIP_REASONS` order: why -> [(path,
    detail)]."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for path, reason in skipped:
        why, detail = split_reason(reason)
        groups.setdefault(why, []).append((path, detail))
    return {w: groups[w] for w in SKIP_REASONS if w in groups}


def readers_signature() -> str:
    """The picture and video readers installed (PyAV, Pillow, pillow-heif, rawpy): a file
    skipped for a codec no reader knew is tried again once these change."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("av", "pillow", "pillow-heif", "rawpy"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} -")
    return "; ".join(found)


def skip_level(why: str) -> int:
    """The log level of a skip: a warning for footage that could not be read, info for a
    file that is no footage at all (a library of documents would bury the real warnings;
    the index summary names every skip either way)."""
    import logging

    return logging.INFO if why in (NOT_MEDIA, AUDIO_ONLY) else logging.WARNING


def skip_counts(skipped) -> str:
    """"2 not media, 1 unreadable": how many files were skipped for each reason."""
    return ", ".join(f"{len(v)} {why}" for why, v in group_skips(skipped).items())

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
    kind: str  # "video" | "still" by its extension, or "" when its content decides
    size: int
    mtime_ns: int


def media_kind(name: str) -> str | None:
    """ "video", "still" or None (the content decides), from the file extension
    (case-insensitive)."""
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext in VIDEO_EXTENSIONS:
        return "video"
    if ext in STILL_EXTENSIONS:
        return "still"
    return None


def is_raw(name: str) -> bool:
    """A camera RAW file, by its extension (their containers are TIFF-like: only the
    extension tells a RAW reader is needed)."""
    return "." in name and name.rsplit(".", 1)[-1].lower() in RAW_EXTENSIONS


def _is_note(name: str, names: set[str]) -> bool:
    """A library note rather than footage: a folder's ``tags.csv`` / ``tags.json``, or a
    sidecar ``clip.mp4.txt`` / ``clip.txt`` beside its clip (see :mod:`retrieval.media.tags`)."""
    from .tags import TAG_FILES

    if name in TAG_FILES:
        return True
    if not name.lower().endswith(".txt"):
        return False
    stem = name[:-4]
    if stem in names:
        return True
    return any(n != name and n.startswith(stem + ".") and "." not in n[len(stem) + 1:]
               for n in names)


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
    """Every file under ``root`` that may be footage, sorted by path: a known video or still
    extension gives its kind, any other file is probed when indexed (kind ""). Hidden files
    and folders (the index's own ``.montage/`` among them) and the library's notes (sidecars,
    tag files) are not footage and not listed."""
    root = check_root(root)
    found: list[MediaFile] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        names = {n for n in files if not n.startswith(".")}
        for name in names:
            if _is_note(name, names):
                continue
            full = Path(folder) / name
            try:
                st = full.stat()
            except OSError:
                continue  # vanished or unreadable between listing and stat
            if not full.is_file():
                continue  # a socket, a fifo: nothing to read
            rel = full.relative_to(root).as_posix()
            found.append(MediaFile(rel, media_kind(name) or "", st.st_size, st.st_mtime_ns))
    if not found:
        raise LibraryError(
            f"no files found in {root}",
            hint="put videos and pictures in it (any format ffmpeg reads; see docs/footage.md); "
                 "hidden files and folders are skipped",
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
