"""The offline default embedder (proxy-v4): what ImageNet, WordNet, mediapipe and the pixels
say about a frame, in one vector a query can be scored against.

A shot's score for a query is a calibrated sum of three kinds of evidence:

- ``text``: cosine in MiniLM space between the query and the frame's soft labels (ImageNet
  class names weighted by their sharpened probability) mixed with phrases for what the other
  detectors saw ("a person", "a dark scene");
- ``mass``: the probability mass of the ImageNet classes under the query's nouns in WordNet
  ("a dog" counts all 120 breeds; see :mod:`retrieval.embed.wordnet`);
- ``attributes``: people (faces and a person mask from :mod:`retrieval.analysis.people`, and
  the indexer's face and people detectors), light, colour and sky (:mod:`retrieval.analysis.scene`), for
  the words of the query that ask for them.

Both sides are laid out in one vector so FAISS scores them with one inner product: the frame
is ``[c_text*text, c_mass*probabilities, c_attr*attributes, slack]`` (unit length, the slack
taking the rest), the query ``[alpha/c_text*text, beta/c_mass*classes, gamma/c_attr*asked]``,
so the product is ``alpha*cos + beta*mass + gamma*(mean of the asked people attributes) +
gamma_scene*(mean of the asked light and colour attributes)``. Query vectors are not unit
length: the score stays comparable across queries. The weights were chosen on the tuning half
of assets/eval (``bench/tune_retrieval.py --search``), never on the test half. (No title-card
threshold: whether a best match is shown is decided on the calibrated scale of
:mod:`montage.optimize.confidence`, the same for every embedder.) Re-weighing changes only the
query side, so indexes built by proxy-v4 stay valid (the name did not change).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from retrieval.analysis.people import PeopleFacts
from retrieval.analysis.scene import ATTRIBUTES, COLOURS, LIGHT, PEOPLE, asked, light_and_colour
from .base import ImageAnalysis, blend_text, normalise
from .proxy3 import ProxyEmbedder, _top_labels, label_names
from .text import DIM as TEXT_DIM
from .text import encode_texts

NAME = "proxy-v4"  # v4: WordNet class mass, mediapipe people, light and colour, no hex names
N_CLASSES = 1000
C_TEXT, C_MASS, C_ATTR = 0.6, 0.5, 0.1  # frame-side block scales (their squares stay < 1)
DIM = TEXT_DIM + N_CLASSES + len(ATTRIBUTES) + 1

# phrases mixed into the frame's MiniLM vector for the attributes it scores high on
PHRASES = {"person": "a person", "people": "a group of people", "crowd": "a crowd of people",
           "face": "a close-up portrait of a face", "night": "a dark night scene",
           "monochrome": "a black and white photo", "blue_sky": "a blue sky on a sunny day",
           "grey_sky": "a grey overcast sky"}


@dataclass(frozen=True)
class Mix:
    """How the evidence combines (chosen on the tuning half; see the module docstring)."""

    alpha: float = 1.0  # weight of the MiniLM cosine
    beta: float = 0.1  # weight of the WordNet class mass
    gamma: float = 0.1  # weight of the asked-for people attributes (person, face, crowd)
    gamma_scene: float = 0.2  # weight of the asked-for light and colour attributes
    temperature: float = 3.0  # label probabilities are raised to 1/temperature, renormalised
    top_k: int = 30  # labels mixed into the frame's MiniLM vector
    phrase_weight: float = 0.15  # an attribute phrase weighs this share of the label mass
    mask_weight: float = 0.3  # a person mask without a face counts this much as a person
    visual_weight: float = 0.7  # vs. the footage's own words, when it has any


MIX = Mix()


@dataclass(frozen=True)
class FrameSignals:
    """Everything measured on one frame; ``attributes`` is what the Mix made of the raw
    measurements kept beside it (so the tuning script can re-weigh them without the models)."""

    probs: np.ndarray  # (1000,) ImageNet probabilities
    attributes: np.ndarray  # (len(ATTRIBUTES),) scores in 0..1
    facts: PeopleFacts = PeopleFacts()
    scene: tuple[tuple[str, float], ...] = ()  # light_and_colour's measurements
    hints: tuple[tuple[str, float], ...] = ()  # the indexer's (phrase, weight) hints


@dataclass(frozen=True)
class QueryParts:
    """A query, read: its MiniLM vector, the classes its nouns cover, the attributes it asks."""

    text: np.ndarray
    classes: frozenset[int]
    attributes: dict[str, float]


def _hint_scores(hints) -> dict[str, float]:
    """The indexer's people hints ((phrase, weight) pairs) as attribute scores."""
    out: dict[str, float] = {}
    for phrase, weight in hints or ():
        if "group" in phrase:
            out["people"] = max(out.get("people", 0.0), float(weight))
            out["person"] = max(out.get("person", 0.0), float(weight))
        elif "person" in phrase:
            out["person"] = max(out.get("person", 0.0), float(weight))
        elif "face" in phrase:
            out["face"] = max(out.get("face", 0.0), float(weight))
    return out


