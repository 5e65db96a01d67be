"""Every rule changes the answer where it should; the solvers agree with exhaustive search."""
from __future__ import annotations

import random
from fractions import Fraction

import pytest

from montage.optimize.heuristic import exhaustive
from montage.optimize.instance import build_problem
from montage.optimize import OptimizeError, load_rules, optimize
from montage.optimize.problem import evaluate, score
from montage.optimize.solver import solve_cpsat
from retrieval.types import CAMERA_MOVES, ShotFeatures
from tests.rulekit import P_FACE, P_FACE_2, Q_FACE, cands, chosen, lib, plan_of, shot

RULES = load_rules()
LIT = dict(brightness=0.5, contrast=0.2, sharpness=0.9, stability=1.0)


def _one_shot(bad: dict, good: dict, **shot_args):
    """One shot, a slightly better match that breaks the rule (0.51) and a clean one (0.50)."""
    return (plan_of(shot(0, **shot_args)),
            cands([(lib("bad.mp4", **{**LIT, **bad}), 0.51), (lib("good.mp4", **{**LIT, **good}), 0.50)]),
            ["bad.mp4#0"], ["good.mp4#0"])


def _after(first: dict, bad: dict, good: dict, same_file: bool = False):
    """Two shots: shot 0 has one option; for shot 1 the rule should reject the better match."""
    head = lib("head.mp4", **{**LIT, **first})
    bad_clip = lib("head.mp4" if same_file else "bad.mp4", 1 if same_file else 0, **{**LIT, **bad})
    return (plan_of(shot(0), shot(1)),
            cands([(head, 0.9)], [(bad_clip, 0.51), (lib("good.mp4", **{**LIT, **good}), 0.50)]),
            ["head.mp4#0", bad_clip.id], ["head.mp4#0", "good.mp4#0"])


def _character():
    maya = ("Maya",)
    p = plan_of(shot(0, characters=maya), shot(1, characters=maya), shot(2, characters=maya))
    c = cands([(lib("a.mp4", **LIT, faces=1, face_descriptors=(P_FACE,)), 0.9)],
              [(lib("b.mp4", **LIT, faces=1, face_descriptors=(P_FACE_2,)), 0.9)],
              [(lib("q.mp4", **LIT, faces=1, face_descriptors=(Q_FACE,)), 0.51),
               (lib("p.mp4", **LIT, faces=1, face_descriptors=(P_FACE,)), 0.50)])
    return p, c, ["a.mp4#0", "b.mp4#0", "q.mp4#0"], ["a.mp4#0", "b.mp4#0", "p.mp4#0"]


CASES = {
    "tone": lambda: _one_shot({"brightness": 0.97}, {}),
    "focus": lambda: _one_shot({"sharpness": 0.1}, {}),
    "stability": lambda: _one_shot({"stability": 0.2}, {}),
    "resolution": lambda: (plan_of(shot(0)), cands([(lib("bad.mp4", size=(160, 90)), 0.51),
                                                    (lib("good.mp4"), 0.50)]), ["bad.mp4#0"], ["good.mp4#0"]),
    "duration": lambda: (plan_of(shot(0, duration=4.0)), cands([(lib("bad.mp4", end=2.5), 0.51),
                                                                (lib("good.mp4"), 0.50)]),
                         ["bad.mp4#0"], ["good.mp4#0"]),
    "pace": lambda: _one_shot({"motion": 0.0}, {"motion": 0.125}),
    "scene_opening": lambda: _one_shot({"scale": "close-up"}, {"scale": "wide"}),
    "character_visible": lambda: _one_shot({}, {"faces": 1}, characters=("Maya",)),
    "jump_cut": lambda: _after({"scale": "medium"}, {"scale": "medium"}, {"scale": "medium"}, same_file=True),
    "tone_continuity": lambda: _after({"brightness": 0.1}, {"brightness": 0.9}, {"brightness": 0.12}),
    "camera_continuity": lambda: _after({"camera": "pan_left"}, {"camera": "pan_right"},
                                        {"camera": "static"}),
    "scale_jump": lambda: _after({"scale": "wide"}, {"scale": "close-up"}, {"scale": "medium"}),
    "same_scale": lambda: _after({"scale": "medium"}, {"scale": "medium"}, {"scale": "wide"}),
    "variety": lambda: _after({"scale": "wide"}, {"scale": "medium"}, {"scale": "medium"}, same_file=True),
    "character": _character,
}


@pytest.mark.parametrize("term", sorted(CASES))
def test_each_rule_changes_the_answer(term: str):
    plan, candidates, without, with_rule = CASES[term]()
    assert chosen(optimize(plan, candidates, rules=RULES.only("match"))) == without
    sol = optimize(plan, candidates, rules=RULES.only("match", term))
    assert chosen(sol) == with_rule
    assert sol.optimal
    # the full default rule set agrees with the single rule on these clean instances
    assert chosen(optimize(plan, candidates)) == with_rule


