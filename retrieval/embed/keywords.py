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

import hashlib
from functools import lru_cache
from pathlib import Path

from retrieval.media.library import split_words

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


LEMMAS_FORMAT = 1


class LabelLemmas:
    """The terms of label texts, kept in the user's model cache between index runs.

    Labels come from a small vocabulary (ImageNet's classes, the people words, the library's
    file and folder words), and lemmatising them was the only reason an index run loaded spaCy:
    about 2.4 s of CPU per run, on a 2-core machine beside the analysis workers. With every
    label already kept, spaCy is never loaded; a new label loads it as before. The file is keyed
    by spaCy's and its English model's versions (a lemma is what that model says), and written
    whole to a temporary name then renamed, so a parallel run never reads half of it.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.known: dict[str, tuple[str, ...]] = {}
        self._added = False
        self.kept = False  # whether a kept file was read (then spaCy is probably not needed)
        if path is None:
            return
        from .base import read_plain

        known = read_plain(path)
        if isinstance(known, dict) and all(isinstance(v, tuple) for v in known.values()):
            self.known, self.kept = known, True

    @classmethod
    def open(cls) -> LabelLemmas:
        """The kept lemmas for the installed spaCy model (none kept without one)."""
        key = _model_key()
        if key is None:
            return cls(None)
        from .base import default_cache_dir

        return cls(default_cache_dir() / f"label-lemmas-{key}.marshal")

    def terms(self, labels: tuple[str, ...] | list[str]) -> list[str]:
        """:func:`label_terms`, from the kept lemmas where it can."""
        out: list[str] = []
        for label in labels:
            cleaned = " ".join(split_words(label))
            if not cleaned:
                continue
            lemmas = self.known.get(cleaned)
            if lemmas is None:
                lemmas = self.known[cleaned] = _lemmas_of(cleaned)
                self._added = True
            for t in lemmas:
                if t not in out:
                    out.append(t)
        return out

    def save(self) -> None:
        """Keep the lemmas if any label was new (an unwritable cache costs only time)."""
        if not self._added or self.path is None:
            return
        from .base import keep_plain

        keep_plain(self.path, self.known)
        self._added = False


def _model_key() -> str | None:
    """A short hash of spaCy's version and the English model :func:`planner.nlp.load_nlp` would
    load (found without importing spaCy: importing it is the cost being saved)."""
    import importlib.metadata
    import importlib.util

    from planner.nlp import MODEL_NAMES

    try:
        spacy_version = importlib.metadata.version("spacy")
    except importlib.metadata.PackageNotFoundError:
        return None
    for name in MODEL_NAMES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            continue
        try:
            model_version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            model_version = ""
        folder = Path(spec.origin).parent
        stamp = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(folder.iterdir())]
        raw = repr((LEMMAS_FORMAT, spacy_version, name, model_version, str(folder), stamp))
        return hashlib.sha1(raw.encode()).hexdigest()[:16]
    return None


FULL_MATCH = 3.0  # matched words that make a full keyword match
COMMON = 0.5  # a word in more than this share of the shots counts half


def keyword_score(query_terms: tuple[str, ...], matched: set[str], df: dict[str, int],
                  n: int) -> float:
    """How well a shot's terms match the query's (0 .. 1); see the module docstring."""
    credit = sum(0.5 if n and df.get(t, 0) > COMMON * n else 1.0
                 for t in query_terms if t in matched)
    return min(credit / FULL_MATCH, 1.0)
