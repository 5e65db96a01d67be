"""Portraits: images that show a character's own face, where a generated shot takes it from.

A small model cannot draw a recognisable face (the builtin generator works at 48x27 pixels),
and a face pasted onto a blur is not a shot. Identity therefore comes from the character
sheet, as in a previs animatic: the stand-in backend (:mod:`generator.standin`) cuts the person
out of a *portrait* (a reference image from cast.toml, or a library frame of the character's
face cluster) and composes them into a real library frame. A portrait counts only where dlib
finds the character's face in it (:func:`choose_portrait`), so the film and the optimizer's
continuity rule see the same person in generated and library shots.

Portraits without cast.toml references come from the library (:func:`portraits_from_library`):
frames of the shots whose faces match the character's identity.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import numpy as np

from generator.cast import SAME_PERSON, face_distance
from generator.conditioning import init_frame
from generator.types import Character
from planner.errors import MediaError
from retrieval.types import LibraryShot



@dataclass(frozen=True)
class Portrait:
    """A character's face as found in one image: the image and the face's box (t, l, b, r)."""

    path: str
    box: tuple[int, int, int, int]
    distance: float  # from the character's descriptor (0 when the character has none)


def choose_portrait(character: Character, seed: int) -> Portrait | None:
    """One portrait of the character whose face matches its descriptor, picked by seed.

    Portraits in which no face (or only other people's faces) is found are skipped; None when
    none is usable (the character then cannot be shown, and a shot naming them gets no fill).
    """
    usable = [p for p in (_portrait(path, character.descriptor) for path in character.portraits)
              if p is not None]
    if not usable:
        return None
    return usable[seed % len(usable)]


def _portrait(path: str, descriptor: tuple[float, ...] | None) -> Portrait | None:
    _, faces = _faces(path, _mtime(path))
    if not faces:
        return None
    if descriptor is None:
        top, left, bottom, right, _ = faces[0]
        return Portrait(path, (top, left, bottom, right), 0.0)
    me = np.asarray(descriptor, np.float64)
    scored = [(float(np.linalg.norm(np.asarray(d, np.float64) - me)), box)
              for *box, d in faces if d]
    if not scored:
        return None
    dist, box = min(scored, key=lambda s: s[0])
    return Portrait(path, tuple(box), round(dist, 4)) if dist < SAME_PERSON else None


def _mtime(path: str) -> float:
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return -1.0


@lru_cache(maxsize=64)
def _faces(path: str, mtime: float) -> tuple[tuple[int, int], tuple[tuple, ...]]:
    """The image's (width, height) as read (EXIF orientation applied) and (top, left, bottom,
    right, descriptor) of each face in it, largest first (remembered per file version:
    ``mtime`` is part of the cache key)."""
    from retrieval.analysis import detect_faces
    from retrieval.media import read_still

    try:
        image = read_still(Path(path))
    except MediaError:
        return (0, 0), ()
    faces = tuple((f.top, f.left, f.bottom, f.right, f.descriptor) for f in detect_faces(image))
    return (image.shape[1], image.shape[0]), faces


def portraits_from_library(character: Character, shots: Iterable[LibraryShot], library: Path,
                           out_dir: Path, *, limit: int = 3) -> Character:
    """The character with up to ``limit`` library frames that show its face as portraits.

    Frames come from the shots whose faces are within dlib's threshold of the identity, largest
    face first, one per shot before a second from the same shot (so the portraits vary); each
    is checked by detecting the face again. Characters with portraits already, or without an
    identity, are left as they are.
    """
    if character.portraits or character.descriptor is None:
        return character
    near = {}
    for shot in shots:
        d = face_distance(character, shot)
        if d is not None and d < SAME_PERSON and shot.id not in near:
            near[shot.id] = shot
    ranked = sorted(near.values(), key=lambda s: -s.features.face_size)
    found: list[str] = []
    for frac in (0.5, 0.25, 0.75):
        for shot in ranked:
            if len(found) >= limit:
                break
            if shot.is_still and frac != 0.5:
                continue
            path = _library_frame(Path(library), shot, frac, Path(out_dir))
            if path is None or str(path) in found:
                continue
            if choose_portrait(replace(character, portraits=(str(path),)), 0) is not None:
                found.append(str(path))
    return replace(character, portraits=tuple(found)) if found else character


def _library_frame(library: Path, shot: LibraryShot, frac: float, out_dir: Path) -> Path | None:
    """A still's own file, or a video shot's frame at ``frac`` of its length saved as a PNG."""
    if shot.is_still:
        return (library / shot.path).resolve()
    try:
        return init_frame(library, shot, out_dir, at=frac)
    except MediaError:
        return None
