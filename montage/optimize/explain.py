"""Why each clip: its rule terms, the rules it bends, the runner-up and what decided between them.

The runner-up of a shot is its best other option with every other shot as chosen (a clip
used elsewhere is not an option); "decided by" lists the terms on which the two differ most.
:func:`edl_text` prints that account for a decision list (``montage explain`` reads the project's
``edit.otio`` back through :func:`montage.project.versions.explain_text`).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from montage.optimize.costs import SCALE
from montage.optimize.edl import RUNNER_UP_CARD, EditDecision, EditDecisionList
from montage.optimize.problem import Option, Problem, evaluate
from montage.optimize.rules import REWARDS, TERMS

BEND_SHARE = 0.5  # a rule is bent when a clip pays more than half its weight


@dataclass(frozen=True)
class Explanation:
    costs: tuple[tuple[str, float], ...]
    bends: tuple[str, ...]
    runner_up: str
    decided_by: str
    runner_option: Option | None
    used_by: dict[str, str]  # clip id -> shot id, for clips this shot could not take


def explain(p: Problem, choice: list[int]) -> list[Explanation]:
    """One explanation per shot of the edit ``choice``."""
    ev = evaluate(p, choice)
    cuts = [p.cut_terms(i) for i in range(p.n - 1)]
    faces = _film_faces(p, choice)
    users: dict[int, list[int]] = {}
    for j, k in enumerate(choice):
        if p.clip[j][k] >= 0:
            users.setdefault(int(p.clip[j][k]), []).append(j)
    gap = p.rules.reuse_gap
    counts = (Counter(int(p.file[j][k]) for j, k in enumerate(choice)),
              Counter(int(p.clip[j][k]) for j, k in enumerate(choice)))
    out = []
    for i, k in enumerate(choice):
        costs = tuple((t, -v / SCALE) for t, v in sorted(ev.per_shot[i].items(), key=_order))
        bends = tuple(t for t, v in ev.per_shot[i].items()
                      if t not in REWARDS and -v > BEND_SHARE * p.w(t) > 0)
        bends = tuple(sorted(bends, key=lambda t: list(TERMS).index(t)))
        if i in p.locked:
            why = "pinned by the user" if p.locked[i] == "pinned" else "kept from the previous cut"
            out.append(Explanation(costs, bends, "", why, None, {}))
            continue
        mine = _local(p, choice, i, k, cuts, faces, counts)
        best, best_terms = None, None
        used_by: dict[str, str] = {}
        for alt in range(len(p.options[i])):
            if alt == k:
                continue
            c = int(p.clip[i][alt])
            near = [j for j in users.get(c, ()) if j != i and (gap == 0 or abs(i - j) < gap)]
            if near:
                used_by[p.clip_names[c]] = p.shots[near[0]].id
                continue
            terms = _local(p, choice, i, alt, cuts, faces, counts)
            if best_terms is None or sum(terms.values()) > sum(best_terms.values()):
                best, best_terms = alt, terms
        if best is None:
            out.append(Explanation(costs, bends, "", "no other usable option", None, used_by))
            continue
        opt = p.options[i][best]
        name = opt.clip_id if opt.hit else RUNNER_UP_CARD
        out.append(Explanation(costs, bends, name, _decided(mine, best_terms), opt, used_by))
    return out


def _order(item: tuple[str, int]) -> int:
    return list(TERMS).index(item[0])


def _film_faces(p: Problem, choice: list[int]) -> dict[str, int]:
    out = {}
    for name, shots in p.characters:
        shown = [p.faces[i][choice[i]] for i in shots if p.faces[i][choice[i]]]
        if shown:
            ids = sorted({k for f in shown for k in f})
            out[name] = min(ids, key=lambda k: (sum(k not in f for f in shown), k))
    return out


def _local(p: Problem, choice: list[int], i: int, k: int, cuts: list[dict[str, np.ndarray]],
           faces: dict[str, int], counts: tuple[Counter, Counter]) -> dict[str, int]:
    """Signed terms that change when shot ``i`` takes option ``k`` (all else as chosen)."""
    d: dict[str, int] = {t: int(v[k]) for t, v in p.terms[i].items()}
    if i > 0:
        for t, m in cuts[i - 1].items():
            d[t] = d.get(t, 0) - int(m[choice[i - 1], k])
    if i < p.n - 1:
        for t, m in cuts[i].items():
            d[t] = d.get(t, 0) - int(m[k, choice[i + 1]])
    f, c = int(p.file[i][k]), int(p.clip[i][k])
    files, clips = counts
    if f >= 0 and files.get(f, 0) - (int(p.file[i][choice[i]]) == f) > 0:
        d["variety"] = d.get("variety", 0) - p.w("variety")
    if c >= 0 and clips.get(c, 0) - (int(p.clip[i][choice[i]]) == c) > 0:
        d["reuse"] = d.get("reuse", 0) - p.w("reuse")
    for name, shots in p.characters:
        shown = p.faces[i][k]
        if i in shots and shown and name in faces and faces[name] not in shown:
            d["character"] = d.get("character", 0) - p.w("character")
    return d


def _decided(mine: dict[str, int], other: dict[str, int]) -> str:
    diff = {t: mine.get(t, 0) - other.get(t, 0) for t in set(mine) | set(other)}
    total = sum(diff.values())
    parts = sorted(((t, v) for t, v in diff.items() if v), key=lambda tv: (-abs(tv[1]), tv[0]))[:3]
    if not parts:
        return "a tie on every term (the lower option number wins)"
    head = f"wins by {total / SCALE:.3f}" if total > 0 else f"ties at {total / SCALE:.3f}"
    return head + ": " + ", ".join(f"{t} {v / SCALE:+.3f}" for t, v in parts)


def confidence_text(d: EditDecision) -> str:
    """The decision's calibrated confidence in one line ("" when unknown): how far its clip,
    or a card's best hit, stands above the library's scores for the sentence, against the
    card bar (:mod:`montage.optimize.confidence`)."""
    if d.confidence is None or d.bar is None:
        return "no hit in the library" if d.source == "placeholder" else ""
    if d.source != "placeholder":
        return (f"shown: stands {d.confidence:.1f} sd above the library for this sentence "
                f"(card bar {d.bar:.1f} sd)")
    if d.confidence < d.bar:
        return (f"card: best hit stands {d.confidence:.1f} sd above the rest, under the card "
                f"bar of {d.bar:.1f} sd: no shot in the library is clearly about this")
    return (f"card: best hit stands {d.confidence:.1f} sd above the rest, over the card bar of "
            f"{d.bar:.1f} sd, but it was taken, too short or outweighed by its rule costs")


def edl_text(edl: EditDecisionList, title: str = "edit") -> str:
    lines = [f"# Why each shot: {title}", ""]
    total = -sum(v for d in edl.decisions for _, v in d.costs)
    if any(d.costs for d in edl.decisions):
        lines += [f"objective {total:.3f} (match rewards minus rule costs)", ""]
    for n, (d, start) in enumerate(zip(edl.decisions, edl.starts()), 1):
        at = float(start / edl.rate)
        chosen = d.library_shot or "title card"
        lines.append(f"{n}. [{at:6.2f}s] {d.shot_id}: {d.text}")
        lines.append(f"   chose {chosen} ({d.frames} frames)")
        if confidence_text(d):
            lines.append(f"   {confidence_text(d)}")
        fill = dict(d.provenance)
        if d.source == "generated" and "measured" in fill:
            kind = "stand-in" if fill.get("stand_in") == "yes" else "generated"
            lines.append(f"   {kind} fill ({fill['backend']}, {fill['made_from']}): measured "
                         f"{float(fill['measured']):.3f} for '{fill['query']}' ({fill['fills']}); "
                         f"runner-up fill {fill['runner_up']}; best footage {fill['best_footage']}")
        if d.runner_up:
            lines.append(f"   runner-up {d.runner_up}: {d.decided_by}")
        elif d.decided_by:
            lines.append(f"   {d.decided_by}")
        costs = [f"{t} {v:+.3f}" for t, v in d.costs if t not in REWARDS and v]
        if costs:
            lines.append(f"   costs: {', '.join(costs)}")
        if d.bends:
            lines.append(f"   bends: {', '.join(d.bends)}")
    return "\n".join(lines) + "\n"
