"""Build a :class:`~montage.problem.Problem` from a plan, its candidates and a rule set.

Hard wishes are applied here, before any solver runs: bans remove clips, a pin leaves its shot
one option, and in a partial re-solve (``free``) every other kept shot is locked to its kept
clip, so the solvers only see the shots that may change.
"""
from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction

import numpy as np

from planner.shots import ShotPlan
from retrieval.types import CandidateSet, ShotFeatures

from montage.optimize import costs
from montage.optimize.confidence import CARD_VALUE, shot_scales
from montage.optimize.pacing import Pacing, targets
from montage.optimize.problem import (Kept, Option, OptimizeError, Problem, frames_for,
                                      planned_seconds, shot_options)
from montage.optimize.rules import SHOT_TERMS, RuleSet

_HINT_PIN = "pin a clip listed in candidates.json for that shot, or remove the pin"


def build_problem(plan: ShotPlan, candidates: CandidateSet, rules: RuleSet, *, rate: Fraction,
                  width: int, height: int, pins: Mapping[str, str] | None = None,
                  bans: frozenset[str] = frozenset(), keep: Mapping[str, Kept] | None = None,
                  free: frozenset[str] | None = None, pacing: Pacing | None = None,
                  cast_faces: Mapping[str, tuple[float, ...]] | None = None) -> Problem:
    pins, keep = dict(pins or {}), dict(keep or {})
    scales = shot_scales(candidates, rules)  # the one place raw scores become match values
    # a sentence of the last cut wants the length it had (a beat grid keeps it in place)
    fixed = {i: keep[s.id].frames for i, s in enumerate(plan.shots)
             if free is not None and s.id not in pins and s.id in keep
             and not keep[s.id].edited and keep[s.id].frames > 0}
    planned = targets(plan.shots, [frames_for(planned_seconds(s, rules), rate) for s in plan.shots],
                      rules, rate, pacing, fixed)
    _check_pins(plan, pins, bans, rules)
    by_shot = {c.shot_id: c.hits for c in candidates.shots}
    pinned_at = {clip: sid for sid, clip in pins.items()}
    index = {s.id: i for i, s in enumerate(plan.shots)}
    options: list[list[Option]] = []
    locked: dict[int, str] = {}
    locked_clips: dict[str, int] = {}
    for i, shot in enumerate(plan.shots):
        hits = tuple(h for h in by_shot.get(shot.id, ()) if h.shot.id not in bans)
        kept = keep.get(shot.id)
        if free is not None and shot.id not in free and shot.id not in pins and kept is not None:
            mine = tuple(h for h in hits if h.shot.id == kept.library_shot)
            hits = mine if mine or not kept.library_shot else hits  # a locked shot needs only its clip
        want, floor = planned[i]
        scale = scales.get(shot.id)
        opts = _dedupe(shot_options(shot, hits, rate, rules, keep.get(shot.id), want=want,
                                    floor=floor, value=scale.value if scale else None))
        card = Option(None, 0, want, CARD_VALUE, match=CARD_VALUE)
        if shot.id in pins:
            found = [o for o in opts if o.clip_id == pins[shot.id]]
            if not found:
                listed = ", ".join(o.clip_id for o in opts[:8]) or "none"
                raise OptimizeError(f"pin {shot.id} -> {pins[shot.id]}: that clip is not among shot "
                                    f"{shot.id}'s usable candidates ({listed})", _HINT_PIN)
            opts, locked[i] = found, "pinned"
        else:
            lock = None
            if free is not None and shot.id not in free and kept is not None:
                lock = _lockable(kept, opts, card, rules, i, pinned_at, index, locked_clips)
            if lock is not None:
                opts, locked[i] = [lock], "kept"
                if lock.hit:
                    locked_clips[lock.clip_id] = i
            elif rules.placeholders:
                opts = [*opts, card]
        if not opts:
            raise OptimizeError(f"shot {shot.id} (line {shot.line}) has no usable clip and the rule set "
                                f"'{rules.name}' forbids title cards ([limits] placeholders = false)",
                                "allow placeholders, add footage, or lower the tempo/min_shot limits")
        options.append(opts)
    problem = _assemble(plan, rules, options, keep, locked, width, height, dict(cast_faces or {}))
    problem.scales = [scales.get(s.id) for s in plan.shots]
    return problem


