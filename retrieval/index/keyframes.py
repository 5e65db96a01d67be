"""The keyframes an embedder saw, kept with the index, so another embedder needs no decoding.

Indexing a file decodes it once (``retrieval.analysis``): shots, keyframes, features, the people
facts. All of that but the vectors is the same for every embedder, so it is kept here, one file
per media file, named by the file's content hash and the shot settings (a renamed file is found
again; a changed one is not). Indexing the same library with another embedder reads these and
only embeds (``retrieval.index.build``): no video is opened.

The keyframes are stored losslessly (WebP, exact pixels), so vectors made from the store equal
vectors made while decoding: an index built by switching embedders is the index a fresh build
would make. On bench/index.py's 1080p library (keyframes at most 720 px wide) lossless WebP took
8.7 MB for a 39 s file (41 keyframes; 22 ms a keyframe to write, 12 ms to read), PNG 12.4 MB;
JPEG at quality 95 took 2.7 MB but moved proxy-v4's labels on half the keyframes.

Layout of ``keyframes/<key>.kf``: ``MKF1``, a 4-byte header length, a JSON header (everything of
:class:`~retrieval.analysis.analyse.FileAnalysis` but the pixels, and each image's length),
then the images. Written whole under a temporary name, then renamed; a damaged file is
ignored (the media file is decoded again).
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import struct
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np

from retrieval.analysis.analyse import FileAnalysis
from retrieval.analysis.people import PeopleFacts
from retrieval.types import features_from_dict

logger = logging.getLogger(__name__)

FOLDER = "keyframes"
MAGIC = b"MKF1"
VERSION = 1


class KeyframeStore:
    """The keyframe files of one index folder, for one set of shot settings."""

    def __init__(self, index_folder: Path, settings: dict) -> None:
        self.folder = Path(index_folder) / FOLDER
        self._settings = json.dumps(settings, sort_keys=True)
        self._writer: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []

    def key(self, sha1: str, size: int) -> str:
        text = json.dumps([VERSION, sha1, int(size), self._settings])
        return hashlib.sha1(text.encode()).hexdigest()[:24]

    def path(self, sha1: str, size: int) -> Path:
        return self.folder / f"{self.key(sha1, size)}.kf"

    def has(self, sha1: str, size: int) -> bool:
        return bool(sha1) and self.path(sha1, size).is_file()

    def load(self, rel: str, sha1: str, size: int) -> FileAnalysis | None:
        """The stored analysis of the file with this content, as ``rel`` (None: not stored, or
        damaged)."""
        path = self.path(sha1, size)
        try:
            data = path.read_bytes()
            if data[:4] != MAGIC:
                raise ValueError("not a keyframe file")
            (n,) = struct.unpack("<I", data[4:8])
            head = json.loads(data[8 : 8 + n])
            frames, at = [], 8 + n
            for length in head["blobs"]:
                frames.append(_decode(data[at : at + length]))
                at += length
            if at != len(data):
                raise ValueError("truncated")
            return FileAnalysis(
                rel, head["kind"], head["width"], head["height"], head["fps"], head["seconds"],
                tuple(tuple(s) for s in head["spans"]), tuple(frames), tuple(head["times"]),
                tuple(tuple(g) for g in head["groups"]),
                tuple(features_from_dict(f) for f in head["features"]),
                tuple(PeopleFacts(**f) for f in head["facts"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, struct.error) as exc:
            logger.warning("stored keyframes %s are unreadable (%s); decoding %s again",
                           path, exc, rel)
            return None

    def save(self, a: FileAnalysis, sha1: str, size: int) -> None:
        """Keep ``a`` (written in a background thread; :meth:`flush` waits for it)."""
        if not sha1 or a.error or not a.frames:
            return
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="keyframes")
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._writer.submit(self._write, a, self.path(sha1, size)))

    def _write(self, a: FileAnalysis, path: Path) -> None:
        blobs = [_encode(f) for f in a.frames]
        head = {"version": VERSION, "kind": a.kind, "width": a.width, "height": a.height,
                "fps": a.fps, "seconds": a.seconds, "spans": a.spans, "times": a.times,
                "groups": a.groups, "features": [asdict(f) for f in a.features],
                "facts": [asdict(f) for f in a.facts], "blobs": [len(b) for b in blobs]}
        header = json.dumps(head).encode()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(MAGIC + struct.pack("<I", len(header)) + header)
                for b in blobs:
                    fh.write(b)
            os.replace(tmp, path)
        except OSError as exc:  # a full disk costs only a later decode
            tmp.unlink(missing_ok=True)
            logger.warning("cannot keep the keyframes of %s (%s)", a.path, exc)

    def flush(self) -> None:
        """Wait for the files being written (their errors are logged, never raised)."""
        for f in self._pending:
            f.result()
        self._pending = []
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None

    def keep_only(self, wanted: set[str]) -> None:
        """Delete the keyframe files whose keys are not ``wanted`` (files gone or changed, or
        other settings), and temporary files left by a killed run."""
        if not self.folder.is_dir():
            return
        for p in self.folder.iterdir():
            if p.suffix == ".tmp" or (p.suffix == ".kf" and p.stem not in wanted):
                p.unlink(missing_ok=True)

    def bytes(self) -> int:
        if not self.folder.is_dir():
            return 0
        return sum(p.stat().st_size for p in self.folder.glob("*.kf"))


def _encode(frame: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8)).save(
        buf, "WEBP", lossless=True, method=0, quality=0)
    return buf.getvalue()


def _decode(blob: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(blob)) as im:
        return np.asarray(im.convert("RGB"))


__all__ = ["FOLDER", "KeyframeStore"]
