"""How one query ranks the library's shots: the scoring shared by every search.

Two kinds of evidence, as in Write-a-video: keywords (the query's lemmas against each shot's
lemmatised labels, tags and file-name words; see :mod:`retrieval.embed.keywords`) and the
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

from typing import TYPE_CHECKING, Callable

import numpy as np

from retrieval.embed.keywords import keyword_score, terms

if TYPE_CHECKING:
    from retrieval.index.vectors import VectorIndex

MODES = ("weighted", "cascade", "embedding", "keywords")
DEFAULT_MODE = "weighted"
KEYWORD_WEIGHT = 0.3  # a full keyword match adds this to the cosine (see DEFAULT_MODE)
CASCADE_BONUS = 0.1  # in cascade mode, added to matched shots' cosine (the order is by group)
_MIN_POOL = 50  # embedding neighbours considered per query, so keyword matches can rise
_TERM_LIMIT = 5000  # rows fetched per query term


def combine(cosine: float, keywords: float, mode: str = DEFAULT_MODE) -> float:
    """A shot's score from its cosine and keyword score, as :func:`rank` gives it in ``mode``
    (a clip measured outside the library is scored by this too, so it sits on the same scale)."""
    if mode == "keywords":
        return keywords
    if mode == "embedding":
        return cosine
    if mode == "weighted":
        return cosine + KEYWORD_WEIGHT * keywords
    if mode == "cascade":
        return cosine + (CASCADE_BONUS if keywords > 0 else 0.0)
    raise ValueError(f"unknown search mode {mode!r}: one of {', '.join(MODES)}")


Postings = Callable[[tuple[str, ...], int], tuple[dict[str, int], dict[int, set[str]]]]


def rank(vectors: "VectorIndex", postings: Postings, n_shots: int, query: str,
         query_vector: np.ndarray | None, top: int, mode: str = DEFAULT_MODE,
         first_rows: Callable[[int], list[int]] | None = None) -> list[tuple[int, float]]:
    """The ``top`` best (vector row, score) pairs for one query, best first.

    ``first_rows(n)``: the index's first ``n`` live rows in order, which fill a keyword search
    that matched fewer than ``top`` shots (default ``0..n-1``: a large index's rows have gaps,
    so it passes its own)."""
    if mode not in MODES:
        raise ValueError(f"unknown search mode {mode!r}: one of {', '.join(MODES)}")
    q_terms = terms(query) if mode != "embedding" else ()
    df, matched = postings(q_terms, _TERM_LIMIT) if q_terms else ({}, {})
    kw = {row: keyword_score(q_terms, have, df, n_shots) for row, have in matched.items()}
    if mode == "keywords":
        order = sorted(kw, key=lambda r: (-kw[r], r))[:top]
        if len(order) < top:  # then the rest in index order, score 0
            rows = first_rows(top + len(kw)) if first_rows else range(min(n_shots, top + len(kw)))
            order += [r for r in rows if r not in kw][: top - len(order)]
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
    scored = [(r, combine(c, kw.get(r, 0.0), mode), 0.0) for r, c in cos.items()]
    if mode == "cascade":  # the matched group first, each by cosine
        scored = [(r, s, 1.0 if kw.get(r, 0.0) > 0 else 0.0) for r, s, _ in scored]
        scored.sort(key=lambda x: (-x[2], -x[1], x[0]))
        return [(r, s) for r, s, _ in scored[:top]]
    scored.sort(key=lambda x: (-x[1], x[0]))
    return [(r, s) for r, s, _ in scored[:top]]