def _check_pins(plan: ShotPlan, pins: dict[str, str], bans: frozenset[str], rules: RuleSet) -> None:
    ids = [s.id for s in plan.shots]
    for sid, clip in pins.items():
        if sid not in ids:
            raise OptimizeError(f"pin {sid} -> {clip}: the plan has no shot {sid}",
                                "pin one of the plan's shots (see plan.json)")
        if clip in bans:
            raise OptimizeError(f"pin {sid} -> {clip} conflicts with the ban on {clip}",
                                "drop the pin or the ban")
    by_clip: dict[str, list[int]] = {}
    for sid, clip in pins.items():
        by_clip.setdefault(clip, []).append(ids.index(sid))
    gap = rules.reuse_gap
    for clip, where in by_clip.items():
        where.sort()
        for a, b in zip(where, where[1:]):
            if gap == 0 or b - a < gap:
                raise OptimizeError(
                    f"pins {ids[a]} -> {clip} and {ids[b]} -> {clip} conflict with the rule "
                    f"'reuse_gap = {gap}' of style '{rules.name}' "
                    + ("(no clip twice)" if gap == 0 else f"(a clip comes back only {gap} shots later)"),
                    "pin different clips, or use a rule set that allows reuse ([limits] reuse_gap)")


def _lockable(kept: Kept, opts: list[Option], card: Option, rules: RuleSet, i: int,
              pinned_at: dict[str, str], index: dict[str, int],
              locked_clips: dict[str, int]) -> Option | None:
    """The kept option of an untouched shot, if it can still be used as it was."""
    if not kept.library_shot:
        return card if rules.placeholders else None
    found = next((o for o in opts if o.clip_id == kept.library_shot), None)
    if found is None:
        return None
    gap = rules.reuse_gap
    others = [index[s] for c, s in pinned_at.items() if c == found.clip_id]
    others += [j for c, j in locked_clips.items() if c == found.clip_id]
    if any(gap == 0 or abs(i - j) < gap for j in others):
        return None
    return found


def _dedupe(opts: list[Option]) -> list[Option]:
    seen: set[str] = set()
    out = []
    for o in opts:
        if o.clip_id not in seen:
            seen.add(o.clip_id)
            out.append(o)
    return out


def _clears(o: Option) -> bool:
    """A clip at or above the card bar (its match value at least a card's)."""
    return o.hit is not None and o.match >= CARD_VALUE - 1e-9


def _charge_cards(rows: dict[str, list[float]], opts: list[Option], rules: RuleSet) -> None:
    """The ``card`` term: where a clip stands at or above the card bar, a title card costs the
    largest per-shot rule cost (looks, fit) among such clips, up to the term's weight. A card
    says "no footage matched": without this a clip that did match (the demo's moon photo,
    clearly above the bar, a little soft) lost to a card that pays nothing for focus or
    resolution, and the film said MISSING SHOT; a clip that is unusable (black, blurred,
    shaking) still loses, as its costs pass the weight. Clips under the bar pay the same
    charge, so it never lifts one of them over the card."""
    if "card" not in rows:
        return
    looks = [-sum(rows[t][k] for t in rows if t in SHOT_TERMS and t not in ("match", "card"))
             for k in range(len(opts))]
    cleared = [looks[k] for k, o in enumerate(opts) if _clears(o)]
    if not cleared:
        return
    charge = -min(rules.weight("card"), max(cleared))
    for k, o in enumerate(opts):  # clips under the bar pay it too: they gain nothing by it
        if not _clears(o):
            rows["card"][k] = charge


