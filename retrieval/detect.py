"""Split a video into shots at hard cuts: the one module that imports PySceneDetect.

Uses PySceneDetect's ContentDetector on its PyAV backend (the same decoder as media.py, so a
file that probes also detects). Shots shorter than ``min_shot`` are too short to edit with and
are merged into a neighbour.
"""
from __future__ import annotations

import logging
from pathlib import Path

from planner.errors import MediaError

from .media import probe

DEFAULT_THRESHOLD = 27.0  # ContentDetector's default
DEFAULT_MIN_SHOT = 0.4  # seconds

logger = logging.getLogger(__name__)


def detect_shots(
    path: Path,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    min_shot: float = DEFAULT_MIN_SHOT,
) -> list[tuple[float, float]]:
    """The shots of a video as ``[(start_s, end_s)]``, covering the whole file in order.

    A video without a cut is one shot spanning the file.
    """
    path = Path(path)
    info = probe(path)  # MediaError for unreadable files, before PySceneDetect sees them
    try:
        from scenedetect import ContentDetector, SceneManager
        from scenedetect.backends.pyav import VideoStreamAv

        logging.getLogger("pyscenedetect").setLevel(logging.WARNING)  # it logs each file at INFO
    except ImportError as exc:  # pragma: no cover - a broken install, not a user input
        raise MediaError(
            f"cannot detect shots in {path}: PySceneDetect is not importable ({exc})",
            hint="pip install scenedetect-headless 'opencv-python-headless<5'",
        ) from exc
    try:
        # suppress_output keeps FFmpeg's own log lines off the terminal (no threading_mode, so
        # PySceneDetect's lock-up caveat for that combination does not apply).
        video = VideoStreamAv(str(path), suppress_output=True)
        manager = SceneManager()
        manager.add_detector(ContentDetector(threshold=threshold))
        manager.detect_scenes(video=video)
        scenes = manager.get_scene_list(start_in_scene=True)
    except Exception as exc:  # PySceneDetect / PyAV raise many types for broken streams
        raise MediaError(
            f"cannot detect shots in {path}: {exc}", hint="re-export or remove the file"
        ) from exc
    spans = [(float(a.seconds), float(b.seconds)) for a, b in scenes]
    end = max(info.duration, spans[-1][1] if spans else 0.0)
    if not spans:
        spans = [(0.0, end)]
    # Close the gaps PySceneDetect leaves at the edges (first frame time, last frame duration).
    spans[0] = (0.0, spans[0][1])
    spans[-1] = (spans[-1][0], end)
    return merge_short(spans, min_shot)


def merge_short(spans: list[tuple[float, float]], min_shot: float) -> list[tuple[float, float]]:
    """Merge every span shorter than ``min_shot`` into its shorter neighbour."""
    spans = list(spans)
    while len(spans) > 1:
        lengths = [b - a for a, b in spans]
        i = min(range(len(spans)), key=lambda k: lengths[k])
        if lengths[i] >= min_shot:
            break
        if i == 0:
            j = 1
        elif i == len(spans) - 1:
            j = i - 1
        else:
            j = i - 1 if lengths[i - 1] <= lengths[i + 1] else i + 1
        a, b = min(i, j), max(i, j)
        spans[a : b + 1] = [(spans[a][0], spans[b][1])]
    return spans
