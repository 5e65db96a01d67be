"""Rank library shots for written queries, and hand candidates to the optimizer.

Two kinds of evidence, as in Write-a-video: keywords (the query's lemmas against each shot's
lemmatised labels, tags and file-name words; see :mod:`retrieval.keywords`) and the
embedding (cosine between the query and shot vectors). Modes:

- ``embedding``: cosine only; ``keywords``: keyword score only (ties in index order);
- ``weighted``: cosine + KEYWORD_WEIGHT * keyword score;
- ``cascade``: shots with any keyword match first, each group ranked by cosine (the score
  stays the cosine plus a small keyword bonus, so it still means "how good a match").

``bench/retrieval.py`` measures all four on a labelled set of 40 queries over 26 real shots.
The weighted sum beat the cascade there (MRR 0.613 vs 0.605 with neutral file names, 0.740 vs
0.727 with tags on half the items), so it is DEFAULT_MODE. Keyword weights 0.1 to 0.5 scored
within 0.014 of each other; 0.3 keeps descriptive file names ("motorcycle.png") decisive.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from planner.shots import ShotPlan

from .types import CandidateSet, Hit, ShotCandidates

if TYPE_CHECKING:
    from .embed import Embedder
    from .footage import FootageIndex
    from .vectors import VectorIndex

MODES = ("weighted", "cascade", "embedding", "keywords")
DEFAULT_MODE = "weighted"
KEYWORD_WEIGHT = 0.3  # a full keyword match adds this to the cosine (see DEFAULT_MODE)
CASCADE_BONUS = 0.1  # in cascade mode, added to matched shots' cosine (the order is by group)
_MIN_POOL = 50  # embedding neighbours considered per query, so keyword matches can rise
_TERM_LIMIT = 5000  # rows fetched per query term


Postings = Callable[[tuple[str, ...], int], tuple[dict[str, int], dict[int, set[str]]]]


def rank(vectors: "VectorIndex", postings: Postings, n_shots: int, query: str,
         query_vector: np.ndarray | None, top: int, mode: str = DEFAULT_MODE) -> list[tuple[int, float]]:
    """The ``top`` best (vector row, score) pairs for one query, best first."""
    from .keywords import keyword_score, terms

    if mode not in MODES:
        raise ValueError(f"unknown search mode {mode!r}: one of {', '.join(MODES)}")
    q_terms = terms(query) if mode != "embedding" else ()
    df, matched = postings(q_terms, _TERM_LIMIT) if q_terms else ({}, {})
    kw = {row: keyword_score(q_terms, have, df, n_shots) for row, have in matched.items()}
    if mode == "keywords":
        order = sorted(kw, key=lambda r: (-kw[r], r))[:top]
        if len(order) < top:  # then the rest in index order, score 0
            order += [r for r in range(n_shots) if r not in kw][: top - len(order)]
        return [(r, float(kw.get(r, 0.0))) for r in order]
    cos: dict[int, float] = {}
    pool = min(n_shots, max(top * 5, _MIN_POOL))
    scores, ids = vectors.search(query_vector, pool)
    for c, r in zip(scores[0], ids[0]):
        if r >= 0:
            cos[int(r)] = float(c)
    extra = [r for r in kw if r not in cos]
    if extra:
        for r, v in zip(extra, vectors.rows(np.array(extra)) @ np.asarray(query_vector, np.float32)):
            cos[r] = float(v)
    if mode == "embedding":
        scored = [(r, c, c) for r, c in cos.items()]
    elif mode == "weighted":
        scored = [(r, c + KEYWORD_WEIGHT * kw.get(r, 0.0), 0.0) for r, c in cos.items()]
    else:  # cascade: the matched group first, each by cosine
        scored = [(r, c + (CASCADE_BONUS if kw.get(r, 0.0) > 0 else 0.0),
                   1.0 if kw.get(r, 0.0) > 0 else 0.0) for r, c in cos.items()]
        scored.sort(key=lambda x: (-x[2], -x[1], x[0]))
        return [(r, s) for r, s, _ in scored[:top]]
    scored.sort(key=lambda x: (-x[1], x[0]))
    return [(r, s) for r, s, _ in scored[:top]]


def search_library(root: Path, queries: list[str], top: int = 5,
                   embedder: "str | Embedder | None" = None, mode: str = DEFAULT_MODE) -> list[list[Hit]]:
    """Open the index of ``root`` and rank its shots for each query."""
    from .footage import open_index

    return open_index(root).search(list(queries), top, embedder, mode=mode)


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
