"""Fill shots the library cannot illustrate with generated clips, measured as footage is.

Which shots: those whose best footage scores under the shot's card bar (a raw score of its
query: :func:`montage.optimize.raw_bars`), those the user names
(``--generate SHOT``, or a generated clip pinned in the studio), and, in a second round, the
cards the first solve left (see :mod:`montage.pipeline.recut`). For each, every generator of the
spec makes ``tries`` fills (seeds x input frames: :func:`generator.conditioning.rank_inputs`).
Each fill is analysed and embedded by the index's own code and scored against the shot's query
exactly as a library shot is (:func:`retrieval.score_outside`): a raw score on the same scale
as that query's library hits, with no margin and nothing assumed (a stand-in carries the own
words of the footage its background is a frame of, as that footage's shots do). A fill of a shot that names a
character with a known face must show that face (dlib distance under 0.6), or it is dropped.
The best fill joins the shot's candidates at its measured score, and the optimizer weighs it
like any clip: it wins only where it beats the footage and the card on the same terms. A shot
the user named gets its best fill pinned. Every generated clip keeps its provenance (backend,
model, seed, prompt, references, measured score, runner-up) so it can be made again elsewhere.
A generator that cannot load, or a shot none of whose fills could be made, is reported, and the
shot is left to footage or a card.
"""
from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

from planner.errors import MontageError, ScriptError
from planner.shots import PlannedShot, ShotPlan
from retrieval.types import CandidateSet, Hit

from generator.candidates import (GENERATED_PREFIX, generated_hit, is_generated, kind_label,
                                  measure, shows)
from generator.cast import SAME_PERSON, identity_from_library, load_cast, resolve_identity
from generator.conditioning import hit_frame, rank_inputs
from generator.errors import CastError, GeneratorError, GeneratorModelError
from generator.factory import make_generators
from generator.identity import portraits_from_library
from generator.types import FILL_TRIES, Character, GenerationRequest

from montage.optimize import EDGE_FRAMES, EditDecisionList

TRIES = FILL_TRIES  # fills each generator makes per shot: the measured best is kept (--fill-tries)


@dataclass(frozen=True)
class Fill:
    """One fill made for a shot: its clip, what made it, and how it measured."""

    clip_id: str
    backend: str
    kind: str  # "stand-in" or "generated"
    score: float  # measured, as a library hit of the shot's query would be
    made_from: str  # "seed 7, frame of bikes.mp4#2"
    dropped: str = ""  # why it may not be used ("" when it may)

    def describe(self) -> str:
        return f"{self.kind} ({self.backend}, {self.made_from}) {self.score:.2f}"


@dataclass(frozen=True)
class Generated:
    candidates: CandidateSet
    provenance: dict[str, tuple[tuple[str, str], ...]]  # generated clip id -> provenance
    failed: tuple[str, ...]  # "shot id: why" for shots no fill could be made for
    attempted: frozenset[str] = frozenset()  # shots it tried to generate (made or failed)
    usable: bool = True  # False when there was no generator to use (off, or it did not load)
    cast: tuple[Character, ...] = ()  # the film's characters as the generator saw them
    pins: dict[str, str] = field(default_factory=dict)  # a shot the user named -> its best fill


def _seed(shot_id: str, base: int = 0) -> int:
    """The shot's own seed; a project seed (``--seed``) other than 0 gives every shot another."""
    text = shot_id if not base else f"{base}:{shot_id}"
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16) % (2**31)


