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

In a recut, a shot kept from the last cut keeps its length (``fixed`` / ``kept``) wherever its
cut still lands on a beat; an edited shot before kept ones ends on the beat that lets the most
of them keep theirs, so one edit does not re-time every shot after it.
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
            pacing: Pacing | None, fixed: Mapping[int, int] | None = None) -> list[tuple[int, int]]:
    """(wanted frames, floor frames) per shot: ``wants`` raised to each spoken floor, then the
    planned cuts moved onto beats (see the module doc). ``fixed``: shot index -> the length a
    kept shot had in the last cut (it wants that again, as long as it holds its speech)."""
    fixed = fixed or {}
    if pacing is None:
        return [(fixed.get(i, w), 0) for i, w in enumerate(wants)]
    floors = [pacing.floor_frames(s.id, rate) for s in shots]
    out = [(max(fixed.get(i, w), f), f) for i, (w, f) in enumerate(zip(wants, floors))]
    beats, downs = pacing.grid(rate)
    tolerance = round(Fraction(rules.beat_tolerance).limit_denominator(1000) * rate)
    if not beats or tolerance <= 0:
        return out
    start, snapped = 0, []
    for i, (want, floor) in enumerate(out):
        beat = None
        if i not in fixed or start + want not in beats:
            beat = _nearest_beat(start + want, start + max(floor, 1), math.inf, beats, downs,
                                 tolerance)
        length = beat - start if beat is not None else want
        snapped.append((length, floor))
        start += length
    return snapped


def snap(frames: Sequence[int], room: Sequence[int | None], floors: Sequence[int],
         rules: RuleSet, rate: Fraction, pacing: Pacing | None,
         previous: Sequence[tuple[int, bool] | None] | None = None) -> list[int]:
    """Each chosen clip's length moved so its cut lands on a beat, walking the real starts.

    ``room[i]``: the most frames clip ``i`` can last from its in-point (None: a still or a
    card, any length). A clip is never shortened below its shot's floor, nor below one second
    unless it already was shorter.

    ``previous[i]``: for a shot of a recut that shows the same clip for the same words as in the
    last cut, (the length it had, whether its cut was on a beat then). It keeps that length
    where its cut is still as much on the beat as it was; and a changed shot before such shots
    ends where the most of them can keep theirs (within two beats of its own wish), which
    moves the rest of the film by whole beats instead of re-timing every shot after an edit."""
    if pacing is None or rules.beat_tolerance <= 0 or not pacing.beats:
        return list(frames)
    beats, downs = pacing.grid(rate)
    on_beat = set(beats)
    tolerance = round(Fraction(rules.beat_tolerance).limit_denominator(1000) * rate)
    second = math.ceil(rate)
    previous = list(previous) if previous is not None else [None] * len(frames)
    gaps = sorted(b - a for a, b in zip(beats, beats[1:]))
    reach = 2 * gaps[len(gaps) // 2] if gaps else tolerance

    def bounds(i: int, start: int) -> tuple[int, int]:
        n, most = frames[i], room[i]
        least = max(1, floors[i], min(n, second))
        return start + least, start + (most if most is not None else n + tolerance)

    def length(i: int, start: int) -> int:
        n = frames[i]
        low, high = bounds(i, start)
        if previous[i] is not None:
            was, was_on_beat = previous[i]
            end = start + was
            if low <= end <= start + (room[i] if room[i] is not None else end) and \
                    (end in on_beat or not was_on_beat):
                return was  # unchanged, and as much on the beat as it was
        beat = _nearest_beat(start + n, low, high, beats, downs, tolerance)
        return beat - start if beat is not None else n

    def keeps(i: int, start: int) -> int:
        """How many shots from ``i`` on keep their last cut's length, starting at ``start``."""
        count = 0
        for j in range(i, len(frames)):
            n = length(j, start)
            count += previous[j] is not None and n == previous[j][0]
            start += n
        return count

    start, out = 0, []
    for i, n in enumerate(frames):
        size = length(i, start)
        if previous[i] is None and any(p is not None for p in previous[i + 1:]):
            low, high = bounds(i, start)
            ends = range(max(low, start + n - reach), min(high, start + n + reach) + 1)
            if ends:  # keep the most; then a downbeat, a beat; then the nearest to its wish
                best = max(ends, key=lambda e: (keeps(i + 1, e), e in downs, e in on_beat,
                                                -abs(e - start - size), -e))
                if keeps(i + 1, best) > keeps(i + 1, start + size):
                    size = best - start
        out.append(size)
        start += size
    return out
