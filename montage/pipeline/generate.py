"""Fill shots the library cannot illustrate with generated clips (the generator package).

A shot is generated when its best candidate scores under its card bar (a raw score of its
query: :func:`montage.optimize.raw_bars`), or when the user names it (`--generate SHOT`), so it
only competes with footage under the bar.
It joins the shot's candidates at the bar plus a margin that covers the focus and
resolution costs a low-resolution preview pays: it beats a title card unless a cut rule weighs
against it, and the optimizer's rules still apply to it. Every generated clip keeps its
provenance (backend, model, seed, prompt, references) so it can be made again at higher
quality elsewhere.
A generator that cannot load, or a shot that fails, is reported and the shot stays a card.
"""
from __future__ import annotations

import hashlib
import logging
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

from planner.shots import ShotPlan
from retrieval.types import CandidateSet, Hit

from generator.candidates import generated_hit, is_generated
from generator.cast import identity_from_library, load_cast, resolve_identity
from generator.conditioning import init_frame, pick_init_hit
from generator.errors import CastError, GeneratorError, GeneratorModelError
from generator.factory import make_generator
from generator.identity import portraits_from_library
from generator.types import Character, GenerationRequest

from montage.optimize import EditDecisionList

logger = logging.getLogger(__name__)
GENERATED_MARGIN = 0.15  # above the bar by about what a blurry preview pays in focus and resolution costs


@dataclass(frozen=True)
class Generated:
    candidates: CandidateSet
    provenance: dict[str, tuple[tuple[str, str], ...]]  # generated clip id -> provenance
    failed: tuple[str, ...]  # "shot id: why" for shots left as title cards
    attempted: frozenset[str] = frozenset()  # shots it tried to generate (made or failed)
    usable: bool = True  # False when there was no generator to use (off, or it did not load)
    cast: tuple[Character, ...] = ()  # the film's characters as the generator saw them


def _seed(shot_id: str, base: int = 0) -> int:
    """The shot's own seed; a project seed (``--seed``) other than 0 gives every shot another."""
    text = shot_id if not base else f"{base}:{shot_id}"
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16) % (2**31)


def fill_missing(plan: ShotPlan, candidates: CandidateSet, *, spec: str,
                 threshold: Mapping[str, float],
                 library: Path, cache: Path, width: int, height: int, rate: Fraction,
                 force: frozenset[str] = frozenset(), cast_file: Path | None = None,
                 only: frozenset[str] | None = None, progress: bool = True,
                 seed: int = 0) -> Generated:
    """Generate the missing shots and add them to the candidates.

    ``threshold``: each shot's card bar as a raw score of its query. ``only`` names the shots
    to generate instead, as if their footage scored under the bar: the caller's second round,
    for shots the optimizer left as cards because their only good footage went to another shot
    (see ``merge``).
    """
    # generated hits of an earlier cut are dropped: they are re-added (from the cache) if needed
    cands = {c.shot_id: replace(c, hits=tuple(h for h in c.hits if not is_generated(h.shot)))
             for c in candidates.shots}
    unknown = sorted(force - set(cands))
    if unknown:
        from planner.errors import ScriptError

        raise ScriptError(f"--generate names shots that are not in the script: {', '.join(unknown)}",
                          "use shot ids from plan.json or report.md")
    todo = [s for s in plan.shots
            if (s.id in only if only is not None else
                s.id in force or not cands[s.id].hits
                or max(h.score for h in cands[s.id].hits) < threshold[s.id])]
    attempted = frozenset(s.id for s in todo)
    rebuilt = replace(candidates, shots=tuple(cands[s.id] for s in plan.shots))
    try:
        gen = make_generator(spec)
    except GeneratorModelError as exc:
        print(f"warning: no generated shots: {exc}", file=sys.stderr)
        return Generated(rebuilt, {}, tuple(f"{s.id}: {exc.message}" for s in todo), attempted,
                         usable=False)
    if gen is None or not todo:
        return Generated(rebuilt, {}, (), attempted, usable=gen is not None)

    names = sorted({n for s in plan.shots for n in s.characters})
    wanted = {n for s in todo for n in s.characters}
    cast = []
    for character in load_cast(cast_file, names):
        seen = [cands[s.id].hits[0].shot for s in plan.shots
                if character.name in s.characters and cands[s.id].hits
                and cands[s.id].hits[0].score >= threshold[s.id]]
        character = identity_from_library(character, seen)
        if character.name in wanted:  # portraits for the face pass, from every hit of theirs
            shown = [h.shot for s in plan.shots if character.name in s.characters
                     for h in cands[s.id].hits]
            character = portraits_from_library(character, shown, library, cache)
        try:  # reference photos: checked here once (a bad one fails its shots, below)
            character = resolve_identity(character)
        except CastError:
            pass
        cast.append(character)
    provenance: dict[str, tuple[tuple[str, str], ...]] = {}
    failed: list[str] = []
    for n, shot in enumerate(todo, 1):
        if progress:
            print(f"[montage] generating shot {n}/{len(todo)}: {shot.text}", file=sys.stderr)
        hits = cands[shot.id].hits
        members = [c for c in cast if c.name in shot.characters]
        near = pick_init_hit(hits, members)
        try:
            init = str(init_frame(library, near.shot, cache)) if near else None
            request = GenerationRequest(
                shot_id=shot.id, prompt=shot.text, query=shot.query, characters=shot.characters,
                seconds=shot.duration, width=width, height=height, rate=str(rate),
                seed=_seed(shot.id, seed), init_image=init, cast=tuple(cast))
            clip = gen.generate(request, cache_dir=cache, progress=progress)
            # a shot the user asked for enters above its best footage, any other above the bar
            bar = threshold[shot.id] if math.isfinite(threshold[shot.id]) else 0.0  # sd 0: any
            base = max([bar] + [h.score for h in hits if shot.id in force])
            hit: Hit = generated_hit(clip, request, base + GENERATED_MARGIN)
        except GeneratorError as exc:
            print(f"warning: shot {shot.id} not generated: {exc}", file=sys.stderr)
            failed.append(f"{shot.id}: {exc.message}")
            continue
        cands[shot.id] = replace(cands[shot.id], hits=(hit,) + cands[shot.id].hits)
        provenance[hit.shot.id] = tuple(sorted({
            "backend": clip.backend, "model": clip.model, "seed": str(clip.seed),
            "prompt": clip.prompt, "references": ";".join(clip.references),
            "seconds_taken": f"{clip.seconds_taken:.2f}"}.items()))
    return Generated(replace(candidates, shots=tuple(cands[s.id] for s in plan.shots)),
                     provenance, tuple(failed), attempted, cast=tuple(cast))


