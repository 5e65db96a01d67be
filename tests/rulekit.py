"""Hand-made library shots, plans and candidate sets for the optimizer tests."""
from __future__ import annotations

from retrieval.types import CandidateSet, Hit, LibraryShot, QueryCalibration, ShotCandidates, ShotFeatures
from planner.shots import PlannedShot, ShotPlan

from montage.optimize import KAPPA
from montage.optimize.confidence import BAR_MARGIN

# A calibration under which hand-written scores read as they always did: one sd is KAPPA, so
# every match value is the raw score plus a constant of the shot, and the library's own card
# bar stands at raw 0.30 (the cosine card threshold these tests were written against).
RAW = QueryCalibration(mean=0.0, sd=KAPPA, unrelated=0.30 / KAPPA - BAR_MARGIN, unrelated_sd=0.0,
                       shots=100)


def sd(raw: float) -> float:
    """The card bar in sd (``threshold=``) that stands at raw score ``raw`` under RAW."""
    return raw / KAPPA

P_FACE = tuple(0.10 for _ in range(128))
P_FACE_2 = tuple(0.11 for _ in range(128))  # the same person, another picture (distance 0.11)
Q_FACE = tuple(0.20 for _ in range(128))  # someone else (distance 1.1)


def lib(name: str, n: int = 0, *, start: float = 0.0, end: float = 10.0, kind: str = "video",
        size: tuple[int, int] = (1280, 720), features: ShotFeatures | None = None,
        **feature_values) -> LibraryShot:
    """``name#n``: shot ``n`` of file ``name`` (files give jump cuts and variety)."""
    if feature_values:
        features = ShotFeatures(**feature_values)
    if kind == "still":
        start = end = 0.0
    return LibraryShot(id=f"{name}#{n}", path=name, kind=kind, start=start, end=end,
                       width=size[0], height=size[1], fps=0.0 if kind == "still" else 25.0,
                       labels=(name,), features=features)


def shot(n: int, *, scene: int = 0, characters: tuple[str, ...] = (), duration: float = 2.0) -> PlannedShot:
    return PlannedShot(id=f"s{n}", scene=scene, text=f"sentence {n}.", query=f"thing {n}",
                       characters=characters, duration=duration, line=n + 1)


def plan_of(*shots: PlannedShot) -> ShotPlan:
    return ShotPlan(source="<test>", shots=tuple(shots))


def cands(*per_shot: list[tuple[LibraryShot, float]]) -> CandidateSet:
    """Candidates for shots s0, s1, ... in order."""
    return CandidateSet(library="/lib", embedder="test", shots=tuple(
        ShotCandidates(shot_id=f"s{i}", query="q", hits=tuple(Hit(c, s) for c, s in hits),
                       calibration=RAW)
        for i, hits in enumerate(per_shot)))


def chosen(solution) -> list[str]:
    return [d.library_shot for d in solution.edl.decisions]
