"""A clip from outside the library (a generated one), measured and scored as a library shot.

The clip is analysed by the indexer's own code (:func:`retrieval.analysis.analyse.analyse_file`
with the index's shot settings: keyframes, features, faces, people), embedded by the index's
embedder through the same dispatch (:func:`retrieval.embed.base.analyse_with`, with the same
people hints, and the words the caller says are its own: none for a camera file with a neutral
name), labelled as the index labels a shot, and scored against a query by the ranking's own formula
(:func:`retrieval.search.ranking.combine`: cosine plus the keyword score, with the library's
document frequencies). Its score therefore sits on the same scale as the query's library hits,
and whatever later calibrates one calibrates the other.

A clip is taken whole, as one shot: its vector is the mean of all its keyframes' vectors (as a
library shot's is of its own); should the cut detector split it, its features are those of its
longest part.
"""
from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Sequence

import numpy as np

from planner.errors import MediaError

from retrieval.types import MeasuredClip
from .footage import FootageIndex
from .ranking import DEFAULT_MODE, combine


def measure_outside(index: FootageIndex, path: Path, text: str = "") -> MeasuredClip:
    """Analyse and embed the video or still at ``path`` as ``index`` would a library file
    whose own words (name, sidecar note, folder tags: :func:`retrieval.media.footage_text`)
    are ``text`` ("" for a camera file with a neutral name). MediaError when it cannot be read."""
    from retrieval.analysis.analyse import Settings, analyse_file
    from retrieval.embed.base import analyse_with, normalise
    from retrieval.embed.keywords import LabelLemmas
    from retrieval.embed.labels import merge_labels, people_hints, people_words
    from retrieval.media.library import footage_words, media_kind

    path = Path(path).resolve()
    kind = media_kind(path.name)
    if kind is None:
        raise MediaError(f"{path}: not a video or image file montage reads",
                         hint="write the clip as .mp4 or .png")
    s = index.meta.get("settings") or {}
    settings = Settings(float(s["threshold"]), float(s["min_shot"]))
    a = analyse_file(str(path.parent), path.name, kind, settings)
    if a.error:
        raise MediaError(a.error, hint="the clip is damaged: delete it so it is made again")
    owner = [n for n, rows in enumerate(a.groups) for _ in rows]
    hints = [people_hints(a.features[n]) for n in owner]
    emb = index.embedder()
    analysis = analyse_with(emb, list(a.frames), [text] * len(a.frames), hints, list(a.facts))
    longest = max(range(len(a.spans)), key=lambda n: a.spans[n][1] - a.spans[n][0])
    features = a.features[longest]
    vector = normalise(analysis.vectors.mean(axis=0, keepdims=True))[0]
    labels = merge_labels(list(analysis.labels), people_words(features) + footage_words(text))
    lemmas = LabelLemmas.open()
    found = lemmas.terms(labels)
    lemmas.save()
    return MeasuredClip(embedder=emb.name, vector=tuple(round(float(x), 6) for x in vector),
                        labels=tuple(labels), terms=tuple(found), features=features)


def score_outside(index: FootageIndex, query: str, clips: Sequence[MeasuredClip],
                  mode: str = DEFAULT_MODE) -> list[float]:
    """Each measured clip's score for ``query``, as :meth:`FootageIndex.search` would give it
    were the clip a shot of the library (the library's document frequencies, the index's
    embedder); a clip measured by another embedder is a ValueError (re-measure it)."""
    from retrieval.embed.keywords import keyword_score, terms
    from retrieval.index import store

    if not clips:
        return []
    for c in clips:
        if c.embedder != index.embedder_name:
            raise ValueError(f"clip measured with {c.embedder}, the index uses {index.embedder_name}")
    q_terms = terms(query) if mode != "embedding" else ()
    df: dict[str, int] = {}
    if q_terms:
        with closing(index._connect()) as con:
            df, _ = store.postings(con, q_terms, 0)
    q = None
    if mode != "keywords":
        q = np.asarray(index.embedder().embed_queries([query])[0], np.float32)
    out = []
    for c in clips:
        cos = float(np.asarray(c.vector, np.float32) @ q) if q is not None else 0.0
        kw = keyword_score(q_terms, set(c.terms), df, len(index)) if q_terms else 0.0
        out.append(round(combine(cos, kw, mode), 6))
    return out
