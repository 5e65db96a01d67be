"""Timing that comes from outside the script: how long each shot's narration needs, and where
the music's beats fall.

Both arrive as plain data (:class:`Pacing`) and change the optimizer in two places:

* before solving, :func:`targets` gives each shot its wanted length and its floor. A spoken
  shot lasts at least as long as its speech (the floor beats the style's tempo and
  ``max_shot``: a cut never lands mid-word), and with a beat grid the planned cut times are
  moved onto the nearest beat (a downbeat first) within the style's ``beat_tolerance``; the
  duration term then prefers clips that cover those lengths;
* after solving, :func:`snap` walks the chosen edit with its real start times (a clip that fell
  short of its wish moves every later cut) and moves each cut onto a beat within the tolerance,
  as far as the clip's footage and the shot's floor allow.
"""
from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType

from planner.shots import PlannedShot

from montage.optimize.rules import RuleSet


@dataclass(frozen=True)
class Pacing:
    """``floors``: shot id -> seconds the shot must last (its speech plus the lead-in);
    ``beats`` / ``downbeats``: seconds from the film's start, ascending (already looped to
    cover the film)."""

    floors: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    beats: tuple[float, ...] = ()
    downbeats: tuple[float, ...] = ()

    def floor_frames(self, shot_id: str, rate: Fraction) -> int:
        seconds = self.floors.get(shot_id, 0.0)
        return math.ceil(Fraction(seconds).limit_denominator(100000) * rate) if seconds > 0 else 0

    def grid(self, rate: Fraction) -> tuple[list[int], set[int]]:
        """The beats as film frames (sorted, unique) and the subset that are downbeats."""
        beats = sorted({round(Fraction(b).limit_denominator(100000) * rate) for b in self.beats})
        downs = {round(Fraction(b).limit_denominator(100000) * rate) for b in self.downbeats}
        return beats, downs


def _nearest_beat(end: int, low: int, high: int, beats: list[int], downs: set[int],
                  tolerance: int) -> int | None:
    """The beat frame for a cut planned at ``end``: the nearest downbeat within ``tolerance``,
    else the nearest beat, among beats in ``[low, high]``; None when none qualifies."""
    lo = bisect.bisect_left(beats, max(low, end - tolerance))
    hi = bisect.bisect_right(beats, min(high, end + tolerance))
    near = beats[lo:hi]
    if not near:
        return None
    pool = [b for b in near if b in downs] or near
    return min(pool, key=lambda b: (abs(b - end), b))


def targets(shots: Sequence[PlannedShot], wants: Sequence[int], rules: RuleSet, rate: Fraction,
            pacing: Pacing | None) -> list[tuple[int, int]]:
    """(wanted frames, floor frames) per shot: ``wants`` raised to each spoken floor, then the
    planned cuts moved onto beats (see the module doc)."""
    if pacing is None:
        return [(w, 0) for w in wants]
    floors = [pacing.floor_frames(s.id, rate) for s in shots]
    out = [(max(w, f), f) for w, f in zip(wants, floors)]
    beats, downs = pacing.grid(rate)
    tolerance = round(Fraction(rules.beat_tolerance).limit_denominator(1000) * rate)
    if not beats or tolerance <= 0:
        return out
    start, snapped = 0, []
    for want, floor in out:
        beat = _nearest_beat(start + want, start + max(floor, 1), math.inf, beats, downs, tolerance)
        length = beat - start if beat is not None else want
        snapped.append((length, floor))
        start += length
    return snapped


def snap(frames: Sequence[int], room: Sequence[int | None], floors: Sequence[int],
         rules: RuleSet, rate: Fraction, pacing: Pacing | None) -> list[int]:
    """Each chosen clip's length moved so its cut lands on a beat, walking the real starts.

    ``room[i]``: the most frames clip ``i`` can last from its in-point (None: a still or a
    card, any length). A clip is never shortened below its shot's floor, nor below one second
    unless it already was shorter."""
    if pacing is None or rules.beat_tolerance <= 0 or not pacing.beats:
        return list(frames)
    beats, downs = pacing.grid(rate)
    tolerance = round(Fraction(rules.beat_tolerance).limit_denominator(1000) * rate)
    second = math.ceil(rate)
    start, out = 0, []
    for n, most, floor in zip(frames, room, floors):
        least = max(1, floor, min(n, second))
        high = start + (most if most is not None else n + tolerance)
        beat = _nearest_beat(start + n, start + least, high, beats, downs, tolerance)
        length = beat - start if beat is not None else n
        out.append(length)
        start += length
    return out
