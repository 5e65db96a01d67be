"""Choose one option per planned shot under a rule set, and say why (the montage step).

The edit maximises match rewards minus rule costs (``montage.rules``; terms from
``montage.costs``). Solving goes in three steps, each deterministic for the same input:

1. dynamic programming over the chain of shots, priced by Lagrangian relaxation so that it
   stops reusing clips (``montage.lagrange``): an upper bound and a feasible start;
2. large-neighbourhood search over windows of shots (``montage.heuristic.improve``);
3. CP-SAT from that start (``montage.solver``) when the model is small enough to pay off, which
   proves optimality or narrows the bound.

The answer reports the objective, the best bound, the gap and whether it is proven optimal.
Pins, bans, kept choices and a partial re-solve (``free``) serve re-cutting: see
:func:`optimize`.
"""
from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from planner.shots import ShotPlan
from retrieval.types import CandidateSet

from montage.optimize.confidence import CARD_VALUE
from montage.optimize.costs import SCALE
from montage.optimize.edl import EditDecision, EditDecisionList
from montage.optimize.explain import Explanation, explain
from montage.optimize.instance import build_problem
from montage.optimize.lagrange import lagrangian
from montage.optimize.pacing import Pacing, snap
from montage.optimize.problem import (Kept, Option, OptimizeError, Problem, frames_for, planned_seconds,
                             shot_options, usable_span)
from montage.optimize.rules import RuleSet, default_rules

__all__ = ["Kept", "OptimizeError", "Option", "Solution", "frames_for", "optimize", "shot_options",
           "planned_seconds"]

CP_MAX_OPTIONS = 600  # run CP-SAT when the Lagrangian bound leaves at most this many options


@dataclass(frozen=True)
class Solution:
    """The chosen edit and how good it provably is (objective and bound in match-score units)."""

    edl: EditDecisionList
    objective: float  # match rewards minus rule costs; higher is better
    optimal: bool  # proven: no edit scores more under these rules
    seconds: float  # wall time of the whole optimisation
    bound: float = math.inf  # no edit scores more than this
    gap: float = math.inf  # (bound - objective) / max(|objective|, 1)
    rules: str = ""  # the rule set's name
    method: str = ""  # what found the answer and what proved the bound
    stats: Mapping[str, float] = field(default_factory=dict)  # dp_value, dp_reuses, ...


def optimize(
    plan: ShotPlan,
    candidates: CandidateSet,
    *,
    rate: Fraction = Fraction(25),
    width: int = 1280,
    height: int = 720,
    threshold: float | None = None,
    rules: RuleSet | None = None,
    time_limit: float | None = None,
    pins: Mapping[str, str] | None = None,
    bans: frozenset[str] = frozenset(),
    keep: Mapping[str, Kept] | None = None,
    free: frozenset[str] | None = None,
    pacing: Pacing | None = None,
    cast_faces: Mapping[str, tuple[float, ...]] | None = None,
) -> Solution:
    """Choose the edit. Deterministic for the same input.

    ``rules`` defaults to the ``default`` style; ``threshold``, when given, sets the card bar
    in sd (see :mod:`montage.optimize.confidence`; default: the library's own, moved by the
    style). Every shot's candidates carry their query's calibration. ``pins`` force shot id -> library shot id (an OptimizeError names
    both if that clip is not among the shot's candidates); ``bans`` are library shot ids never
    used; ``keep`` holds the previous cut's choices, which earn the rule set's ``keep`` reward;
    with ``free`` only those shots are re-solved and every other kept shot stays as it was
    (when it still can). ``time_limit`` is CP-SAT's budget in its deterministic work units
    (about seconds on an idle core; default 1 s + 5 ms a shot), so the answer does not
    depend on machine load; a wall-clock backstop of four times that plus a second guards
    against a stall. ``pacing`` brings narration floors and a music beat grid
    (:mod:`montage.optimize.pacing`): spoken shots hold their speech, and cuts land on beats
    within the style's ``beat_tolerance``. ``cast_faces`` maps a character to the face
    descriptor of their cast.toml photos: in shots that name only such characters, a face
    counts for the character rule only when it is theirs (an extra's face is not the
    character shown by another face).
    """
    t0 = time.perf_counter()
    rules = rules or default_rules()
    if threshold is not None:
        rules = replace(rules, placeholder_threshold=threshold)
    limit = time_limit if time_limit is not None else 1.0 + 0.005 * len(plan.shots)
    p = build_problem(plan, candidates, rules, rate=rate, width=width, height=height,
                      pins=pins, bans=bans, keep=keep, free=free, pacing=pacing,
                      cast_faces=cast_faces)
    choice, value, bound, optimal, method, stats = _solve(p, limit)
    explanations = explain(p, choice)
    root = Path(candidates.library)
    chosen = [p.options[i][k] for i, k in enumerate(choice)]
    if pacing is not None:
        lengths = snap([o.frames for o in chosen], [_room(o, rate) for o in chosen],
                       [pacing.floor_frames(s.id, rate) for s in p.shots], rules, rate, pacing,
                       previous=_previous_lengths(p.shots, chosen, keep, free, pacing, rate))
        chosen = [replace(o, frames=n) for o, n in zip(chosen, lengths)]
    decisions = tuple(_decision(p, i, chosen[i], explanations[i], root, rate)
                      for i in range(p.n))
    edl = EditDecisionList(rate=rate, width=width, height=height, decisions=decisions)
    objective = value / SCALE
    b = max(objective, math.floor(bound + 1e-6) / SCALE)
    return Solution(edl=edl, objective=objective, optimal=optimal, seconds=time.perf_counter() - t0,
                    bound=b, gap=(b - objective) / max(abs(objective), 1.0), rules=rules.name,
                    method=method, stats=stats)


