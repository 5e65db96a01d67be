"""The face pass: lays each character's own face into generated frames, so identity holds.

A small model cannot draw a recognisable face: the builtin generator works at 48x27 pixels,
where a face is a few pixels of skin. Identity therefore comes from the character sheet, as
reference-based face restoration does in larger pipelines: a *portrait* of the character (a
reference image from cast.toml, or a library frame of the character's face cluster) is cut out
around the face, scaled to where the face belongs in the shot, tone-matched to the generated
frame and blended in with a feathered mask, moving slowly with the shot. The face's pixels are
the character's, so the optimizer's continuity rule and dlib see the same person in generated
and library shots; the rest of the frame is the model's.

Where the face goes: where the init frame (the near-miss library frame SDEdit started from)
shows a face (moved inwards if the head would leave the frame), else a medium close-up on a
third of the frame (the first character left or right
by seed, a second character on the other third).

Portraits without cast.toml references come from the library (:func:`portraits_from_library`):
frames of the shots whose faces match the character's identity.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from generator.cast import SAME_PERSON, face_distance
from generator.conditioning import init_frame
from generator.types import Character
from planner.errors import MediaError
from retrieval.types import LibraryShot

WORK_HEIGHT = 360  # frames are composed at this height (ffmpeg scales them to the film's size)
FACE_HEIGHT = 0.24  # default face box height / frame height: a medium close-up
MIN_FACE_HEIGHT = 0.16  # a face taken from the init frame is never drawn smaller than this
MAX_FACE_HEIGHT = 0.4  # nor larger than this (the head, hair and chin must fit in the frame)
PUSH_IN = 0.05  # the face grows by this share over the shot (a slow push-in)
DRIFT = 0.015  # and drifts sideways by this share of the frame width
TONE_MATCH = 0.35  # how far the face's colour statistics move toward the frame's (0..1)


@dataclass(frozen=True)
class Portrait:
    """A character's face as found in one image: the image and the face's box (t, l, b, r)."""

    path: str
    box: tuple[int, int, int, int]
    distance: float  # from the character's descriptor (0 when the character has none)


@dataclass(frozen=True)
class Placement:
    """Where one character's face goes, in work-frame pixels at the start of the shot."""

    character: str
    portrait: Portrait
    cx: float
    cy: float
    face_height: float
    drift: float  # signed share of the width travelled over the shot

    def to_dict(self) -> dict:
        """JSON-ready, for the clip's provenance (and to rebuild the pass from it)."""
        from dataclasses import asdict

        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Placement":
        p = data["portrait"]
        return cls(**{**data, "portrait": Portrait(p["path"], tuple(p["box"]), p["distance"])})


def work_size(width: int, height: int) -> tuple[int, int]:
    """The composing size: the film's aspect at WORK_HEIGHT (never above the film's size)."""
    h = min(height, WORK_HEIGHT)
    w = max(2, round(h * width / height / 2) * 2)
    return w, h - h % 2


