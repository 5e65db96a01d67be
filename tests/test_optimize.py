"""The CP-SAT assignment: best matches win, no clip twice, placeholders below the threshold."""
from __future__ import annotations

import itertools
from fractions import Fraction

from planner.shots import PlannedShot, ShotPlan
from retrieval.types import CandidateSet, Hit, LibraryShot, ShotCandidates

from montage.optimize import frames_for, optimize, shot_options


def shot(n: int, duration: float = 2.0) -> PlannedShot:
    return PlannedShot(id=f"s{n}", scene=0, text=f"sentence {n}.", query=f"thing {n}",
                       characters=(), duration=duration, line=n + 1)


def clip(name: str, start: float = 0.0, end: float = 10.0, kind: str = "video") -> LibraryShot:
    if kind == "still":
        start = end = 0.0
    return LibraryShot(id=f"{name}#0", path=name, kind=kind, start=start, end=end,
                       width=64, height=36, fps=0.0 if kind == "still" else 25.0, labels=(name,))


def cands(table: dict[str, list[tuple[LibraryShot, float]]]) -> CandidateSet:
    return CandidateSet(library="/lib", embedder="test", shots=tuple(
        ShotCandidates(shot_id=sid, query="q", hits=tuple(Hit(c, s) for c, s in hits))
        for sid, hits in table.items()))


def test_picks_best_and_never_reuses_a_clip():
    a, b = clip("a.mp4"), clip("b.mp4")
    plan = ShotPlan(source="x", shots=(shot(0), shot(1)))
    # both shots prefer a; the optimum gives a to s1 (0.9 + 0.5 > 0.8 + 0.4)
    sol = optimize(plan, cands({"s0": [(a, 0.8), (b, 0.5)], "s1": [(a, 0.9), (b, 0.4)]}))
    used = [d.library_shot for d in sol.edl.decisions]
    assert used == ["b.mp4#0", "a.mp4#0"]
    assert sol.optimal
    assert abs(sol.objective - 1.4) < 1e-6


def test_agrees_with_exhaustive_search_on_random_instances():
    import random

    rng = random.Random(7)
    for _ in range(20):
        clips = [clip(f"c{k}.mp4") for k in range(4)]
        plan = ShotPlan(source="x", shots=tuple(shot(i) for i in range(3)))
        table = {f"s{i}": [(c, round(rng.random(), 3)) for c in rng.sample(clips, 3)] for i in range(3)}
        sol = optimize(plan, cands(table), threshold=0.2)
        best = 0.0
        options = [[(c.id, s) for c, s in table[f"s{i}"]] + [(None, 0.2)] for i in range(3)]
        for combo in itertools.product(*options):
            ids = [c for c, _ in combo if c]
            if len(ids) == len(set(ids)):
                best = max(best, sum(s for _, s in combo))
        assert abs(sol.objective - best) < 1e-6


def test_placeholder_below_threshold_says_why():
    plan = ShotPlan(source="x", shots=(shot(0),))
    sol = optimize(plan, cands({"s0": [(clip("a.mp4"), 0.1)]}), threshold=0.3)
    d = sol.edl.decisions[0]
    assert (d.source, d.kind, d.media) == ("placeholder", "card", "")
    assert d.frames == frames_for(2.0, Fraction(25))
    assert "nothing free scored 0.30" in d.reason and "a.mp4#0 0.10" in d.reason


def test_trim_sits_inside_the_source_span():
    rate = Fraction(25)
    c = clip("a.mp4", start=4.0, end=10.0)
    [opt] = shot_options(shot(0, duration=2.0), (Hit(c, 0.9),), rate)
    assert opt.frames == 50
    assert 4.0 * 25 < opt.source_in and opt.source_in + opt.frames < 10.0 * 25
    # too short a span is not an option; a still always is
    assert shot_options(shot(0, duration=4.0), (Hit(clip("b.mp4", 0, 1.0), 0.9),), rate) == []
    [still] = shot_options(shot(0, duration=4.0), (Hit(clip("p.png", kind="still"), 0.5),), rate)
    assert (still.frames, still.source_in) == (100, 0)


def test_short_clip_shortens_the_shot_and_costs_score():
    rate = Fraction(25)
    [opt] = shot_options(shot(0, duration=4.0), (Hit(clip("a.mp4", 0, 3.0), 0.9),), rate)
    assert opt.frames == 3 * 25 - 4  # span less the edge frames
    assert opt.value < 0.9


def test_deterministic():
    clips = [clip(f"c{k}.mp4") for k in range(3)]
    plan = ShotPlan(source="x", shots=tuple(shot(i) for i in range(3)))
    table = {f"s{i}": [(c, 0.5) for c in clips] for i in range(3)}  # all ties
    first = optimize(plan, cands(table)).edl
    assert all(optimize(plan, cands(table)).edl == first for _ in range(3))


def test_candidates_json_round_trip():
    table = {"s0": [(clip("a.mp4", 1.5, 4.25), 0.75), (clip("p.png", kind="still"), 0.25)], "s1": []}
    original = cands(table)
    assert CandidateSet.from_json(original.to_json()) == original


def test_candidates_round_trip_with_features():
    from dataclasses import replace

    from retrieval.types import ShotFeatures

    f = ShotFeatures(brightness=0.4, histogram=(0.5, 0.5), colors=((1, 2, 3),), faces=1,
                     face_size=0.3, scale="medium", face_descriptors=((0.1,) * 128,))
    original = cands({"s0": [(replace(clip("a.mp4"), features=f), 0.5)]})
    assert CandidateSet.from_json(original.to_json()) == original
