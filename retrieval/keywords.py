"""Keywords: lemmatised content words of labels, tags and queries, and how well they match.

Lemmas come from the planner's spaCy pipeline (``planner.nlp.load_nlp``, the one place spaCy
is imported), so "taxis" meets "taxi" and "running" meets "run" the way the planner's queries
already are. A shot's keyword score counts the query words found among its terms: each
counts 1, or 0.5 when it is in more than half of the library's shots (it tells little), and
FULL_MATCH of them make a full match (1.0). Counting rather than taking the share of the
query's words keeps long planner queries ("red motorcycle stand garage") from diluting one
decisive match ("motorcycle"); on the labelled set both scored the same.
"""
from __future__ import annotations

from functools import lru_cache

from .library import split_words

_IGNORED = frozenset(
    "a an and are as at be by for from has have having in into is it its of on or that the "
    "this to was were with while who whom which there here some any very one two".split()
)
_KEEP_POS = frozenset({"NOUN", "PROPN", "ADJ", "VERB", "NUM", "X"})


@lru_cache(maxsize=4096)
def _lemmas_of(text: str) -> tuple[str, ...]:
    from planner.nlp import load_nlp

    nlp = load_nlp()
    doc = nlp(text, disable=["parser", "ner"])  # the lemmatizer needs the tagger only
    out: list[str] = []
    for tok in doc:
        lemma = tok.lemma_.lower().strip()
        if not lemma.isalpha() or len(lemma) < 2 or lemma in _IGNORED:
            continue
        if tok.is_stop or (tok.pos_ and tok.pos_ not in _KEEP_POS):
            continue
        if lemma not in out:
            out.append(lemma)
    return tuple(out)


def terms(text: str) -> tuple[str, ...]:
    """The lemmatised content words of ``text``, in order, unique ("Red taxis" -> red, taxi)."""
    cleaned = " ".join(split_words(text))
    if not cleaned:
        return ()
    return _lemmas_of(cleaned)


def label_terms(labels: tuple[str, ...] | list[str]) -> list[str]:
    """Terms of a shot's labels, each label lemmatised on its own (labels are not a sentence)."""
    out: list[str] = []
    for label in labels:
        for t in terms(label):
            if t not in out:
                out.append(t)
    return out


FULL_MATCH = 3.0  # matched words that make a full keyword match
COMMON = 0.5  # a word in more than this share of the shots counts half


def keyword_score(query_terms: tuple[str, ...], matched: set[str], df: dict[str, int],
                  n: int) -> float:
    """How well a shot's terms match the query's (0 .. 1); see the module docstring."""
    credit = sum(0.5 if n and df.get(t, 0) > COMMON * n else 1.0
                 for t in query_terms if t in matched)
    return min(credit / FULL_MATCH, 1.0)
