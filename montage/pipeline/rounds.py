"""The generation round's decisions around the optimizer: which title cards go to the
generator's second round, and what a shot that lost its footage to another says about it."""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from planner.shots import ShotPlan
from retrieval.types import CandidateSet

from montage.optimize import EditDecisionList


def cast_faces(generated, cast_file: Path | None, plan: ShotPlan) -> dict[str, tuple[float, ...]]:
    """The faces of the characters whose cast.toml gives photos: the optimizer's anchor for
    who a character is, and what the report's identity figure compares the film with. The
    generator reads the cast when it runs; without it, cast.toml is read here."""
    if generated is not None:
        cast = generated.cast
    elif cast_file is not None:
        from generator import CastError, load_cast, resolve_identity

        cast = []
        for c in load_cast(cast_file, sorted({n for s in plan.shots for n in s.characters})):
            try:
                cast.append(resolve_identity(c))
            except CastError:
                continue  # an unusable photo: that character has no reference face
    else:
        return {}
    return {c.name: tuple(c.descriptor) for c in cast if c.references and c.descriptor is not None}


def offer_kept_fills(generated, candidates: CandidateSet, edl: EditDecisionList):
    """``generated`` with the fills the last cut showed offered again to their shots (the same
    sentence, so the same shot id), at the score they measured then. A fill made in the last
    cut's second round is not remade by this cut's first round, so without this a recut of
    unchanged text would lose it and re-choose the shot; here the keep reward holds it like any
    clip, and the rules may still replace it. Fills whose file is gone, or that were not
    measured (made by a montage that scored fills by fiat), are not offered."""
    old = {c.shot_id: {h.shot.id: h for h in c.hits} for c in candidates.shots}
    shots, provenance = [], dict(generated.provenance)
    shown = {d.shot_id: d for d in edl.decisions if d.source == "generated" and d.library_shot}
    for c in generated.candidates.shots:
        d = shown.get(c.shot_id)
        hit = old.get(c.shot_id, {}).get(d.library_shot) if d is not None else None
        if hit is None or any(h.shot.id == hit.shot.id for h in c.hits) or \
                "measured" not in dict(d.provenance) or not Path(hit.shot.path).is_file():
            shots.append(c)
            continue
        shots.append(replace(c, hits=(hit,) + c.hits))
        provenance.setdefault(hit.shot.id, d.provenance)
    return replace(generated, candidates=replace(generated.candidates, shots=tuple(shots)),
                   provenance=provenance)


def second_round(edl: EditDecisionList, attempted: frozenset[str]) -> frozenset[str]:
    """Shots the first solve left as title cards that round one did not try to generate: their
    footage stood above the card bar, but went to other shots (a clip is used once) or
    lost on its rule costs (too short for the shot, soft, another face for the character). A
    generated clip fits the shot's length and the cast's face, so it is tried before a card
    stays in the film."""
    return frozenset(d.shot_id for d in edl.decisions
                     if d.source == "placeholder" and d.shot_id not in attempted)


def taken_footage(edl: EditDecisionList, candidates: CandidateSet, shots: frozenset[str],
                  bars: Mapping[str, float]) -> dict[str, tuple[str, float, str, int]]:
    """For each of ``shots``: its best library footage that clears its card bar (``bars``: a
    raw score of the shot's query) and that another shot of ``edl`` holds, as (clip id, score,
    holder's shot id, holder's number)."""
    holder = {d.library_shot: (d.shot_id, n) for n, d in enumerate(edl.decisions, 1)
              if d.library_shot}
    out = {}
    for c in candidates.shots:
        if c.shot_id not in shots:
            continue
        for h in sorted(c.hits, key=lambda h: -h.score):
            if h.shot.id.startswith("generated:") or h.score < bars.get(c.shot_id, math.inf):
                continue
            owner = holder.get(h.shot.id)
            if owner is not None and owner[0] != c.shot_id:
                out[c.shot_id] = (h.shot.id, h.score, owner[0], owner[1])
            break
    return out


def say_who_holds(edl: EditDecisionList, taken: dict[str, tuple[str, float, str, int]]) -> EditDecisionList:
    """Generated shots whose best footage another shot holds say so in their "why" (the studio
    offers the swap: the shot takes the clip, the holder chooses again). A title card says it
    already (the optimizer names the shot that holds its footage)."""
    decisions = []
    for d in edl.decisions:
        if d.shot_id in taken and d.source == "generated":
            clip, score, owner, n = taken[d.shot_id]
            d = replace(d, reason=f"{d.reason}; its best footage {clip} ({score:.2f}) is used by "
                                  f"shot {n} ({owner}): generated instead")
        decisions.append(d)
    return replace(edl, decisions=tuple(decisions))


def generator_model(spec: str) -> str:
    """What a generator spec resolves to (its weights or model, by content; several joined by
    ", "), for the project's record; empty when there is none or it does not load."""
    if spec == "off":
        return ""
    from generator.errors import GeneratorModelError
    from generator.factory import make_generators

    try:
        gens = make_generators(spec)
    except GeneratorModelError:
        return ""
    names = []
    for gen in gens:
        identity = getattr(gen, "identity", None)
        names.append(f"{gen.model} ({identity()})" if callable(identity)
                     else str(getattr(gen, "model", "")))
    return ", ".join(names)
