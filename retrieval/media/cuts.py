"""Split a video into shots at hard cuts: the one module that imports PySceneDetect.

PySceneDetect's ContentDetector decides the cuts, fed one frame at a time by
:class:`CutDetector`, so the indexer's one pass over a file (:mod:`retrieval.analysis.scan`) both finds
the cuts and keeps the frames its analysis needs: nothing is decoded twice. The detector sees
what PySceneDetect's own ``SceneManager`` gives it (BGR about 256 px wide, PTS-based
timecodes), except that the decoder's scaler makes the small frame directly (nearest pixel)
instead of OpenCV shrinking a full-size conversion: the same picture to about one grey level,
for a third of the cost; ``tests/test_scan.py`` checks the cuts against ``detect_scenes``. Shots shorter than ``min_shot`` are too short to edit with and are
merged into a neighbour.
"""
from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

from planner.errors import MediaError

from .decode import DecodedFrame, decode_video, probe

DEFAULT_THRESHOLD = 27.0  # ContentDetector's default
DEFAULT_MIN_SHOT = 0.4  # seconds

logger = logging.getLogger(__name__)


def _scenedetect():
    try:
        import scenedetect
        from scenedetect import ContentDetector
        from scenedetect.common import FrameTimecode, Timecode, framerate_to_fraction
        from scenedetect.scene_manager import compute_downscale_factor

        logging.getLogger("pyscenedetect").setLevel(logging.WARNING)  # it logs each file at INFO
    except ImportError as exc:  # pragma: no cover - a broken install, not a user input
        raise MediaError(
            f"PySceneDetect is not importable ({exc})",
            hint="pip install scenedetect-headless 'opencv-python-headless<5'",
        ) from exc
    return scenedetect, ContentDetector, FrameTimecode, Timecode, framerate_to_fraction, \
        compute_downscale_factor


class CutDetector:
    """ContentDetector fed frame by frame; collects the cut times (seconds into the stream)."""

    def __init__(self, width: int, height: int, rate: Fraction, *,
                 threshold: float = DEFAULT_THRESHOLD) -> None:
        _, content, self._tc, self._timecode, to_fraction, downscale = _scenedetect()
        factor = downscale(width)  # SceneManager's auto_downscale: about 256 px wide
        self.size = ((max(1, round(width / factor)), max(1, round(height / factor)))
                     if factor > 1.0 else None)
        self.rate = to_fraction(rate)
        self._detector = content(threshold=threshold)
        self._first = None  # FrameTimecode of the first frame fed
        self._last = None  # ... and of the latest
        self._cuts: list = []

    def feed(self, frame: DecodedFrame) -> list[float]:
        """Look at the next frame; returns the cuts found now, in seconds (a cut can be a few
        frames behind the frame that confirmed it)."""
        small = frame.bgr(*self.size) if self.size else frame.bgr()
        position = self._tc(timecode=self._timecode(pts=frame.pts, time_base=frame.time_base),
                            fps=self.rate)
        if self._first is None:
            self._first = position
        self._last = position
        cuts = self._detector.process_frame(position, small)
        self._cuts += cuts
        return [float(c.seconds) for c in cuts]

    def finish(self) -> tuple[list[float], float]:
        """(every cut in order, the end of the last frame) once the stream is done."""
        if self._last is None:
            return [], 0.0
        self._cuts += self._detector.post_process(self._last)
        cuts = sorted({float(c.seconds) for c in self._cuts})
        return cuts, float((self._last + 1).seconds)


def spans_from_cuts(cuts: list[float], end: float, duration: float) -> list[tuple[float, float]]:
    """The shots between ``cuts``, from 0 to the later of ``end`` and ``duration`` (closing the
    gaps PySceneDetect leaves at the edges: the first frame's time, the last frame's length)."""
    end = max(duration, end, cuts[-1] if cuts else 0.0)
    edges = [0.0, *(c for c in cuts if 0.0 < c < end), end]
    return [(a, b) for a, b in zip(edges, edges[1:])]


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
    info = probe(path)  # MediaError for unreadable files, before the decoder sees them
    stream, frames = decode_video(path)
    try:
        detector = CutDetector(stream.width, stream.height, stream.rate, threshold=threshold)
        for frame in frames:
            detector.feed(frame)
        cuts, end = detector.finish()
    except MediaError:
        raise
    except Exception as exc:  # PySceneDetect / PyAV raise many types for broken streams
        raise MediaError(
            f"cannot detect shots in {path}: {exc}", hint="re-export or remove the file"
        ) from exc
    return merge_short(spans_from_cuts(cuts, end, info.duration), min_shot)


def merge_short(spans: list[tuple[float, float]], min_shot: float) -> list[tuple[float, float]]:
    """Merge every span shorter than ``min_shot`` into its shorter neighbour."""
    return [(spans[a][0], spans[b][1]) for a, b in merge_groups(spans, min_shot)]


def merge_groups(spans: list[tuple[float, float]], min_shot: float) -> list[tuple[int, int]]:
    """:func:`merge_short` as (first, last) indices into ``spans`` of each merged span."""
    groups = [(i, i) for i in range(len(spans))]
    while len(groups) > 1:
        lengths = [spans[b][1] - spans[a][0] for a, b in groups]
        i = min(range(len(groups)), key=lambda k: lengths[k])
        if lengths[i] >= min_shot:
            break
        if i == 0:
            j = 1
        elif i == len(groups) - 1:
            j = i - 1
        else:
            j = i - 1 if lengths[i - 1] <= lengths[i + 1] else i + 1
        a, b = min(i, j), max(i, j)
        groups[a : b + 1] = [(groups[a][0], groups[b][1])]
    return groups