def test_reuse_gap_and_reuse_cost():
    x, y, z = lib("x.mp4"), lib("y.mp4"), lib("z.mp4")
    plan = plan_of(shot(0), shot(1), shot(2))
    c = cands([(x, 0.9), (y, 0.5)], [(y, 0.6), (z, 0.5)], [(x, 0.9), (z, 0.5)])
    never = RULES.only("match")
    assert chosen(optimize(plan, c, rules=never)).count("x.mp4#0") == 1
    from dataclasses import replace

    gap2 = replace(never, reuse_gap=2)
    assert chosen(optimize(plan, c, rules=gap2)) == ["x.mp4#0", "y.mp4#0", "x.mp4#0"]
    assert chosen(optimize(plan, c, rules=replace(gap2, reuse_gap=3))).count("x.mp4#0") == 1
    costly = gap2.with_weights(reuse=0.5)  # a reuse now costs more than it gains (0.9 - 0.5)
    assert chosen(optimize(plan, c, rules=costly)).count("x.mp4#0") == 1


def test_tempo_and_limits_change_shot_lengths():
    plan = plan_of(shot(0, duration=2.0), shot(1, duration=6.0))
    c = cands([(lib("a.mp4", end=20), 0.9)], [(lib("b.mp4", end=20), 0.9)])
    frames = {style: [d.frames for d in optimize(plan, c, rules=load_rules(style)).edl.decisions]
              for style in ("default", "calm", "energetic")}
    assert frames["default"] == [50, 150]
    assert frames["calm"] == [round(2.5 * 25), round(7.5 * 25)]  # tempo 1.25, min_shot 2.5
    assert frames["energetic"] == [round(1.5 * 25), 3 * 25]  # tempo 0.75, max_shot 3.0


def test_features_missing_are_neutral():
    plan = plan_of(shot(0), shot(1, scene=1, characters=("Maya",)), shot(2, scene=1))
    c = cands([(lib("a.mp4"), 0.7), (lib("b.mp4"), 0.6)], [(lib("a.mp4", 1), 0.8), (lib("c.mp4"), 0.6)],
              [(lib("d.mp4"), 0.5), (lib("b.mp4"), 0.55)])
    plain = RULES.only("match", "resolution", "duration", "jump_cut", "variety")
    full, reference = optimize(plan, c), optimize(plan, c, rules=plain)
    assert chosen(full) == chosen(reference)
    assert full.objective == pytest.approx(reference.objective)


