"""Rule terms from clip features: per-shot costs, and per-cut costs through small feature classes.

Every cost here is normalised to 0..1; :mod:`montage.problem` multiplies by the rule set's
weights and rounds to integer milli-units, so the DP, CP-SAT and exhaustive search all score an
edit with the very same integers.

Cut costs depend only on a few *classes* of the two clips (brightness level, colour family,
camera move, shot scale, source file): a cut's cost is a sum of one small class-by-class table
per term. That is what lets the CP-SAT model route cuts through classes instead of clip pairs.
A clip without features (an index built before analysis) and a title card fall in each
aspect's ``unknown`` class, whose rows and columns cost nothing: feature terms stay neutral.
"""
from __future__ import annotations

import colorsys
import math

import numpy as np

from retrieval.types import CAMERA_MOVES, LibraryShot, ShotFeatures

SCALE = 1000  # integer milli-units of match score

BRIGHT_LEVELS = 8  # brightness 0..1 in 8 levels; class 8 = unknown
HUES = ("red", "yellow", "green", "cyan", "blue", "magenta", "neutral")  # class 7 = unknown
SCALE_CLASSES = ("close-up", "medium", "wide")  # class 3 = unknown
CAMERA_CLASSES = CAMERA_MOVES  # class len(CAMERA_MOVES) = unknown
OPPOSITE_MOVES = (("pan_left", "pan_right"), ("tilt_up", "tilt_down"), ("zoom_in", "zoom_out"))
SAME_FACE = 0.6  # dlib descriptor distance under which two faces are one person
MOTION_FULL = 0.25  # motion (frame diagonals per second) that counts as fully lively
TONE_SHARE = (0.6, 0.4)  # tone continuity: brightness share, colour share

# -- per shot ------------------------------------------------------------------------------


def tone_cost(f: ShotFeatures) -> float:
    """Badly exposed (far from mid-grey) or washed out (flat contrast)."""
    exposure = min(1.0, max(0.0, (abs(f.brightness - 0.5) - 0.2) / 0.3))
    flat = min(1.0, max(0.0, (0.08 - f.contrast) / 0.08))
    return 0.6 * exposure + 0.4 * flat


def resolution_cost(shot: LibraryShot, width: int, height: int) -> float:
    """Upscaling (fit into the frame, as the renderer does) and aspect mismatch (black bars)."""
    if shot.width <= 0 or shot.height <= 0:
        return 0.0
    up = min(width / shot.width, height / shot.height)
    upscale = min(1.0, max(0.0, math.log2(up) / 3.0)) if up > 1 else 0.0  # 8x and more: 1
    aspect = min(1.0, abs(math.log((shot.width / shot.height) / (width / height))) / math.log(2))
    return 0.7 * upscale + 0.3 * aspect


def pace_cost(f: ShotFeatures, target: float) -> float:
    return abs(min(1.0, f.motion / MOTION_FULL) - target)


def opening_cost(f: ShotFeatures) -> float:
    """A scene should open on a wide shot: close-ups cost most, an unknown scale nothing."""
    return {"wide": 0.0, "medium": 0.5, "close-up": 1.0}.get(f.scale, 0.0)


def visible_cost(f: ShotFeatures) -> float:
    """A sentence names someone: no face and no person at all costs 1, a person without a face 0.5."""
    if f.faces > 0:
        return 0.0
    return 0.5 if f.people > 0 else 1.0


# -- classes for cut terms -----------------------------------------------------------------


def bright_class(f: ShotFeatures | None) -> int:
    if f is None:
        return BRIGHT_LEVELS
    return min(BRIGHT_LEVELS - 1, max(0, int(f.brightness * BRIGHT_LEVELS)))


def mean_colour(f: ShotFeatures) -> tuple[float, float, float] | None:
    """Mean R, G, B (0..1) from a per-channel histogram (3 x B bins), else the dominant colour."""
    h = f.histogram
    if h and len(h) % 3 == 0 and sum(h) > 0:
        bins = len(h) // 3
        centres = (np.arange(bins) + 0.5) / bins
        arr = np.asarray(h, dtype=float).reshape(3, bins)
        mass = arr.sum(axis=1)
        if np.all(mass > 0):
            r, g, b = (arr @ centres) / mass
            return float(r), float(g), float(b)
    if f.colors:
        r, g, b = f.colors[0]
        return r / 255, g / 255, b / 255
    return None


