"""Rank library shots for written queries, and hand candidates to the optimizer.

Score = cosine between the query and shot vectors, plus a small bonus for each query word found
among the shot's labels (classifier labels and the footage's own words): the embedding carries
the meaning, the words reward an exact, named match ("taxi" in "taxi_rank.mp4").
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from planner.shots import ShotPlan

from .library import split_words
from .types import CandidateSet, Hit, LibraryShot, ShotCandidates

if TYPE_CHECKING:
    from .embed import Embedder
    from .index import FootageIndex
    from .vectors import VectorIndex

KEYWORD_BONUS = 0.1  # per query word found in a shot's labels
KEYWORD_BONUS_CAP = 0.3
_MIN_POOL = 50  # shots re-ranked per query, so a keyword match outside the top few can rise
_IGNORED = frozenset(
    "a an and are as at be by for from has have having in into is it its of on or that the "
    "this to was were with while who whom which there here some any very".split()
)


def keywords(text: str) -> frozenset[str]:
    """Content words of a query or label text, crudely singularised so "taxis" meets "taxi"."""
    return frozenset(_singular(w) for w in split_words(text) if w not in _IGNORED)


def _singular(word: str) -> str:
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def keyword_bonus(query_words: frozenset[str], labels: tuple[str, ...]) -> float:
    """+KEYWORD_BONUS per query word among the labels' words, capped at KEYWORD_BONUS_CAP."""
    if not query_words or not labels:
        return 0.0
    found = query_words & keywords(" ".join(labels))
    return min(KEYWORD_BONUS * len(found), KEYWORD_BONUS_CAP)


def rank_hits(shots: tuple[LibraryShot, ...], vectors: "VectorIndex", queries: list[str],
              query_vectors: np.ndarray, top: int) -> list[list[Hit]]:
    """The ``top`` best shots per query, by cosine plus keyword bonus (ties keep cosine order)."""
    if top <= 0 or not len(shots):
        return [[] for _ in queries]
    pool = min(len(shots), max(top * 5, _MIN_POOL))
    cosines, ids = vectors.search(query_vectors, pool)
    results: list[list[Hit]] = []
    for qi, query in enumerate(queries):
        words = keywords(query)
        scored = []
        for cosine, sid in zip(cosines[qi], ids[qi]):
            if sid < 0:
                continue
            shot = shots[int(sid)]
            score = float(cosine) + keyword_bonus(words, shot.labels)
            scored.append(Hit(shot=shot, score=score))
        scored.sort(key=lambda h: -h.score)
        results.append(scored[:top])
    return results


def search_library(root: Path, queries: list[str], top: int = 5,
                   embedder: "str | Embedder | None" = None) -> list[list[Hit]]:
    """Open the index of ``root`` and rank its shots for each query."""
    from .index import open_index

    return open_index(root).search(list(queries), top, embedder)


def hits_to_json(root: Path, queries: list[str], results: list[list[Hit]]) -> list[dict]:
    """``[{"query", "hits": [{"path", "start", "end", "score"}]}]``; paths relative to ``root``."""
    root = Path(root)
    out = []
    for query, hits in zip(queries, results):
        out.append({
            "query": query,
            "hits": [
                {"path": _relative(root, h.shot.path), "start": h.shot.start,
                 "end": h.shot.end, "score": float(h.score)}
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


def candidates_for_plan(index: "FootageIndex", plan: ShotPlan, top: int = 10) -> CandidateSet:
    """Ranked library shots for every planned shot (its query, or its text if the query is empty)."""
    queries = [s.query.strip() or s.text for s in plan.shots]
    results = index.search(queries, top) if queries else []
    return CandidateSet(
        library=str(index.root.resolve()),
        embedder=index.embedder_name,
        shots=tuple(
            ShotCandidates(shot_id=s.id, query=q, hits=tuple(hits))
            for s, q, hits in zip(plan.shots, queries, results)
        ),
    )
