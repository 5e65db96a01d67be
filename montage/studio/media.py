"""Thumbnails and short previews of clips for the studio page, made by ffmpeg on first request.

Each is cached in the project (``cache/studio/``) under a key of the source file's identity
(path, size, modification time) and the moment shown, so a changed source gets a new picture
and the page loads a 500-shot project's strip lazily without re-encoding anything twice.
"""
from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from retrieval.media import file_arg, run_ffmpeg

from montage.studio.page import Media

THUMB_WIDTH = 192
PREVIEW_WIDTH = 320
PREVIEW_SECONDS = 2.5


def _key(m: Media, what: str) -> str:
    st = m.path.stat()
    return hashlib.sha1(f"{what}|{m.path}|{st.st_size}|{st.st_mtime_ns}|{m.at:.3f}|"
                        f"{m.start:.3f}|{m.end:.3f}".encode()).hexdigest()[:20]


def _cached(m: Media, cache: Path, what: str, suffix: str, args) -> Path:
    """``cache/<what>-<key><suffix>``, made by ffmpeg with ``args(tmp)`` when missing; written
    under a temporary name first, so a half-made file is never served."""
    cache.mkdir(parents=True, exist_ok=True)
    out = cache / f"{what}-{_key(m, what)}{suffix}"
    if out.is_file():
        return out
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{threading.get_ident()}.tmp{suffix}")
    try:
        run_ffmpeg(args(file_arg(tmp)), what=f"{what} of {m.path.name}", timeout=60)
        os.replace(tmp, out)
        return out
    finally:
        tmp.unlink(missing_ok=True)


def thumbnail_file(m: Media, cache: Path) -> Path:
    """A JPEG of the clip's frame at ``m.at`` (a still: the image), THUMB_WIDTH wide."""
    seek = [] if m.kind == "still" else ["-ss", f"{max(0.0, m.at):.3f}"]
    return _cached(m, cache, "thumb", ".jpg", lambda out: [
        *seek, "-i", file_arg(m.path), "-frames:v", "1", "-vf", f"scale={THUMB_WIDTH}:-2",
        "-q:v", "5", out])


def preview_file(m: Media, cache: Path) -> Path:
    """A silent H.264 clip of PREVIEW_SECONDS around ``m.at`` (a still: the image held)."""
    if m.kind == "still":
        source = ["-loop", "1", "-t", f"{PREVIEW_SECONDS}", "-i", file_arg(m.path)]
    else:
        start = max(m.start, min(m.at - PREVIEW_SECONDS / 2, m.end - PREVIEW_SECONDS))
        source = ["-ss", f"{max(0.0, start):.3f}", "-t", f"{PREVIEW_SECONDS}", "-i", file_arg(m.path)]
    return _cached(m, cache, "preview", ".mp4", lambda out: [
        *source, "-an", "-vf", f"scale={PREVIEW_WIDTH}:-2,format=yuv420p", "-c:v", "libx264",
        "-preset", "veryfast", "-crf", "28", "-movflags", "+faststart", out])
