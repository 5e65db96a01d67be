"""Pick one candidate per planned shot with OR-Tools CP-SAT: the only module importing ortools.

This first model is an assignment: maximise the summed match score, use no library shot
twice, and let a shot fall back to a labelled placeholder when nothing left scores above the
threshold. Each chosen clip is trimmed to the shot's length inside its own source span.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from planner.errors import MontageError
from planner.shots import PlannedShot, ShotPlan
from retrieval.types import CandidateSet, Hit

from montage.edl import EditDecision, EditDecisionList

SCALE = 1000  # CP-SAT wants integers: scores are kept to 1/1000
EDGE_FRAMES = 2  # keep clear of the frames next to a detected cut: detectors can be a frame off
MIN_COVER = 0.35  # a video shot must cover at least this share of the planned length...
MIN_SECONDS = 1.0  # ...and last at least this long, or it is not an option
SHORTFALL_COST = 0.15  # score lost by a clip that covers none of the planned length


class OptimizeError(MontageError):
    """The solver found no edit (it should always find one: placeholders are always allowed)."""


@dataclass(frozen=True)
class Option:
    """One way to fill a planned shot: a library hit trimmed to fit, or the placeholder."""

    hit: Hit | None
    source_in: int
    frames: int
    value: float  # score after the duration-fit penalty


@dataclass(frozen=True)
class Solution:
    edl: EditDecisionList
    objective: float
    optimal: bool
    seconds: float


def frames_for(seconds: float, rate: Fraction) -> int:
    return max(1, round(Fraction(seconds).limit_denominator(1000) * rate))


def shot_options(shot: PlannedShot, hits: tuple[Hit, ...], rate: Fraction) -> list[Option]:
    """The usable trims of each hit for this shot; videos too short for the shot are dropped."""
    want = frames_for(shot.duration, rate)
    out: list[Option] = []
    for hit in hits:
        ls = hit.shot
        if ls.is_still:
            out.append(Option(hit, 0, want, hit.score))
            continue
        first = math.ceil(Fraction(ls.start).limit_denominator(1000) * rate) + EDGE_FRAMES
        last = math.floor(Fraction(ls.end).limit_denominator(1000) * rate) - EDGE_FRAMES
        span = last - first
        if span < max(1, math.ceil(MIN_COVER * want), math.ceil(MIN_SECONDS * rate)):
            continue
        frames = min(want, span)
        source_in = first + (span - frames) // 2  # the middle: furthest from both cuts
        shortfall = (want - frames) / want
        out.append(Option(hit, source_in, frames, hit.score - SHORTFALL_COST * shortfall))
    return out


def optimize(
    plan: ShotPlan,
    candidates: CandidateSet,
    *,
    rate: Fraction = Fraction(25),
    width: int = 1280,
    height: int = 720,
    threshold: float = 0.3,
    time_limit: float = 10.0,
) -> Solution:
    """Choose the edit. Deterministic for the same input (one search worker, fixed seed)."""
    from ortools.sat.python import cp_model

    by_shot = {c.shot_id: c.hits for c in candidates.shots}
    root = Path(candidates.library)
    model = cp_model.CpModel()
    options: list[list[Option]] = []
    choice: list[list] = []
    placeholder = []
    uses: dict[str, list] = {}
    objective = []
    for i, shot in enumerate(plan.shots):
        opts = shot_options(shot, by_shot.get(shot.id, ()), rate)
        lits = [model.new_bool_var(f"x{i}_{k}") for k in range(len(opts))]
        ph = model.new_bool_var(f"p{i}")
        model.add_exactly_one([*lits, ph])
        for opt, lit in zip(opts, lits):
            uses.setdefault(opt.hit.shot.id, []).append(lit)
            objective.append(round(opt.value * SCALE) * lit)
        objective.append(round(threshold * SCALE) * ph)
        options.append(opts)
        choice.append(lits)
        placeholder.append(ph)
    for lits in uses.values():
        if len(lits) > 1:
            model.add_at_most_one(lits)  # no library shot used twice
    model.maximize(sum(objective))

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise OptimizeError(f"the optimizer found no edit ({solver.status_name(status)})",
                            "report this as a bug, with plan.json and candidates.json")

    decisions = []
    taken: dict[str, str] = {}
    for i, shot in enumerate(plan.shots):
        picked = next((o for o, lit in zip(options[i], choice[i]) if solver.value(lit)), None)
        if picked is not None:
            taken[picked.hit.shot.id] = shot.id
    for i, shot in enumerate(plan.shots):
        picked = next((o for o, lit in zip(options[i], choice[i]) if solver.value(lit)), None)
        decisions.append(_decision(shot, picked, options[i], taken, root, rate, threshold))
    edl = EditDecisionList(rate=rate, width=width, height=height, decisions=tuple(decisions))
    return Solution(edl=edl, objective=solver.objective_value / SCALE,
                    optimal=status == cp_model.OPTIMAL, seconds=solver.wall_time)


def _decision(shot: PlannedShot, picked: Option | None, opts: list[Option],
              taken: dict[str, str], root: Path, rate: Fraction, threshold: float) -> EditDecision:
    ranked = sorted(opts, key=lambda o: -o.value)
    others = [o for o in ranked if o is not picked]
    runner = f"; runner-up {_describe(others[0], taken, shot.id)}" if others else ""
    if picked is None:
        why = (f"placeholder: nothing free scored {threshold:.2f} or more; best "
               + _describe(others[0], taken, shot.id) if others else "placeholder: no library shot was found for it, or none was long enough")
        return EditDecision(shot_id=shot.id, text=shot.text, source="placeholder", kind="card",
                            media="", source_in=0, frames=frames_for(shot.duration, rate),
                            score=threshold, reason=why)
    ls = picked.hit.shot
    labels = ", ".join(ls.labels[:4])
    why = f"matches '{shot.query}': {_describe(picked, taken, shot.id)}"
    if labels:
        why += f", shows {labels}"
    return EditDecision(shot_id=shot.id, text=shot.text, source="library",
                        kind="still" if ls.is_still else "video", media=str(root / ls.path),
                        source_in=picked.source_in, frames=picked.frames, score=round(picked.value, 4),
                        library_shot=ls.id, reason=why + runner)


def _describe(option: Option, taken: dict[str, str], shot_id: str) -> str:
    """"bikes.mp4#3 0.35 (0.45 less 0.10: covers 1.8 of 2.8 s; used by shot sh-1)"."""
    text = f"{option.hit.shot.id} {option.value:.2f}"
    notes = []
    if option.value < option.hit.score - 1e-9:
        notes.append(f"{option.hit.score:.2f} less {option.hit.score - option.value:.2f}: "
                     f"too short for the shot")
    owner = taken.get(option.hit.shot.id)
    if owner and owner != shot_id:
        notes.append(f"used by shot {owner}")
    return text + (f" ({'; '.join(notes)})" if notes else "")