def choose_portrait(character: Character, seed: int) -> Portrait | None:
    """One portrait of the character whose face matches its descriptor, picked by seed.

    Portraits in which no face (or only other people's faces) is found are skipped; None when
    none is usable, and the shot then carries the identity only as the model's condition.
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


def init_faces(init_image: str | None, width: int, height: int) -> list[tuple[float, float, float]]:
    """Faces of the init frame as (cx, cy, height) in a width x height frame that covers it
    (centre-cropped, as the generators fit the init frame), largest first."""
    if init_image is None:
        return []
    (sw, sh), faces = _faces(init_image, _mtime(init_image))
    if not faces:
        return []
    scale = max(width / sw, height / sh)
    ox, oy = (sw * scale - width) / 2, (sh * scale - height) / 2
    out = []
    for top, left, bottom, right, _ in faces:
        cx, cy = (left + right) / 2 * scale - ox, (top + bottom) / 2 * scale - oy
        if 0 <= cx < width and 0 <= cy < height:
            out.append((cx, cy, (bottom - top) * scale))
    return out


def place(cast: Sequence[Character], init_image: str | None, width: int, height: int,
          seed: int) -> list[Placement]:
    """Where the faces of the shot's characters (at most two) go in a width x height frame."""
    found = init_faces(init_image, width, height)
    side = 1 if seed % 2 else -1
    out: list[Placement] = []
    for n, character in enumerate(cast[:2]):
        portrait = choose_portrait(character, seed + n)
        if portrait is None:
            continue
        if n < len(found):
            cx, cy, fh = found[n]
            fh = min(max(fh, MIN_FACE_HEIGHT * height), MAX_FACE_HEIGHT * height)
            # the whole head in frame: a face the centre crop left at an edge moves inwards
            cx = min(max(cx, 0.9 * fh), width - 0.9 * fh)
            cy = min(max(cy, 1.2 * fh), height - 0.9 * fh)
        else:
            third = side if n == 0 else -side
            cx, cy, fh = width * (0.5 + third / 6), height * 0.4, FACE_HEIGHT * height
        drift = DRIFT * (-1 if (seed // 2 + n) % 2 else 1)
        out.append(Placement(character.name, portrait, cx, cy, fh, drift))
    return out


class FacePass:
    """Composes the placed faces into each frame of a shot (frames arrive one at a time)."""

    def __init__(self, placements: Sequence[Placement], width: int, height: int,
                 count: int) -> None:
        from retrieval.media import read_still

        self.width, self.height, self.count = width, height, count
        self.layers = []
        for p in placements:
            try:
                image = read_still(Path(p.portrait.path))
            except MediaError:
                continue
            self.layers.append((p, *_cutout(image, p.portrait.box)))
        self._tone: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(self.layers)

    def __bool__(self) -> bool:
        return bool(self.layers)

    def __call__(self, small: np.ndarray, index: int) -> np.ndarray:
        """One model frame (any size) scaled to the work size with the faces laid in."""
        from PIL import Image

        frame = np.asarray(Image.fromarray(small).resize((self.width, self.height),
                                                         Image.Resampling.BICUBIC), np.float32)
        t = index / max(1, self.count - 1)
        for n, (p, rgb, alpha, face_h, anchor) in enumerate(self.layers):
            scale = p.face_height * (1 + PUSH_IN * t) / face_h
            w = max(2, round(rgb.shape[1] * scale))
            h = max(2, round(rgb.shape[0] * scale))
            x0 = round(p.cx + p.drift * t * self.width - anchor[0] * scale)
            y0 = round(p.cy - anchor[1] * scale)
            layer = np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.LANCZOS),
                               np.float32)
            mask = np.asarray(Image.fromarray(alpha).resize((w, h), Image.Resampling.BILINEAR),
                              np.float32)[..., None] / 255.0
            fx0, fy0 = max(0, x0), max(0, y0)
            fx1, fy1 = min(self.width, x0 + w), min(self.height, y0 + h)
            if fx1 <= fx0 or fy1 <= fy0:
                continue
            region = frame[fy0:fy1, fx0:fx1]
            part = layer[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
            m = mask[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
            if self._tone[n] is None:  # matched once, so the face does not flicker
                self._tone[n] = _tone_shift(part, region, m)
            gain, offset = self._tone[n]
            part = np.clip(part * gain + offset, 0, 255)
            frame[fy0:fy1, fx0:fx1] = region * (1 - m) + part * m
        return np.clip(frame + 0.5, 0, 255).astype(np.uint8)


def _cutout(image: np.ndarray, box: tuple[int, int, int, int]):
    """The head around a face box: RGB crop, feathered elliptical alpha (uint8), the face box
    height in crop pixels and the face centre in crop pixels."""
    from PIL import Image, ImageDraw, ImageFilter

    top, left, bottom, right = box
    fh, fw = bottom - top, right - left
    cx, cy = (left + right) / 2, (top + bottom) / 2
    x0, x1 = math.floor(cx - 0.95 * fw), math.ceil(cx + 0.95 * fw)
    y0, y1 = math.floor(cy - 1.15 * fh), math.ceil(cy + 0.95 * fh)
    H, W = image.shape[:2]
    crop = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
    crop[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1, :3]
    inside = Image.new("L", (x1 - x0, y1 - y0), 0)
    inside.paste(255, (sx0 - x0, sy0 - y0, sx1 - x0, sy1 - y0))
    mask = Image.new("L", inside.size, 0)
    ex, ey = cx - x0, cy - y0 - 0.12 * fh  # the head sits a little above the face box centre
    ImageDraw.Draw(mask).ellipse((ex - 0.78 * fw, ey - 0.98 * fh, ex + 0.78 * fw, ey + 0.92 * fh),
                                 fill=255)
    mask = Image.composite(mask, inside, inside)  # nothing from outside the source image
    mask = mask.filter(ImageFilter.GaussianBlur(max(1.0, 0.12 * fw)))
    return crop, np.asarray(mask), float(fh), (cx - x0, cy - y0)


def _tone_shift(part: np.ndarray, region: np.ndarray, mask: np.ndarray):
    """Per-channel gain and offset moving the face's mean and spread toward the frame's."""
    w = mask[..., 0]
    if w.sum() < 1:
        return np.ones(3, np.float32), np.zeros(3, np.float32)
    def stats(x):
        mean = (x * w[..., None]).sum((0, 1)) / w.sum()
        std = np.sqrt(((x - mean) ** 2 * w[..., None]).sum((0, 1)) / w.sum()) + 1.0
        return mean, std
    fm, fs = stats(part)
    rm, rs = stats(region)
    ts = fs * (1 - TONE_MATCH) + rs * TONE_MATCH
    tm = fm * (1 - TONE_MATCH) + rm * TONE_MATCH
    gain = ts / fs
    return gain.astype(np.float32), (tm - fm * gain).astype(np.float32)


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
