"""Align a re-planned script with the previous plan, so a recut touches only what changed.

Shot ids come from each shot's own text, so untouched sentences keep their ids wherever they
move. Alignment then tells, for every shot, whether it is unchanged, moved, edited (a new id
that replaces a similar old sentence in place), inserted, or deleted; and which cuts of the
new film are new (two shots that were not neighbours before).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

from planner.shots import ShotPlan

STATUSES = ("unchanged", "moved", "edited", "inserted", "deleted")
EDIT_SIMILARITY = 0.5  # character-level ratio above which a replaced sentence counts as edited


@dataclass(frozen=True)
class ShotChange:
    shot_id: str  # the new id; the old id for a deleted shot
    status: str  # one of STATUSES
    previous: str = ""  # for an edited shot: the id of the sentence it replaces


@dataclass(frozen=True)
class Alignment:
    """New shots in film order, then the deleted ones."""

    changes: tuple[ShotChange, ...]
    new_cuts: frozenset[tuple[str, str]]  # (left id, right id) pairs that were not cuts before

    def status(self, shot_id: str) -> str:
        return next(c.status for c in self.changes if c.shot_id == shot_id)

    def count(self, status: str) -> int:
        return sum(c.status == status for c in self.changes)

    @property
    def touched(self) -> frozenset[str]:
        """New shots whose text or neighbours changed: the ones a recut re-solves."""
        ends = {shot for cut in self.new_cuts for shot in cut}
        return frozenset(c.shot_id for c in self.changes
                         if c.status != "deleted" and (c.status != "unchanged" or c.shot_id in ends))

    def summary(self) -> str:
        parts = [f"{self.count(s)} {s}" for s in STATUSES if self.count(s)]
        return ", ".join(parts) or "no shots"


def align(old: ShotPlan, new: ShotPlan) -> Alignment:
    old_ids = [s.id for s in old.shots]
    new_ids = [s.id for s in new.shots]
    old_text = {s.id: s.text for s in old.shots}
    new_text = {s.id: s.text for s in new.shots}
    common = set(old_ids) & set(new_ids)

    # unchanged = the longest common subsequence of surviving ids; other survivors moved
    a = [i for i in old_ids if i in common]
    b = [i for i in new_ids if i in common]
    in_place = {a[m.a + k] for m in difflib.SequenceMatcher(None, a, b, autojunk=False)
                .get_matching_blocks() for k in range(m.size)}

    # edited = a new sentence replacing a similar old one at the same place
    edited: dict[str, str] = {}
    matcher = difflib.SequenceMatcher(None, old_ids, new_ids, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "replace":
            continue
        olds = [i for i in old_ids[i1:i2] if i not in common]
        for nid in (i for i in new_ids[j1:j2] if i not in common):
            scored = [(difflib.SequenceMatcher(None, old_text[o], new_text[nid]).ratio(), o)
                      for o in olds]
            if scored:
                ratio, best = max(scored)
                if ratio >= EDIT_SIMILARITY:
                    edited[nid] = best
                    olds.remove(best)

    changes = []
    for nid in new_ids:
        if nid in common:
            changes.append(ShotChange(nid, "unchanged" if nid in in_place else "moved"))
        elif nid in edited:
            changes.append(ShotChange(nid, "edited", edited[nid]))
        else:
            changes.append(ShotChange(nid, "inserted"))
    replaced = set(edited.values())
    changes += [ShotChange(o, "deleted") for o in old_ids if o not in common and o not in replaced]

    old_cuts = set(zip(old_ids, old_ids[1:]))
    # an edited shot stands where its old sentence stood: its cuts are not new for that reason
    as_old = [edited.get(i, i) for i in new_ids]
    new_cuts = frozenset((new_ids[k], new_ids[k + 1]) for k in range(len(new_ids) - 1)
                         if (as_old[k], as_old[k + 1]) not in old_cuts)
    return Alignment(tuple(changes), new_cuts)
