"""One pass over a video: every frame decoded once, the cuts found as it plays, and for each
shot the few frames its analysis needs.

Indexing used to decode a file twice (PySceneDetect for the cuts, then seeking back for the
keyframes and motion triplets), which cost about as much again as the first pass. Here the
keyframe and motion times are only known once a shot has ended, so while a shot plays its
candidate frames are held as the decoder's own pictures (not converted: most are never used):
every frame of the shot from its start, then every 2nd, 4th, ... frame once more than a budget
are held (the budget is a memory size, so it is smaller for larger frames). Each held frame also
holds the next two, the rest of its motion triplet. A keyframe is the first held frame at or
after its time, as :func:`retrieval.media.decode.read_frames` gives it, so a shot that fits the budget
(about 2 s at 1080p, 10 s at 640x360) gets exactly the frames of a seek-and-decode, converted
the same way; in a longer one a keyframe can be up to a stride late (a 5 s shot at 1080p: up to
7 frames). Only the chosen frames are ever converted to RGB.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retrieval.media.cuts import (DEFAULT_MIN_SHOT, DEFAULT_THRESHOLD, CutDetector, merge_groups,
                                  spans_from_cuts)
from retrieval.media.decode import DecodedFrame, decode_video
from .motion import motion_times

# Where in a shot its keyframes are taken (fractions of its span): five for a long shot, three
# for a normal one, two for a short one, the middle for a flash.
LONG_KEYFRAMES = (0.1, 0.3, 0.5, 0.7, 0.9)
KEYFRAMES = (0.25, 0.5, 0.75)
SHORT_KEYFRAMES = (1 / 3, 2 / 3)
LONG_SHOT = 8.0  # seconds
SHORT_SHOT = 1.5
FLASH = 0.2
HELD_BYTES = 160 * 1024 * 1024  # decoder pictures held for the open shot, at most about this
MIN_HELD, MAX_HELD = 12, 250  # ... but never fewer or more pictures than these


def keyframe_fractions(duration: float) -> tuple[float, ...]:
    if duration >= LONG_SHOT:
        return LONG_KEYFRAMES
    if duration >= SHORT_SHOT:
        return KEYFRAMES
    return SHORT_KEYFRAMES if duration >= FLASH else (0.5,)


@dataclass(frozen=True)
class ScannedShot:
    """One shot as the scan found it and its chosen frames."""

    start: float
    end: float
    keyframes: tuple[np.ndarray, ...]  # full-size RGB, at the keyframe fractions of the span
    times: tuple[float, ...]  # where each keyframe is (seconds into the stream)
    triplets: tuple[tuple[np.ndarray, ...], ...]  # grey, at the flow's working width


@dataclass
class _Held:
    frame: DecodedFrame
    partners: list[DecodedFrame] = field(default_factory=list)  # the next two frames


class _OpenShot:
    """The held frames of the shot that is playing (see the module docstring)."""

    def __init__(self, start: float, first_index: int, budget: int,
                 held: list[_Held] | None = None) -> None:
        self.start = start
        self.first_index = first_index
        self.budget = budget  # decoder pictures, held frames and partners together
        self.stride = 1
        self.held: list[_Held] = held or []

    def wants(self, index: int) -> bool:
        return (index - self.first_index) % self.stride == 0

    def pictures(self) -> int:
        return len({id(f) for h in self.held for f in (h.frame, *h.partners)})

    def add(self, item: _Held) -> None:
        self.held.append(item)
        if len(self.held) * 3 > self.budget:  # cheap test first: a partner is often held too
            while self.pictures() > self.budget and len(self.held) > 1:
                self.stride *= 2
                self.held = [h for h in self.held if self.wants(h.frame.index)]


@dataclass
class _Closed:
    """A shot that has ended but may still be merged with a short neighbour."""

    start: float
    end: float
    held: list[_Held]


def scan_video(path: Path, duration: float, fps: float, *,
               threshold: float = DEFAULT_THRESHOLD, min_shot: float = DEFAULT_MIN_SHOT,
               held_bytes: int = HELD_BYTES) -> Iterator[ScannedShot]:
    """The shots of a video with their keyframes and motion triplets, in order, each as soon
    as it is settled (shots shorter than ``min_shot`` merged as :func:`merge_short` does).

    ``duration`` and ``fps`` come from :func:`retrieval.media.decode.probe` (the last shot ends at the
    later of ``duration`` and its last frame; motion times step by ``1 / fps``). ``held_bytes``:
    the memory for held pictures (see the module docstring).
    """
    stream, frames = decode_video(path)
    detector = CutDetector(stream.width, stream.height, stream.rate, threshold=threshold)
    budget = max(MIN_HELD, min(MAX_HELD, held_bytes // max(1, stream.width * stream.height
                                                           * 3 // 2)))
    shot: _OpenShot | None = None
    closed: list[_Closed] = []  # ended, not yet settled
    recent: list[_Held] = []  # held frames still waiting for their two partners
    for frame in frames:
        cuts = detector.feed(frame)
        if shot is None:
            shot = _OpenShot(0.0, frame.index, budget)
        for cut in cuts:
            keep = [h for h in shot.held if h.frame.seconds >= cut - 1e-6]
            closed.append(_Closed(shot.start, cut, shot.held[:len(shot.held) - len(keep)]))
            shot = _OpenShot(cut, keep[0].frame.index if keep else frame.index, budget, keep)
        # Two neighbours of min_shot or more never merge, so once the open shot is that long
        # and the last ended one is too, everything before it is settled.
        if closed and closed[-1].end - closed[-1].start >= min_shot \
                and frame.seconds - shot.start >= min_shot:
            yield from _settle(closed, min_shot, fps)
            closed = []
        for h in recent:
            h.partners.append(frame)
        recent = [h for h in recent if len(h.partners) < 2]
        if shot.wants(frame.index):
            item = _Held(frame)
            shot.add(item)
            recent.append(item)
    cuts, end = detector.finish()
    if shot is None:
        return
    spans = spans_from_cuts(cuts, end, duration)
    for cut, _ in spans[1:]:
        keep = [h for h in shot.held if h.frame.seconds >= cut - 1e-6]
        if cut > shot.start + 1e-6 and keep:  # a cut only the end of the stream confirmed
            closed.append(_Closed(shot.start, cut, shot.held[:len(shot.held) - len(keep)]))
            shot = _OpenShot(cut, 0, budget, keep)
    closed.append(_Closed(shot.start, spans[-1][1], shot.held))
    yield from _settle(closed, min_shot, fps)


def _settle(closed: list[_Closed], min_shot: float, fps: float) -> Iterator[ScannedShot]:
    for a, b in merge_groups([(c.start, c.end) for c in closed], min_shot):
        yield _pick(closed[a].start, closed[b].end,
                    [h for c in closed[a : b + 1] for h in c.held], fps)


def _first_at(held: list[_Held], t: float) -> _Held:
    for h in held:
        if h.frame.seconds >= t - 1e-6:
            return h
    return held[-1]


def _pick(start: float, end: float, held: list[_Held], fps: float) -> ScannedShot:
    """The keyframes and motion triplets of the shot [start, end) from its held frames."""
    from .motion import flow_gray

    if not held:
        return ScannedShot(start, end, (), (), ())
    chosen = [_first_at(held, start + f * (end - start)) for f in keyframe_fractions(end - start)]
    rgb: dict[int, np.ndarray] = {}
    for h in chosen:
        if h.frame.index not in rgb:
            rgb[h.frame.index] = h.frame.rgb()
    complete = [h for h in held if len(h.partners) == 2 and h.partners[1].seconds < end - 1e-6]
    triplets = []
    if complete:
        for t, _, _ in motion_times(start, end, fps):
            h = _first_at(complete, t)
            triplets.append(tuple(
                flow_gray(rgb[f.index] if f.index in rgb else f.rgb(tone=False))
                for f in (h.frame, *h.partners)))
    return ScannedShot(start, end, tuple(rgb[h.frame.index] for h in chosen),
                       tuple(round(h.frame.seconds, 4) for h in chosen), tuple(triplets))
