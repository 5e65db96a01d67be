"""Aligning a re-planned script with the previous plan."""
from __future__ import annotations

from planner.align import align
from planner.plan import shot_id
from planner.shots import PlannedShot, ShotPlan


def plan(*texts: str) -> ShotPlan:
    return ShotPlan(source="x", shots=tuple(
        PlannedShot(id=shot_id(t), scene=0, text=t, query=t, characters=(), duration=2.0, line=1)
        for t in texts))


S = ["A cat sleeps on the sofa.", "The rain falls on the roofs.", "A taxi waits in traffic.",
     "A cyclist rides past.", "The moon rises over the city."]


def statuses(al):
    return [(c.shot_id, c.status) for c in al.changes]


def test_nothing_changed():
    al = align(plan(*S), plan(*S))
    assert {c.status for c in al.changes} == {"unchanged"}
    assert al.touched == frozenset() and al.new_cuts == frozenset()


def test_edit_one_sentence():
    new = list(S)
    new[2] = "A yellow taxi waits in traffic."
    al = align(plan(*S), plan(*new))
    assert al.status(shot_id(new[2])) == "edited"
    assert [c.previous for c in al.changes if c.status == "edited"] == [shot_id(S[2])]
    assert al.count("deleted") == 0 and al.count("unchanged") == 4
    assert al.new_cuts == frozenset()
    assert al.touched == {shot_id(new[2])}


def test_insert_and_delete():
    new = [S[0], S[1], "A dog barks at the postman.", S[2], S[4]]  # insert after 1, delete 3
    al = align(plan(*S), plan(*new))
    assert al.status(shot_id(new[2])) == "inserted"
    assert al.status(shot_id(S[3])) == "deleted"
    # new cuts: S1|dog, dog|S2, S2|S4 -> their shots are re-solved, S0 is not
    assert al.touched == {shot_id(t) for t in (S[1], new[2], S[2], S[4])}


def test_move_a_sentence():
    new = [S[3], S[0], S[1], S[2], S[4]]
    al = align(plan(*S), plan(*new))
    assert al.status(shot_id(S[3])) == "moved"
    assert al.count("unchanged") == 4
    assert shot_id(S[0]) in al.touched and shot_id(S[4]) in al.touched  # both got new neighbours
    assert shot_id(S[1]) not in al.touched


def test_rewritten_sentence_is_insert_plus_delete():
    new = list(S)
    new[2] = "Fireworks explode above the harbour at midnight."
    al = align(plan(*S), plan(*new))
    assert al.status(shot_id(new[2])) == "inserted"
    assert al.status(shot_id(S[2])) == "deleted"
