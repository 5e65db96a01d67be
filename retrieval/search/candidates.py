"""Search a library's index for written queries, and hand candidates to the optimizer.

How a query ranks shots (keywords and embedding, the modes and their weights) is
:mod:`retrieval.search.ranking`; this module opens the index and shapes the results.
"""
from __future__ import annotations

from pathlib import Path

from planner.shots import ShotPlan

from retrieval.embed.base import Embedder
from retrieval.types import CandidateSet, Hit, ShotCandidates
from .footage import FootageIndex, open_index
from .ranking import DEFAULT_MODE, MODES

__all__ = ["DEFAULT_MODE", "MODES", "candidates_for_plan", "hits_to_json", "search_library"]


def search_library(root: Path, queries: list[str], top: int = 5,
                   embedder: str | Embedder | None = None, mode: str = DEFAULT_MODE) -> list[list[Hit]]:
    """Open the index of ``root`` (its vectors of ``embedder``; None: the last built) and rank
    its shots for each query."""
    return open_index(root, embedder).search(list(queries), top, embedder, mode=mode)


def hits_to_json(root: Path, queries: list[str], results: list[list[Hit]]) -> list[dict]:
    """``[{"query", "hits": [{"path", "start", "end", "score", "moment"}]}]``; paths relative
    to ``root``; ``moment``: the best-matching keyframe's time, null when not known."""
    root = Path(root)
    out = []
    for query, hits in zip(queries, results):
        out.append({
            "query": query,
            "hits": [
                {"path": _relative(root, h.shot.path), "start": h.shot.start,
                 "end": h.shot.end, "score": float(h.score), "moment": h.moment}
                for h in hits
            ],
        })
    return out


def _relative(root: Path, path: str) -> str:
    p = Path(path)
    if p.is_absolute():
        try:
            return p.relative_to(root.resolve()).as_posix()
        except ValueError:
            return p.as_posix()
    return p.as_posix()


def candidates_for_plan(index: FootageIndex, plan: ShotPlan, top: int = 10) -> CandidateSet:
    """Ranked library shots for every planned shot (its query, or its text if the query is
    empty), each shot with its query's calibration (see :class:`retrieval.types.QueryCalibration`)."""
    queries = [s.query.strip() or s.text for s in plan.shots]
    results, calibrations = index.search_calibrated(queries, top) if queries else ([], [])
    return CandidateSet(
        library=str(index.root.resolve()),
        embedder=index.embedder_name,
        shots=tuple(
            ShotCandidates(shot_id=s.id, query=q, hits=tuple(hits), calibration=cal)
            for s, q, hits, cal in zip(plan.shots, queries, results, calibrations)
        ),
    )
