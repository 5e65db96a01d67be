"""Checks on a written search query: empty, only stop words, or not English get one message.

Every embedder here reads English (MiniLM, ImageNet's names, WordNet), so a query in another
language ranks shots by noise; saying so beats a confident-looking list of wrong shots. The
language check is deliberately simple (function words and WordNet's vocabulary) and errs on
letting a query through: a rare English word or a name alone does not trip it.
"""
from __future__ import annotations

import re

from planner.errors import MontageError


class QueryError(MontageError):
    """A search query that cannot be searched meaningfully."""


# frequent function words of other languages that are not English words
_FOREIGN = frozenset(
    # French
    "le la les un une des du et est dans sur avec pour au aux ce cette qui que sous chez "
    "très petit petite chien chat voiture rue "
    # German
    "der die das ein eine einen dem den und ist im mit auf für nicht ein einem unter vor "
    "hund katze straße strasse auto mann frau "
    # Spanish / Portuguese / Italian
    "el los las una y es en con por para del al uno unos unas perro gato calle coche "
    "um uma os em com para o é il lo gli di che è per con nella sulla".split()
) - frozenset("a an in on is die con per".split())
_LATIN = re.compile(r"[A-Za-z]")
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def check_query(query: str) -> None:
    """Raise QueryError when ``query`` is empty, only stop words, or not in English."""
    text = (query or "").strip()
    if not text:
        raise QueryError("the search query is empty",
                         hint='say what the shot should show, e.g. "a taxi in traffic"')
    words = [w.lower() for w in _WORD.findall(text)]
    if words and not _LATIN.search(text):
        raise QueryError(f"the query {query!r} is not in English (montage's models read English)",
                         hint='write it in English, e.g. "a dog on a beach"')
    foreign = sum(w in _FOREIGN for w in words)
    if words and foreign >= 2 and foreign * 2 >= len(words):
        raise QueryError(f"the query {query!r} looks like another language than English "
                         "(montage's models read English)",
                         hint='write it in English, e.g. "a dog on a beach"')
    from retrieval.embed.keywords import terms
    from retrieval.analysis.scene import WORDS

    if not terms(text) and not any(w in WORDS for w in words):
        raise QueryError(f"the query {query!r} has only stop words: nothing to look for",
                         hint='name what the shot should show, e.g. "a red car at night"')
