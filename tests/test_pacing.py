"""Speech floors and the beat grid in the optimizer (``montage.optimize.pacing``)."""
from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from types import MappingProxyType

import pytest

from montage.optimize import Kept, Pacing, load_rules, optimize
from montage.optimize.rules import RulesError
from planner.shots import ShotPlan
from tests.test_optimize import cands, clip, shot

RATE = Fraction(25)


def _grid(bpm: float, seconds: float) -> tuple[float, ...]:
    period = 60 / bpm
    return tuple(round(k * period, 4) for k in range(int(seconds / period) + 1))


def test_a_spoken_shot_holds_its_speech_whatever_the_style() -> None:
    """energetic caps shots at 3 s and shortens them (tempo 0.75); speech still fits."""
    plan = ShotPlan("x", (shot(0, duration=2.0), shot(1, duration=2.0)))
    table = {"s0": [(clip("a.mp4", 0, 10), 0.9)], "s1": [(clip("short.mp4", 0, 2.0), 0.95),
                                                        (clip("b.mp4", 0, 10), 0.5)]}
    pacing = Pacing(floors=MappingProxyType({"s0": 4.2, "s1": 3.1}))
    sol = optimize(plan, cands(table), rules=load_rules("energetic"), pacing=pacing)
    d0, d1 = sol.edl.decisions
    assert d0.frames >= 4.2 * 25 and d1.frames >= 3.1 * 25
    # the 2 s clip cannot hold 3.1 s of speech: the longer clip wins although it matches less
    assert d1.library_shot == "b.mp4#0"
    without = optimize(plan, cands(table), rules=load_rules("energetic"))
    assert without.edl.decisions[1].library_shot == "short.mp4#0"


def test_cuts_land_on_beats_within_the_tolerance() -> None:
    plan = ShotPlan("x", tuple(shot(i, duration=d) for i, d in enumerate((2.1, 1.7, 2.35, 2.0))))
    table = {f"s{i}": [(clip(f"c{i}.mp4", 0, 10), 0.8)] for i in range(4)}
    beats = _grid(125, 30)  # a beat every 0.48 s = 12 frames: one always within 0.25 s
    pacing = Pacing(beats=beats, downbeats=beats[::4])
    sol = optimize(plan, cands(table), rules=load_rules("default"), pacing=pacing)
    cuts, t = [], 0
    for d in sol.edl.decisions:
        t += d.frames
        cuts.append(t)
    assert all(c % 12 == 0 for c in cuts), cuts
    planned = [round(25 * x) for x in (2.1, 3.8, 6.15, 8.15)]
    tolerance = round(25 * load_rules("default").beat_tolerance)
    assert all(abs(c - p) <= tolerance for c, p in zip(cuts, planned)), (cuts, planned)
    # tolerance 0: the planned lengths stand
    still = replace(load_rules("default"), beat_tolerance=0.0)
    off = optimize(plan, cands(table), rules=still, pacing=pacing)
    assert [d.frames for d in off.edl.decisions] == [round(25 * x) for x in (2.1, 1.7, 2.35, 2.0)]


def test_a_downbeat_wins_over_a_nearer_beat_within_the_tolerance() -> None:
    table = {"s0": [(clip("a.mp4", 0, 10), 0.8)], "s1": [(clip("b.mp4", 0, 10), 0.8)]}
    beats = tuple(k * 0.5 for k in range(20))  # 120 bpm, a downbeat every 2 s
    pacing = Pacing(beats=beats, downbeats=beats[::4])
    rules = load_rules("calm")  # tempo 1.25, beat tolerance 0.4 s (10 frames)

    def first_cut(wanted: float) -> int:
        plan = ShotPlan("x", (shot(0, duration=wanted / rules.tempo), shot(1)))
        return optimize(plan, cands(table), rules=rules, pacing=pacing).edl.decisions[0].frames

    assert first_cut(3.12) == 75  # beats at 3.0 and 3.5 s: the nearer one
    assert first_cut(3.55) == 88  # the downbeat at 4.0 s is 0.45 s away: out of reach
    assert first_cut(3.7) == 100  # the downbeat at 4.0 s (0.3 s) beats the beat at 3.5 s (0.2 s)


def test_a_short_clip_is_not_stretched_past_its_footage() -> None:
    """The snap after solving lengthens a clip only within its footage."""
    plan = ShotPlan("x", (shot(0, duration=2.0), shot(1, duration=2.0)))
    table = {"s0": [(clip("a.mp4", 0, 1.9), 0.9)], "s1": [(clip("b.mp4", 0, 10), 0.8)]}
    beats = tuple(k * 0.5 for k in range(40))
    sol = optimize(plan, cands(table), rules=load_rules("default"), pacing=Pacing(beats=beats))
    d0 = sol.edl.decisions[0]
    last = int(1.9 * 25) - 2  # usable span ends two frames before the detected cut
    assert d0.source_in + d0.frames <= last


def test_beat_tolerance_is_a_checked_limit(tmp_path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('extends = "default"\n[limits]\nbeat_tolerance = 5\n')
    with pytest.raises(RulesError, match="beat_tolerance"):
        load_rules(path)
    path.write_text('extends = "default"\n[limits]\nbeat_tolerance = 0.1\n')
    assert load_rules(path).beat_tolerance == 0.1


def test_an_edit_moves_the_rest_of_a_music_cut_by_whole_beats() -> None:
    """A recut where one shot's words (and so its length) changed: the shots after it keep
    their clips' lengths, and the edit absorbs the difference so every later cut stays on the
    beat it was on (the film after it moves by whole beats)."""
    lengths = (2.1, 1.7, 2.35, 1.9, 2.2)
    plan = ShotPlan("x", tuple(shot(i, duration=d) for i, d in enumerate(lengths)))
    table = {f"s{i}": [(clip(f"c{i}.mp4", 0, 20), 0.8)] for i in range(len(lengths))}
    pacing = Pacing(beats=_grid(120, 30), downbeats=_grid(30, 30))
    first = optimize(plan, cands(table), pacing=pacing).edl
    keep = {d.shot_id: Kept(d.library_shot, d.source_in, d.frames, start=at)
            for d, at in zip(first.decisions, first.starts())}
    edited = ShotPlan("x", (plan.shots[0], shot(5, duration=2.45)) + plan.shots[2:])
    table["s5"] = [(clip("c5.mp4", 0, 20), 0.8)]
    keep["s5"] = replace(keep.pop("s1"), edited=True)
    second = optimize(edited, cands(table), pacing=pacing, keep=keep,
                      free=frozenset({"s5", "s2"})).edl
    before = {d.shot_id: d.frames for d in first.decisions}
    after = {d.shot_id: d.frames for d in second.decisions}
    kept = ("s0", "s2", "s3", "s4")
    assert [after[s] for s in kept] == [before[s] for s in kept]
    assert second.starts()[2] != first.starts()[2]  # the edit moved the rest of the film
    beats = {round(Fraction(b).limit_denominator(100000) * RATE) for b in pacing.beats}
    on_beat = [s + d.frames in beats for s, d in zip(second.starts(), second.decisions)]
    assert on_beat == [s + d.frames in beats for s, d in zip(first.starts(), first.decisions)]