def _assemble(plan: ShotPlan, rules: RuleSet, options: list[list[Option]], keep: dict[str, Kept],
              locked: dict[int, str], width: int, height: int,
              cast_faces: dict[str, tuple[float, ...]]) -> Problem:
    S = costs.SCALE
    clips = sorted({o.clip_id for opts in options for o in opts if o.hit})
    files = sorted({o.hit.shot.path for opts in options for o in opts if o.hit})
    clip_no = {c: k for k, c in enumerate(clips)}
    file_no = {f: k for k, f in enumerate(files)}
    feats: dict[str, ShotFeatures | None] = {o.clip_id: o.hit.shot.features
                                              for opts in options for o in opts if o.hit}
    # the cast's own faces join the clustering first ("\0" sorts before any clip id), so a
    # clip showing a character's cast face shares that face's identity number
    cast_keys = {name: f"\0cast:{name}" for name in cast_faces}
    identities = costs.face_identities(
        {**{c: f.face_descriptors for c, f in feats.items() if f is not None and f.face_descriptors},
         **{cast_keys[name]: (tuple(d),) for name, d in cast_faces.items()}})
    cast_ids = {name: identities[key][0] for name, key in cast_keys.items()}
    klass = {key: {c: fn(f) for c, f in feats.items()} for key, fn in costs.CLASSERS.items()}
    unknown = {key: fn(None) for key, fn in costs.CLASSERS.items()}
    wt = {t: rules.weight(t) for t in rules.weights}
    opens = [i == 0 or s.scene != plan.shots[i - 1].scene for i, s in enumerate(plan.shots)]

    terms, clip_arr, file_arr, faces = [], [], [], []
    classes: dict[str, list[np.ndarray]] = {key: [] for key in costs.CLASSERS}
    for i, (shot, opts) in enumerate(zip(plan.shots, options)):
        kept = keep.get(shot.id)
        rows: dict[str, list[float]] = {t: [0.0] * len(opts) for t in wt}
        for k, o in enumerate(opts):
            if kept is not None and kept.library_shot == o.clip_id:
                rows["keep"][k] = wt["keep"]
            rows["match"][k] = wt["match"] * o.match
            if o.hit is None:
                continue
            ls, f = o.hit.shot, o.hit.shot.features
            rows["duration"][k] = -wt["duration"] * o.shortfall
            rows["resolution"][k] = -wt["resolution"] * costs.resolution_cost(ls, width, height)
            if f is None:
                continue
            rows["tone"][k] = -wt["tone"] * costs.tone_cost(f)
            rows["focus"][k] = -wt["focus"] * (1.0 - f.sharpness)
            rows["stability"][k] = -wt["stability"] * (1.0 - f.stability)
            rows["pace"][k] = -wt["pace"] * costs.pace_cost(f, rules.motion_target)
            if opens[i]:
                rows["scene_opening"][k] = -wt["scene_opening"] * costs.opening_cost(f)
            if shot.characters:
                rows["character_visible"][k] = -wt["character_visible"] * costs.visible_cost(f)
        _charge_cards(rows, opts, rules)
        terms.append({t: np.rint(np.asarray(v) * S).astype(np.int64) for t, v in rows.items()
                      if any(v)})
        clip_arr.append(np.array([clip_no[o.clip_id] if o.hit else -1 for o in opts], dtype=np.int64))
        file_arr.append(np.array([file_no[o.hit.shot.path] if o.hit else -1 for o in opts], dtype=np.int64))
        for key in costs.CLASSERS:
            classes[key].append(np.array([klass[key][o.clip_id] if o.hit else unknown[key] for o in opts],
                                         dtype=np.int64))
        shown = [identities.get(o.clip_id, ()) if o.hit else () for o in opts]
        named = set(shot.characters)
        if named and named <= set(cast_ids):  # only cast-photo characters: only their faces count
            theirs = {cast_ids[n] for n in named}
            shown = [tuple(k for k in f if k in theirs) for f in shown]
        faces.append(shown)
    aspects = [(term, key, np.rint(table * wt[term] * S).astype(np.int64))
               for term, key, table in costs.CUT_ASPECTS if wt[term] > 0]
    names: dict[str, list[int]] = {}
    for i, shot in enumerate(plan.shots):
        for name in dict.fromkeys(shot.characters):
            names.setdefault(name, []).append(i)
    characters = [(name, tuple(idx)) for name, idx in sorted(names.items())]
    return Problem(rules=rules, shots=plan.shots, options=options, terms=terms, clip=clip_arr,
                   file=file_arr, classes=classes, aspects=aspects, opens=opens, faces=faces,
                   characters=characters, clip_names=clips, file_names=files, locked=locked)