def fill_missing(plan: ShotPlan, candidates: CandidateSet, *, index, spec: str,
                 threshold: Mapping[str, float], library: Path, cache: Path, width: int,
                 height: int, rate: Fraction, force: frozenset[str] = frozenset(),
                 cast_file: Path | None = None, only: frozenset[str] | None = None,
                 tries: int = TRIES, avoid: frozenset[str] = frozenset(), progress: bool = True,
                 seed: int = 0) -> Generated:
    """Make, measure and score fills for the shots that need them; add the best of each.

    ``index``: the library's opened index (its embedder and analysis measure the fills).
    ``threshold``: each shot's card bar as a raw score of its query. ``only`` names the shots to generate instead, as if their footage scored under the
    threshold: the caller's second round, for shots the optimizer left as cards because their
    only good footage went to another shot (see ``merge``); ``avoid``: library shots the film
    shows already, which no stand-in takes as its background.
    """
    # generated hits of an earlier cut are dropped: they are re-added (from the cache) if needed
    cands = {c.shot_id: replace(c, hits=tuple(h for h in c.hits if not is_generated(h.shot)))
             for c in candidates.shots}
    unknown = sorted(force - set(cands))
    if unknown:
        raise ScriptError(f"--generate names shots that are not in the script: {', '.join(unknown)}",
                          "use shot ids from plan.json or report.md")
    if tries < 1:
        raise MontageError(f"fills per generated shot must be at least 1, got {tries}",
                           "pass --fill-tries 1 or more")
    todo = [s for s in plan.shots
            if (s.id in only if only is not None else
                s.id in force or not cands[s.id].hits
                or max(h.score for h in cands[s.id].hits) < threshold[s.id])]
    attempted = frozenset(s.id for s in todo)
    rebuilt = replace(candidates, shots=tuple(cands[s.id] for s in plan.shots))
    try:
        gens = make_generators(spec)
    except GeneratorModelError as exc:
        print(f"warning: no generated shots: {exc}", file=sys.stderr)
        return Generated(rebuilt, {}, tuple(f"{s.id}: {exc.message}" for s in todo), attempted,
                         usable=False)
    if not gens or not todo:
        return Generated(rebuilt, {}, (), attempted, usable=bool(gens))

    cast = _cast(plan, cands, todo, cast_file, threshold, library, cache)
    provenance: dict[str, tuple[tuple[str, str], ...]] = {}
    pins: dict[str, str] = {}
    failed: list[str] = []
    for n, shot in enumerate(todo, 1):
        if progress:
            print(f"[montage] generating shot {n}/{len(todo)}: {shot.text}", file=sys.stderr)
        best, fills, why = _fill(
            shot, cands[shot.id], gens, cast, index=index, library=library, cache=cache,
            size=(width, height), rate=rate, tries=tries, avoid=avoid, progress=progress,
            seed=seed)
        if best is None:
            print(f"warning: shot {shot.id} not generated: {why}", file=sys.stderr)
            failed.append(f"{shot.id}: {why}")
            continue
        hit, provenance[best[0].shot.id] = best
        cands[shot.id] = replace(cands[shot.id], hits=(hit,) + cands[shot.id].hits)
        if shot.id in force:
            pins[shot.id] = hit.shot.id
        if progress:
            print(f"[montage]   best of {len(fills)} fills: {fills[0].describe()} (the "
                  f"optimizer weighs it against the footage and a card)", file=sys.stderr)
    return Generated(replace(candidates, shots=tuple(cands[s.id] for s in plan.shots)),
                     provenance, tuple(failed), attempted, cast=tuple(cast), pins=pins)


def _cast(plan: ShotPlan, cands: dict, todo: list[PlannedShot], cast_file: Path | None,
          threshold: Mapping[str, float], library: Path, cache: Path) -> list[Character]:
    """The film's characters, each with the identity and portraits a fill shows them by."""
    names = sorted({n for s in plan.shots for n in s.characters})
    wanted = {n for s in todo for n in s.characters}
    cast = []
    for character in load_cast(cast_file, names):
        seen = [cands[s.id].hits[0].shot for s in plan.shots
                if character.name in s.characters and cands[s.id].hits
                and cands[s.id].hits[0].score >= threshold[s.id]]
        character = identity_from_library(character, seen)
        if character.name in wanted:  # portraits for the fills, from every hit of theirs
            shown = [h.shot for s in plan.shots if character.name in s.characters
                     for h in cands[s.id].hits]
            character = portraits_from_library(character, shown, library, cache)
        try:  # reference photos: checked here once (a bad one fails its shots, below)
            character = resolve_identity(character)
        except CastError:
            pass
        cast.append(character)
    return cast


