"""The words a shot is labelled with, and the people phrases the proxy embedder mixes in.

Labels are what the classifier saw (the ones most keyframes agree on), then what the face and
people detectors found, then the footage's own words; they feed keyword search and reports.
"""
from __future__ import annotations

from retrieval.types import ShotFeatures

MAX_VISUAL_LABELS = 5


def people_hints(f: ShotFeatures | None) -> tuple[tuple[str, float], ...]:
    """Phrases for what the face and people detectors saw, weighted by how sure they are."""
    if f is None:
        return ()
    n = max(f.faces, f.people)
    if not n:
        return ()
    out = [("a person" if n == 1 else "a group of people", 1.0 if f.faces else 0.6)]
    if f.scale == "close-up":
        out.append(("a close-up portrait of a face", 0.5))
    return tuple(out)


def people_words(f: ShotFeatures | None) -> list[str]:
    """Keywords for the same: person / people, face, close-up."""
    if f is None or not max(f.faces, f.people):
        return []
    words = ["person"] if max(f.faces, f.people) == 1 else ["people"]
    if f.faces:
        words.append("face")
    if f.scale == "close-up":
        words += ["close-up", "portrait"]
    return words


def merge_labels(per_frame: list[tuple[str, ...]], words: list[str]) -> tuple[str, ...]:
    """The labels most keyframes agree on (best rank first), then the given words."""
    score: dict[str, float] = {}
    for labels in per_frame:
        for rank, label in enumerate(labels):
            score[label] = score.get(label, 0.0) + 1.0 / (rank + 1)
    visual = sorted(score, key=lambda k: -score[k])[:MAX_VISUAL_LABELS]
    return tuple(visual + [w for w in dict.fromkeys(words) if w not in visual])