def people_attributes(facts, hints, mix: Mix = MIX) -> dict[str, float]:
    """person / people / crowd / face scores from mediapipe's facts and the indexer's hints."""
    h = _hint_scores(hints)
    face = facts.face_score if facts.faces else 0.0
    mask = mix.mask_weight * min(1.0, facts.mask_share / 0.3)
    person = max(face, h.get("person", 0.0), mask)
    many = 1.0 if facts.faces >= 2 else 0.0
    if facts.mask_blobs >= 2 and person >= 0.5:
        many = max(many, 0.6)
    crowd = max(min(1.0, max(0, facts.faces - 2) / 3), min(1.0, max(0, facts.mask_blobs - 2) / 4))
    return {"person": person, "people": max(many, h.get("people", 0.0), crowd),
            "crowd": crowd,
            "face": max(min(1.0, facts.face_height / 0.3) if facts.faces else 0.0,
                        h.get("face", 0.0))}


class ConceptEmbedder(ProxyEmbedder):
    """proxy-v4: see the module docstring. Reuses proxy-v3's classifier and label space."""

    name = NAME
    dim = DIM

    def __init__(self, *, mix: Mix = MIX, **options) -> None:
        super().__init__(**options)
        self.mix = mix

    # -- frames ---------------------------------------------------------------------------
    def signals(self, images: list[np.ndarray], hints=None, facts=None) -> list[FrameSignals]:
        """Classifier probabilities and attribute scores per frame (no weights applied).
        ``facts[i]``: what mediapipe saw in image i, measured already (the indexer's workers
        do), or None to run the models here."""
        from retrieval.analysis.people import detect

        probs = self.classify(images) if images else np.zeros((0, N_CLASSES), np.float32)
        out = []
        for i, image in enumerate(images):
            facts_i = facts[i] if facts is not None else None
            if facts_i is None:
                facts_i = detect(np.asarray(image))
            scene = light_and_colour(np.asarray(image))
            hint = tuple(hints[i]) if hints else ()
            out.append(FrameSignals(probs[i], self.attribute_vector(scene, facts_i, hint), facts_i,
                                    tuple(scene.items()), hint))
        return out

    def attribute_vector(self, scene: dict[str, float], facts: PeopleFacts, hints) -> np.ndarray:
        """Every attribute of ATTRIBUTES in 0..1, from the raw measurements of one frame."""
        scores = {**scene, **people_attributes(facts, hints, self.mix)}
        return np.array([scores.get(a, 0.0) for a in ATTRIBUTES], np.float32)

    def reweigh(self, signals: list[FrameSignals]) -> list[FrameSignals]:
        """The same measurements with this embedder's Mix applied (for the tuning script)."""
        return [replace(s, attributes=self.attribute_vector(dict(s.scene), s.facts, s.hints))
                for s in signals]

    def frame_vectors(self, signals: list[FrameSignals], texts: list[str]) -> np.ndarray:
        """The frame side of the score, (N, DIM), each row of unit length."""
        mix = self.mix
        n = len(signals)
        if not n:
            return np.zeros((0, DIM), np.float32)
        probs = np.stack([s.probs for s in signals]).astype(np.float64)
        attrs = np.stack([s.attributes for s in signals]).astype(np.float32)
        sharp = probs ** (1.0 / mix.temperature)
        sharp /= sharp.sum(axis=1, keepdims=True)
        top = np.argsort(-sharp, axis=1)[:, : mix.top_k]
        weights = np.take_along_axis(sharp, top, axis=1).astype(np.float32)
        mixed = np.einsum("nk,nkd->nd", weights, self.label_vectors()[top])
        phrase_vecs = _phrase_vectors()
        for name, vec in phrase_vecs.items():
            a = attrs[:, ATTRIBUTES.index(name)]
            mixed += (mix.phrase_weight * a * weights.sum(axis=1))[:, None] * vec[None]
        text = normalise(mixed)
        has_text = np.array([bool(t.strip()) for t in texts])
        if has_text.any():
            unique = sorted({t for t in texts if t.strip()})
            encoded = dict(zip(unique, encode_texts(unique)))
            own = np.stack([encoded[t] if t.strip() else np.zeros(TEXT_DIM, np.float32)
                            for t in texts])
            text = blend_text(text, own, has_text, mix.visual_weight)
        out = np.zeros((n, DIM), np.float32)
        out[:, :TEXT_DIM] = C_TEXT * text
        out[:, TEXT_DIM:TEXT_DIM + N_CLASSES] = C_MASS * probs
        out[:, TEXT_DIM + N_CLASSES:-1] = C_ATTR * attrs
        used = np.einsum("nd,nd->n", out, out)
        out[:, -1] = np.sqrt(np.clip(1.0 - used, 0.0, None))
        return normalise(out)

    def analyse(self, images: list[np.ndarray], texts: list[str], hints=None,
                facts=None) -> ImageAnalysis:
        if len(texts) != len(images):
            raise ValueError(f"got {len(images)} images but {len(texts)} texts")
        if hints is not None and len(hints) != len(images):
            raise ValueError(f"got {len(images)} images but {len(hints)} hint lists")
        if facts is not None and len(facts) != len(images):
            raise ValueError(f"got {len(images)} images but {len(facts)} people facts")
        signals = self.signals(images, hints, facts)
        vectors = self.frame_vectors(signals, texts)
        names = label_names()
        labels = []
        for s in signals:
            top = np.argsort(-s.probs)[:5]
            labels.append(_top_labels(names, top, s.probs[top]))
        return ImageAnalysis(vectors, tuple(labels))

    def embed_images(self, images, texts, hints=None) -> np.ndarray:
        return self.analyse(images, texts, hints).vectors

    def describe(self, image: np.ndarray) -> list[str]:
        return list(self.analyse([image], [""]).labels[0])

    # -- queries --------------------------------------------------------------------------
    def read_queries(self, queries: list[str]) -> list[QueryParts]:
        """Each query's MiniLM vector, WordNet classes and asked-for attributes."""
        from .wordnet import concepts

        text = encode_texts(list(queries))
        out = []
        for q, vec in zip(queries, text):
            words, nouns = query_words(q)
            c = concepts(nouns)
            out.append(QueryParts(vec, c.classes, asked(words, c.person)))
        return out

    def query_vectors(self, parts: list[QueryParts]) -> np.ndarray:
        mix = self.mix
        out = np.zeros((len(parts), DIM), np.float32)
        for i, p in enumerate(parts):
            out[i, :TEXT_DIM] = mix.alpha / C_TEXT * p.text
            if p.classes:
                idx = TEXT_DIM + np.fromiter(p.classes, int)
                out[i, idx] = mix.beta / C_MASS
            for group, weight in ((PEOPLE, mix.gamma), (LIGHT + COLOURS, mix.gamma_scene)):
                wanted = {a: w for a, w in p.attributes.items() if a in group}
                for a, w in wanted.items():
                    out[i, TEXT_DIM + N_CLASSES + ATTRIBUTES.index(a)] = \
                        weight / C_ATTR / len(wanted) * w
        return out

    def embed_queries(self, queries: list[str]) -> np.ndarray:
        """Query vectors (not unit length: see the module docstring)."""
        return self.query_vectors(self.read_queries(queries))