def _solve(p: Problem, limit: float) -> tuple[list[int], int, float, bool, str, dict]:
    size = sum(len(o) for o in p.options)
    iterations = int(min(300, max(40, 500_000 // max(size, 1)))) if p.n > 1 else 0
    start = lagrangian(p, iterations=iterations)
    stats = {"dp_value": start.dp_value / SCALE, "dp_reuses": float(start.dp_reuses),
             "lagrangian_bound": start.bound / SCALE, "options": float(size)}
    choice, value, bound = start.choice, start.value, start.bound
    method = "dp+lagrangian+lns"
    optimal = choice is not None and bound - value < 1.0
    if choice is None:
        return _cp_only(p, limit, stats)
    if not optimal:
        keep = [[int(k) for k in np.flatnonzero(v)] for v in start.viable]
        reduced = sum(len(k) for k in keep)
        stats["viable_options"] = float(reduced)
        if reduced <= CP_MAX_OPTIONS:
            from montage.optimize.solver import solve_cpsat

            q = p.subset(keep)
            hint = [keep[i].index(k) for i, k in enumerate(choice)]
            # the deterministic limit decides; the wall-clock one only guards against a stall
            cp = solve_cpsat(q, hint=hint, time_limit=4 * limit + 1, deterministic_limit=limit,
                             upper=bound)
            stats["cpsat_seconds"] = cp.seconds
            if cp.choice is not None and cp.value > value:
                choice, value, method = [keep[i][k] for i, k in enumerate(cp.choice)], cp.value, "cp-sat"
            if cp.choice is not None:  # options left out cannot beat ``value``: the bound holds
                bound = min(bound, max(cp.bound, value))
                optimal = cp.optimal or bound - value < 1.0
                method += ", bound by cp-sat over the options the lagrangian bound left"
    return choice, value, bound, optimal, method, stats


def _cp_only(p: Problem, limit: float, stats: dict) -> tuple[list[int], int, float, bool, str, dict]:
    """No feasible start was found: CP-SAT decides (and proves infeasibility)."""
    from montage.optimize.solver import solve_cpsat

    cp = solve_cpsat(p, time_limit=4 * limit + 1, deterministic_limit=limit)
    if cp.choice is None:
        raise _infeasible(p, cp.status)
    return cp.choice, cp.value, cp.bound, cp.optimal, "cp-sat", stats


def _infeasible(p: Problem, status: str) -> OptimizeError:
    r = p.rules
    rules = [f"reuse_gap = {r.reuse_gap}" + (" (no clip twice)" if r.reuse_gap == 0 else "")]
    if not r.placeholders:
        rules.append("placeholders = false")
    if p.locked:
        rules.append(f"{len(p.locked)} pinned or kept shot(s)")
    if status != "INFEASIBLE":
        return OptimizeError(f"the optimizer found no edit in its time limit ({status})",
                             "raise the time limit, or allow title cards ([limits] placeholders = true)")
    return OptimizeError(
        f"no edit satisfies the rule set '{r.name}': {len(p.shots)} shots, "
        f"{len(p.clip_names)} usable clips, and the rules {', '.join(rules)} conflict",
        "allow title cards ([limits] placeholders = true), allow reuse ([limits] reuse_gap = N), "
        "remove pins/bans, or add footage")


def _previous_lengths(shots, chosen: list[Option], keep: Mapping[str, Kept] | None,
                      free: frozenset[str] | None, pacing: Pacing,
                      rate: Fraction) -> list[tuple[int, bool] | None]:
    """For each shot of a recut that shows the clip (or card) it showed in the last cut with
    the same words: the length it had, and whether its cut was on a beat then; None for the
    others (and for every shot when all are re-solved)."""
    if not keep or free is None:
        return [None] * len(shots)
    beats = set(pacing.grid(rate)[0])
    out: list[tuple[int, bool] | None] = []
    for shot, option in zip(shots, chosen):
        k = keep.get(shot.id)
        same = k is not None and not k.edited and k.frames > 0 and \
            (option.clip_id if option.hit else "") == k.library_shot
        out.append((k.frames, k.start < 0 or k.start + k.frames in beats) if same else None)
    return out


def _room(option: Option, rate: Fraction) -> int | None:
    """How many frames the option's footage can last from its in-point (None: any length)."""
    if option.hit is None or option.hit.shot.is_still:
        return None
    _, last = usable_span(option.hit.shot.start, option.hit.shot.end, rate)
    return max(option.frames, last - option.source_in)


def _decision(p: Problem, i: int, opt: Option, ex: Explanation, root: Path,
              rate: Fraction) -> EditDecision:
    shot = p.shots[i]
    scale = p.scales[i] if p.scales else None
    extra = dict(costs=ex.costs, bends=ex.bends, runner_up=ex.runner_up, decided_by=ex.decided_by,
                 bar=round(scale.bar, 3) if scale else None)
    runner = f"; runner-up {_describe(p, i, ex.runner_option, ex.used_by)}" if ex.runner_option else ""
    if opt.hit is None:
        why, best = _card_reason(p, i, ex)
        return EditDecision(shot_id=shot.id, text=shot.text, source="placeholder", kind="card",
                            media="", source_in=0, frames=opt.frames, score=CARD_VALUE,
                            reason=why, confidence=best, **extra)
    ls = opt.hit.shot
    labels = ", ".join(ls.labels[:4])
    z = _confidence(p, i, opt)
    why = f"matches '{shot.query}': {ls.id} " + (
        f"stands {z:.1f} sd above the library for this sentence (card bar {scale.bar:.1f} sd)"
        if z is not None else f"{opt.value:.2f}")
    if opt.value < opt.match - 0.005:
        why += f"; too short for the shot: -{opt.match - opt.value:.2f}"
    if labels:
        why += f", shows {labels}"
    if opt.hit.moment is not None and not ls.is_still and _longer_than(ls, opt, rate):
        why += f"; best at {opt.hit.moment:.1f} s of the file, trimmed around it"
    if ex.bends:
        why += f"; bends {', '.join(ex.bends)}"
    return EditDecision(shot_id=shot.id, text=shot.text, source="library",
                        kind="still" if ls.is_still else "video", media=str(root / ls.path),
                        source_in=opt.source_in, frames=opt.frames, score=round(opt.value, 4),
                        library_shot=ls.id, reason=why + runner,
                        confidence=_confidence(p, i, opt), **extra)


def _confidence(p: Problem, i: int, option: Option) -> float | None:
    """sd above the library for the shot's sentence (None without a calibration)."""
    scale = p.scales[i] if p.scales else None
    if scale is None or option.hit is None:
        return None
    return round(scale.confidence(option.hit.score), 3)


def _card_reason(p: Problem, i: int, ex: Explanation) -> tuple[str, float | None]:
    """Why a title card won, and the best hit's confidence: no hit stands above the card bar
    (no shot in the library is clearly about the sentence), every good one is taken, the best
    is too short, or it stands above the bar but its rule costs outweighed that."""
    hits = [o for o in p.options[i] if o.hit]
    if not hits:
        return "placeholder: no library shot was found for it, or none was long enough", None
    bar = p.scales[i].bar
    best_any = max(hits, key=lambda o: o.value)
    top = max(_confidence(p, i, o) for o in hits)
    free = [o for o in hits if o.hit.shot.id not in ex.used_by]
    if not free:
        return ("placeholder: every match is used by a nearby shot; best "
                + _describe(p, i, best_any, ex.used_by)), top
    best = max(free, key=lambda o: o.value)
    if best.match < CARD_VALUE - 1e-9:
        taken = ""
        if best_any.match >= CARD_VALUE - 1e-9 and best_any is not best:
            taken = "; a better one is taken: " + _describe(p, i, best_any, ex.used_by)
        return (f"placeholder: the best free hit stands {_confidence(p, i, best):.1f} sd above "
                f"the rest of the library, under the card bar of {bar:.1f} sd: no shot in the "
                f"library is clearly about this (best {_describe(p, i, best, ex.used_by)})"
                + taken), top
    if best.value < CARD_VALUE:
        return (f"placeholder: the best free match, {_describe(p, i, best, ex.used_by)}, stands "
                f"above the card bar of {bar:.1f} sd but is too short for the shot"), top
    rules = f": {ex.decided_by}" if ex.decided_by else ""
    return (f"placeholder: the best free match, {_describe(p, i, best, ex.used_by)}, stands "
            f"above the card bar of {bar:.1f} sd, but its rule costs outweighed the "
            f"difference{rules}"), top


def _longer_than(shot, option: Option, rate) -> bool:
    """Whether the shot's usable span is longer than the option's trim (a choice was made)."""
    first, last = usable_span(shot.start, shot.end, rate)
    return last - first > option.frames


def _describe(p: Problem, i: int, option: Option, used_by: dict[str, str]) -> str:
    """"bikes.mp4#3 3.1 sd (too short for the shot: -0.10; used by shot sh-1)"."""
    if option.hit is None:
        return "a title card"
    z = _confidence(p, i, option)
    text = f"{option.hit.shot.id} " + (f"{z:.1f} sd" if z is not None else f"{option.value:.2f}")
    notes = []
    if option.value < option.match - 0.005:
        notes.append(f"too short for the shot: -{option.match - option.value:.2f}")
    owner = used_by.get(option.hit.shot.id)
    if owner:
        notes.append(f"used by shot {owner}")
    return text + (f" ({'; '.join(notes)})" if notes else "")