def _fill(shot: PlannedShot, found, gens, cast: list[Character], *, index, library: Path,
          cache: Path, size: tuple[int, int], rate: Fraction, tries: int,
          avoid: frozenset[str], progress: bool, seed: int = 0):
    """((the best usable fill as a Hit, its provenance) or None, every fill best first, why
    none was usable)."""
    from retrieval import score_outside
    from retrieval.media import footage_text

    members = [c for c in cast if c.name in shot.characters]
    # the optimizer trims EDGE_FRAMES off each end of a clip (cut detectors can be a frame
    # off): a fill is made that much longer, so it covers the whole planned shot
    seconds = shot.duration + 2 * EDGE_FRAMES / float(rate)
    known = [c for c in members if c.descriptor is not None][:2]  # a fill shows two at most
    made, problems, seen = [], [], set()
    for gen in gens:
        if known and not getattr(gen, "draws_faces", True):
            problems.append(f"{gen.backend} draws no face, and the shot shows "
                            + ", ".join(c.name for c in known))
            continue
        standin = gen.backend == "standin"
        inputs = rank_inputs(found.hits, members, clear=standin, n=tries,
                             avoid=avoid if standin else frozenset())
        for k in range(tries):
            source = inputs[k % len(inputs)] if inputs else None
            try:
                init = str(hit_frame(library, source, cache)) if source else None
                request = GenerationRequest(
                    shot_id=shot.id, prompt=shot.text, query=shot.query,
                    characters=shot.characters, seconds=seconds, width=size[0],
                    height=size[1], rate=str(rate), seed=_seed(shot.id, seed) + k, init_image=init,
                    cast=tuple(cast))
                clip = gen.generate(request, cache_dir=cache, progress=progress)
                if clip.path in seen:  # the same inputs again (e.g. a character's fixed seed)
                    continue
                seen.add(clip.path)
                words = (footage_text(library, source.shot.path)  # what its picture shows
                         if source and standin else "")
                made.append((clip, request, measure(clip, index, words), source))
            except GeneratorError as exc:
                problems.append(f"{gen.backend}: {exc.message}")
                break  # its other tries would fail alike
            except MontageError as exc:  # the clip could not be read back to be measured
                problems.append(f"{gen.backend}: {exc.message}")
    if not made:
        return None, (), "; ".join(dict.fromkeys(problems)) or "no fill could be made"
    scores = score_outside(index, found.query, [m for _, _, m, _ in made])
    fills = []
    for (clip, request, measured, source), score in zip(made, scores):
        missing = [c.name for c in known if not shows(c, measured, SAME_PERSON)]
        fills.append((Fill(clip_id=generated_hit(clip, request, score).shot.id,
                           backend=clip.backend, kind=kind_label(clip), score=score,
                           made_from=f"seed {clip.seed}" + (f", frame of {source.shot.id}"
                                                            if source else ""),
                           dropped=(f"{' and '.join(missing)}'s face not found in it"
                                    if missing else "")),
                      clip, request, measured))
    fills.sort(key=lambda f: (bool(f[0].dropped), -f[0].score))
    order = tuple(f[0] for f in fills)
    fill, clip, request, measured = fills[0]
    if fill.dropped:
        return None, order, "; ".join([f"every fill was dropped ({fill.dropped})", *problems])
    hit = generated_hit(clip, request, fill.score, measured)
    usable = [f for f in order if not f.dropped]
    footage = max(found.hits, key=lambda h: h.score, default=None)
    provenance = {
        "backend": clip.backend, "model": clip.model, "seed": str(clip.seed), "kind": fill.kind,
        "prompt": clip.prompt, "references": ";".join(clip.references),
        "seconds_taken": f"{clip.seconds_taken:.2f}", "query": found.query,
        "measured": f"{fill.score:.4f}", "made_from": fill.made_from,
        "fills": f"{len(order)} made, {len(order) - len(usable)} dropped",
        "runner_up": usable[1].describe() if len(usable) > 1 else "none",
        "best_footage": (f"{footage.shot.id} {footage.score:.2f}" if footage else "none")}
    if fill.kind == "stand-in":
        provenance["stand_in"] = "yes"
    return (hit, tuple(sorted(provenance.items()))), order, ""


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
                     tuple(cast.values()), {**first.pins, **second.pins})


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
    """Decisions that chose a generated clip say so (source "generated"), keep its provenance
    and say in their reason how it measured against the other fills and the footage."""
    decisions = []
    for d in edl.decisions:
        prov = generated.provenance.get(d.library_shot)
        if prov is None:
            decisions.append(d)
            continue
        p = dict(prov)
        why = (f"{p['kind']} fill ({p['backend']}, {p['made_from']}) measured "
               f"{float(p['measured']):.2f} for '{p['query']}', best of {p['fills']}; runner-up "
               f"fill {p['runner_up']}; best footage {p['best_footage']}")
        decisions.append(replace(d, source="generated", provenance=prov,
                                 reason=f"{why}. {d.reason}"))
    return replace(edl, decisions=tuple(decisions))


def is_fill(clip: str) -> bool:
    """Whether a clip id names a generated clip (a fill), not a library shot."""
    return clip.startswith(GENERATED_PREFIX)