@lru_cache(maxsize=1)
def _phrase_vectors() -> dict[str, np.ndarray]:
    names = list(PHRASES)
    return dict(zip(names, encode_texts([PHRASES[n] for n in names])))


@lru_cache(maxsize=4096)
def query_words(query: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(lemma, part of speech) of a query's words, and its nouns with WordNet compounds first
    ("a bow tie" -> ["bow tie"], not "bow" and "tie")."""
    from planner.nlp import load_nlp

    from .wordnet import noun_synsets

    doc = load_nlp()(query, disable=["parser", "ner"])
    toks = [(t.lemma_.lower(), t.pos_, t.text.lower()) for t in doc]
    words = [(lemma, pos) for lemma, pos, _ in toks if lemma.isalpha()]
    nouns: list[str] = []
    skip = set()
    for i in range(len(toks) - 1):
        (l1, p1, w1), (l2, p2, _) = toks[i], toks[i + 1]
        if p2 in ("NOUN", "PROPN") and p1 in ("NOUN", "PROPN", "ADJ", "VERB") and \
                noun_synsets(f"{w1} {l2}"):
            nouns.append(f"{w1} {l2}")
            skip |= {i, i + 1}
    for i, (lemma, pos, _) in enumerate(toks):
        if i not in skip and pos in ("NOUN", "PROPN") and lemma.isalpha():
            nouns.append(lemma)
    return words, nouns


def with_mix(embedder: ConceptEmbedder, **changes) -> ConceptEmbedder:
    """A copy of ``embedder`` with other weights (the tuning script's knob)."""
    other = ConceptEmbedder(cache_dir=embedder.cache_dir, threads=embedder.threads,
                            batch_size=embedder.batch_size, mix=replace(embedder.mix, **changes))
    other._labels = embedder._labels
    return other


__all__ = ["ConceptEmbedder", "DIM", "FrameSignals", "MIX", "Mix", "NAME", "QueryParts",
           "query_words", "with_mix"]