def merge(first: Generated, second: Generated) -> Generated:
    """``first`` with the shots ``second`` attempted taken from ``second`` (a second round)."""
    mine = {c.shot_id: c for c in second.candidates.shots}
    shots = tuple(mine[c.shot_id] if c.shot_id in second.attempted else c
                  for c in first.candidates.shots)
    cast = {c.name: c for c in first.cast}
    for c in second.cast:  # a round finds portraits only for the characters it generates
        if c.portraits or c.name not in cast:
            cast[c.name] = c
    return Generated(replace(first.candidates, shots=shots),
                     {**first.provenance, **second.provenance}, first.failed + second.failed,
                     first.attempted | second.attempted, first.usable and second.usable,
                     tuple(cast.values()))


def cast_lines(generated: Generated, plan: ShotPlan, edl: EditDecisionList) -> list[str]:
    """Markdown lines for the report: who each character is taken to be, and from what."""
    shown = {d.shot_id for d in edl.decisions if d.source == "generated"}
    lines = []
    for c in generated.cast:
        if c.references:
            who = "reference photos " + ", ".join(Path(r).name for r in c.references)
            if c.descriptor is None:  # resolve_identity failed: its shots say why
                who += " (unusable: see the warnings for their shots)"
        elif c.descriptor is not None:
            who = "the face seen most in the library shots chosen for them"
        else:
            who = "unknown (no reference photo, and no face in the library shots chosen for them)"
        faces = ", ".join(Path(p).name for p in c.portraits) or "none"
        made = [s.id for s in plan.shots if s.id in shown and c.name in s.characters]
        lines.append(f"- **{c.name}**: identity from {who}; portraits for generated shots: "
                     f"{faces}; generated shots showing them: {', '.join(made) or 'none'}")
    return lines


def mark_generated(edl: EditDecisionList, generated: Generated) -> EditDecisionList:
    """Decisions that chose a generated clip say so (source "generated") and keep provenance."""
    decisions = tuple(
        replace(d, source="generated", provenance=generated.provenance[d.library_shot])
        if d.library_shot in generated.provenance else d
        for d in edl.decisions)
    return replace(edl, decisions=decisions)