def _random_instance(rng: random.Random, shots: int, options: int, gap: int = 0):
    people = [P_FACE, Q_FACE]
    files = ["a.mp4", "b.mp4", "c.mp4"]
    pool = []
    for k in range(options + 2):
        faces = rng.choice([(), (rng.choice(people),)])
        features = ShotFeatures(
            brightness=rng.random(), contrast=rng.uniform(0, 0.3), sharpness=rng.random(),
            stability=rng.random(), motion=rng.uniform(0, 0.3), camera=rng.choice(CAMERA_MOVES),
            colors=((rng.randrange(256), rng.randrange(256), rng.randrange(256)),),
            scale=rng.choice(["close-up", "medium", "wide", "unknown"]), faces=len(faces),
            face_descriptors=faces)
        pool.append(lib(files[k % 3], k, end=rng.choice([2.0, 10.0]),
                        features=None if k == 0 else features))
    plan = plan_of(*(shot(i, scene=i // 2, characters=("Maya",) if rng.random() < 0.6 else ())
                     for i in range(shots)))
    c = cands(*([(clip, round(rng.uniform(0.2, 0.9), 3)) for clip in rng.sample(pool, options)]
                for _ in range(shots)))
    return plan, c


@pytest.mark.parametrize("gap", [0, 2])
def test_solvers_agree_with_exhaustive_search(gap: int):
    from dataclasses import replace

    rng = random.Random(11 + gap)
    rules = replace(RULES, reuse_gap=gap)
    for _ in range(12):
        plan, c = _random_instance(rng, 4, 4, gap)
        p = build_problem(plan, c, rules, rate=Fraction(25), width=1280, height=720)
        _, best = exhaustive(p)
        sol = optimize(plan, c, rules=rules)
        assert sol.optimal and round(sol.objective * 1000) == best
        for pairs in (False, True):
            cp = solve_cpsat(p, pairs=pairs, time_limit=10)
            assert cp.optimal and cp.value == best == score(p, cp.choice)
        assert sum(sum(v for _, v in d.costs) for d in sol.edl.decisions) == pytest.approx(-sol.objective)


def test_deterministic_on_a_bigger_instance():
    from bench.instances import make_instance

    plan, c = make_instance(40, 8, seed=3)
    first = optimize(plan, c, time_limit=0.3)
    assert first.bound >= first.objective and 0 <= first.gap
    for _ in range(2):
        again = optimize(plan, c, time_limit=0.3)
        assert again.edl == first.edl and again.objective == first.objective


def test_answer_respects_no_reuse_and_reports_the_dp_reference():
    from bench.instances import make_instance

    plan, c = make_instance(30, 10, seed=1)
    sol = optimize(plan, c, time_limit=0.3)
    used = [d.library_shot for d in sol.edl.decisions if d.library_shot]
    assert len(used) == len(set(used))
    assert sol.stats["dp_reuses"] > 0  # the plain DP would have reused clips here
    assert sol.objective >= sol.stats["dp_value"]


def test_infeasible_rules_are_named():
    from dataclasses import replace

    strict = replace(RULES, placeholders=False)
    plan = plan_of(shot(0), shot(1), shot(2))
    a, b = lib("a.mp4"), lib("b.mp4")
    with pytest.raises(OptimizeError) as err:
        optimize(plan, cands([(a, 0.9), (b, 0.8)], [(a, 0.9), (b, 0.8)], [(a, 0.9), (b, 0.8)]), rules=strict)
    assert "reuse_gap = 0" in err.value.message and "placeholders = false" in err.value.message
    assert "3 shots, 2 usable clips" in err.value.message
    with pytest.raises(OptimizeError, match="shot s1 .line 2. has no usable clip"):
        optimize(plan, cands([(a, 0.9)], [], [(b, 0.8)]), rules=strict)
    # the same film is fine once reuse is allowed with a gap the film can meet
    sol = optimize(plan, cands([(a, 0.9), (b, 0.8)], [(a, 0.9), (b, 0.8)], [(a, 0.9), (b, 0.8)]),
                   rules=replace(strict, reuse_gap=2))
    assert chosen(sol) == ["a.mp4#0", "b.mp4#0", "a.mp4#0"]


def test_evaluate_explains_every_unit_of_the_objective():
    plan, c = _random_instance(random.Random(5), 5, 4)
    p = build_problem(plan, c, RULES, rate=Fraction(25), width=1280, height=720)
    choice, best = exhaustive(p)
    ev = evaluate(p, choice)
    assert ev.total == best and not ev.violations
    assert sum(sum(d.values()) for d in ev.per_shot) == best


@pytest.mark.parametrize("style", ["default", "documentary"])
def test_saved_instance_rescored_independently(tmp_path, style: str):
    """bench/optimizer.py --check re-scores an answer with its own plain-Python objective."""
    from bench.instances import make_instance
    from bench.optimizer import check_saved, save_instance

    plan, c = make_instance(16, 6, seed=4)
    rules = load_rules(style)
    p = build_problem(plan, c, rules, rate=Fraction(25), width=1280, height=720)
    sol = optimize(plan, c, rules=rules, time_limit=0.3)
    picked = [next(k for k, o in enumerate(p.options[i]) if o.clip_id == d.library_shot)
              for i, d in enumerate(sol.edl.decisions)]
    save_instance(p, picked, tmp_path / "instance.json")
    checked = check_saved(tmp_path / "instance.json")
    assert checked["agree"] and checked["feasible"]
    assert checked["objective"] == pytest.approx(sol.objective)


def test_a_cast_face_decides_who_the_character_is():
    """Maya's shots: one can show only a stranger (Q), the other only Maya's cast face (P).
    Without the cast the rule cannot tell who Maya is: two faces for her cost more than the
    matches are worth above a card, so one of them becomes a card; with her cast face, the
    stranger's face does not count as Maya shown by another face, and both clips are used."""
    maya = ("Maya",)
    p = plan_of(shot(0, characters=maya), shot(1, characters=maya))
    c = cands([(lib("a-stranger.mp4", **LIT, faces=1, face_descriptors=(Q_FACE,)), 0.55)],
              [(lib("b-maya.mp4", **LIT, faces=1, face_descriptors=(P_FACE_2,)), 0.55)])
    blind = [d.source for d in optimize(p, c, rules=RULES).edl.decisions]
    assert "placeholder" in blind
    for solver_name in ("cpsat", "exhaustive"):
        problem = build_problem(p, c, RULES, rate=Fraction(25), width=1280, height=720,
                                cast_faces={"Maya": P_FACE})
        choice = (solve_cpsat(problem, time_limit=2.0).choice if solver_name == "cpsat"
                  else exhaustive(problem)[0])
        assert [problem.options[i][k].clip_id for i, k in enumerate(choice)] == \
            ["a-stranger.mp4#0", "b-maya.mp4#0"], solver_name
    seen = optimize(p, c, rules=RULES, cast_faces={"Maya": P_FACE}).edl.decisions
    assert [d.library_shot for d in seen] == ["a-stranger.mp4#0", "b-maya.mp4#0"]
    # a shot that also names someone without a cast photo keeps today's rule (every face counts)
    both = plan_of(shot(0, characters=("Maya", "Tom")), shot(1, characters=maya))
    mixed = build_problem(both, c, RULES, rate=Fraction(25), width=1280, height=720,
                          cast_faces={"Maya": P_FACE})
    assert mixed.faces[0][0] != ()