def hue_class(f: ShotFeatures | None) -> int:
    unknown = len(HUES)
    if f is None:
        return unknown
    rgb = mean_colour(f)
    if rgb is None:
        return unknown
    h, s, _ = colorsys.rgb_to_hsv(*rgb)
    if s < 0.15:
        return HUES.index("neutral")
    return int((h * 6 + 0.5) % 6)


def camera_class(f: ShotFeatures | None) -> int:
    if f is None or f.camera not in CAMERA_CLASSES:
        return len(CAMERA_CLASSES)
    return CAMERA_CLASSES.index(f.camera)


def scale_class(f: ShotFeatures | None) -> int:
    if f is None or f.scale not in SCALE_CLASSES:
        return len(SCALE_CLASSES)
    return SCALE_CLASSES.index(f.scale)


CLASSERS = {"bright": bright_class, "hue": hue_class, "camera": camera_class, "scale": scale_class}


def _bright_table() -> np.ndarray:
    n = BRIGHT_LEVELS
    t = np.zeros((n + 1, n + 1))
    for a in range(n):
        for b in range(n):
            t[a, b] = max(0, abs(a - b) - 1) / (n - 2)  # one level apart is free
    return t


def _hue_table() -> np.ndarray:
    n = len(HUES)
    neutral = HUES.index("neutral")
    t = np.zeros((n + 1, n + 1))
    for a in range(n):
        for b in range(n):
            if a == neutral or b == neutral:
                t[a, b] = 0.0 if a == b else 1 / 3
            else:
                d = abs(a - b) % 6
                t[a, b] = min(d, 6 - d) / 3
    return t


def _camera_table() -> np.ndarray:
    n = len(CAMERA_CLASSES)
    t = np.zeros((n + 1, n + 1))
    for a, b in OPPOSITE_MOVES:
        i, j = CAMERA_CLASSES.index(a), CAMERA_CLASSES.index(b)
        t[i, j] = t[j, i] = 1.0
    return t


def _scale_jump_table() -> np.ndarray:
    t = np.zeros((4, 4))
    close, wide = SCALE_CLASSES.index("close-up"), SCALE_CLASSES.index("wide")
    t[wide, close] = 1.0
    t[close, wide] = 0.5
    return t


def _same_scale_table() -> np.ndarray:
    t = np.zeros((4, 4))
    for s in range(len(SCALE_CLASSES)):
        t[s, s] = 1.0
    return t


# (term, classes, normalised table): a term may use several aspects (tone: brightness + colour)
CUT_ASPECTS: tuple[tuple[str, str, np.ndarray], ...] = (
    ("tone_continuity", "bright", TONE_SHARE[0] * _bright_table()),
    ("tone_continuity", "hue", TONE_SHARE[1] * _hue_table()),
    ("camera_continuity", "camera", _camera_table()),
    ("scale_jump", "scale", _scale_jump_table()),
    ("same_scale", "scale", _same_scale_table()),
)
SCENE_BLIND = frozenset({"tone_continuity", "camera_continuity", "scale_jump", "same_scale"})
"""Terms that do not apply across a scene change (a new scene may change its look)."""


# -- identities ----------------------------------------------------------------------------


def face_identities(descriptors: dict[str, tuple[tuple[float, ...], ...]]) -> dict[str, tuple[int, ...]]:
    """Group face descriptors into people (leader clustering, deterministic order).

    ``descriptors`` maps a library shot id to its faces; the answer maps it to the identity
    numbers of those faces (sorted, unique).
    """
    leaders: list[np.ndarray] = []
    out: dict[str, tuple[int, ...]] = {}
    for shot_id in sorted(descriptors):
        ids: set[int] = set()
        for d in descriptors[shot_id]:
            v = np.asarray(d, dtype=float)
            found = next((k for k, lead in enumerate(leaders)
                          if lead.shape == v.shape and float(np.linalg.norm(lead - v)) < SAME_FACE), None)
            if found is None:
                leaders.append(v)
                found = len(leaders) - 1
            ids.add(found)
        out[shot_id] = tuple(sorted(ids))
    return out
